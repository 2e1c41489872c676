-- +goose Up
CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL);

-- +goose Down
DROP TABLE items;
