-- +goose Up
ALTER TABLE no_such_table ADD COLUMN note VARCHAR(200);

-- +goose Down
SELECT 1;
