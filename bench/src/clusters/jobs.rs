//! Many short jobs through one cluster, as a script running `sky exec -d`
//! in a loop would: every `/exec` is sent back to back without waiting for
//! the job, then the benchmark waits until the agent reports every job
//! finished.
//!
//! When a job ended is read from the agent's own records (`end_at` in
//! `/queue`), so the end-to-end time does not depend on how often we poll.
//! The job's own run time is measured apart, by running its command
//! directly, to tell what the job costs from what getting it run costs.

use super::api::{Api, FINISHED, QueuedJob, task_yaml, task_yaml_on};
use super::{Created, agent_daemon, cluster_dir};
use crate::progress;
use crate::server::{CpuTimes, Memory, Server, read_cpu};
use crate::stats::Summary;
use anyhow::{Context, bail};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The job: as short as a job can be, so what is measured is the cost of
/// getting it scheduled, run and recorded.
const RUN: &str = "true";

/// How often `/queue` is asked while waiting (each call runs the agent's
/// CLI once on the cluster).
const POLL: Duration = Duration::from_millis(100);

/// Times the job's command is run directly, for its own run time.
const ALONE_RUNS: usize = 20;

/// Give up waiting for the jobs after this long with no job finishing.
const STALL_LIMIT: Duration = Duration::from_secs(60);

pub struct JobsRun {
    pub jobs: usize,
    /// Every `POST /exec` answered (the requests are accepted).
    pub submitted: Duration,
    /// Every `/exec` request finished: each job is in the agent's queue.
    pub queued: Duration,
    /// The last job ended, by the agent's clock.
    pub finished: Duration,
    pub succeeded: usize,
    /// Jobs that ended otherwise, by status.
    pub other: BTreeMap<String, usize>,
    /// The job's command run directly (`bash -c`, as the agent runs it) by
    /// the benchmark: what the job itself costs.
    pub alone: Summary,
    /// Each job from start to end as the agent records it (`end_at −
    /// start_at`): the command plus the agent's work around it.
    pub runtime: Summary,
    /// Each job's time from submission to the agent until it started.
    pub wait: Summary,
    /// The most jobs the agent ran at the same time.
    pub max_running: usize,
    /// The server's CPU over the run (its own, and the agent commands it ran).
    pub cpu: CpuTimes,
    /// The cluster's agent daemon's CPU over the run (its own, and the
    /// jobs' processes it reaped), where this machine can see the daemon.
    pub agent_cpu: Option<CpuTimes>,
    /// The size of the agent's state file after the run: the daemon and
    /// every agent command read (and most rewrite) all of it.
    pub agent_state_bytes: Option<u64>,
    pub memory_after: Memory,
}

impl JobsRun {
    /// A run with nothing measured, for the reports' tests.
    #[cfg(test)]
    pub(crate) fn empty() -> Self {
        Self {
            jobs: 0,
            submitted: Duration::ZERO,
            queued: Duration::ZERO,
            finished: Duration::ZERO,
            succeeded: 0,
            other: BTreeMap::new(),
            alone: Summary::default(),
            runtime: Summary::default(),
            wait: Summary::default(),
            max_running: 0,
            cpu: CpuTimes::default(),
            agent_cpu: None,
            agent_state_bytes: None,
            memory_after: Memory {
                rss_kib: 0,
                hwm_kib: 0,
            },
        }
    }

    /// Jobs per second, from the first `POST` to the last job's end.
    pub fn rate(&self) -> f64 {
        self.jobs as f64 / self.finished.as_secs_f64()
    }

    /// Wall time per job, end to end.
    pub fn per_job(&self) -> Duration {
        self.finished / self.jobs.max(1) as u32
    }

    /// Wall time per job beyond what the job's command itself takes: what
    /// getting one job through the server and the agent costs.
    pub fn overhead(&self) -> Option<Duration> {
        Some(self.per_job().saturating_sub(self.alone.median()?))
    }
}

pub async fn run(
    server: &Server,
    api: &Api,
    created: &Created,
    jobs: u32,
) -> anyhow::Result<JobsRun> {
    let alone = command_alone().await?;
    progress(&format!("{jobs} short jobs: launching the cluster"));
    let cluster = "bench-jobs";
    created.add(cluster);
    let id = api.submit_launch(cluster, task_yaml("idle", None)).await?;
    api.wait(&id).await?;
    let dir = cluster_dir(&server.home(), cluster);
    let view = AgentView {
        daemon: Some(agent_daemon(&dir).context("the cluster's agent daemon is not running")?),
        state_file: Some(dir.join("agent").join("state.json")),
    };
    let mut run = through(server, api, cluster, jobs, None, &view).await?;
    created.down(api, cluster).await?;
    run.alone = alone;
    Ok(run)
}

/// What of a cluster's agent this machine can watch: its daemon's pid as
/// this machine sees it, and its state file.
#[derive(Debug, Default)]
pub struct AgentView {
    pub daemon: Option<u32>,
    pub state_file: Option<PathBuf>,
}

/// `jobs` short jobs through `cluster`, which is UP (on `infra`, when
/// that is not `local`). The job's own run time (`alone`) is left empty.
pub async fn through(
    server: &Server,
    api: &Api,
    cluster: &str,
    jobs: u32,
    infra: Option<&str>,
    view: &AgentView,
) -> anyhow::Result<JobsRun> {
    progress(&format!("{jobs} short jobs: submitting"));
    let agent_before = view.daemon.map(read_cpu).transpose()?;
    let cpu_before = server.cpu()?;
    let start = Instant::now();
    let start_epoch = epoch_now();
    let mut ids = Vec::with_capacity(jobs as usize);
    for _ in 0..jobs {
        ids.push(
            api.submit_exec(cluster, task_yaml_on("short", Some(RUN), infra))
                .await?,
        );
    }
    let submitted = start.elapsed();

    let mut job_ids = HashSet::with_capacity(ids.len());
    for id in &ids {
        job_ids.insert(Api::job_id(&api.wait(id).await?)?);
    }
    let queued = start.elapsed();
    if job_ids.len() != ids.len() {
        bail!(
            "{} /exec requests gave only {} distinct job ids",
            ids.len(),
            job_ids.len()
        );
    }

    progress(&format!("{jobs} short jobs: waiting for them to finish"));
    let records = wait_finished(api, cluster, &job_ids).await?;
    let cpu = server.cpu()?.since(cpu_before);
    let agent_cpu = match (view.daemon, agent_before) {
        (Some(pid), Some(before)) => Some(read_cpu(pid)?.since(before)),
        _ => None,
    };
    let memory_after = server.memory()?;
    let agent_state_bytes = view
        .state_file
        .as_ref()
        .and_then(|file| std::fs::metadata(file).ok())
        .map(|m| m.len());
    let mut run = summarize(records, start_epoch, submitted, queued, cpu, memory_after)?;
    run.agent_cpu = agent_cpu;
    run.agent_state_bytes = agent_state_bytes;
    Ok(run)
}

/// The job's command run the way the agent runs it, one at a time.
pub async fn command_alone() -> anyhow::Result<Summary> {
    let mut times = Vec::with_capacity(ALONE_RUNS);
    for _ in 0..ALONE_RUNS {
        let start = Instant::now();
        let status = tokio::process::Command::new("bash")
            .args(["-c", RUN])
            .stdin(std::process::Stdio::null())
            .status()
            .await
            .context("cannot run bash")?;
        times.push(start.elapsed());
        if !status.success() {
            bail!("`bash -c {RUN}` failed: {status}");
        }
    }
    Ok(Summary::of(times))
}

/// Waits until every one of `ours` is finished; returns their records.
///
/// Polls `/job_status` for the newest unfinished job only, and reads the
/// whole `/queue` (an answer that grows with every job) only once that one
/// is done: polling the full queue every 100 ms would make the benchmark
/// itself a large part of the server's load.
async fn wait_finished(
    api: &Api,
    cluster: &str,
    ours: &HashSet<u64>,
) -> anyhow::Result<Vec<QueuedJob>> {
    let mut pending: BTreeSet<u64> = ours.iter().copied().collect();
    let mut last_progress = Instant::now();
    loop {
        let Some(&probe) = pending.last() else {
            bail!("no jobs to wait for");
        };
        while !FINISHED.contains(&api.job_status(cluster, probe).await?.as_str()) {
            if last_progress.elapsed() > STALL_LIMIT {
                bail!(
                    "job {probe} has not finished after {STALL_LIMIT:?}; {} of {} jobs \
                     were still unfinished at the last look",
                    pending.len(),
                    ours.len()
                );
            }
            tokio::time::sleep(POLL).await;
        }
        let records: Vec<QueuedJob> = api
            .queue(cluster)
            .await?
            .into_iter()
            .filter(|job| ours.contains(&job.job_id))
            .collect();
        let before = pending.len();
        pending = records
            .iter()
            .filter(|job| !job.is_finished())
            .map(|job| job.job_id)
            .collect();
        if pending.is_empty() {
            return Ok(records);
        }
        if pending.len() < before {
            last_progress = Instant::now();
        }
    }
}

fn summarize(
    records: Vec<QueuedJob>,
    start_epoch: f64,
    submitted: Duration,
    queued: Duration,
    cpu: CpuTimes,
    memory_after: Memory,
) -> anyhow::Result<JobsRun> {
    let mut other = BTreeMap::new();
    let mut runtime = Vec::new();
    let mut wait = Vec::new();
    let mut last_end = start_epoch;
    let mut intervals = Vec::new();
    for job in &records {
        if job.status != "SUCCEEDED" {
            *other.entry(job.status.clone()).or_default() += 1;
        }
        let end = job
            .end_at
            .with_context(|| format!("finished job {} has no end_at", job.job_id))?;
        last_end = last_end.max(end);
        if let Some(start) = job.start_at {
            intervals.push((start, end));
            runtime.push(secs(end - start));
            if let Some(submitted_at) = job.submitted_at {
                wait.push(secs(start - submitted_at));
            }
        }
    }
    Ok(JobsRun {
        jobs: records.len(),
        submitted,
        queued,
        finished: secs(last_end - start_epoch),
        succeeded: records.len() - other.values().sum::<usize>(),
        other,
        alone: Summary::default(),
        runtime: Summary::of(runtime),
        wait: Summary::of(wait),
        max_running: max_overlap(&intervals),
        cpu,
        agent_cpu: None,
        agent_state_bytes: None,
        memory_after,
    })
}

/// The most intervals open at one moment (an interval ending exactly when
/// another starts does not overlap it).
fn max_overlap(intervals: &[(f64, f64)]) -> usize {
    let mut edges: Vec<(f64, i32)> = intervals
        .iter()
        .flat_map(|&(start, end)| [(start, 1), (end, -1)])
        .collect();
    // Ends before starts at the same instant.
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut open, mut most) = (0i32, 0i32);
    for (_, change) in edges {
        open += change;
        most = most.max(open);
    }
    most.max(0) as usize
}

pub(super) fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Seconds between two timestamps as a duration; a negative difference
/// (clock steps) counts as zero.
fn secs(value: f64) -> Duration {
    Duration::try_from_secs_f64(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::max_overlap;

    #[test]
    fn overlap_counts_intervals_open_together() {
        assert_eq!(max_overlap(&[]), 0);
        assert_eq!(max_overlap(&[(0.0, 1.0), (1.0, 2.0)]), 1);
        assert_eq!(max_overlap(&[(0.0, 3.0), (1.0, 2.0), (1.5, 4.0)]), 3);
    }
}
