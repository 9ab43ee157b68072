-- Clusters and what the server knows of them. Portable SQL, append-only.
-- Flags are BIGINT 0/1: SQLite has no boolean type, and one column type
-- must decode the same from both databases.

CREATE TABLE clusters (
    name               TEXT PRIMARY KEY,
    status             TEXT NOT NULL,
    user_id            TEXT NOT NULL,
    workspace          TEXT NOT NULL,
    infra              TEXT NOT NULL,
    cluster_hash       TEXT NOT NULL,
    launched_at        DOUBLE PRECISION,
    status_updated_at  DOUBLE PRECISION NOT NULL,
    num_nodes          BIGINT NOT NULL,
    resources          TEXT NOT NULL,
    handle             TEXT NOT NULL,
    autostop_minutes   BIGINT NOT NULL,
    autostop_down      BIGINT NOT NULL,
    ever_up            BIGINT NOT NULL,
    last_use           TEXT
);

CREATE INDEX clusters_user ON clusters (user_id, name);
