//! Changes to the job queue that both the daemon and the short-lived
//! subcommands make: adding a job, cancelling jobs, finishing a job.

use crate::fsutil::{append_line, remove_if_exists, write_atomic};
use crate::paths::ClusterDir;
use crate::process::{kill_recorded, wake_daemon};
use crate::protocol::{JobSpec, JobStatus};
use crate::state::{JobRecord, NodeProc, StateStore};
use anyhow::Context;
use std::collections::BTreeMap;

/// Queues `spec` and returns its id, or the id of the job already queued
/// under the same idempotency key.
pub(crate) fn submit(dir: &ClusterDir, store: &StateStore, spec: JobSpec) -> anyhow::Result<u64> {
    spec.validate()?;
    let job_id = store.update(|state| {
        if let Some(job) = state
            .jobs
            .iter()
            .find(|job| job.idempotency_key == spec.idempotency_key)
        {
            return Ok(job.job_id);
        }
        let job_id = state.next_job_id;
        let job_dir = dir.job_dir(job_id);
        std::fs::create_dir_all(&job_dir)
            .with_context(|| format!("cannot create {}", job_dir.display()))?;
        // A log exists from the start, so `logs` on a queued job shows an
        // empty log rather than an error.
        std::fs::File::create(dir.job_log(job_id))
            .with_context(|| format!("cannot create {}", dir.job_log(job_id).display()))?;
        let (record, secrets) = JobRecord::new(job_id, spec);
        if secrets.is_empty() {
            remove_if_exists(&dir.job_secrets(job_id))?;
        } else {
            write_atomic(
                &dir.job_secrets(job_id),
                &serde_json::to_vec(&secrets)?,
                0o600,
            )?;
        }
        state.jobs.push(record);
        state.next_job_id = job_id + 1;
        Ok(job_id)
    })?;
    wake_daemon(dir);
    Ok(job_id)
}

/// Reads what `submit` set aside; none once the job has finished.
pub(crate) fn read_secrets(
    dir: &ClusterDir,
    job_id: u64,
) -> anyhow::Result<BTreeMap<String, String>> {
    let path = dir.job_secrets(job_id);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not valid JSON", path.display())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Selection {
    Ids(Vec<u64>),
    All,
    /// The newest unfinished job.
    Newest,
}

/// Marks the selected unfinished jobs CANCELLED, then stops their processes
/// on every node. Returns the ids it cancelled, ascending.
pub(crate) async fn cancel(
    dir: &ClusterDir,
    store: &StateStore,
    selection: &Selection,
    user_hash: Option<&str>,
) -> anyhow::Result<Vec<u64>> {
    let cancelled: Vec<(u64, Vec<NodeProc>)> = store.update(|state| {
        let cancellable = |job: &&JobRecord| {
            !job.status.is_finished() && user_hash.is_none_or(|hash| job.user_hash == hash)
        };
        let ids: Vec<u64> = match selection {
            Selection::Ids(ids) => state
                .jobs
                .iter()
                .filter(cancellable)
                .filter(|job| ids.contains(&job.job_id))
                .map(|job| job.job_id)
                .collect(),
            Selection::All => state
                .jobs
                .iter()
                .filter(cancellable)
                .map(|job| job.job_id)
                .collect(),
            Selection::Newest => state
                .jobs
                .iter()
                .rev()
                .find(cancellable)
                .map(|job| job.job_id)
                .into_iter()
                .collect(),
        };
        let mut cancelled = Vec::new();
        for job_id in ids {
            if let Some(job) = state.job_mut(job_id) {
                remove_if_exists(&dir.job_secrets(job_id))?;
                job.finish(JobStatus::Cancelled);
                cancelled.push((job_id, job.procs.clone()));
            }
        }
        Ok(cancelled)
    })?;
    // CANCELLED is written first: the daemon, seeing the processes die,
    // then leaves the status alone.
    let procs: Vec<NodeProc> = cancelled
        .iter()
        .flat_map(|(_, procs)| procs.clone())
        .collect();
    kill_recorded(&procs).await;
    wake_daemon(dir);
    Ok(cancelled.into_iter().map(|(job_id, _)| job_id).collect())
}

/// Gives an unfinished job its final status, with `note` appended to its log
/// first so that a reader who sees the status also sees why. False when the
/// job had already finished (a `cancel` came first): that status stands.
pub(crate) fn finish(
    dir: &ClusterDir,
    store: &StateStore,
    job_id: u64,
    status: JobStatus,
    note: Option<&str>,
) -> anyhow::Result<bool> {
    let finished = store.update(|state| {
        let Some(job) = state.job_mut(job_id) else {
            return Ok(false);
        };
        job.procs.clear();
        // Under the lock: whoever sees the job finished finds its secrets gone.
        remove_if_exists(&dir.job_secrets(job_id))?;
        if job.status.is_finished() {
            return Ok(false);
        }
        if let Some(note) = note
            && let Err(err) = append_line(&dir.job_log(job_id), note)
        {
            tracing::warn!(job_id, "{err:#}");
        }
        Ok(job.finish(status))
    })?;
    if finished {
        tracing::info!(job_id, ?status, "job finished");
    }
    Ok(finished)
}
