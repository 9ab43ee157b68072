//! `skydeck launch` and `skydeck exec`: check the task here, upload its
//! local files, submit it, show the server's stages as they happen, then
//! follow the job's log. The exit status is the job's (0 if it
//! succeeded, SkyPilot's job exit codes otherwise).

use super::follow::{self, Followed, JobLog};
use super::task_args::{self, Task};
use super::{base, clusters, failed, prompt};
use crate::cli::{ExecArgs, LaunchArgs};
use skydeck_client::Client;
use skydeck_client::upload::{Bundle, CHUNK_BYTES};
use skydeck_server::config::Paths;
use skydeck_types::bodies::{ExecBody, LaunchBody};
use skydeck_types::names::{BlobId, ClusterName};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// `task` is the one the arguments name, loaded and checked already.
pub async fn launch(
    paths: &Paths,
    client: &Client,
    args: &LaunchArgs,
    mut task: Task,
) -> anyhow::Result<ExitCode> {
    if !args.yes && !args.dryrun && !exists(paths, client, args.cluster.as_deref()).await? {
        let action = match &args.cluster {
            Some(name) => format!("Launching a new cluster {name:?}"),
            None => "Launching a new cluster".to_owned(),
        };
        if !prompt::confirm(&action)? {
            eprintln!("Aborted.");
            return Ok(ExitCode::FAILURE);
        }
    }
    // Even for a dry run, as the official client does: the server checks
    // the task's files against the upload.
    let blob = upload(paths, client, &mut task, false).await?;
    let body = LaunchBody {
        base: base(paths),
        task: task.dag.to_yaml(),
        cluster_name: args.cluster.clone(),
        retry_until_up: args.retry_until_up,
        idle_minutes_to_autostop: args.idle_minutes_to_autostop,
        dryrun: args.dryrun,
        down: args.down,
        no_setup: args.no_setup,
        fast: false,
        file_mounts_blob_id: blob,
        include_credentials: false,
    };
    let id = client.submit("/launch", &body).await?;
    // `--down` (alone or with `-i`) needs nothing more from here: the
    // server applies the launch's autostop once the job is queued, so an
    // autodown after 0 idle minutes waits for the job instead of finding
    // the cluster idle.
    let value = match follow::request(client, &id).await {
        Ok(Followed::Finished(value)) => value,
        Ok(Followed::Detached) => return Ok(request_detached("launch", &id)),
        Err(err) => return failed(err),
    };
    if args.dryrun {
        return Ok(ExitCode::SUCCESS);
    }
    let cluster = match value["handle"]["cluster_name"].as_str() {
        Some(name) => ClusterName::new(name)?,
        None => args.cluster.clone().ok_or_else(|| {
            anyhow::anyhow!("the API server did not say which cluster it launched")
        })?,
    };
    let job_id = value["job_id"].as_u64();
    run_job(paths, client, &cluster, job_id, args.detach_run, true).await
}

pub async fn exec(
    paths: &Paths,
    client: &Client,
    args: &ExecArgs,
    mut task: Task,
) -> anyhow::Result<ExitCode> {
    // As in SkyPilot, exec syncs only the workdir: file mounts were made
    // when the cluster was launched.
    let blob = upload(paths, client, &mut task, true).await?;
    let body = ExecBody {
        base: base(paths),
        task: task.dag.to_yaml(),
        cluster_name: args.cluster.clone(),
        dryrun: args.dryrun,
        down: false,
        file_mounts_blob_id: blob,
    };
    let id = client.submit("/exec", &body).await?;
    let value = match follow::request(client, &id).await {
        Ok(Followed::Finished(value)) => value,
        Ok(Followed::Detached) => return Ok(request_detached("exec", &id)),
        Err(err) => return failed(err),
    };
    if args.dryrun {
        return Ok(ExitCode::SUCCESS);
    }
    run_job(
        paths,
        client,
        &args.cluster,
        value["job_id"].as_u64(),
        args.detach_run,
        false,
    )
    .await
}

/// Whether the named cluster exists; a launch without a name always
/// makes a new one.
async fn exists(paths: &Paths, client: &Client, name: Option<&str>) -> anyhow::Result<bool> {
    let Some(name) = name else {
        return Ok(false);
    };
    let found = clusters::records(paths, client, Some(&[name.to_owned()]), true).await?;
    Ok(found.iter().any(|c| c["name"] == name))
}

/// Uploads the task's local files, if it has any, and points the task at
/// them; returns the blob id the request must name.
pub(super) async fn upload(
    paths: &Paths,
    client: &Client,
    task: &mut Task,
    workdir_only: bool,
) -> anyhow::Result<Option<BlobId>> {
    // Every task's local files go in one upload (a pipeline's tasks share
    // it, as the official client sends them); each task maps its own.
    let per_task: Vec<Vec<String>> = task
        .dag
        .tasks
        .iter()
        .map(|spec| task_args::local_sources(spec, workdir_only))
        .collect();
    let mut sources: Vec<String> = per_task.iter().flatten().cloned().collect();
    sources.sort();
    sources.dedup();
    if sources.is_empty() {
        return Ok(None);
    }
    let paths_to_send: Vec<PathBuf> = sources.iter().map(PathBuf::from).collect();
    let bundle = tokio::task::spawn_blocking(move || Bundle::new(&paths_to_send))
        .await?
        .map_err(|e| anyhow::anyhow!("cannot zip the files to upload: {e}"))?;
    eprintln!(
        "⚙︎ Uploading files to the API server: {} ({}, {} entries)...",
        sources.join(", "),
        human_size(bundle.size()),
        bundle.entries()
    );
    let user = base(paths).user_id().unwrap_or_default().to_owned();
    let sent = Arc::new(AtomicU64::new(0));
    let upload = client.upload_bundle_counting(&bundle, &user, CHUNK_BYTES, &sent);
    let already_there = tokio::select! {
        done = upload => done?,
        never = report_progress(&sent, bundle.size()) => match never {},
    };
    if already_there {
        eprintln!("✓ The API server has these files already.");
    } else {
        eprintln!("✓ Files uploaded ({}).", human_size(bundle.size()));
    }
    for (spec, own) in task.dag.tasks.iter_mut().zip(per_task) {
        if !own.is_empty() {
            spec.file_mounts_mapping = own.into_iter().map(|s| (s.clone(), s)).collect();
        }
    }
    Ok(Some(BlobId::new(bundle.blob_id())?))
}

/// An upload that takes a while shows how far it got, every few seconds:
/// a line now and then, not one per chunk. Never returns.
async fn report_progress(sent: &AtomicU64, total: u64) -> std::convert::Infallible {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(5);
    loop {
        tokio::time::sleep(EVERY).await;
        eprintln!("{}", progress_line(sent.load(Ordering::Relaxed), total));
    }
}

fn progress_line(sent: u64, total: u64) -> String {
    let percent = (sent.min(total) * 100).checked_div(total).unwrap_or(100);
    format!(
        "  … {} of {} sent ({percent}%)",
        human_size(sent.min(total)),
        human_size(total)
    )
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = "B";
    for next in UNITS {
        if value < 1000.0 {
            break;
        }
        value /= 1000.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

pub(super) fn request_detached(verb: &str, id: &str) -> ExitCode {
    let short = &id[..id.len().min(8)];
    eprintln!();
    eprintln!("The {verb} goes on on the API server.");
    eprintln!("├── Follow it with:  skydeck api logs {short}");
    eprintln!("└── Cancel it with:  skydeck api cancel {short}");
    ExitCode::SUCCESS
}

/// Follows the submitted job unless told not to; the exit status is the
/// job's. `cluster_hints` adds what one can do with the cluster (after a
/// launch).
async fn run_job(
    paths: &Paths,
    client: &Client,
    cluster: &ClusterName,
    job_id: Option<u64>,
    detach: bool,
    cluster_hints: bool,
) -> anyhow::Result<ExitCode> {
    let hints = |job_id: Option<u64>| {
        if let Some(job_id) = job_id {
            print_job_hints(cluster, job_id);
        }
        if cluster_hints {
            print_cluster_hints(cluster);
        }
    };
    let Some(job_id) = job_id else {
        eprintln!("The task has nothing to run; cluster {cluster} is UP.");
        hints(None);
        return Ok(ExitCode::SUCCESS);
    };
    if detach {
        hints(Some(job_id));
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "⚙︎ Running job {job_id} (setup, then run); its log follows. Ctrl-C stops following, \
         the job keeps running."
    );
    let log = JobLog {
        cluster,
        job_id: Some(job_id),
        follow: true,
        tail: 0,
    };
    match follow::job_log(client, paths, &log).await {
        Ok(Followed::Finished(code)) => {
            let status = follow::exit_code_meaning(code);
            if code == 0 {
                eprintln!("✓ Job {job_id} {status}.");
            } else {
                eprintln!("✗ Job {job_id} {status}.");
            }
            hints(Some(job_id));
            Ok(follow::exit_status(code))
        }
        Ok(Followed::Detached) => {
            eprintln!();
            eprintln!(
                "Job {job_id} keeps running. Follow it with: skydeck logs {cluster} {job_id}"
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => failed(err),
    }
}

fn print_job_hints(cluster: &str, job_id: u64) {
    eprintln!();
    eprintln!("Job ID: {job_id}");
    eprintln!("├── Follow its log:   skydeck logs {cluster} {job_id}");
    eprintln!("├── Cancel it:        skydeck cancel {cluster} {job_id}");
    eprintln!("└── See the queue:    skydeck queue {cluster}");
}

fn print_cluster_hints(cluster: &str) {
    eprintln!();
    eprintln!("Cluster: {cluster}");
    eprintln!("├── Run a task on it: skydeck exec {cluster} task.yaml");
    eprintln!("├── Stop it:          skydeck stop {cluster}");
    eprintln!("└── Tear it down:     skydeck down {cluster}");
}

#[cfg(test)]
mod tests {
    use super::{human_size, progress_line};

    #[test]
    fn progress_reads_as_a_share_of_the_whole() {
        assert_eq!(
            progress_line(190_000_000, 400_000_000),
            "  … 190.0 MB of 400.0 MB sent (47%)"
        );
        assert_eq!(progress_line(5, 0), "  … 0 B of 0 B sent (100%)");
    }

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(1500), "1.5 KB");
        assert_eq!(human_size(95_000_000), "95.0 MB");
    }
}
