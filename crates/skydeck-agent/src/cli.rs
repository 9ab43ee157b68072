//! `skydeck agent …`: the commands the server runs on a cluster's head node.
//! Each prints one JSON document on stdout; errors go to stderr with a
//! non-zero exit.

use crate::jobs::{self, Selection};
use crate::paths::ClusterDir;
use crate::process::{live_daemon, recorded_daemon_pid};
use crate::protocol::{
    AgentStatus, AutostopReply, AutostopSetting, CancelReply, ClusterJobRecord, JobSpec, JobStatus,
    SubmitReply,
};
use crate::state::{Autostop, StateStore};
use crate::{daemon, fsutil, logs, process};
use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Run the cluster's scheduler in the foreground until SIGTERM (which
    /// cancels running jobs) or autostop.
    Daemon(ClusterArgs),
    /// Queue the job described by the JSON on stdin; prints {"job_id": N}.
    Submit(ClusterArgs),
    /// List jobs, newest first, as SkyPilot's ClusterJobRecord.
    Queue(QueueArgs),
    /// Cancel jobs (default: the newest unfinished one); prints {"cancelled": [..]}.
    Cancel(CancelArgs),
    /// Print {"<id>": "<status>"|null} for the given jobs (default: the newest).
    JobStatus(JobStatusArgs),
    /// Print a job's log (default: the newest job); exit code per SkyPilot's JobExitCode.
    Logs(LogsArgs),
    /// Set (or with a negative value, cancel) autostop.
    Autostop(AutostopArgs),
    /// Print the daemon's liveness, autostop setting, job counts and idle time.
    Status(ClusterArgs),
    /// On a worker node: run one phase of a job as the head's agent asks
    /// over SSH (a JSON request on stdin; output on stdout). Not for people.
    #[command(name = "node-exec", hide = true)]
    NodeExec,
    /// On a worker pod: serve the head's agent over TCP, a node-exec per
    /// connection that proves it knows the cluster secret. Not for people.
    #[command(name = "node-serve", hide = true)]
    NodeServe(NodeServeArgs),
    /// On the head: reach a worker's node-serve, carrying node-exec's
    /// input and output as ssh would. Not for people.
    #[command(name = "node-connect", hide = true)]
    NodeConnect(NodeConnectArgs),
}

#[derive(Debug, Clone, Args)]
pub struct NodeServeArgs {
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: std::net::SocketAddr,
    #[arg(long, value_name = "FILE")]
    pub secret_file: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct NodeConnectArgs {
    #[arg(long)]
    pub host: String,
    #[arg(long)]
    pub port: u16,
    #[arg(long, value_name = "FILE")]
    pub secret_file: PathBuf,
    /// The head's heartbeat interval: the worker is given up after a few
    /// of these without a word.
    #[arg(long, value_name = "S", default_value_t = 5)]
    pub alive_secs: u64,
}

#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// The cluster's directory (holding cluster.json).
    #[arg(long, value_name = "DIR")]
    pub cluster_dir: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct QueueArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Every user's jobs, even with --user-hash.
    #[arg(long)]
    pub all_users: bool,
    /// Only this user's jobs.
    #[arg(long, value_name = "H")]
    pub user_hash: Option<String>,
    /// Leave out finished jobs.
    #[arg(long)]
    pub skip_finished: bool,
}

#[derive(Debug, Clone, Args)]
pub struct CancelArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Jobs to cancel, comma-separated.
    #[arg(long, value_delimiter = ',', conflicts_with = "all")]
    pub job_ids: Vec<u64>,
    /// Every unfinished job.
    #[arg(long)]
    pub all: bool,
    /// Only this user's jobs.
    #[arg(long, value_name = "H")]
    pub user_hash: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct JobStatusArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Comma-separated job ids.
    #[arg(long, value_delimiter = ',')]
    pub job_ids: Vec<u64>,
}

#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[arg(long)]
    pub job_id: Option<u64>,
    /// Keep printing until the job finishes.
    #[arg(long)]
    pub follow: bool,
    /// Only the last N lines (0: all).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub tail: usize,
}

#[derive(Debug, Clone, Args)]
pub struct AutostopArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Idle minutes before the cluster stops; negative cancels autostop.
    #[arg(long, value_name = "M", allow_negative_numbers = true)]
    pub idle_minutes: i64,
    /// Tear the cluster down instead of stopping it.
    #[arg(long)]
    pub down: bool,
}

impl ClusterArgs {
    fn open(&self) -> anyhow::Result<(ClusterDir, StateStore)> {
        let dir = ClusterDir::open(&self.cluster_dir)?;
        Ok((dir.clone(), StateStore::new(dir)))
    }
}

pub async fn run(command: AgentCommand) -> anyhow::Result<ExitCode> {
    match command {
        AgentCommand::Daemon(args) => {
            init_tracing();
            daemon::run(ClusterDir::open(&args.cluster_dir)?).await
        }
        AgentCommand::Submit(args) => {
            let (dir, store) = args.open()?;
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read the job spec from stdin")?;
            let spec: JobSpec =
                serde_json::from_str(&text).context("stdin is not a valid job spec")?;
            let job_id = jobs::submit(&dir, &store, spec)?;
            print_json(&SubmitReply { job_id })
        }
        AgentCommand::Queue(args) => {
            let (dir, store) = args.cluster.open()?;
            let user = args.user_hash.filter(|_| !args.all_users);
            let records: Vec<ClusterJobRecord> = store
                .read()?
                .jobs
                .iter()
                .rev()
                .filter(|job| user.as_ref().is_none_or(|hash| &job.user_hash == hash))
                .filter(|job| !(args.skip_finished && job.status.is_finished()))
                .map(|job| job.to_cluster_record(&dir))
                .collect();
            print_json(&records)
        }
        AgentCommand::Cancel(args) => {
            let (dir, store) = args.cluster.open()?;
            let selection = if args.all {
                Selection::All
            } else if args.job_ids.is_empty() {
                Selection::Newest
            } else {
                Selection::Ids(args.job_ids)
            };
            let cancelled =
                jobs::cancel(&dir, &store, &selection, args.user_hash.as_deref()).await?;
            print_json(&CancelReply { cancelled })
        }
        AgentCommand::JobStatus(args) => {
            let (_, store) = args.cluster.open()?;
            let state = store.read()?;
            let statuses: BTreeMap<String, Option<JobStatus>> = if args.job_ids.is_empty() {
                state
                    .newest()
                    .map(|job| (job.job_id.to_string(), Some(job.status)))
                    .into_iter()
                    .collect()
            } else {
                args.job_ids
                    .iter()
                    .map(|id| (id.to_string(), state.job(*id).map(|job| job.status)))
                    .collect()
            };
            print_json(&statuses)
        }
        AgentCommand::Logs(args) => {
            let (dir, store) = args.cluster.open()?;
            let mut out = std::io::stdout();
            logs::show(&dir, &store, args.job_id, args.follow, args.tail, &mut out).await
        }
        AgentCommand::Autostop(args) => {
            let (dir, store) = args.cluster.open()?;
            let setting = if args.idle_minutes < 0 {
                None
            } else {
                let idle_minutes =
                    u32::try_from(args.idle_minutes).context("--idle-minutes is too large")?;
                Some(AutostopSetting {
                    idle_minutes,
                    down: args.down,
                })
            };
            store.update(|state| {
                state.autostop = setting.map(|setting| Autostop {
                    setting,
                    set_at: fsutil::now(),
                });
                Ok(())
            })?;
            process::wake_daemon(&dir);
            print_json(&AutostopReply { autostop: setting })
        }
        AgentCommand::NodeExec => crate::node_exec::run().await,
        AgentCommand::NodeServe(args) => {
            init_tracing();
            crate::node_link::serve(args.listen, args.secret_file).await
        }
        AgentCommand::NodeConnect(args) => {
            crate::node_link::connect(
                &args.host,
                args.port,
                &args.secret_file,
                std::time::Duration::from_secs(args.alive_secs.max(1)),
            )
            .await
        }
        AgentCommand::Status(args) => {
            let (dir, store) = args.open()?;
            let state = store.read()?;
            let mut jobs = BTreeMap::new();
            for job in &state.jobs {
                *jobs.entry(job.status).or_default() += 1;
            }
            print_json(&AgentStatus {
                daemon_pid: recorded_daemon_pid(&dir),
                daemon_alive: live_daemon(&dir).is_some(),
                autostop: state.autostop.map(|autostop| autostop.setting),
                jobs,
                idle_since: state.idle_since(),
            })
        }
    }
}

fn print_json(value: &impl Serialize) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The daemon's log is its stderr (the provider points it at
/// agent/daemon.log). A host binary that set up tracing already keeps its own.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: AgentCommand,
    }

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    /// A host binary may run the commands on any runtime, spawned or not.
    #[test]
    fn commands_run_as_send_futures() {
        fn assert_send<T: Send>(_: T) {}
        let cluster = ClusterArgs {
            cluster_dir: "/nonexistent".into(),
        };
        assert_send(run(AgentCommand::Daemon(cluster.clone())));
        assert_send(run(AgentCommand::Logs(LogsArgs {
            cluster,
            job_id: None,
            follow: true,
            tail: 0,
        })));
    }

    #[test]
    fn negative_idle_minutes_parse() {
        let cli = Cli::try_parse_from([
            "agent",
            "autostop",
            "--cluster-dir",
            "/x",
            "--idle-minutes",
            "-1",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            AgentCommand::Autostop(AutostopArgs {
                idle_minutes: -1,
                ..
            })
        ));
    }
}
