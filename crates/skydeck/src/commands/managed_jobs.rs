//! `skydeck jobs launch|queue|cancel|logs`: managed jobs, with the flags
//! of `sky jobs`. The server drives the jobs; these submit, list, cancel
//! and read them.

use super::follow::{self, Followed};
use super::launch::{request_detached, upload};
use super::task_args::Task;
use super::{base, failed, prompt, stream_and_get};
use crate::cli::{JobsCancelArgs, JobsLaunchArgs, JobsLogsArgs, JobsQueueArgs};
use crate::table::{Table, ago, duration};
use serde_json::Value;
use skydeck_client::Client;
use skydeck_server::config::Paths;
use skydeck_types::bodies::JobsQueueBody;
use skydeck_types::managed_jobs::{JobsCancelBody, JobsLaunchBody, JobsLogsBody};
use std::process::ExitCode;

/// Jobs `queue` shows without --all, as `sky jobs queue` does.
const DEFAULT_LIMIT: u64 = 50;

pub async fn launch(
    paths: &Paths,
    client: &Client,
    args: &JobsLaunchArgs,
    mut task: Task,
) -> anyhow::Result<ExitCode> {
    let name = task
        .dag
        .name
        .as_ref()
        .map_or_else(|| "sky-cmd".to_owned(), ToString::to_string);
    if !args.yes && !prompt::confirm(&format!("Launching a managed job {name:?}"))? {
        eprintln!("Aborted.");
        return Ok(ExitCode::FAILURE);
    }
    let blob = upload(paths, client, &mut task, false).await?;
    let body = JobsLaunchBody {
        base: base(paths),
        task: task.dag.to_yaml(),
        name: None,
        pool: None,
        num_jobs: None,
        file_mounts_blob_id: blob,
    };
    let id = client.submit("/jobs/launch", &body).await?;
    let value = match follow::request(client, &id).await {
        Ok(Followed::Finished(value)) => value,
        Ok(Followed::Detached) => return Ok(request_detached("launch", &id)),
        Err(err) => return failed(err),
    };
    let Some(job_id) = value["job_id"].as_u64() else {
        anyhow::bail!("the API server did not say which job it made");
    };
    if args.detach_run {
        print_hints(job_id);
        return Ok(ExitCode::SUCCESS);
    }
    let code = read_log(paths, client, Some(job_id), None, true, false, 0).await?;
    print_hints(job_id);
    Ok(code)
}

fn print_hints(job_id: u64) {
    eprintln!();
    eprintln!("Managed job {job_id}:");
    eprintln!("├── Follow its log:       skydeck jobs logs {job_id}");
    eprintln!("├── What the server did:  skydeck jobs logs --controller {job_id}");
    eprintln!("├── Cancel it:            skydeck jobs cancel {job_id}");
    eprintln!("└── All managed jobs:     skydeck jobs queue");
}

pub async fn queue(
    paths: &Paths,
    client: &Client,
    args: &JobsQueueArgs,
) -> anyhow::Result<ExitCode> {
    let body = JobsQueueBody {
        base: base(paths),
        skip_finished: args.skip_finished,
        all_users: args.all_users,
        limit: (!args.all).then_some(DEFAULT_LIMIT),
        ..JobsQueueBody::default()
    };
    let id = client.submit("/jobs/queue/v2", &body).await?;
    let value = match client.wait(&id).await {
        Ok(value) => value,
        Err(err) => return failed(err),
    };
    let rows = value["jobs"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        println!("No managed jobs.");
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", table(&rows, args.all_users));
    let total = value["total"].as_u64().unwrap_or(0);
    let jobs: std::collections::BTreeSet<u64> = rows
        .iter()
        .filter_map(|row| row["job_id"].as_u64())
        .collect();
    if (jobs.len() as u64) < total {
        println!(
            "Only the latest {} of {total} managed jobs are shown; --all shows every one.",
            jobs.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn table(rows: &[Value], users: bool) -> String {
    let mut headers = vec!["ID", "TASK", "NAME"];
    if users {
        headers.push("USER");
    }
    headers.extend([
        "REQUESTED",
        "SUBMITTED",
        "JOB DURATION",
        "#RECOVERIES",
        "STATUS",
        "CLUSTER",
    ]);
    let mut table = Table::new(&headers);
    let text = |value: &Value| value.as_str().unwrap_or("-").to_owned();
    for row in rows {
        let mut cells = vec![
            row["job_id"].to_string(),
            row["task_id"].to_string(),
            text(&row["task_name"]),
        ];
        if users {
            cells.push(text(&row["user_name"]));
        }
        cells.extend([
            text(&row["resources"]),
            row["submitted_at"].as_f64().map_or_else(|| "-".into(), ago),
            duration(row["job_duration"].as_f64().unwrap_or(0.0)),
            row["recovery_count"].to_string(),
            text(&row["status"]),
            text(&row["current_cluster_name"]),
        ]);
        table.row(cells);
    }
    table.render()
}

pub async fn cancel(
    paths: &Paths,
    client: &Client,
    args: &JobsCancelArgs,
) -> anyhow::Result<ExitCode> {
    let what = if args.all_users {
        "Cancelling every user's managed jobs".to_owned()
    } else if args.all {
        "Cancelling all of your managed jobs".to_owned()
    } else if let Some(name) = &args.name {
        format!("Cancelling the managed job {name:?}")
    } else if args.job_ids.is_empty() {
        anyhow::bail!("Say which jobs to cancel: job IDs, --name, --all or --all-users.");
    } else {
        let ids: Vec<String> = args.job_ids.iter().map(u64::to_string).collect();
        format!("Cancelling managed jobs with IDs {}", ids.join(","))
    };
    if !args.yes && !prompt::confirm(&what)? {
        eprintln!("Aborted.");
        return Ok(ExitCode::FAILURE);
    }
    let body = JobsCancelBody {
        base: base(paths),
        name: args.name.clone(),
        job_ids: Some(args.job_ids.clone()),
        all: args.all,
        all_users: args.all_users,
        pool: None,
    };
    let id = client.submit("/jobs/cancel", &body).await?;
    match stream_and_get(client, &id).await {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(err) => failed(err),
    }
}

pub async fn logs(paths: &Paths, client: &Client, args: &JobsLogsArgs) -> anyhow::Result<ExitCode> {
    read_log(
        paths,
        client,
        args.job_id,
        args.name.clone(),
        !args.no_follow,
        args.controller,
        args.tail.unwrap_or(0),
    )
    .await
}

/// Prints a job's log (or its controller's) on stdout; the exit status is
/// SkyPilot's job exit code when following.
async fn read_log(
    paths: &Paths,
    client: &Client,
    job_id: Option<u64>,
    name: Option<skydeck_types::names::JobName>,
    follow: bool,
    controller: bool,
    tail: u64,
) -> anyhow::Result<ExitCode> {
    let body = JobsLogsBody {
        base: base(paths),
        name,
        job_id,
        follow,
        controller,
        refresh: false,
        tail: (tail > 0).then(|| i64::try_from(tail).unwrap_or(i64::MAX)),
        task: None,
    };
    let (id, stream) = client.submit_streaming("/jobs/logs", &body).await?;
    let mut stdout = std::io::stdout();
    tokio::select! {
        streamed = stream.copy_to(&mut stdout) => streamed?,
        Ok(()) = tokio::signal::ctrl_c() => {
            eprintln!("Stopped following; the job goes on.");
            return Ok(ExitCode::SUCCESS);
        }
    }
    let code = match client.wait(&id).await {
        Ok(code) => code.as_i64().unwrap_or(1),
        Err(err) => return failed(err),
    };
    Ok(if follow {
        follow::exit_status(code)
    } else {
        ExitCode::SUCCESS
    })
}
