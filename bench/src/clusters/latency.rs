//! Launch (or exec) to the first line of the job's log, one at a time: the
//! wait a user sees after `sky launch -c NAME task.yaml` or `sky exec`.
//!
//! Each run does what the official client does: `POST /launch`, wait for it
//! with `/api/get` (the cluster is UP and the job queued), then `POST /logs`
//! with follow and read the job's output as it streams.

use super::Created;
use super::api::{Api, task_yaml, task_yaml_on};
use crate::progress;
use crate::stats::Summary;
use anyhow::{Context, bail};
use std::time::{Duration, Instant};

/// The job every run submits; its one line of output is what we wait for.
const RUN: &str = "echo hello";
const EXPECTED_LINE: &str = "hello";

/// Times from sending the operation, one sample per run.
pub struct Latency {
    /// The `POST` answered with a request id.
    pub accepted: Summary,
    /// `/api/get` returned: the cluster is UP and the job is queued.
    pub request_done: Summary,
    /// The first line of the job's output arrived through `/logs`.
    pub first_line: Summary,
    /// The `/logs` stream ended: the job finished.
    pub job_done: Summary,
    /// When the agent started and ended the job, by its own records: the
    /// gap to `first_line` and `job_done` is the log path's share.
    pub agent_started: Summary,
    pub agent_ended: Summary,
}

#[derive(Default)]
struct Samples {
    accepted: Vec<Duration>,
    request_done: Vec<Duration>,
    first_line: Vec<Duration>,
    job_done: Vec<Duration>,
    agent_started: Vec<Duration>,
    agent_ended: Vec<Duration>,
}

/// The moment a run starts, on both clocks: the agent reports UNIX times.
#[derive(Clone, Copy)]
pub(crate) struct Start {
    pub(crate) at: Instant,
    epoch: f64,
}

impl Start {
    pub(crate) fn now() -> Self {
        Self {
            at: Instant::now(),
            epoch: super::jobs::epoch_now(),
        }
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.at.elapsed()
    }

    pub(crate) fn offset_of(&self, epoch: Option<f64>) -> anyhow::Result<Duration> {
        let epoch = epoch.context("the job record lacks a start or end time")?;
        Ok(Duration::try_from_secs_f64(epoch - self.epoch).unwrap_or_default())
    }
}

impl Samples {
    /// Follows the job's log and records one run measured from `start`.
    async fn record(
        &mut self,
        api: &Api,
        cluster: &str,
        start: Start,
        accepted: Duration,
        result: serde_json::Value,
    ) -> anyhow::Result<()> {
        let request_done = start.elapsed();
        let job_id = Api::job_id(&result)?;
        let log = api.follow_log(cluster, job_id).await?;
        let (Some(first_at), Some(line)) = (log.first_line_at, log.first_line) else {
            bail!("job {job_id} on {cluster} ended without any output");
        };
        // A wrong first line would make the number meaningless: the job's
        // output, not some message of the server's, is what is timed.
        if line != EXPECTED_LINE || log.exit_code != Some(0) {
            bail!(
                "job {job_id} on {cluster}: first line {line:?}, exit code {:?}; expected \
                 {EXPECTED_LINE:?} and 0",
                log.exit_code
            );
        }
        self.accepted.push(accepted);
        self.request_done.push(request_done);
        self.first_line.push(first_at - start.at);
        self.job_done.push(log.ended_at - start.at);
        // Read after the timed part, so asking costs the run nothing.
        let job = api
            .queue(cluster)
            .await?
            .into_iter()
            .find(|job| job.job_id == job_id)
            .with_context(|| format!("job {job_id} is missing from /queue of {cluster}"))?;
        self.agent_started.push(start.offset_of(job.start_at)?);
        self.agent_ended.push(start.offset_of(job.end_at)?);
        Ok(())
    }

    fn summarize(self) -> Latency {
        Latency {
            accepted: Summary::of(self.accepted),
            request_done: Summary::of(self.request_done),
            first_line: Summary::of(self.first_line),
            job_done: Summary::of(self.job_done),
            agent_started: Summary::of(self.agent_started),
            agent_ended: Summary::of(self.agent_ended),
        }
    }
}

/// `runs` fresh clusters, each launched, followed and torn down before the
/// next, so every launch starts from the same state.
pub async fn launches(api: &Api, created: &Created, runs: u32) -> anyhow::Result<Latency> {
    let mut samples = Samples::default();
    for run in 1..=runs {
        progress(&format!(
            "launch to first log line: fresh cluster {run}/{runs}"
        ));
        let cluster = format!("bench-launch-{run}");
        created.add(&cluster);
        let start = Start::now();
        let id = api
            .submit_launch(&cluster, task_yaml("hello", Some(RUN)))
            .await?;
        let accepted = start.elapsed();
        let result = api.wait(&id).await?;
        samples
            .record(api, &cluster, start, accepted, result)
            .await?;
        created.down(api, &cluster).await?;
    }
    Ok(samples.summarize())
}

/// `runs` execs onto one cluster that is already UP (launched without a
/// job, so the execs' jobs are the only ones on it).
/// `infra` is where the cluster goes (`ssh/<pool>`); none: `local`.
pub async fn execs(
    api: &Api,
    created: &Created,
    runs: u32,
    infra: Option<&str>,
) -> anyhow::Result<Latency> {
    progress("exec to first log line: launching the cluster");
    let cluster = "bench-exec";
    created.add(cluster);
    let id = api
        .submit_launch(cluster, task_yaml_on("idle", None, infra))
        .await?;
    api.wait(&id).await?;
    let mut samples = Samples::default();
    for run in 1..=runs {
        progress(&format!("exec to first log line: run {run}/{runs}"));
        let start = Start::now();
        let id = api
            .submit_exec(cluster, task_yaml_on("hello", Some(RUN), infra))
            .await?;
        let accepted = start.elapsed();
        let result = api.wait(&id).await?;
        samples
            .record(api, cluster, start, accepted, result)
            .await?;
    }
    created.down(api, cluster).await?;
    Ok(samples.summarize())
}
