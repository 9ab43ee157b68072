-- Workspaces on requests, and the shared config. Portable SQL, append-only.

-- Requests made before workspaces existed ran in the default one.
ALTER TABLE requests ADD COLUMN workspace TEXT NOT NULL DEFAULT 'default';

-- The server config (config.yaml) when the database is shared by replicas:
-- one row, replaced whole. `version` grows with each change so replicas
-- notice an update by reading one integer.
CREATE TABLE server_config (
    id          BIGINT PRIMARY KEY,
    yaml        TEXT NOT NULL,
    version     BIGINT NOT NULL,
    updated_at  DOUBLE PRECISION NOT NULL,
    updated_by  TEXT
);
