//! `skydeck-bench`: measures the real `skydeck` release binary — start-up
//! time, memory, and loopback throughput of `/api/health` and of the
//! `/status` + `/api/get` round trip — and prints the numbers next to the
//! project's targets. `skydeck-bench clusters` measures clusters and jobs on
//! local infrastructure instead (see `clusters`).
//!
//! It is a benchmark, not a test: missing a target is reported, never an
//! error. It exits non-zero only when it cannot measure at all (no binary, a
//! server that does not start).

mod clusters;
mod dashboard;
mod http;
mod kube;
mod load;
mod managed_jobs;
mod report;
mod server;
mod ssh;
mod stats;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use load::{LoadConfig, Workload};
use report::{Report, StatusRun};
use server::Server;
use stats::Summary;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Concurrency levels of the `/status` round-trip runs: one client alone
/// (pure latency) and a handful at once (what a small team produces).
const STATUS_CONCURRENCY: [usize; 2] = [1, 8];

/// Health calls made before reading the idle RSS, so the number includes
/// what serving a first request allocates, as a real idle server would.
const WARM_UP_HEALTH_CALLS: usize = 5;

#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// The `skydeck` binary to measure [default: $CARGO_TARGET_DIR/release/skydeck,
    /// else ./target/release/skydeck]
    #[arg(long, global = true)]
    binary: Option<PathBuf>,

    /// How many fresh servers to start for the start-up measurement.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    startup_runs: u32,

    /// Seconds each throughput run lasts.
    #[arg(long, default_value_t = 5.0, value_parser = parse_duration_secs)]
    duration: f64,

    /// Concurrent keep-alive connections of the `/api/health` run.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    health_concurrency: u32,

    /// Print one JSON document instead of the table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Clusters and jobs on local infrastructure: launch and exec to the
    /// first log line, many short jobs through one cluster, many clusters
    /// launched at once. Takes about 10 s with the defaults.
    Clusters(ClustersArgs),
    /// Many rounds of launch, exec, log reads and down on one server with
    /// a short retention: the state directory's size and the server's RSS
    /// before, during and after, to show both stay bounded.
    Soak(SoakArgs),
    /// SSH node pools on the real sshd test hosts (scripts/ssh-hosts-up.sh):
    /// `ssh up` of three hosts cold and warm, launch on the set-up pool to
    /// the first log line step by step, exec round trips, many short jobs
    /// through one SSH cluster. About a minute with the defaults.
    Ssh(SshArgs),
    /// Clusters as pods on a real Kubernetes (scripts/kube-up.sh): launch
    /// to the first log line with the server's part broken out, many
    /// clusters launched at once, server memory per cluster pod.
    Kube(KubeArgs),
    /// Many managed jobs at once on local infrastructure: server memory
    /// per active job, the controller's CPU, submission to RUNNING; then
    /// `jobs queue` answer times with a long history.
    ManagedJobs(ManagedJobsArgs),
    /// The dashboard with many clusters and requests in the database: time
    /// to first byte and to the whole page of each list, a real browser's
    /// time to a fully loaded clusters page (with --chromedriver), and the
    /// server's CPU per open, idle tab.
    Dashboard(DashboardArgs),
}

#[derive(Debug, clap::Args)]
struct DashboardArgs {
    /// Clusters written into the database.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    clusters: u32,

    /// Finished requests written into the database.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    requests: u32,

    /// Live clusters tables held open for the idle measurement.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    tabs: u32,

    /// Seconds the server is watched idle, without tabs and then with them.
    #[arg(long, default_value_t = 30.0, value_parser = parse_duration_secs)]
    idle: f64,

    /// ChromeDriver, to time the clusters page in headless Chromium
    /// [default: $SKYDECK_TEST_CHROMEDRIVER; none skips it].
    #[arg(long)]
    chromedriver: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct ManagedJobsArgs {
    /// Managed jobs submitted at once (each is a cluster with its agent
    /// process: mind the machine's memory).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=5000))]
    jobs: u32,

    /// Seconds each job sleeps.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=3600))]
    sleep: u32,

    /// Finished jobs written into the history before the queue is timed.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    history: u32,
}

#[derive(Debug, clap::Args)]
struct KubeArgs {
    /// The kubeconfig the server uses [default: $SKYDECK_TEST_KUBECONFIG].
    #[arg(long)]
    kubeconfig: Option<PathBuf>,

    /// The context to launch on [default: the server's first allowed one].
    #[arg(long)]
    context: Option<String>,

    /// The pods' image (SKYDECK_KUBERNETES_IMAGE of the server)
    /// [default: $SKYDECK_TEST_KUBE_IMAGE, else the server's default].
    #[arg(long)]
    image: Option<String>,

    /// Fresh one-pod clusters launched one after another.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=50))]
    runs: u32,

    /// Clusters launched at the same time.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=200))]
    clusters: u32,
}

#[derive(Debug, clap::Args)]
struct SshArgs {
    /// The hosts.json of scripts/ssh-hosts-up.sh [default: $SKYDECK_TEST_SSH_HOSTS].
    #[arg(long)]
    hosts: Option<PathBuf>,

    /// Rounds of `ssh down`, cold `ssh up`, warm `ssh up`.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    up_rounds: u32,

    /// Fresh clusters launched on the pool one after another.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=50))]
    runs: u32,

    /// Execs of a trivial command onto one SSH cluster.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    execs: u32,

    /// Short jobs submitted through one SSH cluster.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=5000))]
    jobs: u32,
}

#[derive(Debug, clap::Args)]
struct SoakArgs {
    /// Rounds, each a launch of a fresh cluster, an exec onto it, reading
    /// both jobs' logs and a down.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    rounds: u32,

    /// Rounds in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    concurrency: u32,

    /// The server's request retention, in seconds (short, so that the
    /// bound shows within the run).
    #[arg(long, default_value_t = 30.0, value_parser = parse_duration_secs)]
    retention: f64,
}

#[derive(Debug, clap::Args)]
struct ClustersArgs {
    /// Fresh clusters launched one after another for the launch to first
    /// log line numbers (and execs onto one UP cluster).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,

    /// Short jobs submitted through one cluster.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    jobs: u32,

    /// Clusters launched at the same time.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=500))]
    clusters: u32,
}

fn parse_duration_secs(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs <= 3600.0 => Ok(secs),
        _ => Err(format!(
            "{text:?}: expected seconds, more than 0 and at most 3600"
        )),
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match measure_and_print(&cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // The whole cause chain on one screen, without a backtrace: the
            // messages already say what to do.
            eprintln!("skydeck-bench: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn measure_and_print(cli: &Cli) -> anyhow::Result<()> {
    if let Some(Command::Ssh(args)) = &cli.command {
        return measure_ssh(cli, args).await;
    }
    if let Some(Command::Kube(args)) = &cli.command {
        return measure_kube(cli, args).await;
    }
    let binary = resolve_binary(cli.binary.as_deref())?;
    match &cli.command {
        Some(Command::Clusters(args)) => return measure_clusters(cli, args, binary).await,
        Some(Command::Soak(args)) => return measure_soak(cli, args, binary).await,
        Some(Command::ManagedJobs(args)) => {
            return measure_managed_jobs(cli, args, binary).await;
        }
        Some(Command::Dashboard(args)) => return measure_dashboard(cli, args, binary).await,
        // Handled above, before the binary: no hosts is the first thing to say.
        Some(Command::Ssh(_) | Command::Kube(_)) | None => {}
    }
    let report = run(cli, binary).await?;
    print_report(cli, || report.to_json(), || report.to_table())
}

/// One server for the managed-jobs run; what its jobs left (agents of
/// clusters a failed run did not tear down) is stopped with it.
async fn measure_managed_jobs(
    cli: &Cli,
    args: &ManagedJobsArgs,
    binary: PathBuf,
) -> anyhow::Result<()> {
    progress("starting the server for the managed-jobs runs");
    let (mut server, _) = Server::start(&binary).await?;
    let config = managed_jobs::Config {
        jobs: args.jobs,
        sleep_secs: args.sleep,
        history: args.history,
    };
    let outcome = managed_jobs::run(&server, &config).await;
    for pid in clusters::agent_daemons(&server.home()) {
        progress(&format!("stopping leftover agent daemon {pid}"));
        let _ = tokio::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await;
    }
    let stop = server.stop().await;
    let report = outcome?;
    stop?;
    print_report(cli, || report.to_json(), || report.to_table())
}

async fn measure_dashboard(cli: &Cli, args: &DashboardArgs, binary: PathBuf) -> anyhow::Result<()> {
    progress("starting the server for the dashboard runs");
    let (mut server, _) = Server::start(&binary).await?;
    let config = dashboard::Config {
        clusters: args.clusters,
        requests: args.requests,
        tabs: args.tabs,
        idle: Duration::from_secs_f64(args.idle),
        chromedriver: args
            .chromedriver
            .clone()
            .or_else(|| std::env::var_os("SKYDECK_TEST_CHROMEDRIVER").map(PathBuf::from)),
    };
    let outcome = dashboard::run(&server, &config).await;
    let stop = server.stop().await;
    let report = outcome?;
    stop?;
    print_report(cli, || report.to_json(), || report.to_table())
}

/// One server for the whole cluster run; it is stopped (after the
/// benchmark tore its clusters down) even when a part failed.
async fn measure_clusters(cli: &Cli, args: &ClustersArgs, binary: PathBuf) -> anyhow::Result<()> {
    progress("starting the server for the cluster runs");
    let (mut server, _) = Server::start(&binary).await?;
    let config = clusters::Config {
        latency_runs: args.runs,
        jobs: args.jobs,
        fleet: args.clusters,
    };
    let outcome = clusters::run(&server, &binary, &config).await;
    let stop = server.stop().await;
    let report = outcome?;
    stop?;
    print_report(cli, || report.to_json(), || report.to_table())
}

/// The SSH benchmark on one server; its clusters and the pool are taken
/// down before the server stops, even when a part failed. Refuses at once
/// when no test hosts are given.
async fn measure_ssh(cli: &Cli, args: &SshArgs) -> anyhow::Result<()> {
    let file = ssh::hosts::locate(
        args.hosts.as_deref(),
        std::env::var_os(ssh::hosts::HOSTS_VAR),
    )?;
    let hosts = ssh::hosts::TestHosts::load(&file)?;
    let binary = resolve_binary(cli.binary.as_deref())?;
    progress("starting the server for the SSH runs");
    let (mut server, _) = Server::start(&binary).await?;
    let config = ssh::Config {
        up_rounds: args.up_rounds,
        launches: args.runs,
        execs: args.execs,
        jobs: args.jobs,
    };
    let outcome = ssh::run(&server, &binary, &hosts, &config).await;
    let stop = server.stop().await;
    let report = outcome?;
    stop?;
    print_report(cli, || report.to_json(), || report.to_table())
}

/// The Kubernetes benchmark on one server given the kubeconfig; its
/// clusters are torn down before the server stops, even when a part
/// failed. Refuses at once when no kubeconfig is given.
async fn measure_kube(cli: &Cli, args: &KubeArgs) -> anyhow::Result<()> {
    let kubeconfig = kube::locate(
        args.kubeconfig.as_deref(),
        std::env::var_os(kube::KUBECONFIG_VAR),
    )?;
    let binary = resolve_binary(cli.binary.as_deref())?;
    let mut env = vec![("KUBECONFIG", kubeconfig.display().to_string())];
    if let Some(image) = args
        .image
        .clone()
        .or_else(|| std::env::var(kube::IMAGE_VAR).ok())
    {
        env.push(("SKYDECK_KUBERNETES_IMAGE", image));
    }
    progress("starting the server for the Kubernetes runs");
    let (mut server, _) = Server::start_with_env(&binary, &env).await?;
    let config = kube::Config {
        launches: args.runs,
        clusters: args.clusters,
        infra: args
            .context
            .as_ref()
            .map_or_else(|| "k8s".to_owned(), |c| format!("k8s/{c}")),
    };
    let outcome = kube::run(&server, &binary, &config).await;
    let stop = server.stop().await;
    let report = outcome?;
    stop?;
    print_report(cli, || report.to_json(), || report.to_table())
}

/// The soak on its own server, started with the retention asked for.
async fn measure_soak(cli: &Cli, args: &SoakArgs, binary: PathBuf) -> anyhow::Result<()> {
    let retention = Duration::from_secs_f64(args.retention);
    progress("starting the server for the soak");
    let hours = (retention.as_secs_f64() / 3600.0).to_string();
    let (mut server, _) = Server::start_with_env(
        &binary,
        &[
            ("SKYDECK_REQUEST_RETENTION_HOURS", hours.clone()),
            ("SKYDECK_BLOB_RETENTION_HOURS", hours),
        ],
    )
    .await?;
    let config = clusters::soak::Config {
        rounds: args.rounds,
        concurrency: args.concurrency,
        retention,
    };
    let outcome = clusters::soak::run(&server, &config).await;
    let stop = server.stop().await;
    let report = outcome?;
    stop?;
    print_report(cli, || report.to_json(), || report.to_table())
}

/// Runs every measurement in order; each server is stopped before the next
/// one starts so runs never compete for the two cores.
async fn run(cli: &Cli, binary: PathBuf) -> anyhow::Result<Report> {
    let duration = Duration::from_secs_f64(cli.duration);
    let startup = measure_startup(&binary, cli.startup_runs).await?;

    progress("starting the server for the memory and load runs");
    let (mut server, _) = Server::start(&binary).await?;
    let outcome = measure_server(&server, cli, duration).await;
    let stop = server.stop().await;
    let (idle_rss, health, status_runs, after_load) = outcome?;
    let stop = stop?;

    Ok(Report {
        binary,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        duration,
        startup,
        idle_rss_kib: idle_rss.rss_kib,
        health,
        status_runs,
        after_load,
        stop,
    })
}

type ServerMeasurements = (
    server::Memory,
    load::LoadResult,
    Vec<StatusRun>,
    server::Memory,
);

/// Idle memory, then the load runs, then memory after load — all on one
/// server, so "after load" really is the same process that served it.
async fn measure_server(
    server: &Server,
    cli: &Cli,
    duration: Duration,
) -> anyhow::Result<ServerMeasurements> {
    server.health_calls(WARM_UP_HEALTH_CALLS).await?;
    let idle = server.memory()?;

    let concurrency = cli.health_concurrency as usize;
    progress(&format!(
        "GET /api/health: {concurrency} connections for {:.1} s",
        duration.as_secs_f64()
    ));
    let health = load::run(LoadConfig {
        addr: server.addr,
        workload: Workload::Health,
        concurrency,
        duration,
    })
    .await?;

    let mut status_runs = Vec::new();
    for concurrency in STATUS_CONCURRENCY {
        progress(&format!(
            "POST /status + GET /api/get: {concurrency} connection(s) for {:.1} s",
            duration.as_secs_f64()
        ));
        let result = load::run(LoadConfig {
            addr: server.addr,
            workload: Workload::StatusRoundTrip,
            concurrency,
            duration,
        })
        .await?;
        status_runs.push(StatusRun {
            concurrency,
            result,
        });
    }
    let after_load = server.memory()?;
    Ok((idle, health, status_runs, after_load))
}

/// Start-up to first healthy answer, each time with a fresh state
/// directory: the cost a user pays on `sky api start` with nothing cached.
async fn measure_startup(binary: &Path, runs: u32) -> anyhow::Result<report::Startup> {
    let mut listening = Vec::new();
    let mut healthy = Vec::new();
    for run in 1..=runs {
        progress(&format!("start-up run {run}/{runs}"));
        let (mut server, times) = Server::start(binary).await?;
        server.stop().await?;
        listening.push(times.listening);
        healthy.push(times.healthy);
    }
    Ok(report::Startup {
        listening: Summary::of(listening),
        healthy: Summary::of(healthy),
    })
}

/// The binary the user named, else the release build in the cargo target
/// directory, else the one beside this program (they are built together).
fn resolve_binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        if !path.is_file() {
            bail!("--binary {}: no such file", path.display());
        }
        return absolute(path);
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| PathBuf::from("target"), PathBuf::from);
    let default = target_dir.join("release").join("skydeck");
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("skydeck")));
    let found = std::iter::once(default.clone())
        .chain(sibling)
        .find(|path| path.is_file());
    match found {
        Some(path) => absolute(&path),
        None => bail!(
            "the skydeck binary was not found at {}; build it first with \
             `cargo build --release -p skydeck`, or pass --binary PATH",
            default.display()
        ),
    }
}

/// The server is started with its own working directory untouched, but an
/// absolute path keeps the report unambiguous.
fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))
}

/// Progress goes to stderr so `--json` output on stdout stays parseable.
pub(crate) fn progress(message: &str) {
    eprintln!("skydeck-bench: {message}");
}

/// A report as one JSON document (`--json`) or as the table people read.
fn print_report(
    cli: &Cli,
    json: impl FnOnce() -> serde_json::Value,
    table: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&json())?);
    } else {
        print!("{}", table());
    }
    Ok(())
}
