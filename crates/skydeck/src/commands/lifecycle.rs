//! A cluster's life: `stop`, `start`, `down`, `autostop`. Each takes
//! names or glob patterns (or `--all`), asks before acting, runs the
//! requests side by side on the server and reports each cluster.

use super::{base, clusters, print_error, prompt, stream_and_get};
use crate::cli::{AutostopArgs, ClusterStartArgs, StopOrDownArgs};
use anyhow::bail;
use serde_json::Value;
use skydeck_client::Client;
use skydeck_server::config::Paths;
use skydeck_types::bodies::{AutostopBody, StartBody, StopOrDownBody};
use skydeck_types::names::ClusterName;
use std::process::ExitCode;

/// SkyPilot's default idle time when `autostop` is given no `-i`.
const DEFAULT_IDLE_MINUTES: i64 = 5;

enum Verb<'a> {
    Stop(&'a StopOrDownArgs),
    Down(&'a StopOrDownArgs),
    Start(&'a ClusterStartArgs),
    Autostop { minutes: i64, down: bool },
}

impl Verb<'_> {
    fn command(&self) -> &'static str {
        match self {
            Self::Stop(_) => "stop",
            Self::Down(_) => "down",
            Self::Start(_) => "start",
            Self::Autostop { .. } => "autostop",
        }
    }

    fn operation(&self) -> String {
        match self {
            Self::Stop(_) => "Stopping".to_owned(),
            Self::Down(_) => "Tearing down".to_owned(),
            Self::Start(_) => "Starting".to_owned(),
            Self::Autostop { minutes, .. } if *minutes < 0 => "Cancelling autostop on".to_owned(),
            Self::Autostop { down: true, .. } => "Scheduling autodown on".to_owned(),
            Self::Autostop { .. } => "Scheduling autostop on".to_owned(),
        }
    }

    /// Whether `--all` includes this cluster: stopping a stopped cluster
    /// or starting an UP one has nothing to do.
    fn applies_to(&self, cluster: &Value) -> bool {
        match self {
            Self::Stop(_) => cluster["status"] != "STOPPED",
            Self::Start(args) => args.force || cluster["status"] != "UP",
            Self::Down(_) | Self::Autostop { .. } => true,
        }
    }

    fn endpoint(&self) -> &'static str {
        match self {
            Self::Stop(_) => "/stop",
            Self::Down(_) => "/down",
            Self::Start(_) => "/start",
            Self::Autostop { .. } => "/autostop",
        }
    }

    fn body(&self, paths: &Paths, cluster: &str) -> anyhow::Result<Value> {
        let base = base(paths);
        // Checked here, before anything is sent, with the rule in the error.
        let cluster_name = ClusterName::new(cluster)?;
        let body = match self {
            Self::Stop(args) | Self::Down(args) => serde_json::to_value(StopOrDownBody {
                base,
                cluster_name,
                purge: args.purge,
                graceful: false,
                graceful_timeout: None,
            }),
            Self::Start(args) => serde_json::to_value(StartBody {
                base,
                cluster_name,
                idle_minutes_to_autostop: args.idle_minutes_to_autostop,
                retry_until_up: args.retry_until_up,
                down: args.down,
                force: args.force,
            }),
            Self::Autostop { minutes, down } => serde_json::to_value(AutostopBody {
                base,
                cluster_name,
                idle_minutes: *minutes,
                down: *down,
            }),
        };
        Ok(body?)
    }

    /// What to tell the user once the request for `cluster` succeeded,
    /// beyond the server's own log lines.
    fn done(&self, cluster: &str) -> Option<String> {
        match self {
            Self::Autostop { minutes, .. } if *minutes < 0 => {
                Some(format!("Autostop cancelled on cluster {cluster}."))
            }
            Self::Autostop { .. } => {
                Some(format!("To cancel it: skydeck autostop {cluster} --cancel"))
            }
            _ => None,
        }
    }
}

pub async fn stop(
    paths: &Paths,
    client: &Client,
    args: &StopOrDownArgs,
) -> anyhow::Result<ExitCode> {
    run(
        paths,
        client,
        &Verb::Stop(args),
        &args.clusters,
        args.all,
        args.yes,
    )
    .await
}

pub async fn down(
    paths: &Paths,
    client: &Client,
    args: &StopOrDownArgs,
) -> anyhow::Result<ExitCode> {
    run(
        paths,
        client,
        &Verb::Down(args),
        &args.clusters,
        args.all,
        args.yes,
    )
    .await
}

pub async fn start(
    paths: &Paths,
    client: &Client,
    args: &ClusterStartArgs,
) -> anyhow::Result<ExitCode> {
    run(
        paths,
        client,
        &Verb::Start(args),
        &args.clusters,
        args.all,
        args.yes,
    )
    .await
}

pub async fn autostop(
    paths: &Paths,
    client: &Client,
    args: &AutostopArgs,
) -> anyhow::Result<ExitCode> {
    let minutes = if args.cancel {
        -1
    } else {
        args.idle_minutes.unwrap_or(DEFAULT_IDLE_MINUTES)
    };
    let verb = Verb::Autostop {
        minutes,
        down: args.down,
    };
    run(paths, client, &verb, &args.clusters, args.all, args.yes).await
}

async fn run(
    paths: &Paths,
    client: &Client,
    verb: &Verb<'_>,
    patterns: &[String],
    all: bool,
    yes: bool,
) -> anyhow::Result<ExitCode> {
    let command = verb.command();
    let (targets, unmatched) = if all {
        if !patterns.is_empty() {
            eprintln!("Both --all and clusters given to `skydeck {command}`; --all takes effect.");
        }
        let mine = clusters::records(paths, client, None, false).await?;
        (mine, Vec::new())
    } else if patterns.is_empty() {
        bail!(
            "`skydeck {command}` needs cluster names or glob patterns (see `skydeck status`), or \
             -a/--all for all your clusters"
        );
    } else {
        clusters::resolve(paths, client, patterns).await?
    };
    for pattern in &unmatched {
        eprintln!("Cluster {pattern:?} not found (see `skydeck status`).");
    }
    let mut names = Vec::new();
    for cluster in &targets {
        let name = cluster["name"].as_str().unwrap_or_default().to_owned();
        if verb.applies_to(cluster) {
            names.push(name);
        } else if !all {
            println!(
                "Cluster {name} is already {}; nothing to do.",
                cluster["status"].as_str().unwrap_or("?")
            );
        }
    }
    let unmatched_status = if unmatched.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    if names.is_empty() {
        if all {
            let action = if command == "down" {
                "tear down"
            } else {
                command
            };
            println!("No clusters to {action}.");
        }
        return Ok(unmatched_status);
    }
    let operation = verb.operation();
    let noun = if names.len() == 1 {
        "cluster"
    } else {
        "clusters"
    };
    if !yes
        && !prompt::confirm(&format!(
            "{operation} {} {noun}: {}",
            names.len(),
            names.join(", ")
        ))?
    {
        eprintln!("Aborted.");
        return Ok(ExitCode::FAILURE);
    }
    let mut requests = Vec::new();
    for name in &names {
        let id = client
            .submit(verb.endpoint(), &verb.body(paths, name)?)
            .await?;
        requests.push((name, id));
    }
    let mut failed = false;
    for (name, id) in requests {
        match stream_and_get(client, &id).await {
            Ok(_) => {
                if let Some(message) = verb.done(name) {
                    println!("{message}");
                }
            }
            Err(err) => {
                failed = true;
                eprint!("{operation} cluster {name} failed: ");
                print_error(&err);
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        unmatched_status
    })
}
