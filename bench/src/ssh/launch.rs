//! Launch on a set-up pool to the first line of the job's log, as `sky
//! launch --infra ssh/POOL` waits for it, with where the time goes.
//!
//! Each run does what the official client does: `POST /launch`, follow the
//! request's log (`/api/stream`) while waiting for it (`/api/get`), then
//! `POST /logs` with follow. The moments the server's progress lines
//! arrive split the launch into its steps: the server's own work before it
//! reaches for the hosts, provisioning (SSH connection, the node's
//! directory, the agent linked and its daemon started), the job handed to
//! the agent over SSH; the agent's own records say when the job started.

use crate::clusters::Created;
use crate::clusters::api::{Api, task_yaml_on};
use crate::clusters::latency::Start;
use crate::progress;
use anyhow::{Context, bail};
use std::time::{Duration, Instant};

pub const RUN: &str = "echo hello";
pub const EXPECTED_LINE: &str = "hello";

/// The request-log lines that end each step (see ops/clusters.rs).
const PROVISIONING: &str = "Provisioning the cluster";
const CLUSTER_UP: &str = "is UP.";
const STARTING_JOB: &str = "Starting the job";
const JOB_SUBMITTED: &str = "Job submitted";

/// One launch; every time is from sending `/launch`.
#[derive(Debug, Clone, Default)]
pub struct Milestones {
    pub accepted: Duration,
    /// The server said it starts provisioning: parsing, checks and the
    /// cluster's record are done.
    pub provisioning: Option<Duration>,
    /// The cluster is UP: placed, its node made on the host, the agent
    /// linked and its daemon running.
    pub up: Option<Duration>,
    /// The server starts handing the job to the agent.
    pub starting_job: Option<Duration>,
    /// The agent took the job (`skydeck agent submit` over SSH).
    pub job_submitted: Option<Duration>,
    /// `/api/get` returned.
    pub request_done: Duration,
    /// By the agent's clock (the hosts share this machine's clock).
    pub agent_started: Duration,
    pub first_line: Duration,
    pub agent_ended: Duration,
    /// The `/logs` stream ended: the job finished.
    pub job_done: Duration,
}

/// `runs` fresh clusters on `infra`, one at a time, each torn down before
/// the next. The first pays for the server's first connection to the host.
pub async fn run(
    api: &Api,
    created: &Created,
    infra: &str,
    runs: u32,
) -> anyhow::Result<Vec<Milestones>> {
    run_task(
        api,
        created,
        infra,
        runs,
        &task_yaml_on("hello", Some(RUN), Some(infra)),
    )
    .await
}

/// [`run`] with a task document of the caller's (resources a Kubernetes
/// node can fit many of); its `run` must print [`EXPECTED_LINE`] first.
pub async fn run_task(
    api: &Api,
    created: &Created,
    infra: &str,
    runs: u32,
    task: &str,
) -> anyhow::Result<Vec<Milestones>> {
    let mut all = Vec::new();
    for run in 1..=runs {
        progress(&format!(
            "launch on {infra} to first log line: fresh cluster {run}/{runs}"
        ));
        let cluster = format!("bench-launch-{run}");
        created.add(&cluster);
        all.push(one(api, &cluster, task).await?);
        created.down(api, &cluster).await?;
    }
    Ok(all)
}

async fn one(api: &Api, cluster: &str, task: &str) -> anyhow::Result<Milestones> {
    let start = Start::now();
    let id = api.submit_launch(cluster, task.to_owned()).await?;
    let accepted = start.elapsed();
    let (log, done) = tokio::join!(api.request_log(&id), async {
        let value = api.wait(&id).await;
        (Instant::now(), value)
    });
    let (done_at, value) = done;
    let value = value?;
    let log = log?;
    let at = |needle: &str| {
        log.iter()
            .find(|(_, line)| line.contains(needle))
            .map(|(at, _)| *at - start.at)
    };
    let job_id = Api::job_id(&value)?;
    let follow = api.follow_log(cluster, job_id).await?;
    let (Some(first_at), Some(line)) = (follow.first_line_at, follow.first_line) else {
        bail!("job {job_id} on {cluster} ended without any output");
    };
    if line != EXPECTED_LINE || follow.exit_code != Some(0) {
        bail!(
            "job {job_id} on {cluster}: first line {line:?}, exit code {:?}; expected \
             {EXPECTED_LINE:?} and 0",
            follow.exit_code
        );
    }
    let job = api
        .queue(cluster)
        .await?
        .into_iter()
        .find(|job| job.job_id == job_id)
        .with_context(|| format!("job {job_id} is missing from /queue of {cluster}"))?;
    Ok(Milestones {
        accepted,
        provisioning: at(PROVISIONING),
        up: at(CLUSTER_UP),
        starting_job: at(STARTING_JOB),
        job_submitted: at(JOB_SUBMITTED),
        request_done: done_at - start.at,
        agent_started: start.offset_of(job.start_at)?,
        first_line: first_at - start.at,
        agent_ended: start.offset_of(job.end_at)?,
        job_done: follow.ended_at - start.at,
    })
}
