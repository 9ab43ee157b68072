//! One job's life inside the daemon: setup on every node, then run on every
//! node, then its final status.

use crate::cluster::{ClusterInfo, NodeInfo};
use crate::env::{Phase, node_env};
use crate::fsutil::open_append;
use crate::jobs::{finish, read_secrets};
use crate::paths::ClusterDir;
use crate::process::{JOB_MARKER_VAR, KILL_GRACE, boot_id, job_marker};
use crate::protocol::JobStatus;
use crate::remote::{Reach, alive_interval, spawn_remote};
use crate::runner::{NodeCommand, NodeProcess, PhaseEnd, spawn_node, wait_phase};
use crate::state::{JobRecord, NodeProc, StateStore};
use anyhow::Context;
use std::collections::BTreeMap;
use std::fs::File;
use std::sync::Arc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub(crate) struct JobContext {
    pub dir: ClusterDir,
    pub cluster: ClusterInfo,
    pub store: StateStore,
}

enum Ending {
    Succeeded,
    Failed(JobStatus, String),
    Cancelled,
}

/// Runs `job` to its end. `cancel` stops it (a `cancel` command or the
/// daemon stopping); `stopping` tells the two apart.
pub(crate) async fn supervise(
    ctx: Arc<JobContext>,
    job: JobRecord,
    cancel: CancellationToken,
    stopping: CancellationToken,
) {
    let job_id = job.job_id;
    tracing::info!(job_id, "job starting");
    let (status, note) = match run_job(&ctx, &job, &cancel).await {
        Ok(Ending::Succeeded) => (JobStatus::Succeeded, None),
        Ok(Ending::Failed(status, note)) => (status, Some(note)),
        // A `cancel` has already written CANCELLED; only a stopping agent
        // still has to.
        Ok(Ending::Cancelled) => (
            JobStatus::Cancelled,
            stopping.is_cancelled().then(|| {
                format!("Job {job_id} cancelled: the agent stopped (the cluster is stopping).")
            }),
        ),
        Err(err) => (
            JobStatus::FailedDriver,
            Some(format!(
                "ERROR: the agent could not run job {job_id}: {err:#}"
            )),
        ),
    };
    if let Err(err) = finish(&ctx.dir, &ctx.store, job_id, status, note.as_deref()) {
        tracing::error!(job_id, "cannot record the job's end: {err:#}");
    }
}

async fn run_job(
    ctx: &JobContext,
    job: &JobRecord,
    cancel: &CancellationToken,
) -> anyhow::Result<Ending> {
    let job_id = job.job_id;
    let secrets = read_secrets(&ctx.dir, job_id)?;
    let log = Arc::new(open_append(&ctx.dir.job_log(job_id))?);
    // A worker's is made there, by node-exec.
    for node in ctx.cluster.nodes[..job.num_nodes]
        .iter()
        .filter(|node| !node.is_remote())
    {
        let workdir = node.workdir();
        std::fs::create_dir_all(&workdir)
            .with_context(|| format!("cannot create {}", workdir.display()))?;
    }
    let runner = PhaseRunner {
        ctx,
        job,
        secrets: &secrets,
        log: &log,
        cancel,
    };
    if let Some(setup) = &job.setup {
        match runner.run(Phase::Setup, setup).await? {
            PhaseEnd::Succeeded => {}
            PhaseEnd::Cancelled => return Ok(Ending::Cancelled),
            PhaseEnd::Lost(reason) => return Ok(lost(job_id, &reason)),
            PhaseEnd::Failed(codes) => {
                return Ok(Ending::Failed(
                    JobStatus::FailedSetup,
                    crate::protocol::failure_line(job_id, true, &codes),
                ));
            }
        }
        if !begin_run(&ctx.store, job_id)? {
            return Ok(Ending::Cancelled);
        }
    }
    if let Some(run) = &job.run {
        match runner.run(Phase::Run, run).await? {
            PhaseEnd::Succeeded => {}
            PhaseEnd::Cancelled => return Ok(Ending::Cancelled),
            PhaseEnd::Lost(reason) => return Ok(lost(job_id, &reason)),
            PhaseEnd::Failed(codes) => {
                return Ok(Ending::Failed(
                    JobStatus::Failed,
                    crate::protocol::failure_line(job_id, false, &codes),
                ));
            }
        }
    }
    Ok(Ending::Succeeded)
}

/// SkyPilot's status for a job whose driver (here: the link to a worker)
/// died under it.
fn lost(job_id: u64, reason: &str) -> Ending {
    Ending::Failed(
        JobStatus::FailedDriver,
        format!("ERROR: Job {job_id} {reason}; the other nodes were stopped."),
    )
}

struct PhaseRunner<'a> {
    ctx: &'a JobContext,
    job: &'a JobRecord,
    secrets: &'a BTreeMap<String, String>,
    log: &'a Arc<File>,
    cancel: &'a CancellationToken,
}

impl PhaseRunner<'_> {
    async fn run(&self, phase: Phase, script: &str) -> anyhow::Result<PhaseEnd> {
        let (ctx, job) = (self.ctx, self.job);
        let prefixed = job.num_nodes > 1;
        let alive = alive_interval();
        let mut spawned = Vec::new();
        let mut failure = None;
        // Workers start together: each waits for its SSH handshake.
        let mut remote = JoinSet::new();
        for node in &ctx.cluster.nodes[..job.num_nodes] {
            let command = self.command(phase, node);
            if let Some(reach) = Reach::of(node) {
                let (script, log) = (script.to_owned(), self.log.clone());
                remote.spawn(async move {
                    let started = spawn_remote(&script, &command, &reach, &log, alive).await;
                    (command.rank, started)
                });
                continue;
            }
            match spawn_node(script, &command, self.log, prefixed).await {
                Ok(process) => spawned.push(process),
                Err(err) => {
                    failure = Some(
                        anyhow::Error::new(err)
                            .context(format!("cannot start bash on node {}", node.rank)),
                    );
                    break;
                }
            }
        }
        while let Some(joined) = remote.join_next().await {
            match joined {
                Ok((_, Ok(process))) => spawned.push(process),
                Ok((rank, Err(err))) => {
                    failure.get_or_insert_with(|| {
                        anyhow::Error::new(err).context(format!("cannot start node {rank}"))
                    });
                }
                Err(err) => {
                    failure.get_or_insert_with(|| anyhow::anyhow!("a node's start failed: {err}"));
                }
            }
        }
        if let Some(err) = failure {
            // Stop the nodes already started before giving up.
            self.cancel.cancel();
            wait_phase(spawned, self.cancel, KILL_GRACE).await;
            return Err(err);
        }
        spawned.sort_by_key(|process| process.rank);
        if !record_procs(&ctx.store, job.job_id, &spawned)? {
            // Cancelled while the processes were starting.
            self.cancel.cancel();
        }
        Ok(wait_phase(spawned, self.cancel, KILL_GRACE).await)
    }

    fn command(&self, phase: Phase, node: &NodeInfo) -> NodeCommand {
        let (ctx, job) = (self.ctx, self.job);
        let mut env = node_env(&ctx.cluster, job, node.rank, phase, self.secrets);
        env.push((JOB_MARKER_VAR.to_owned(), job_marker(&ctx.dir, job.job_id)));
        let script_file = if node.is_remote() {
            // On the worker, inside the node's own directory.
            node.dir
                .join(".skydeck")
                .join(format!("job-{}-{}.sh", job.job_id, phase.name()))
        } else {
            ctx.dir.job_script(job.job_id, phase.name(), node.rank)
        };
        NodeCommand {
            rank: node.rank,
            phase,
            workdir: node.workdir(),
            script_file,
            env,
        }
    }
}

/// Saves the phase's process groups for `cancel` and a restarted daemon.
/// False if the job was cancelled meanwhile.
fn record_procs(store: &StateStore, job_id: u64, spawned: &[NodeProcess]) -> anyhow::Result<bool> {
    let boot_id = boot_id();
    store.update(|state| {
        let Some(job) = state
            .job_mut(job_id)
            .filter(|job| !job.status.is_finished())
        else {
            return Ok(false);
        };
        job.procs = spawned
            .iter()
            .map(|process| NodeProc {
                rank: process.rank,
                pgid: process.pid,
                boot_id: boot_id.clone(),
            })
            .collect();
        Ok(true)
    })
}

/// SETTING_UP → RUNNING; false if the job was cancelled meanwhile.
fn begin_run(store: &StateStore, job_id: u64) -> anyhow::Result<bool> {
    store.update(|state| {
        let Some(job) = state
            .job_mut(job_id)
            .filter(|job| !job.status.is_finished())
        else {
            return Ok(false);
        };
        job.status = JobStatus::Running;
        job.procs.clear();
        Ok(true)
    })
}
