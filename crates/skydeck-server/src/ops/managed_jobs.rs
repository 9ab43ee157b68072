//! Managed-job requests: `jobs.launch`, `jobs.queue_v2`, `jobs.cancel`
//! and `jobs.logs`. The jobs themselves are driven by the controller in
//! `crate::managed_jobs`; these read and write their rows.

use super::clusters::load_plan;
use super::{OpResult, RequestContext, internal};
use crate::clusters::plan::Files;
use crate::executor::now;
use crate::managed_jobs::{aggregate_status, files::JobFiles};
use crate::skypilot::exception;
use crate::skypilot::records::{infra_display, managed_job_record};
use serde_json::{Value, json};
use skydeck_store::{ManagedJob, ManagedJobFilter, NewManagedJob};
use skydeck_types::RequestError;
use skydeck_types::bodies::JobsQueueBody;
use skydeck_types::managed_jobs::{
    CancelSelector, JobRecovery, JobsCancelBody, JobsDownloadLogsBody, JobsLaunchBody,
    JobsLogsBody, ManagedJobStatus as Status, TaskSelector,
};
use skydeck_types::names::JobName;
use skydeck_types::task::parse_dag;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

fn value_error(message: impl Into<String>) -> RequestError {
    RequestError::new(exception::VALUE_ERROR, message)
}

fn files(ctx: &RequestContext) -> Result<JobFiles, RequestError> {
    Ok(ctx.executor()?.managed.files().clone())
}

/// `sky jobs launch`: checks the job's tasks as a launch would, records the
/// job and hands it to the controller.
pub async fn launch(ctx: &RequestContext, body: JobsLaunchBody) -> OpResult {
    if body.pool.is_some() {
        return Err(RequestError::new(
            exception::NOT_SUPPORTED,
            "Pools are not supported by this server; launch the job without --pool.",
        ));
    }
    if body.num_jobs.is_some_and(|n| n > 1) {
        return Err(RequestError::new(
            exception::NOT_SUPPORTED,
            "--num-jobs is not supported by this server yet; launch the jobs one by one.",
        ));
    }
    let task = ctx.infra.secrets.original_task(&ctx.id, body.task.clone());
    let policed = super::policy::police(ctx, "jobs.launch", task, None).await?;
    let text = policed.task_yaml;
    let dag = {
        let text = text.clone();
        tokio::task::spawn_blocking(move || parse_dag(&text))
            .await
            .map_err(internal)?
            .map_err(|err| value_error(format!("Invalid task: {err}")))?
    };
    let job_name = body
        .name
        .as_ref()
        .map(ToString::to_string)
        .or_else(|| dag.name.as_ref().map(ToString::to_string))
        .or_else(|| dag.tasks.first()?.name.as_ref().map(ToString::to_string))
        .unwrap_or_else(|| "sky-managed".to_owned());
    let mut tasks = Vec::with_capacity(dag.tasks.len());
    for (index, task) in dag.tasks.iter().enumerate() {
        JobRecovery::parse(task.resources.job_recovery.as_ref()).map_err(value_error)?;
        // The same checks a launch makes before it makes anything: the
        // files, the workspace and its infrastructure.
        let plan = load_plan(
            ctx,
            &task.to_yaml(),
            body.file_mounts_blob_id.as_ref(),
            Files::All,
        )
        .await?;
        super::launch_checks::check_workspace(ctx, &plan).await?;
        let name = task.name.as_ref().map_or_else(
            || {
                if dag.tasks.len() == 1 {
                    job_name.clone()
                } else {
                    format!("{job_name}-{index}")
                }
            },
            ToString::to_string,
        );
        tasks.push((name, plan.resources_str()));
    }
    ctx.log
        .line(&format!("Launching managed job {job_name:?}..."));
    let job_id = ctx
        .store
        .insert_managed_job(&NewManagedJob {
            request_id: ctx.id.clone(),
            name: job_name,
            user_id: ctx.user_id.clone(),
            workspace: ctx.workspace.clone(),
            dag_yaml: text,
            file_mounts_blob: body.file_mounts_blob_id.as_ref().map(ToString::to_string),
            entrypoint: body.base.command_line().to_owned(),
            submitted_at: now(),
            tasks,
        })
        .await
        .map_err(internal)?;
    ctx.executor()?.managed.wake();
    ctx.log.line(&format!("✓ Job submitted, ID: {job_id}"));
    Ok(json!({"job_id": job_id, "handle": null}))
}

/// Which jobs a request reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Jobs {
    All,
    /// Those not done: the history is not read.
    Active,
}

/// The jobs the requester may see: their own, or everyone's with
/// `all_users` (an admin's, or anyone's where auth is off), in workspaces
/// they may use.
async fn visible_jobs(
    ctx: &RequestContext,
    all_users: bool,
    which: Jobs,
) -> Result<Vec<ManagedJob>, RequestError> {
    let sees_all = ctx.sees_all_users().await?;
    let owner = (!(all_users && sees_all)).then_some(ctx.user_id.as_str());
    let jobs = match which {
        Jobs::All => ctx.store.list_managed_jobs(owner).await,
        Jobs::Active => ctx.store.list_active_managed_jobs(owner).await,
    }
    .map_err(internal)?;
    if sees_all {
        return Ok(jobs);
    }
    let admitted = admitted_workspaces(ctx).await?;
    Ok(jobs
        .into_iter()
        .filter(|job| admitted.contains(&job.workspace))
        .collect())
}

/// The workspaces whose jobs the requester may see (as a non-admin).
async fn admitted_workspaces(ctx: &RequestContext) -> Result<Vec<String>, RequestError> {
    let user_name = ctx
        .store
        .get_user(&ctx.user_id)
        .await
        .map_err(internal)?
        .map_or_else(|| ctx.user_id.clone(), |u| u.name);
    Ok(ctx
        .config
        .workspaces()
        .iter()
        .filter(|(_, workspace)| workspace.admits(&ctx.user_id, &user_name, false))
        .map(|(name, _)| name.clone())
        .collect())
}

async fn user_names(ctx: &RequestContext) -> Result<HashMap<String, String>, RequestError> {
    Ok(ctx
        .store
        .list_users()
        .await
        .map_err(internal)?
        .into_iter()
        .map(|u| (u.id, u.name))
        .collect())
}

/// The queue's rows: one per task of each job.
fn queue_rows(jobs: &[&ManagedJob], names: &HashMap<String, String>) -> Vec<Value> {
    let at = now();
    jobs.iter()
        .flat_map(|job| {
            let user = names.get(&job.user_id).map(String::as_str);
            job.tasks
                .iter()
                .map(move |task| managed_job_record(job, task, user, at))
        })
        .collect()
}

/// `sky jobs queue` (and the managed-jobs part of `sky status`).
pub async fn queue(ctx: &RequestContext, body: JobsQueueBody) -> OpResult {
    if let Some(answer) = queue_page(ctx, &body).await? {
        return Ok(answer);
    }
    // Unfinished jobs are all that --skip-finished (and `sky status`) shows,
    // so the history is not read for them; `total_no_filter` then counts
    // the jobs in progress.
    let which = if body.skip_finished {
        Jobs::Active
    } else {
        Jobs::All
    };
    let jobs = visible_jobs(ctx, body.all_users, which).await?;
    let total_no_filter = jobs.len();
    let names = user_names(ctx).await?;
    let contains = |text: &str, pattern: &Option<String>| {
        pattern.as_ref().is_none_or(|p| text.contains(p.as_str()))
    };
    let matching: Vec<&ManagedJob> = jobs
        .iter()
        .filter(|job| !body.skip_finished || job.tasks.iter().any(|t| !t.status.is_terminal()))
        .filter(|job| {
            body.job_ids
                .as_ref()
                .is_none_or(|ids| ids.is_empty() || ids.contains(&(job.job_id as u64)))
        })
        .filter(|job| {
            body.statuses.as_ref().is_none_or(|statuses| {
                statuses.is_empty() || job.tasks.iter().any(|t| statuses.contains(&t.status))
            })
        })
        .filter(|job| contains(&job.name, &body.name_match))
        .filter(|job| contains(&job.workspace, &body.workspace_match))
        .filter(|job| {
            let user = names
                .get(&job.user_id)
                .map_or(job.user_id.as_str(), String::as_str);
            contains(user, &body.user_match)
        })
        .filter(|job| {
            body.infra_match.as_ref().is_none_or(|pattern| {
                job.tasks.iter().any(|t| {
                    t.infra.as_deref().is_some_and(|i| {
                        i.contains(pattern.as_str()) || infra_display(i).contains(pattern.as_str())
                    })
                })
            })
        })
        .collect();
    let mut status_counts: BTreeMap<&str, u64> = BTreeMap::new();
    for task in matching.iter().flat_map(|job| &job.tasks) {
        *status_counts.entry(task.status.as_str()).or_default() += 1;
    }
    let total = matching.len();
    let page = body.page.unwrap_or(1).max(1);
    let shown: Vec<&ManagedJob> = match body.limit.filter(|limit| *limit > 0) {
        Some(limit) => matching
            .into_iter()
            .skip(((page - 1) * limit) as usize)
            .take(limit as usize)
            .collect(),
        None => matching,
    };
    Ok(json!({
        "jobs": queue_rows(&shown, &names),
        "total": total,
        "total_no_filter": total_no_filter,
        "status_counts": status_counts,
    }))
}

/// The queue as the client asks for it most (a page, with no filter but
/// whose jobs and whether finished ones count), counted and paged in the
/// database: a long history costs only the page. `None` when the request
/// filters rows, for [`queue`] to read them all.
async fn queue_page(
    ctx: &RequestContext,
    body: &JobsQueueBody,
) -> Result<Option<Value>, RequestError> {
    let Some(limit) = body.limit.filter(|limit| *limit > 0) else {
        return Ok(None);
    };
    let filters_rows = body.job_ids.as_ref().is_some_and(|ids| !ids.is_empty())
        || body.statuses.as_ref().is_some_and(|s| !s.is_empty())
        || [
            &body.user_match,
            &body.workspace_match,
            &body.name_match,
            &body.infra_match,
        ]
        .iter()
        .any(|pattern| pattern.is_some());
    if filters_rows {
        return Ok(None);
    }
    let sees_all = ctx.sees_all_users().await?;
    let filter = ManagedJobFilter {
        user_id: (!(body.all_users && sees_all)).then(|| ctx.user_id.clone()),
        workspaces: if sees_all {
            None
        } else {
            Some(admitted_workspaces(ctx).await?)
        },
        active_only: body.skip_finished,
    };
    let offset = body
        .page
        .unwrap_or(1)
        .max(1)
        .saturating_sub(1)
        .saturating_mul(limit);
    let found = ctx
        .store
        .page_managed_jobs(&filter, offset, limit)
        .await
        .map_err(internal)?;
    let names = user_names(ctx).await?;
    let status_counts: BTreeMap<&str, u64> = found
        .status_counts
        .iter()
        .map(|(status, count)| (status.as_str(), *count))
        .collect();
    let jobs: Vec<&ManagedJob> = found.jobs.iter().collect();
    Ok(Some(json!({
        "jobs": queue_rows(&jobs, &names),
        "total": found.total,
        "total_no_filter": found.total,
        "status_counts": status_counts,
    })))
}

/// `sky.jobs.queue`, the client's v1 call: the rows alone, as a list.
pub async fn queue_v1(ctx: &RequestContext, body: JobsQueueBody) -> OpResult {
    let mut answer = queue(ctx, body).await?;
    Ok(answer["jobs"].take())
}

/// `sky jobs cancel`: marks the chosen jobs for cancelling; their drivers
/// stop them and tear their clusters down.
pub async fn cancel(ctx: &RequestContext, body: JobsCancelBody) -> OpResult {
    let selector = body.selector().map_err(value_error)?;
    let sees_all = ctx.sees_all_users().await?;
    if selector == CancelSelector::AllUsers && !sees_all {
        return Err(RequestError::new(
            exception::PERMISSION_DENIED,
            "Only an admin can cancel every user's managed jobs; cancel yours with --all.",
        ));
    }
    let jobs = visible_jobs(ctx, true, Jobs::All).await?;
    let in_progress = |job: &&ManagedJob| !job.done && !aggregate_status(job).is_terminal();
    let chosen: Vec<&ManagedJob> = match &selector {
        CancelSelector::Ids(ids) => {
            let mut chosen = Vec::new();
            for id in ids {
                let job = jobs.iter().find(|job| job.job_id as u64 == *id);
                match job {
                    Some(job) if job.user_id != ctx.user_id && !sees_all => {
                        return Err(RequestError::new(
                            exception::PERMISSION_DENIED,
                            format!(
                                "Managed job {id} belongs to another user; only they or an \
                                 admin can cancel it."
                            ),
                        ));
                    }
                    Some(job) if in_progress(&job) => chosen.push(job),
                    Some(job) => ctx.log.line(&format!(
                        "Job {id} is already in terminal state {}.",
                        aggregate_status(job)
                    )),
                    None => ctx.log.line(&format!("Job {id} not found.")),
                }
            }
            chosen
        }
        CancelSelector::Name(name) => {
            let named: Vec<&ManagedJob> = jobs
                .iter()
                .filter(|job| job.name == name.as_str() && job.user_id == ctx.user_id)
                .filter(in_progress)
                .collect();
            if named.len() > 1 {
                let ids: Vec<String> = named.iter().map(|j| j.job_id.to_string()).collect();
                return Err(RequestError::new(
                    exception::RUNTIME_ERROR,
                    format!(
                        "Several running jobs are named {name:?} (IDs {}); please specify the \
                         job ID instead of the job name.",
                        ids.join(", ")
                    ),
                ));
            }
            if named.is_empty() {
                ctx.log
                    .line(&format!("No running job found with name {name:?}."));
            }
            named
        }
        CancelSelector::All => jobs
            .iter()
            .filter(|job| job.user_id == ctx.user_id)
            .filter(in_progress)
            .collect(),
        CancelSelector::AllUsers => jobs.iter().filter(in_progress).collect(),
    };
    let mut cancelled = Vec::new();
    for job in chosen {
        if ctx
            .store
            .cancel_managed_job(job.job_id)
            .await
            .map_err(internal)?
        {
            cancelled.push(job.job_id.to_string());
        }
    }
    match cancelled.as_slice() {
        [] => {
            if matches!(selector, CancelSelector::All | CancelSelector::AllUsers) {
                ctx.log.line("No job to cancel.");
            }
        }
        [one] => ctx
            .log
            .line(&format!("Job with ID {one} is scheduled to be cancelled.")),
        many => ctx.log.line(&format!(
            "Jobs with IDs {} are scheduled to be cancelled.",
            many.join(", ")
        )),
    }
    if !cancelled.is_empty() {
        ctx.executor()?.managed.wake();
    }
    Ok(Value::Null)
}

/// How often a followed job log looks for more.
const FOLLOW_POLL: Duration = Duration::from_millis(300);

/// `sky jobs logs`: the job's run log over every attempt of every task (or
/// of one), or its controller log; followed until the job ends when asked.
/// The value is SkyPilot's job exit code.
/// The job a `logs` or `download_logs` names: by id, else by name, else
/// the caller's newest. `Ok(None)` when there is none, for the caller to
/// say so its own way; refused when it is another user's and the caller
/// may not see every user's jobs.
async fn find_job(
    ctx: &RequestContext,
    job_id: Option<u64>,
    name: Option<&JobName>,
) -> Result<Option<ManagedJob>, RequestError> {
    let jobs = visible_jobs(ctx, true, Jobs::All).await?;
    let sees_all = ctx.sees_all_users().await?;
    let job = match (job_id, name) {
        (Some(id), _) => jobs.into_iter().find(|job| job.job_id as u64 == id),
        (None, Some(name)) => jobs
            .into_iter()
            .find(|job| job.name == name.as_str() && (job.user_id == ctx.user_id || sees_all)),
        (None, None) => jobs.into_iter().find(|job| job.user_id == ctx.user_id),
    };
    match job {
        Some(job) if job.user_id != ctx.user_id && !sees_all => Err(RequestError::new(
            exception::PERMISSION_DENIED,
            format!(
                "Managed job {} belongs to another user; only they or an admin can read its logs.",
                job.job_id
            ),
        )),
        job => Ok(job),
    }
}

fn no_such_job(job_id: Option<u64>, name: Option<&JobName>) -> String {
    match (job_id, name) {
        (Some(id), _) => format!("Job {id} not found."),
        (None, Some(name)) => format!("No managed job named {name:?} found."),
        (None, None) => "No managed job found.".to_owned(),
    }
}

pub async fn logs(ctx: &RequestContext, body: JobsLogsBody) -> OpResult {
    let Some(job) = find_job(ctx, body.job_id, body.name.as_ref()).await? else {
        let line = no_such_job(body.job_id, body.name.as_ref());
        send(ctx, format!("{line}\n")).await?;
        return Ok(json!(102));
    };
    let files = files(ctx)?;
    let tail = body.tail.filter(|tail| *tail > 0).map(|tail| tail as usize);
    if body.controller {
        return controller_log(ctx, &files, job.job_id, body.follow, tail).await;
    }
    let tasks: Vec<i64> = match &body.task {
        None => job.tasks.iter().map(|t| t.task_id).collect(),
        Some(TaskSelector::Index(index)) => job
            .tasks
            .iter()
            .filter(|t| t.task_id == i64::from(*index))
            .map(|t| t.task_id)
            .collect(),
        Some(TaskSelector::Name(name)) => job
            .tasks
            .iter()
            .filter(|t| &t.task_name == name)
            .map(|t| t.task_id)
            .collect(),
    };
    if tasks.is_empty() {
        return Err(value_error(format!(
            "Managed job {} has no such task; its tasks are {}.",
            job.job_id,
            job.tasks
                .iter()
                .map(|t| format!("{} ({})", t.task_id, t.task_name))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if body.task.is_none() && job.tasks.len() > 1 {
        send(
            ctx,
            format!(
                "Hint: This job has {} tasks. Use 'sky jobs logs {} TASK' to see the logs of \
                 one task.\n",
                job.tasks.len(),
                job.job_id
            ),
        )
        .await?;
    }
    let several = tasks.len() > 1;
    let mut tail = tail;
    for task_id in tasks {
        let status = follow_task(
            ctx,
            &files,
            job.job_id,
            task_id,
            body.follow,
            several,
            &mut tail,
        )
        .await?;
        if status != Status::Succeeded && status.is_terminal() {
            break;
        }
        if !status.is_terminal() {
            // Not following: the rest has not started.
            break;
        }
    }
    let job = ctx
        .store
        .get_managed_job(job.job_id)
        .await
        .map_err(internal)?
        .ok_or_else(|| internal("the job vanished"))?;
    let status = aggregate_status(&job);
    if status.is_terminal() && body.follow {
        send(
            ctx,
            format!(
                "✓ Managed job finished: {} (status: {status}).\n",
                job.job_id
            ),
        )
        .await?;
    } else if status.is_terminal() {
        send(ctx, format!("Job finished (status: {status}).\n")).await?;
    }
    Ok(json!(status.exit_code()))
}

/// `sky jobs logs --sync-down`'s fallback: the job's log (every attempt of
/// every task, as `jobs logs` prints it) or its controller log, copied to
/// where `/download` serves it from; answers `{job id: folder}` with the
/// folder as the client names it.
pub async fn download_logs(ctx: &RequestContext, body: JobsDownloadLogsBody) -> OpResult {
    let Some(job) = find_job(ctx, body.job_id, body.name.as_ref()).await? else {
        return Err(value_error(no_such_job(body.job_id, body.name.as_ref())));
    };
    let files = files(ctx)?;
    let (dir, client_path) = ctx
        .infra
        .downloads
        .managed_job_dir(&ctx.user_id, job.job_id, body.controller)
        .ok_or_else(|| value_error("Invalid user name."))?;
    tokio::fs::create_dir_all(&dir).await.map_err(internal)?;
    let mut out = if body.controller {
        let out = dir.join("controller.log");
        let mut file = tokio::fs::File::create(&out).await.map_err(internal)?;
        append_file(&mut file, &files.controller_log(job.job_id)).await?;
        file
    } else {
        let mut file = tokio::fs::File::create(dir.join("run.log"))
            .await
            .map_err(internal)?;
        let several = job.tasks.len() > 1;
        for task in &job.tasks {
            if several && task.attempt >= 1 {
                let header = format!("=== Task {}({}) ===\n", task.task_name, task.task_id);
                file.write_all(header.as_bytes()).await.map_err(internal)?;
            }
            for attempt in 1..=task.attempt {
                let log = files.attempt_log(job.job_id, task.task_id, attempt);
                append_file(&mut file, &log).await?;
            }
        }
        file
    };
    out.flush().await.map_err(internal)?;
    ctx.log.line(&format!(
        "Managed job {}'s log is ready to download.",
        job.job_id
    ));
    Ok(json!({ job.job_id.to_string(): client_path }))
}

/// Copies `from` (if it exists) to the end of `to`, a piece at a time.
async fn append_file(to: &mut tokio::fs::File, from: &Path) -> Result<(), RequestError> {
    match tokio::fs::File::open(from).await {
        Ok(mut source) => {
            tokio::io::copy(&mut source, to).await.map_err(internal)?;
            Ok(())
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(internal(err)),
    }
}

/// Streams one task's attempts in order; returns the task's status when
/// it ended (or, not following, now).
async fn follow_task(
    ctx: &RequestContext,
    files: &JobFiles,
    job_id: i64,
    task_id: i64,
    follow: bool,
    header: bool,
    tail: &mut Option<usize>,
) -> Result<Status, RequestError> {
    let mut attempt = 1;
    let mut offset = 0;
    let mut said_waiting = false;
    let mut said_header = false;
    loop {
        // The status first, then the file: a task found ended has its
        // attempt's log complete on disk.
        let job = ctx
            .store
            .get_managed_job(job_id)
            .await
            .map_err(internal)?
            .ok_or_else(|| internal("the job vanished"))?;
        let Some(task) = job.tasks.iter().find(|t| t.task_id == task_id) else {
            return Err(internal("the task vanished"));
        };
        if header && !said_header && task.attempt >= 1 {
            send(ctx, format!("=== Task {}({task_id}) ===\n", task.task_name)).await?;
            said_header = true;
        }
        if task.attempt >= attempt {
            offset = send_from(
                ctx,
                &files.attempt_log(job_id, task_id, attempt),
                offset,
                tail,
            )
            .await?;
        }
        if task.attempt > attempt {
            attempt += 1;
            offset = 0;
            continue;
        }
        if task.status.is_terminal() || !follow {
            return Ok(task.status);
        }
        if task.attempt == 0 && !said_waiting {
            send(
                ctx,
                format!(
                    "Waiting for task to start (status: {}). It may take a few minutes.\n",
                    task.status
                ),
            )
            .await?;
            said_waiting = true;
        }
        if ctx.log.reader_gone() {
            return Err(RequestError::new(
                exception::RUNTIME_ERROR,
                "The client stopped reading the log.",
            ));
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}

async fn controller_log(
    ctx: &RequestContext,
    files: &JobFiles,
    job_id: i64,
    follow: bool,
    tail: Option<usize>,
) -> OpResult {
    let path = files.controller_log(job_id);
    let mut offset = 0;
    let mut tail = tail;
    loop {
        let job = ctx
            .store
            .get_managed_job(job_id)
            .await
            .map_err(internal)?
            .ok_or_else(|| internal("the job vanished"))?;
        offset = send_from(ctx, &path, offset, &mut tail).await?;
        if job.done || !follow {
            return Ok(json!(aggregate_status(&job).exit_code()));
        }
        if ctx.log.reader_gone() {
            return Err(RequestError::new(
                exception::RUNTIME_ERROR,
                "The client stopped reading the log.",
            ));
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}

async fn send(ctx: &RequestContext, text: String) -> Result<(), RequestError> {
    ctx.log.send(text).await.map_err(|_| {
        RequestError::new(
            exception::RUNTIME_ERROR,
            "The client stopped reading the log.",
        )
    })
}

/// At most this much of a log is read into memory at once.
const CHUNK: usize = 64 * 1024;

/// Sends what `path` holds past `offset` (the last `tail` lines of it, the
/// first time a tail is asked); returns the new offset. A missing file is
/// an empty one.
async fn send_from(
    ctx: &RequestContext,
    path: &Path,
    offset: u64,
    tail: &mut Option<usize>,
) -> Result<u64, RequestError> {
    let Ok(mut file) = tokio::fs::File::open(path).await else {
        return Ok(offset);
    };
    let mut offset = offset;
    if let Some(lines) = tail.take() {
        offset = tail_offset(&mut file, lines)
            .await
            .map_err(internal)?
            .max(offset);
    }
    file.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(internal)?;
    let mut text = crate::request_log::LossyUtf8::default();
    let mut buffer = vec![0; CHUNK];
    loop {
        let read = file.read(&mut buffer).await.map_err(internal)?;
        if read == 0 {
            break;
        }
        offset += read as u64;
        send(ctx, text.push(&buffer[..read])).await?;
    }
    send(ctx, text.finish()).await?;
    Ok(offset)
}

/// Where the last `lines` lines of `file` start.
async fn tail_offset(file: &mut tokio::fs::File, lines: usize) -> std::io::Result<u64> {
    let len = file.metadata().await?.len();
    let mut end = len;
    let mut seen = 0;
    let mut buffer = vec![0; CHUNK];
    while end > 0 {
        let start = end.saturating_sub(CHUNK as u64);
        file.seek(std::io::SeekFrom::Start(start)).await?;
        let part = &mut buffer[..(end - start) as usize];
        file.read_exact(part).await?;
        for (i, byte) in part.iter().enumerate().rev() {
            // The file's last newline ends its last line, not a line of its
            // own.
            if *byte == b'\n' && start + i as u64 + 1 != len {
                seen += 1;
                if seen == lines {
                    return Ok(start + i as u64 + 1);
                }
            }
        }
        end = start;
    }
    Ok(0)
}
