-- +goose Up
-- utf8mb4_bin: any character fits, and names compare as PostgreSQL and
-- SQLite compare them (case-sensitively).
CREATE TABLE lists (
    id         BIGINT AUTO_INCREMENT PRIMARY KEY,
    name       VARCHAR(100) NOT NULL,
    todo_count BIGINT NOT NULL DEFAULT 0,
    done_count BIGINT NOT NULL DEFAULT 0,
    created_at DATETIME(6) NOT NULL,
    CONSTRAINT lists_name UNIQUE (name),
    CONSTRAINT lists_counts CHECK (done_count >= 0 AND done_count <= todo_count)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE todos (
    id         BIGINT AUTO_INCREMENT PRIMARY KEY,
    list_id    BIGINT NOT NULL,
    title      VARCHAR(200) NOT NULL,
    done       BOOLEAN NOT NULL DEFAULT FALSE,
    version    BIGINT NOT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    INDEX todos_list_id (list_id, id),
    CONSTRAINT todos_list FOREIGN KEY (list_id) REFERENCES lists (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- +goose Down
DROP TABLE todos;
DROP TABLE lists;
