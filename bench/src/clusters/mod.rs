//! `skydeck-bench clusters`: what a user waits for with clusters and jobs on
//! local infrastructure — launch (and exec) to the first line of the job's
//! log, many short jobs through one cluster, many clusters launched at once.
//!
//! Every cluster the benchmark creates is torn down with `/down` before the
//! server is stopped, whatever happened on the way: a cluster's agent runs
//! in its own process group and would outlive the server otherwise.

pub(crate) mod api;
pub mod fleet;
pub(crate) mod jobs;
pub(crate) mod latency;
pub(crate) mod report;
pub mod soak;

pub use report::ClusterReport;

use crate::progress;
use crate::server::{self, Server};
use api::Api;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub struct Config {
    /// Fresh clusters launched one after another (and execs onto one).
    pub latency_runs: u32,
    /// Short jobs submitted through one cluster.
    pub jobs: u32,
    /// Clusters launched at the same time.
    pub fleet: u32,
}

/// Runs the three parts on one server. Clusters are torn down at the end
/// even when a part failed; the first error is returned after that.
pub async fn run(server: &Server, binary: &Path, config: &Config) -> anyhow::Result<ClusterReport> {
    let api = Arc::new(Api::new(server.addr)?);
    let created = Created::default();
    let outcome = measure(server, binary, &api, &created, config).await;
    let leftover = created.names();
    if !leftover.is_empty() {
        progress(&format!(
            "tearing down {} leftover cluster(s)",
            leftover.len()
        ));
        for name in leftover {
            if let Err(err) = api.down(&name).await {
                progress(&format!("could not tear down {name}: {err:#}"));
            }
        }
    }
    // Last resort for agents `/down` could not stop: they are this run's
    // processes, found by the pid files in this server's private home.
    for pid in agent_daemons(&server.home()) {
        progress(&format!("stopping leftover agent daemon {pid}"));
        let _ = tokio::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await;
    }
    outcome
}

async fn measure(
    server: &Server,
    binary: &Path,
    api: &Arc<Api>,
    created: &Created,
    config: &Config,
) -> anyhow::Result<ClusterReport> {
    let launch = latency::launches(api, created, config.latency_runs).await?;
    let exec = latency::execs(api, created, config.latency_runs, None).await?;
    let jobs = jobs::run(server, api, created, config.jobs).await?;
    let task = api::task_yaml("hello", Some("echo hello"));
    let fleet = fleet::run(server, api, created, config.fleet, &task).await?;
    Ok(ClusterReport {
        binary: binary.to_owned(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        launch,
        exec,
        jobs,
        fleet,
        end_memory: server.memory()?,
    })
}

/// The clusters this run has asked for and not yet torn down.
#[derive(Default, Clone)]
pub struct Created(Arc<Mutex<BTreeSet<String>>>);

impl Created {
    /// Called before `/launch` is sent: a launch that fails half-way can
    /// still leave a cluster behind.
    pub fn add(&self, name: &str) {
        self.0.lock().expect("cluster set").insert(name.to_owned());
    }

    pub fn remove(&self, name: &str) {
        self.0.lock().expect("cluster set").remove(name);
    }

    pub(crate) fn names(&self) -> Vec<String> {
        self.0
            .lock()
            .expect("cluster set")
            .iter()
            .cloned()
            .collect()
    }

    /// `/down`, and forget the cluster once it is gone.
    pub async fn down(&self, api: &Api, name: &str) -> anyhow::Result<()> {
        api.down(name).await?;
        self.remove(name);
        Ok(())
    }
}

/// Pids of the live agent daemons of the clusters under `home`.
pub fn agent_daemons(home: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(home.join("clusters")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| agent_daemon(&entry.path()))
        .collect()
}

/// Where the local provider keeps cluster `name` of the server at `home`.
pub fn cluster_dir(home: &Path, name: &str) -> PathBuf {
    home.join("clusters").join(name)
}

/// The pid of the live agent daemon of the cluster at `dir`: each writes
/// `agent/daemon.pid`. A pid only counts while it is still a `skydeck agent
/// daemon` that has not exited (pids are reused).
pub fn agent_daemon(dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(dir.join("agent").join("daemon.pid")).ok()?;
    let pid: u32 = text.trim().parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let mut args = cmdline.split(|b| *b == 0);
    let is_agent = args.any(|a| a == b"agent") && args.any(|a| a == b"daemon");
    // A zombie has no VmRSS line.
    let alive = server::read_memory(pid).is_ok_and(|m| m.rss_kib > 0);
    (is_agent && alive).then_some(pid)
}

/// Total RSS of the given processes, in KiB (those gone meanwhile count 0).
pub fn total_rss_kib(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| server::read_memory(*pid).ok())
        .map(|m| m.rss_kib)
        .sum()
}
