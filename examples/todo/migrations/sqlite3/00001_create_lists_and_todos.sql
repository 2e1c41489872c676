-- +goose Up
CREATE TABLE lists (
    id         INTEGER PRIMARY KEY,
    name       VARCHAR(100) NOT NULL,
    todo_count INTEGER NOT NULL DEFAULT 0,
    done_count INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    CONSTRAINT lists_name UNIQUE (name),
    CONSTRAINT lists_counts CHECK (done_count >= 0 AND done_count <= todo_count)
);

-- SQLite enforces the foreign key only on connections opened with
-- _foreign_keys=1; the service checks that the list exists either way.
CREATE TABLE todos (
    id         INTEGER PRIMARY KEY,
    list_id    INTEGER NOT NULL REFERENCES lists (id),
    title      VARCHAR(200) NOT NULL,
    done       BOOLEAN NOT NULL DEFAULT FALSE,
    version    INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE INDEX todos_list_id ON todos (list_id, id);

-- +goose Down
DROP TABLE todos;
DROP TABLE lists;
