-- Managed jobs: the job (who, what, where, whether cancel was asked, and
-- which server drives it until when) and its tasks, run one after another,
-- each on a cluster of its own. The controller's whole state lives here,
-- so that any server can carry a job on after a crash. Portable SQL,
-- append-only.

CREATE TABLE managed_jobs (
    job_id            BIGINT PRIMARY KEY,
    -- The request that submitted it: submitting again (a launch resumed
    -- after a crash) finds the job instead of making another.
    request_id        TEXT NOT NULL UNIQUE,
    name              TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    workspace         TEXT NOT NULL,
    -- The tasks as the job was accepted (secrets included: relaunches
    -- need them).
    dag_yaml          TEXT NOT NULL,
    file_mounts_blob  TEXT,
    entrypoint        TEXT NOT NULL,
    submitted_at      DOUBLE PRECISION NOT NULL,
    cancel_requested  BIGINT NOT NULL DEFAULT 0,
    done              BIGINT NOT NULL DEFAULT 0,
    -- The server driving the job, while its lease lasts.
    lease_owner       TEXT,
    lease_until       DOUBLE PRECISION
);

CREATE INDEX managed_jobs_undone ON managed_jobs (done, job_id);
CREATE INDEX managed_jobs_user ON managed_jobs (user_id, job_id);

CREATE TABLE managed_job_tasks (
    job_id            BIGINT NOT NULL REFERENCES managed_jobs (job_id) ON DELETE CASCADE,
    task_id           BIGINT NOT NULL,
    task_name         TEXT NOT NULL,
    resources         TEXT NOT NULL,
    status            TEXT NOT NULL,
    schedule_state    TEXT NOT NULL,
    start_at          DOUBLE PRECISION,
    end_at            DOUBLE PRECISION,
    -- Seconds run in attempts that ended; the current one adds from
    -- last_started_at.
    run_seconds       DOUBLE PRECISION NOT NULL DEFAULT 0,
    last_started_at   DOUBLE PRECISION,
    recovery_count    BIGINT NOT NULL DEFAULT 0,
    restarts          BIGINT NOT NULL DEFAULT 0,
    -- Each launch of the task's cluster and job is an attempt, from 1.
    attempt           BIGINT NOT NULL DEFAULT 0,
    cluster_name      TEXT,
    cluster_job_id    BIGINT,
    infra             TEXT,
    failure_reason    TEXT,
    PRIMARY KEY (job_id, task_id)
);
