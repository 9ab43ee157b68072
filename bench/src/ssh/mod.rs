//! `skydeck-bench ssh`: SSH node pools on the real sshd test hosts
//! (`scripts/ssh-hosts-up.sh`) — `ssh up` of a pool of three hosts, cold
//! and warm; launch on the set-up pool to the first log line, step by
//! step; exec round trips on an SSH cluster; many short jobs through one.
//!
//! Everything goes through the real server's API, as the official client
//! drives it. Every cluster the benchmark makes is torn down before the
//! server stops, and the pool is taken down last (`ssh down` removes the
//! agent from the hosts), whatever failed on the way.

mod agent;
pub mod hosts;
pub mod launch;
pub mod report;
mod up;

pub use report::SshReport;

use crate::clusters::api::{Api, task_yaml_on};
use crate::clusters::{Created, jobs, latency};
use crate::progress;
use crate::server::Server;
use crate::stats::Summary;
use anyhow::{Context, bail};
use hosts::{TestHost, TestHosts};
use std::path::Path;
use std::time::{Duration, Instant};

/// The pool's name in the server's pool file.
pub const POOL: &str = "bench";

/// Fresh `ssh` connections made to time one handshake.
const HANDSHAKES: usize = 5;

/// A fresh `ssh` must not hang the benchmark.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Config {
    /// Rounds of down, cold up, warm up.
    pub up_rounds: u32,
    /// Fresh clusters launched one after another.
    pub launches: u32,
    /// Execs onto one UP cluster.
    pub execs: u32,
    /// Short jobs through one cluster.
    pub jobs: u32,
}

/// Runs every part on `server` against the pool of `hosts`; then tears
/// down what is left and takes the pool down.
pub async fn run(
    server: &Server,
    binary: &Path,
    hosts: &TestHosts,
    config: &Config,
) -> anyhow::Result<SshReport> {
    let pool_hosts = hosts.pool_hosts()?;
    let file = server.home().join("ssh_node_pools.yaml");
    std::fs::write(&file, hosts::pool_file(POOL, &hosts.key, &pool_hosts))
        .with_context(|| format!("cannot write {}", file.display()))?;
    let api = Api::new(server.addr)?;
    let created = Created::default();
    let outcome = measure(server, binary, &api, &created, hosts, &pool_hosts, config).await;
    for name in created.names() {
        progress(&format!("tearing down leftover cluster {name}"));
        if let Err(err) = api.down(&name).await {
            progress(&format!("could not tear down {name}: {err:#}"));
        }
    }
    progress(&format!(
        "ssh down {POOL}: removing the agent from the hosts"
    ));
    let down = async {
        let id = api.submit_ssh_pool(POOL, false).await?;
        api.wait(&id).await
    };
    if let Err(err) = down.await {
        progress(&format!(
            "`ssh down` of pool {POOL} failed: {err:#}; the agent may be left in \
             ~/.skydeck/bin on the hosts"
        ));
    }
    outcome
}

async fn measure(
    server: &Server,
    binary: &Path,
    api: &Api,
    created: &Created,
    hosts: &TestHosts,
    pool_hosts: &[TestHost],
    config: &Config,
) -> anyhow::Result<SshReport> {
    let infra = format!("ssh/{POOL}");
    let load_before = load_average();
    progress("timing fresh SSH connections");
    let handshake = handshakes(hosts, &pool_hosts[0]).await?;
    let up = up::run(api, POOL, pool_hosts.len(), config.up_rounds).await?;
    let launch = launch::run(api, created, &infra, config.launches).await?;
    let exec = latency::execs(api, created, config.execs, Some(&infra)).await?;
    let jobs = short_jobs(server, api, created, hosts, &infra, config.jobs).await?;
    Ok(SshReport {
        binary: binary.to_owned(),
        binary_bytes: std::fs::metadata(binary).map_or(0, |m| m.len()),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        hosts: pool_hosts
            .iter()
            .map(|h| format!("{} {} ({})", h.name, h.address, h.hostname))
            .collect(),
        handshake,
        up,
        launch,
        exec,
        jobs,
        end_memory: server.memory()?,
        load: [load_before, load_average()],
    })
}

/// The 1, 5 and 15 minute load averages: on a shared machine they say
/// how much the numbers owe to others' work.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// `ssh HOST true` with no connection to reuse: what one SSH handshake
/// and command cost here, to set the launch's steps against.
async fn handshakes(hosts: &TestHosts, host: &TestHost) -> anyhow::Result<Summary> {
    let mut times = Vec::with_capacity(HANDSHAKES);
    for _ in 0..HANDSHAKES {
        let start = Instant::now();
        let run = tokio::process::Command::new("ssh")
            .arg("-F")
            .arg(&hosts.ssh_config)
            .args(["-o", "ControlMaster=no", "-o", "ControlPath=none"])
            .args([host.name.as_str(), "true"])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(HANDSHAKE_TIMEOUT, run)
            .await
            .with_context(|| format!("`ssh {} true` hung", host.name))?
            .context("cannot run ssh")?;
        if !out.status.success() {
            bail!(
                "`ssh -F {} {} true` failed ({}): {}; are the test hosts up?",
                hosts.ssh_config.display(),
                host.name,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        times.push(start.elapsed());
    }
    Ok(Summary::of(times))
}

/// The short-jobs run of `skydeck-bench clusters` on a cluster of the pool;
/// the agent is watched on whichever host became the head.
async fn short_jobs(
    server: &Server,
    api: &Api,
    created: &Created,
    hosts: &TestHosts,
    infra: &str,
    count: u32,
) -> anyhow::Result<jobs::JobsRun> {
    let alone = jobs::command_alone().await?;
    progress(&format!(
        "{count} short jobs: launching the cluster on {infra}"
    ));
    let cluster = "bench-jobs";
    created.add(cluster);
    let id = api
        .submit_launch(cluster, task_yaml_on("idle", None, Some(infra)))
        .await?;
    api.wait(&id).await?;
    let head = api.head_ip(cluster).await?;
    let host = hosts
        .by_address(&head)
        .with_context(|| format!("the head {head} of {cluster} is none of the test hosts"))?;
    let view = agent::view(host, cluster);
    if view.daemon.is_none() {
        progress("the agent daemon was not found from here: its CPU is not reported");
    }
    let mut run = jobs::through(server, api, cluster, count, Some(infra), &view).await?;
    created.down(api, cluster).await?;
    run.alone = alone;
    Ok(run)
}
