//! Cluster operations: launch, exec, start, stop, down, autostop, status.
//!
//! Launch is written to be run again after a crash: every step either
//! checks what exists (the cluster record, a running agent, a submitted
//! job with the request's id as its key) or is harmless to repeat.

use super::launch_checks::{self, check_same_workspace};
use super::ownership::owned_cluster;
use super::progress;
use super::{OpResult, RequestContext, internal};
use crate::clusters::autostop::{AutostopRequest, task_autostop};
use crate::clusters::handle_of;
use crate::clusters::placement;
use crate::clusters::plan::{Files, Plan};
use crate::executor::now;
use crate::skypilot::{exception, records};
use serde_json::{Value, json};
use skydeck_agent::protocol::{Demand, JobSpec};
use skydeck_infra::{ClusterSpec, ClusterState, Handle, InfraError};
use skydeck_store::{ClusterRecord, ClusterStatus};
use skydeck_types::RequestError;
use skydeck_types::bodies::{
    AutostopBody, ExecBody, LaunchBody, StartBody, StatusBody, StopOrDownBody,
};
use skydeck_types::config::PolicyRequestOptions;
use skydeck_types::glob::GlobPattern;
use skydeck_types::names::{BlobId, ClusterName, UserId};

fn not_found(name: &str) -> RequestError {
    RequestError::new(
        exception::CLUSTER_DOES_NOT_EXIST,
        format!("Cluster {name:?} does not exist."),
    )
}

fn not_up(cluster: &ClusterRecord) -> RequestError {
    RequestError::new(
        "ClusterNotUpError",
        format!(
            "Cluster {:?} is {}; it must be UP. Start it with `sky start {}`.",
            cluster.name, cluster.status, cluster.name
        ),
    )
}

pub(super) fn infra_error(err: InfraError) -> RequestError {
    match err {
        InfraError::Unsatisfiable(message) => {
            RequestError::new("ResourcesUnavailableError", message)
        }
        other => RequestError::new(exception::RUNTIME_ERROR, other.to_string()),
    }
}

/// A name for a cluster the user did not name, as SkyPilot makes them
/// (`sky-1a2b-abcd`, the end from the user's id).
pub(super) fn generated_name(user_id: &str) -> ClusterName {
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..4];
    let user: String = user_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(4)
        .collect();
    let name = if user.is_empty() {
        format!("sky-{suffix}")
    } else {
        format!("sky-{suffix}-{user}")
    };
    ClusterName::new(name).expect("letters, digits and '-', starting with a letter")
}

async fn user_name(ctx: &RequestContext) -> String {
    ctx.store
        .get_user(&ctx.user_id)
        .await
        .ok()
        .flatten()
        .map_or_else(|| ctx.user_id.clone(), |u| u.name)
}

/// Why a task cannot run on an existing cluster, if it cannot.
pub(super) fn misfit(plan: &Plan, cluster: &ClusterRecord, handle: &Handle) -> Option<String> {
    // A task that names no infra runs wherever the cluster is.
    if plan.infra_named && !crate::clusters::ssh_pools::infra_fits(&plan.infra, &cluster.infra) {
        return Some(format!(
            "the task asks for infra {:?}, the cluster is on {:?}",
            plan.infra, cluster.infra
        ));
    }
    if i64::from(plan.num_nodes) > cluster.num_nodes {
        return Some(format!(
            "the task asks for {} nodes, the cluster has {}",
            plan.num_nodes, cluster.num_nodes
        ));
    }
    if let Some(cpus) = plan.node.cpus
        && cpus > handle.capacity.cpus
    {
        return Some(format!(
            "the task asks for {cpus} CPUs per node, the cluster's nodes have {}",
            handle.capacity.cpus
        ));
    }
    if let Some(memory) = plan.node.memory_gb
        && memory > handle.capacity.memory_gb
    {
        return Some(format!(
            "the task asks for {memory} GB of memory per node, the cluster's nodes have {:.1}",
            handle.capacity.memory_gb
        ));
    }
    for (name, count) in &plan.node.accelerators {
        let have = handle
            .capacity
            .accelerators
            .get(name)
            .copied()
            .unwrap_or(0.0);
        if *count > have {
            return Some(format!(
                "the task asks for {count} {name} per node, the cluster's nodes have {have}"
            ));
        }
    }
    None
}

/// The record a launch claims a new cluster name with: INIT, owned by
/// the requester.
fn new_record(
    ctx: &RequestContext,
    name: &ClusterName,
    plan: &Plan,
    last_use: &str,
) -> ClusterRecord {
    ClusterRecord {
        name: name.to_string(),
        status: ClusterStatus::Init,
        user_id: ctx.user_id.clone(),
        workspace: ctx.workspace.clone(),
        infra: plan.infra.clone(),
        cluster_hash: uuid::Uuid::new_v4().to_string(),
        launched_at: Some(now()),
        status_updated_at: now(),
        num_nodes: i64::from(plan.num_nodes),
        resources: json!({}),
        handle: json!(null),
        autostop_minutes: -1,
        autostop_down: false,
        ever_up: false,
        last_use: Some(last_use.to_owned()),
    }
}

/// What a launch provisions for `plan` under `name`.
pub(super) fn spec_of(ctx: &RequestContext, name: &ClusterName, plan: &Plan) -> ClusterSpec {
    ClusterSpec {
        name: name.clone(),
        num_nodes: plan.num_nodes,
        user_hash: ctx.user_id.clone(),
        node: plan.node.clone(),
        allocations: Vec::new(),
    }
}

/// Provisions (or finishes provisioning) a cluster whose INIT record the
/// launch holds (claimed before anything was made, so a crash from here on
/// leaves a cluster the next start, or `down`, can find) and records it UP.
async fn bring_up(
    ctx: &RequestContext,
    mut record: ClusterRecord,
    spec: &ClusterSpec,
    plan: &Plan,
    last_use: &str,
    retry_until_up: bool,
) -> Result<(ClusterRecord, Handle), RequestError> {
    let provider = ctx.infra.provider(&plan.infra)?;
    let name = &spec.name;
    ctx.log.line(&format!(
        "⚙︎ Launching {} on {} ({} node{}).",
        name,
        records::infra_display(&plan.infra),
        plan.num_nodes,
        if plan.num_nodes == 1 { "" } else { "s" }
    ));
    ctx.log.line("⚙︎ Provisioning the cluster...");
    let mut backoff = RetryBackoff::default();
    let handle = loop {
        // Placed first (the record exists: the allocation refers to it),
        // so that a cluster that does not fit beside the others is told so
        // before anything is made; a retry places again.
        let placed = placement::place_spec(ctx.store.as_ref(), provider.as_ref(), spec).await?;
        let made_something = placed.is_ok();
        let attempt = match placed {
            Ok(placed) => provider.provision(&placed).await,
            Err(no_fit) => Err(InfraError::Unsatisfiable(placement::no_fit_message(
                &no_fit,
            ))),
        };
        match attempt {
            Ok(handle) => break handle,
            // What cannot be had now may be later (another cluster frees
            // the GPUs): with --retry-until-up, wait and try again until
            // it works or the request is cancelled.
            Err(InfraError::Unsatisfiable(reason)) if retry_until_up => {
                let wait = backoff.next();
                ctx.log.line(&format!(
                    "{reason} Retrying in {}s (--retry-until-up; cancel the request to stop).",
                    wait.as_secs()
                ));
                tokio::time::sleep(wait).await;
            }
            Err(err) => {
                if !record.ever_up {
                    // Nothing usable was made: do not leave a half-made
                    // cluster, on the nodes or in the store (deleting the
                    // record releases what it held). Where the nodes
                    // cannot be cleaned now, the INIT record stays so that
                    // `down` can finish the job.
                    let cleanup = if made_something {
                        provider.terminate_unrecorded(name).await
                    } else {
                        Ok(())
                    };
                    match cleanup {
                        Ok(()) => {
                            let _ = ctx.store.delete_cluster(name.as_str(), now()).await;
                        }
                        Err(cleanup) => {
                            ctx.log.line(&format!(
                                "Could not remove what the failed launch left on its \
                                 nodes ({cleanup}); `down {name}` tries again."
                            ));
                            let _ = placement::release(ctx.store.as_ref(), name.as_str()).await;
                        }
                    }
                } else {
                    let _ = placement::release(ctx.store.as_ref(), name.as_str()).await;
                }
                return Err(infra_error(err));
            }
        }
    };
    record.status = ClusterStatus::Up;
    record.status_updated_at = now();
    record.ever_up = true;
    record.handle = serde_json::to_value(&handle).map_err(internal)?;
    record.resources = serde_json::to_value(&handle.capacity).map_err(internal)?;
    record.last_use = Some(last_use.to_owned());
    ctx.store.put_cluster(&record).await.map_err(internal)?;
    ctx.log.line(&format!("✓ Cluster {name} is UP."));
    Ok((record, handle))
}

/// Waits between provisioning attempts: doubling from a few seconds to a
/// minute, as SkyPilot's retry loop does.
struct RetryBackoff {
    next: std::time::Duration,
}

impl Default for RetryBackoff {
    fn default() -> Self {
        Self {
            next: std::time::Duration::from_secs(5),
        }
    }
}

impl RetryBackoff {
    const MAX: std::time::Duration = std::time::Duration::from_secs(60);

    fn next(&mut self) -> std::time::Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        wait
    }
}

/// Makes sure an existing cluster runs: a stopped one is started, and an
/// UP one whose agent died gets it back.
async fn reuse(
    ctx: &RequestContext,
    record: ClusterRecord,
    retry_until_up: bool,
) -> Result<(ClusterRecord, Handle), RequestError> {
    let handle = handle_of(&record)?;
    if record.status == ClusterStatus::Stopped {
        ctx.log.line(&format!(
            "⚙︎ Starting the stopped cluster {}...",
            record.name
        ));
    }
    let handle = start_nodes(ctx, &record, handle, retry_until_up).await?;
    if record.status != ClusterStatus::Up {
        ctx.store
            .set_cluster_status(&record.name, ClusterStatus::Up, now())
            .await
            .map_err(internal)?;
        ctx.log.line(&format!("✓ Cluster {} is UP.", record.name));
    }
    let record = existing(ctx, &record.name).await?;
    Ok((record, handle))
}

/// Starts a cluster's nodes (and agent). A stopped cluster held nothing
/// while stopped, so it is placed again first, and its record keeps the
/// GPUs it holds now; it may no longer fit.
async fn start_nodes(
    ctx: &RequestContext,
    record: &ClusterRecord,
    mut handle: Handle,
    retry_until_up: bool,
) -> Result<Handle, RequestError> {
    let provider = ctx.infra.provider(&record.infra)?;
    let placed = record.status == ClusterStatus::Stopped;
    let mut backoff = RetryBackoff::default();
    if placed {
        loop {
            match placement::place_for_start(ctx.store.as_ref(), provider.as_ref(), &handle).await?
            {
                Ok(None) => break,
                Ok(Some(moved)) => {
                    let mut updated = record.clone();
                    updated.handle = serde_json::to_value(&moved).map_err(internal)?;
                    ctx.store.put_cluster(&updated).await.map_err(internal)?;
                    handle = moved;
                    break;
                }
                Err(no_fit) if retry_until_up => {
                    let wait = backoff.next();
                    ctx.log.line(&format!(
                        "{no_fit} Retrying in {}s (--retry-until-up; cancel the request to stop).",
                        wait.as_secs()
                    ));
                    tokio::time::sleep(wait).await;
                }
                Err(no_fit) => return Err(placement::no_fit_error(no_fit)),
            }
        }
    }
    if let Err(err) = provider.start(&handle).await {
        if placed {
            let _ = placement::release(ctx.store.as_ref(), &record.name).await;
        }
        return Err(infra_error(err));
    }
    Ok(handle)
}

async fn sync_files(
    ctx: &RequestContext,
    record: &ClusterRecord,
    handle: &Handle,
    plan: &Plan,
) -> Result<(), RequestError> {
    let provider = ctx.infra.provider(&record.infra)?;
    if let Some(workdir) = &plan.workdir {
        let size = progress::tree_summary(workdir.path().to_owned()).await;
        ctx.log.line(&format!(
            "⚙︎ Syncing the workdir ({size}) to ~/sky_workdir on every node..."
        ));
        provider
            .sync_up(handle, workdir.path(), "~/sky_workdir")
            .await
            .map_err(infra_error)?;
    }
    for (target, source) in &plan.file_mounts {
        let size = progress::tree_summary(source.path().to_owned()).await;
        ctx.log
            .line(&format!("⚙︎ Syncing file mount {target} ({size})..."));
        provider
            .sync_up(handle, source.path(), &target.remote_path())
            .await
            .map_err(infra_error)?;
    }
    if plan.workdir.is_some() || !plan.file_mounts.is_empty() {
        ctx.log.line("✓ Files synced.");
    }
    Ok(())
}

async fn submit_job(
    ctx: &RequestContext,
    record: &ClusterRecord,
    plan: &Plan,
    with_setup: bool,
) -> Result<Option<u64>, RequestError> {
    let setup = if with_setup { plan.setup.clone() } else { None };
    if plan.run.is_none() && setup.is_none() {
        return Ok(None);
    }
    let agent = ctx.infra.agent(record)?;
    ctx.log.line(match (&setup, &plan.run) {
        (Some(_), Some(_)) => "⚙︎ Starting the job: setup, then run...",
        (Some(_), None) => "⚙︎ Starting the job: setup...",
        _ => "⚙︎ Starting the job...",
    });
    let spec = JobSpec {
        idempotency_key: ctx.id.clone(),
        name: plan.task_name.clone(),
        username: user_name(ctx).await,
        user_hash: ctx.user_id.clone(),
        setup,
        run: plan.run.clone(),
        num_nodes: plan.num_nodes as usize,
        envs: plan.envs.clone(),
        secrets: plan.secrets.clone(),
        demand: Demand {
            cpus: plan.job_cpus,
            memory_gb: 0.0,
            accelerators: plan.node.accelerators.clone(),
        },
        resources_str: plan.resources_str(),
        // The agent builds it in SkyPilot's format from the job's submission.
        task_id: None,
    };
    let job_id = agent.submit(&spec).await.map_err(infra_error)?;
    ctx.log.line(&format!("✓ Job submitted, ID: {job_id}"));
    Ok(Some(job_id))
}

pub(super) async fn load_plan(
    ctx: &RequestContext,
    task: &str,
    blob_id: Option<&BlobId>,
    files: Files,
) -> Result<Plan, RequestError> {
    // Only the requesting user's own blobs: an id another user uploaded
    // is as good as missing.
    let uploaded = match blob_id {
        None => None,
        Some(id) => {
            let user = UserId::new(ctx.user_id.as_str())
                .map_err(|err| RequestError::new(exception::VALUE_ERROR, err.to_string()))?;
            let dir = ctx.infra.upload_dir(&user, id);
            if !dir.is_dir() {
                return Err(RequestError::new(
                    exception::VALUE_ERROR,
                    format!(
                        "The files uploaded for this request (blob {id}) are not on the API \
                         server among yours; run the command again to upload them."
                    ),
                ));
            }
            Some(dir)
        }
    };
    let task = task.to_owned();
    // Checks every source against the upload on disk: off the runtime.
    tokio::task::spawn_blocking(move || {
        crate::clusters::plan::plan(&task, uploaded.as_deref(), files)
    })
    .await
    .map_err(internal)?
}

pub async fn launch(ctx: &RequestContext, body: LaunchBody) -> OpResult {
    // Dry run and launch pass through the same checks (launch_checks.rs).
    let checked = launch_checks::check_task(ctx, body).await?;
    let (name, plan, spec, body) = (&checked.name, &checked.plan, &checked.spec, &checked.body);
    let lock = ctx.infra.lock(name);
    let _guard = lock.lock().await;
    let current = ctx.store.get_cluster(name).await.map_err(internal)?;
    let mut existing = launch_checks::check_target(ctx, &checked, current.as_ref()).await?;
    if body.dryrun {
        launch_checks::log_plan(ctx, &checked, existing.as_ref());
        return Ok(json!({"job_id": null, "handle": null}));
    }
    // The name is taken (or found taken) in one atomic step, before
    // anything is made: of two users launching it at once, one owns it and
    // the other is refused here.
    let claim = new_record(ctx, name, plan, body.base.command_line());
    let record = ctx.store.claim_cluster(&claim).await.map_err(internal)?;
    let looked_at = current
        .as_ref()
        .map_or(&claim.cluster_hash, |c| &c.cluster_hash);
    if record.cluster_hash != *looked_at {
        // Another server made it since: check what is there now.
        existing = launch_checks::check_target(ctx, &checked, Some(&record)).await?;
    }
    if let Some(existing) = &existing {
        ctx.log.line(&format!(
            "Cluster {name} exists ({}); reusing it.",
            existing.status
        ));
    }
    // An existing cluster keeps the shape it was made with (the task only
    // has to fit it); one still INIT (just claimed, or its provisioning
    // interrupted) is provisioned.
    let (record, handle) = match existing {
        Some(existing) => reuse(ctx, existing, body.retry_until_up).await?,
        None => {
            bring_up(
                ctx,
                record,
                spec,
                plan,
                body.base.command_line(),
                body.retry_until_up,
            )
            .await?
        }
    };
    sync_files(ctx, &record, &handle, plan).await?;
    let job_id = submit_job(ctx, &record, plan, !body.no_setup).await?;
    apply_autostop(ctx, &record, checked.autostop).await?;
    Ok(json!({"job_id": job_id, "handle": records::handle_dict(&record, Some(&handle))}))
}

/// Runs the admin policy on a launch or exec and works out the autostop
/// the request leaves the cluster with: the task's `resources.autostop`
/// (where the official client puts `-i` and `--down`) overridden by the
/// body's flags, as the policy saw it and as it may have changed it.
pub(super) async fn police_with_autostop(
    ctx: &RequestContext,
    request_name: &str,
    task: String,
    mut options: PolicyRequestOptions,
) -> Result<(String, AutostopRequest), RequestError> {
    let flags = (options.idle_minutes_to_autostop, options.down);
    // The policy sees the final values, as SkyPilot's client sends them.
    AutostopRequest::of(task_autostop(&task).as_ref(), flags.0, flags.1).to_options(&mut options);
    let sent = options.clone();
    let policed = super::policy::police(ctx, request_name, task, Some(options)).await?;
    // Options the policy changed override the task as flags would.
    let flags = match policed.options {
        Some(changed) if changed != sent => (changed.idle_minutes_to_autostop, changed.down),
        _ => flags,
    };
    let autostop =
        AutostopRequest::of(task_autostop(&policed.task_yaml).as_ref(), flags.0, flags.1);
    Ok((policed.task_yaml, autostop))
}

/// Sets what the request asked of the cluster's autostop. Only once the
/// job is queued: an autostop of 0 minutes set before it would find the
/// cluster idle and take it away first (`--down` alone means tear down as
/// soon as the jobs are done, as in SkyPilot).
async fn apply_autostop(
    ctx: &RequestContext,
    record: &ClusterRecord,
    autostop: AutostopRequest,
) -> Result<(), RequestError> {
    match autostop.setting() {
        Some((minutes, down)) => set_autostop(ctx, record, minutes, down).await,
        None => Ok(()),
    }
}

pub async fn exec(ctx: &RequestContext, body: ExecBody) -> OpResult {
    let task = ctx.infra.secrets.original_task(&ctx.id, body.task.clone());
    let options = PolicyRequestOptions {
        cluster_name: Some(body.cluster_name.to_string()),
        idle_minutes_to_autostop: None,
        down: body.down,
        dryrun: body.dryrun,
    };
    // An exec that asks nothing of autostop leaves the cluster's as it is,
    // even where a policy would force one on a launch.
    let asks_autostop = body.down || task_autostop(&task).is_some();
    let (task, mut autostop) = police_with_autostop(ctx, "exec", task, options).await?;
    if !asks_autostop {
        autostop = AutostopRequest::Unchanged;
    }
    let plan = load_plan(
        ctx,
        &task,
        body.file_mounts_blob_id.as_ref(),
        Files::WorkdirOnly,
    )
    .await?;
    let record = existing(ctx, &body.cluster_name).await?;
    check_same_workspace(ctx, &record)?;
    if record.status != ClusterStatus::Up {
        return Err(not_up(&record));
    }
    let handle = handle_of(&record)?;
    if let Some(reason) = misfit(&plan, &record, &handle) {
        return Err(RequestError::new(
            "ResourcesMismatchError",
            format!(
                "Cluster {:?} cannot run this task: {reason}. Use `sky launch` with another \
                 cluster name.",
                record.name
            ),
        ));
    }
    if body.dryrun {
        ctx.log.line(&format!(
            "Dry run: cluster {} can run this task ({}); nothing was run.",
            record.name,
            plan.resources_str()
        ));
        return Ok(json!({"job_id": null, "handle": null}));
    }
    if let Some(workdir) = &plan.workdir {
        let size = progress::tree_summary(workdir.path().to_owned()).await;
        ctx.log.line(&format!(
            "⚙︎ Syncing the workdir ({size}) to ~/sky_workdir on every node..."
        ));
        ctx.infra
            .provider(&record.infra)?
            .sync_up(&handle, workdir.path(), "~/sky_workdir")
            .await
            .map_err(infra_error)?;
    }
    let job_id = submit_job(ctx, &record, &plan, false).await?;
    apply_autostop(ctx, &record, autostop).await?;
    Ok(json!({"job_id": job_id, "handle": records::handle_dict(&record, Some(&handle))}))
}

async fn set_autostop(
    ctx: &RequestContext,
    record: &ClusterRecord,
    minutes: i64,
    down: bool,
) -> Result<(), RequestError> {
    ctx.infra
        .agent(record)?
        .autostop(minutes, down)
        .await
        .map_err(infra_error)?;
    ctx.store
        .set_cluster_autostop(&record.name, minutes, down)
        .await
        .map_err(internal)?;
    if minutes >= 0 {
        ctx.log.line(&format!(
            "Autostop set: {} after {minutes} idle minute(s).",
            if down { "tear down" } else { "stop" }
        ));
    }
    Ok(())
}

/// A stopped cluster has no autostop pending: `sky status` shows `-`.
async fn clear_autostop(store: &dyn skydeck_store::Store, name: &str) -> Result<(), RequestError> {
    store
        .set_cluster_autostop(name, -1, false)
        .await
        .map(drop)
        .map_err(internal)
}

/// The cluster `name`, which the requester must own (or act for everyone).
async fn existing(ctx: &RequestContext, name: &str) -> Result<ClusterRecord, RequestError> {
    owned_cluster(ctx, name)
        .await?
        .ok_or_else(|| not_found(name))
}

pub async fn autostop(ctx: &RequestContext, body: AutostopBody) -> OpResult {
    let record = existing(ctx, &body.cluster_name).await?;
    if record.status != ClusterStatus::Up {
        return Err(not_up(&record));
    }
    set_autostop(ctx, &record, body.idle_minutes, body.down).await?;
    Ok(Value::Null)
}

pub async fn stop(ctx: &RequestContext, body: StopOrDownBody) -> OpResult {
    let lock = ctx.infra.lock(&body.cluster_name);
    let _guard = lock.lock().await;
    let record = existing(ctx, &body.cluster_name).await?;
    let handle = handle_of(&record)?;
    ctx.log
        .line(&format!("Stopping cluster {}...", record.name));
    ctx.infra
        .provider(&record.infra)?
        .stop(&handle)
        .await
        .map_err(infra_error)?;
    ctx.store
        .set_cluster_status(&record.name, ClusterStatus::Stopped, now())
        .await
        .map_err(internal)?;
    // Nothing runs on it now: what it held is free for other clusters
    // (`start` places it again).
    placement::release(ctx.store.as_ref(), &record.name).await?;
    clear_autostop(ctx.store.as_ref(), &record.name).await?;
    ctx.log.line(&format!("Cluster {} stopped.", record.name));
    Ok(Value::Null)
}

pub async fn down(ctx: &RequestContext, body: StopOrDownBody) -> OpResult {
    let lock = ctx.infra.lock(&body.cluster_name);
    let _guard = lock.lock().await;
    let record = existing(ctx, &body.cluster_name).await?;
    ctx.log
        .line(&format!("Tearing down cluster {}...", record.name));
    let provider = ctx.infra.provider(&record.infra)?;
    // A cluster whose launch died while provisioning has no handle yet, but
    // may have left nodes and an agent: the provider finds them by name.
    let result = match handle_of(&record) {
        Ok(handle) => provider.terminate(&handle).await,
        Err(_) => provider.terminate_unrecorded(&body.cluster_name).await,
    };
    if let Err(err) = result {
        if !body.purge {
            return Err(infra_error(err));
        }
        ctx.log
            .line(&format!("Ignoring a teardown error (--purge): {err}"));
    }
    ctx.store
        .delete_cluster(&record.name, now())
        .await
        .map_err(internal)?;
    ctx.log
        .line(&format!("Cluster {} terminated.", record.name));
    Ok(Value::Null)
}

pub async fn start(ctx: &RequestContext, body: StartBody) -> OpResult {
    let lock = ctx.infra.lock(&body.cluster_name);
    let _guard = lock.lock().await;
    let record = existing(ctx, &body.cluster_name).await?;
    let handle = handle_of(&record)?;
    ctx.log
        .line(&format!("Starting cluster {}...", record.name));
    let handle = start_nodes(ctx, &record, handle, body.retry_until_up).await?;
    ctx.store
        .set_cluster_status(&record.name, ClusterStatus::Up, now())
        .await
        .map_err(internal)?;
    let record = existing(ctx, &body.cluster_name).await?;
    // A stopped cluster comes back with autostop off, as in SkyPilot,
    // unless the start sets one; the agent may still hold the old one.
    let minutes = body.idle_minutes_to_autostop.unwrap_or(-1);
    set_autostop(ctx, &record, minutes, body.down && minutes >= 0).await?;
    ctx.log.line(&format!("✓ Cluster {} is UP.", record.name));
    Ok(records::handle_dict(&record, Some(&handle)))
}

/// Brings the record in line with what the provider sees: an agent that
/// stopped the cluster on its own (autostop), an agent that died on an UP
/// cluster (restarted, so its lost jobs end FAILED_DRIVER instead of
/// staying RUNNING), a cluster that is gone, or one with a host that does
/// not answer (INIT, as SkyPilot shows a cluster whose nodes are not all
/// healthy, with the reason in `infra.health`; UP again once they all
/// answer). The caller holds the cluster's lock.
pub async fn reconcile(
    ctx_store: &dyn skydeck_store::Store,
    infra: &crate::clusters::Infra,
    record: &ClusterRecord,
) -> Result<Option<ClusterRecord>, RequestError> {
    // A row an older version stored under a name that is a path is left
    // alone: nothing destructive is done on its say-so.
    if let Err(err) = ClusterName::new(record.name.as_str()) {
        tracing::debug!(cluster = %record.name, error = %err, "not reconciling a cluster with an invalid name");
        return Ok(Some(record.clone()));
    }
    let Ok(handle) = handle_of(record) else {
        return Ok(Some(record.clone()));
    };
    let provider = infra.provider(&record.infra)?;
    let state = match provider.query(&handle).await {
        Ok(state) => state,
        Err(err) => return unhealthy(ctx_store, infra, record, &err.to_string()).await,
    };
    // An INIT cluster that was UP before is one a check flipped (or a
    // relaunch that failed after its nodes were made): SkyPilot's refresh
    // makes it UP again once every node is healthy.
    let was_up = record.status == ClusterStatus::Up
        || (record.status == ClusterStatus::Init && record.ever_up);
    let status = match (state, record.status) {
        (ClusterState::Gone, _) => {
            ctx_store
                .delete_cluster(&record.name, now())
                .await
                .map_err(internal)?;
            return Ok(None);
        }
        (ClusterState::AutoStopped { down: true }, _) => {
            provider.terminate(&handle).await.map_err(infra_error)?;
            ctx_store
                .delete_cluster(&record.name, now())
                .await
                .map_err(internal)?;
            tracing::info!(cluster = %record.name, "autostop tore the cluster down");
            return Ok(None);
        }
        (ClusterState::AgentDown, _) if was_up => {
            tracing::warn!(cluster = %record.name, "the cluster's agent is not running; restarting it");
            provider.start(&handle).await.map_err(infra_error)?;
            infra.health.record(
                record,
                "The cluster's agent was not running on its head (the host restarted, or the \
                 agent was killed): it was started again, and the jobs it lost ended \
                 FAILED_DRIVER."
                    .to_owned(),
            );
            if record.status == ClusterStatus::Up {
                return Ok(Some(record.clone()));
            }
            ClusterStatus::Up
        }
        (ClusterState::AutoStopped { down: false } | ClusterState::Stopped, ClusterStatus::Up) => {
            clear_autostop(ctx_store, &record.name).await?;
            ClusterStatus::Stopped
        }
        (ClusterState::Running, ClusterStatus::Stopped) => ClusterStatus::Up,
        (ClusterState::Running, ClusterStatus::Init) if was_up => {
            if infra.health.is_unhealthy(record) {
                infra.health.record(
                    record,
                    "Every host of the cluster answers again.".to_owned(),
                );
            }
            ClusterStatus::Up
        }
        _ => return Ok(Some(record.clone())),
    };
    ctx_store
        .set_cluster_status(&record.name, status, now())
        .await
        .map_err(internal)?;
    if status == ClusterStatus::Stopped {
        placement::release(ctx_store, &record.name).await?;
    }
    ctx_store.get_cluster(&record.name).await.map_err(internal)
}

/// A cluster the provider could not fully see (`reason` names the hosts
/// that did not answer): an UP one becomes INIT, and the reason is kept for
/// its status record. Its jobs are the agent's to settle; nothing is torn
/// down on a host that may only be cut off for a while.
async fn unhealthy(
    ctx_store: &dyn skydeck_store::Store,
    infra: &crate::clusters::Infra,
    record: &ClusterRecord,
    reason: &str,
) -> Result<Option<ClusterRecord>, RequestError> {
    if record.status == ClusterStatus::Stopped {
        return Ok(Some(record.clone()));
    }
    tracing::warn!(cluster = %record.name, reason, "the cluster is not healthy");
    infra.health.unhealthy(record, reason);
    if record.status != ClusterStatus::Up {
        return Ok(Some(record.clone()));
    }
    ctx_store
        .set_cluster_status(&record.name, ClusterStatus::Init, now())
        .await
        .map_err(internal)?;
    ctx_store.get_cluster(&record.name).await.map_err(internal)
}

pub async fn status(ctx: &RequestContext, body: StatusBody) -> OpResult {
    // Without auth, `-u` shows everyone's clusters; with it, only admins
    // see other users' clusters at all.
    let sees_all = ctx.sees_all_users().await?;
    let owner = (!sees_all).then_some(ctx.user_id.as_str());
    let clusters = ctx.store.list_clusters(owner).await.map_err(internal)?;
    let wanted = body.cluster_names.as_deref();
    let clusters = match body.cluster_names.clone() {
        Some(patterns) => matching_clusters(clusters, patterns).await?,
        None => clusters,
    };
    let refresh = body.refresh.mode() != skydeck_types::bodies::RefreshMode::None;
    // Managed jobs' clusters are the controller's business, as in
    // SkyPilot: listed only when asked for by name.
    let managed: std::collections::HashSet<String> = if wanted.is_none() {
        ctx.store
            .managed_cluster_names()
            .await
            .map_err(internal)?
            .into_iter()
            .collect()
    } else {
        Default::default()
    };
    let mut out = Vec::new();
    let mut names: std::collections::HashMap<String, Option<String>> = Default::default();
    for cluster in clusters {
        if !body.all_users && wanted.is_none() && cluster.user_id != ctx.user_id {
            continue;
        }
        if managed.contains(&cluster.name) {
            continue;
        }
        // A cluster whose lock is held is being launched, stopped or torn
        // down right now: what it is becomes clear when that ends.
        let lock = ctx.infra.lock(&cluster.name);
        let cluster = match (refresh, lock.try_lock()) {
            (true, Ok(_guard)) => {
                match reconcile(ctx.store.as_ref(), &ctx.infra, &cluster).await? {
                    Some(cluster) => cluster,
                    None => continue,
                }
            }
            _ => cluster,
        };
        // Each owner is read once: a team has few users and many clusters.
        let name = match names.get(&cluster.user_id) {
            Some(name) => name.clone(),
            None => {
                let name = ctx
                    .store
                    .get_user(&cluster.user_id)
                    .await
                    .ok()
                    .flatten()
                    .map(|u| u.name);
                names.insert(cluster.user_id.clone(), name.clone());
                name
            }
        };
        let mut record = records::status_record(&cluster, name.as_deref());
        records::with_health(
            &mut record,
            &cluster,
            ctx.infra.health.last_event(&cluster).as_deref(),
        );
        out.push(record);
    }
    Ok(Value::Array(out))
}

/// The clusters a name or glob pattern of `patterns` matches (SkyPilot
/// accepts globs: `sky status 'dev-*'`). Matching is linear per pair, but
/// many patterns over many clusters is still CPU work: not on the async
/// workers.
async fn matching_clusters(
    clusters: Vec<ClusterRecord>,
    patterns: Vec<GlobPattern>,
) -> Result<Vec<ClusterRecord>, RequestError> {
    tokio::task::spawn_blocking(move || {
        clusters
            .into_iter()
            .filter(|cluster| patterns.iter().any(|p| p.matches(&cluster.name)))
            .collect()
    })
    .await
    .map_err(internal)
}
