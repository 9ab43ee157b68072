-- Portable SQL: the same file is applied to SQLite and PostgreSQL.
-- Append-only: never edit a migration that has shipped; add a new file.

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL
);

CREATE TABLE requests (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    entrypoint    TEXT NOT NULL,
    body          TEXT NOT NULL,
    status        TEXT NOT NULL,
    schedule_type TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    cluster_name  TEXT,
    created_at    DOUBLE PRECISION NOT NULL,
    started_at    DOUBLE PRECISION,
    finished_at   DOUBLE PRECISION,
    return_value  TEXT,
    error         TEXT,
    status_msg    TEXT,
    server_id     TEXT,
    attempts      BIGINT NOT NULL DEFAULT 0
);

-- The executor's claim query scans only pending rows.
CREATE INDEX requests_pending ON requests (schedule_type, created_at) WHERE status = 'PENDING';
CREATE INDEX requests_status ON requests (status);
CREATE INDEX requests_created ON requests (created_at);
CREATE INDEX requests_user ON requests (user_id, created_at);

-- API server processes sharing this database, so a restarted server can tell
-- which RUNNING requests lost their worker.
CREATE TABLE servers (
    id            TEXT PRIMARY KEY,
    hostname      TEXT NOT NULL,
    pid           BIGINT NOT NULL,
    started_at    DOUBLE PRECISION NOT NULL,
    heartbeat_at  DOUBLE PRECISION NOT NULL
);
