-- Every cluster that was ever UP, kept after it is torn down: what
-- `sky cost-report` lists. One row per incarnation (`cluster_hash`; a
-- name launched again after `down` is a new row), with the cluster's
-- fields as they last were and `ended_at`, the time of its teardown
-- (NULL while it exists). Portable SQL, append-only.

CREATE TABLE cluster_history (
    cluster_hash       TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    status             TEXT NOT NULL,
    user_id            TEXT NOT NULL,
    workspace          TEXT NOT NULL,
    infra              TEXT NOT NULL,
    launched_at        DOUBLE PRECISION,
    status_updated_at  DOUBLE PRECISION NOT NULL,
    num_nodes          BIGINT NOT NULL,
    resources          TEXT NOT NULL,
    handle             TEXT NOT NULL,
    autostop_minutes   BIGINT NOT NULL,
    autostop_down      BIGINT NOT NULL,
    ever_up            BIGINT NOT NULL,
    last_use           TEXT,
    ended_at           DOUBLE PRECISION
);

CREATE INDEX cluster_history_user ON cluster_history (user_id, ended_at);

-- Clusters that are up when the server is upgraded have their history
-- from now on.
INSERT INTO cluster_history (cluster_hash, name, status, user_id, workspace, infra,
    launched_at, status_updated_at, num_nodes, resources, handle, autostop_minutes,
    autostop_down, ever_up, last_use, ended_at)
SELECT cluster_hash, name, status, user_id, workspace, infra, launched_at,
    status_updated_at, num_nodes, resources, handle, autostop_minutes, autostop_down,
    ever_up, last_use, NULL
FROM clusters WHERE ever_up = 1;
