-- name: CreateAuthor :one
INSERT INTO authors (name, bio) VALUES ($1, $2) RETURNING id;

-- name: GetAuthor :one
SELECT id, name, bio FROM authors WHERE id = $1;

-- name: ListAuthors :many
SELECT id, name, bio FROM authors ORDER BY name;

-- name: CountAuthors :one
SELECT COUNT(*) FROM authors;

-- name: DeleteAuthor :execrows
DELETE FROM authors WHERE id = $1;
