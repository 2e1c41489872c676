-- +goose Up
ALTER TABLE items ADD COLUMN note VARCHAR(200);

-- +goose Down
ALTER TABLE items DROP COLUMN note;
