-- name: CreateAuthor :execlastid
INSERT INTO authors (name, bio) VALUES (?, ?);

-- name: GetAuthor :one
SELECT id, name, bio FROM authors WHERE id = ?;

-- name: ListAuthors :many
SELECT id, name, bio FROM authors ORDER BY name;

-- name: CountAuthors :one
SELECT COUNT(*) FROM authors;

-- name: DeleteAuthor :execrows
DELETE FROM authors WHERE id = ?;
