-- What `ssh up` recorded about how to reach an SSH node pool's hosts (as
-- JSON: host, user, key path; never a sudo password), so that `ssh down`
-- still reaches them once the pool file no longer lists the pool.
-- Portable SQL, append-only.

CREATE TABLE ssh_pool_records (
    pool        TEXT PRIMARY KEY,
    hosts       TEXT NOT NULL,
    updated_at  DOUBLE PRECISION NOT NULL
);
