//! Many clusters launched at the same moment (a team arriving in the
//! morning, or a sweep), then all torn down at once.

use super::api::Api;
use super::{Created, agent_daemons, total_rss_kib};
use crate::progress;
use crate::server::{CpuTimes, Memory, Server};
use crate::stats::Summary;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

pub struct FleetRun {
    pub clusters: usize,
    /// From sending the first `/launch` until the last one finished.
    pub launch_total: Duration,
    /// Each launch from the common start until its `/api/get` returned.
    pub launch: Summary,
    /// Launches that failed, with their errors.
    pub launch_errors: Vec<String>,
    /// The server right after every launch finished.
    pub memory_after_launch: Memory,
    /// Agent daemons running then, and their RSS together.
    pub agents: usize,
    pub agents_rss_kib: u64,
    pub cpu_launch: CpuTimes,
    pub down_total: Duration,
    pub down: Summary,
    pub down_errors: Vec<String>,
    /// Agent daemons still running after every `/down` returned.
    pub agents_left: usize,
}

/// `count` clusters of `task` (a task document; on local
/// infrastructure, [`super::api::task_yaml`]) launched at once, then torn down at once.
pub async fn run(
    server: &Server,
    api: &Arc<Api>,
    created: &Created,
    count: u32,
    task: &str,
) -> anyhow::Result<FleetRun> {
    let names: Vec<String> = (1..=count).map(|i| format!("bench-fleet-{i:02}")).collect();
    progress(&format!("{count} clusters launched at once"));
    let cpu_before = server.cpu()?;
    let start = Instant::now();
    let mut launches = JoinSet::new();
    for name in &names {
        created.add(name);
        let (api, name, task) = (api.clone(), name.clone(), task.to_owned());
        launches.spawn(async move {
            let id = api.submit_launch(&name, task).await?;
            api.wait(&id).await?;
            anyhow::Ok(start.elapsed())
        });
    }
    let (launch, launch_errors) = collect(launches).await;
    let launch_total = start.elapsed();
    let cpu_launch = server.cpu()?.since(cpu_before);
    let memory_after_launch = server.memory()?;
    let agents = agent_daemons(&server.home());
    let agents_rss_kib = total_rss_kib(&agents);

    progress(&format!("{count} clusters torn down at once"));
    let start = Instant::now();
    let mut downs = JoinSet::new();
    for name in names {
        let (api, created) = (api.clone(), created.clone());
        downs.spawn(async move {
            created.down(&api, &name).await?;
            anyhow::Ok(start.elapsed())
        });
    }
    let (down, down_errors) = collect(downs).await;
    let down_total = start.elapsed();
    Ok(FleetRun {
        clusters: count as usize,
        launch_total,
        launch: Summary::of(launch),
        launch_errors,
        memory_after_launch,
        agents: agents.len(),
        agents_rss_kib,
        cpu_launch,
        down_total,
        down: Summary::of(down),
        down_errors,
        agents_left: agent_daemons(&server.home()).len(),
    })
}

/// Times of the tasks that succeeded, and the errors of those that did not:
/// under concurrency a failure is a result to report, not a reason to stop.
async fn collect(mut set: JoinSet<anyhow::Result<Duration>>) -> (Vec<Duration>, Vec<String>) {
    let mut times = Vec::new();
    let mut errors = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok(took)) => times.push(took),
            Ok(Err(err)) => errors.push(format!("{err:#}")),
            Err(err) => errors.push(format!("task failed: {err}")),
        }
    }
    (times, errors)
}
