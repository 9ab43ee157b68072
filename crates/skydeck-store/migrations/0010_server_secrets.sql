-- Secrets every server on this database shares, by name: the first server
-- to need one records it, and the rest read that one (the dashboard's form
-- tokens are keyed by one, so a form rendered by one replica is accepted
-- by another, and after a restart). Portable SQL, append-only.
CREATE TABLE server_secrets (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
