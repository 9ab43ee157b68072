-- Placement on machines Skydeck places work on itself (this machine as
-- `local`, the hosts of SSH node pools): each host's capacity, and what
-- each node of a cluster holds there. Portable SQL, append-only. Lists
-- (GPUs, GPU indices, ports) are JSON text, as elsewhere in this schema.

CREATE TABLE placement_hosts (
    id          TEXT PRIMARY KEY,
    pool        TEXT NOT NULL,
    cpus        DOUBLE PRECISION NOT NULL,
    memory_gb   DOUBLE PRECISION NOT NULL,
    gpus        TEXT NOT NULL
);

CREATE INDEX placement_hosts_pool ON placement_hosts (pool, id);

-- Deleting a cluster releases what it held, in the same statement.
CREATE TABLE placement_allocations (
    cluster_name  TEXT NOT NULL REFERENCES clusters (name) ON DELETE CASCADE,
    node_rank     BIGINT NOT NULL,
    host_id       TEXT NOT NULL REFERENCES placement_hosts (id),
    cpus          DOUBLE PRECISION NOT NULL,
    memory_gb     DOUBLE PRECISION NOT NULL,
    gpus          TEXT NOT NULL,
    ports         TEXT NOT NULL,
    PRIMARY KEY (cluster_name, node_rank)
);

CREATE INDEX placement_allocations_host ON placement_allocations (host_id);
