//! Jobs on a cluster: `queue`, `logs`, `cancel`.

use super::follow::{self, Followed, JobLog};
use super::{base, clusters, failed, prompt, stream_and_get};
use crate::cli::{CancelArgs, LogsArgs, QueueArgs};
use crate::table::{Table, ago, duration};
use anyhow::bail;
use serde_json::Value;
use skydeck_client::{Client, ClientError, glob};
use skydeck_server::config::Paths;
use skydeck_types::bodies::{CancelBody, JobStatusBody, LogsBody, QueueBody};
use skydeck_types::names::ClusterName;
use std::path::PathBuf;
use std::process::ExitCode;

/// Lines `logs` starts with when following and no --tail was given, as
/// in SkyPilot: a multi-GB log should not arrive whole.
const DEFAULT_TAIL_LINES: u64 = 1000;

/// Where `logs --sync-down` saves logs, under the current directory.
const SYNC_DOWN_DIR: &str = "skydeck_logs";

pub async fn queue(paths: &Paths, client: &Client, args: &QueueArgs) -> anyhow::Result<ExitCode> {
    let explicit = !args.clusters.is_empty();
    let names: Vec<String> = if explicit {
        args.clusters.clone()
    } else {
        let mut names = Vec::new();
        for cluster in clusters::records(paths, client, None, args.all_users).await? {
            let name = cluster["name"].as_str().unwrap_or_default().to_owned();
            if cluster["status"] == "UP" {
                names.push(name);
            } else {
                eprintln!(
                    "Cluster {name} is {}; its queue shows once it is UP.",
                    cluster["status"].as_str().unwrap_or("not UP")
                );
            }
        }
        names
    };
    // Asked all at once: the server answers them side by side.
    let mut requests = Vec::new();
    for name in &names {
        let body = QueueBody {
            base: base(paths),
            // A name the user typed is checked here, before it is sent.
            cluster_name: ClusterName::new(name.as_str())?,
            skip_finished: args.skip_finished,
            all_users: args.all_users,
        };
        requests.push((name, client.submit("/queue", &body).await?));
    }
    let whose = if args.all_users {
        "all users"
    } else {
        "current user"
    };
    let mut failures = 0;
    for (name, id) in requests {
        match super::waiting::wait(client, &id).await {
            Ok(jobs) => {
                println!("\nJob queue of {whose} on cluster {name}");
                println!(
                    "{}",
                    queue_table(jobs.as_array().map_or(&[], Vec::as_slice))
                );
            }
            Err(ClientError::Request(error)) => {
                failures += 1;
                eprintln!(
                    "Failed to get the job queue of cluster {name}: {}",
                    error.message
                );
            }
            Err(err) => return Err(err.into()),
        }
    }
    if names.is_empty() {
        println!("No UP clusters.");
    }
    // Clusters the user named must answer; when listing all of them, one
    // that cannot is only reported.
    Ok(if explicit && failures > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// SkyPilot's job table (`format_job_queue`).
fn queue_table(jobs: &[Value]) -> String {
    let mut table = Table::new(&[
        "ID",
        "NAME",
        "USER",
        "SUBMITTED",
        "STARTED",
        "DURATION",
        "RESOURCES",
        "STATUS",
        "LOG",
    ]);
    let text = |value: &Value| value.as_str().unwrap_or("-").to_owned();
    let time = |value: &Value| value.as_f64().map_or_else(|| "-".to_owned(), ago);
    for job in jobs {
        let started = job["start_at"].as_f64();
        let ended = job["end_at"].as_f64().unwrap_or_else(now);
        table.row(vec![
            job["job_id"].to_string(),
            text(&job["job_name"]),
            text(&job["username"]),
            time(&job["submitted_at"]),
            time(&job["start_at"]),
            started.map_or_else(|| "-".to_owned(), |start| duration(ended - start)),
            text(&job["resources"]),
            text(&job["status"]),
            text(&job["log_path"]),
        ]);
    }
    table.render()
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

pub async fn logs(paths: &Paths, client: &Client, args: &LogsArgs) -> anyhow::Result<ExitCode> {
    if args.job_ids.len() > 1 && !args.sync_down {
        bail!(
            "cannot follow several jobs' logs at once; pass -s/--sync-down to save them to files \
             instead"
        );
    }
    if args.status {
        return job_status(paths, client, &args.cluster, args.job_ids.first().copied()).await;
    }
    if args.sync_down {
        return sync_down(paths, client, args).await;
    }
    let follow = !args.no_follow;
    let tail = match args.tail {
        Some(lines) => lines,
        None if follow => {
            eprintln!(
                "Showing the last {DEFAULT_TAIL_LINES} lines (default). Pass --tail 0 for the whole \
                 log."
            );
            DEFAULT_TAIL_LINES
        }
        None => 0,
    };
    let job_id = args.job_ids.first().copied();
    let log = JobLog {
        cluster: &args.cluster,
        job_id,
        follow,
        tail,
    };
    match follow::job_log(client, paths, &log).await {
        Ok(Followed::Finished(code)) => Ok(follow::exit_status(code)),
        Ok(Followed::Detached) => {
            let job = job_id.map_or_else(String::new, |id| format!(" {id}"));
            eprintln!();
            eprintln!(
                "The job keeps running. Follow it again with: skydeck logs {}{job}",
                args.cluster
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => failed(err),
    }
}

/// `logs --status`: prints `Job N: STATUS`; exits 0 only if it
/// SUCCEEDED, else with SkyPilot's job exit code.
async fn job_status(
    paths: &Paths,
    client: &Client,
    cluster: &ClusterName,
    job_id: Option<u64>,
) -> anyhow::Result<ExitCode> {
    let statuses = match statuses(paths, client, cluster, job_id).await {
        Ok(statuses) => statuses,
        // The server's way of saying the cluster has no job at all.
        Err(ClientError::Request(error)) if error.kind == "ValueError" => {
            eprintln!("{}", error.message);
            return Ok(follow::exit_status(102));
        }
        Err(err) => return failed(err),
    };
    let Some((id, status)) = statuses.as_object().and_then(|m| m.iter().next()) else {
        eprintln!("No job found on cluster {cluster:?}.");
        return Ok(follow::exit_status(102));
    };
    let status = status.as_str();
    println!("Job {id}: {}", status.unwrap_or("None"));
    let code = match status {
        Some("SUCCEEDED") => 0,
        Some("CANCELLED") => 103,
        Some("INIT" | "PENDING" | "SETTING_UP" | "RUNNING") => 101,
        Some(_) => 100,
        None => {
            eprintln!("Job {id} not found.");
            102
        }
    };
    Ok(follow::exit_status(code))
}

async fn statuses(
    paths: &Paths,
    client: &Client,
    cluster: &ClusterName,
    job_id: Option<u64>,
) -> Result<Value, ClientError> {
    let body = JobStatusBody {
        base: base(paths),
        cluster_name: cluster.clone(),
        job_ids: job_id.map(|id| vec![id]),
    };
    let id = client.submit("/job_status", &body).await?;
    super::waiting::wait(client, &id).await
}

/// `logs --sync-down`: saves each job's whole log to
/// `./skydeck_logs/<cluster>/job-<id>/run.log` and prints where.
async fn sync_down(paths: &Paths, client: &Client, args: &LogsArgs) -> anyhow::Result<ExitCode> {
    let ids: Vec<u64> = if args.job_ids.is_empty() {
        let latest = match statuses(paths, client, &args.cluster, None).await {
            Ok(statuses) => statuses,
            Err(err) => return failed(err),
        };
        latest
            .as_object()
            .into_iter()
            .flat_map(|m| m.keys())
            .filter_map(|id| id.parse().ok())
            .collect()
    } else {
        args.job_ids.clone()
    };
    let mut failures = 0;
    for job_id in ids {
        let body = LogsBody {
            base: base(paths),
            cluster_name: args.cluster.clone(),
            job_id: Some(job_id),
            follow: false,
            tail: 0,
        };
        let (id, stream) = client.submit_streaming("/logs", &body).await?;
        // Written as it arrives: a job's log can be larger than memory.
        let dir = PathBuf::from(SYNC_DOWN_DIR)
            .join(args.cluster.as_str())
            .join(format!("job-{job_id}"));
        std::fs::create_dir_all(&dir)?;
        let file = dir.join("run.log");
        let partial = dir.join("run.log.partial");
        let mut out = std::io::BufWriter::new(std::fs::File::create(&partial)?);
        stream.copy_to(&mut out).await?;
        drop(out);
        match client.wait(&id).await {
            Ok(code) if code.as_i64() == Some(102) => {
                failures += 1;
                let _ = std::fs::remove_file(&partial);
                let _ = std::fs::remove_dir(&dir);
                eprintln!("Job {job_id} not found on cluster {}.", args.cluster);
            }
            Ok(_) => {
                std::fs::rename(&partial, &file)?;
                println!("Job {job_id} logs: {}", file.display());
            }
            Err(err) => return failed(err),
        }
    }
    Ok(if failures > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

pub async fn cancel(paths: &Paths, client: &Client, args: &CancelArgs) -> anyhow::Result<ExitCode> {
    let targets: Vec<String> = if glob::is_pattern(&args.cluster) {
        let (found, _) =
            clusters::resolve(paths, client, std::slice::from_ref(&args.cluster)).await?;
        found
            .iter()
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect()
    } else {
        // Not a pattern: a name, which must follow the naming rule.
        vec![ClusterName::new(args.cluster.as_str())?.into_string()]
    };
    if targets.is_empty() {
        bail!(
            "no cluster matches {:?} (see `skydeck status`)",
            args.cluster
        );
    }
    if targets.len() > 1 && !args.job_ids.is_empty() {
        bail!(
            "job IDs name jobs of one cluster, and {:?} matches {}",
            args.cluster,
            targets.join(", ")
        );
    }
    let which = if args.all_users {
        "all users' jobs".to_owned()
    } else if args.all {
        "all your jobs".to_owned()
    } else if args.job_ids.is_empty() {
        eprintln!("No job IDs or --all/--all-users given; cancelling the latest running job.");
        "the latest running job".to_owned()
    } else {
        let ids: Vec<String> = args.job_ids.iter().map(u64::to_string).collect();
        let plural = if ids.len() > 1 { "s" } else { "" };
        format!("job{plural} {}", ids.join(" "))
    };
    if !args.yes
        && !prompt::confirm(&format!(
            "Cancelling {which} on cluster(s): {}",
            targets.join(", ")
        ))?
    {
        eprintln!("Aborted.");
        return Ok(ExitCode::FAILURE);
    }
    let mut failures = 0;
    for cluster in &targets {
        let body = CancelBody {
            base: base(paths),
            cluster_name: ClusterName::new(cluster.as_str())?,
            job_ids: (!args.job_ids.is_empty()).then(|| args.job_ids.clone()),
            // `-u` means every job of every user; the server reads
            // `all_users` only as "not just mine".
            all: args.all || args.all_users,
            all_users: args.all_users,
        };
        let id = client.submit("/cancel", &body).await?;
        if let Err(err) = stream_and_get(client, &id).await {
            failures += 1;
            super::print_error(&err);
        }
    }
    Ok(if failures > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_queue_table_has_skypilots_columns() {
        let job = json!({
            "job_id": 3, "job_name": "train", "username": "alice", "submitted_at": 100.0,
            "start_at": 101.0, "end_at": 163.0, "resources": "1x[CPU:0.5]",
            "status": "SUCCEEDED", "log_path": "~/sky_logs/job-3",
        });
        let table = queue_table(&[job]);
        let mut lines = table.lines();
        let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(
            header,
            [
                "ID",
                "NAME",
                "USER",
                "SUBMITTED",
                "STARTED",
                "DURATION",
                "RESOURCES",
                "STATUS",
                "LOG"
            ]
        );
        let row = lines.next().unwrap();
        for cell in ["3", "train", "alice", "1m 2s", "1x[CPU:0.5]", "SUCCEEDED"] {
            assert!(row.contains(cell), "{row}");
        }
    }
}
