//! Everything a launch checks before it makes anything, in one place, so
//! that `launch --dryrun` and the real launch run the very same checks and
//! fail with the very same errors: the admin policy, the task (its limits
//! and files), the workspace, the infrastructure, whether the cluster fits
//! there, and who owns the name.
//!
//! A dry run stops after these checks and prints the plan; a launch goes on
//! to claim the name (which checks the owner again, atomically, for a name
//! taken meanwhile) and to provision.

use super::RequestContext;
use super::clusters::{
    generated_name, infra_error, load_plan, misfit, police_with_autostop, spec_of,
};
use super::ownership::check_owner;
use crate::clusters::autostop::AutostopRequest;
use crate::clusters::plan::{Files, Plan};
use crate::clusters::{handle_of, placement};
use crate::skypilot::{exception, records};
use skydeck_infra::{ClusterSpec, InfraError};
use skydeck_store::{ClusterRecord, ClusterStatus};
use skydeck_types::RequestError;
use skydeck_types::bodies::LaunchBody;
use skydeck_types::config::PolicyRequestOptions;
use skydeck_types::names::ClusterName;

/// A launch that passed the checks on the task: what it would make.
pub struct Checked {
    pub plan: Plan,
    pub name: ClusterName,
    pub spec: ClusterSpec,
    pub body: LaunchBody,
    /// The autostop asked for (flags, or the task's `resources.autostop`),
    /// after the admin policy.
    pub autostop: AutostopRequest,
}

/// The checks that depend on the task and the caller, not on what exists
/// under the cluster name: the admin policy (applied; a refusal fails),
/// the task (parsed, its limits and uploaded files checked), the
/// workspace (the caller may use it, and its infrastructure), and what
/// the infrastructure can ever host.
pub async fn check_task(ctx: &RequestContext, body: LaunchBody) -> Result<Checked, RequestError> {
    let task = ctx.infra.secrets.original_task(&ctx.id, body.task.clone());
    let options = PolicyRequestOptions {
        cluster_name: body.cluster_name.clone().map(String::from),
        idle_minutes_to_autostop: body.idle_minutes_to_autostop,
        down: body.down,
        dryrun: body.dryrun,
    };
    let (task, autostop) = police_with_autostop(ctx, "launch", task, options).await?;
    let mut plan = load_plan(ctx, &task, body.file_mounts_blob_id.as_ref(), Files::All).await?;
    check_workspace(ctx, &plan).await?;
    crate::ssh_pools::check::settle_pool(ctx, &mut plan).await?;
    crate::clusters::kube_contexts::settle_context(ctx, &mut plan).await?;
    let name = body
        .cluster_name
        .clone()
        .unwrap_or_else(|| generated_name(&ctx.user_id));
    let spec = spec_of(ctx, &name, &plan);
    // Before the name is claimed: a cluster the infrastructure cannot host
    // (a million nodes) is refused without a trace.
    let provider = ctx.infra.provider(&plan.infra)?;
    provider.admits(&spec).map_err(infra_error)?;
    for (target, _) in &plan.file_mounts {
        provider
            .admits_file_mount(target)
            .map_err(|err| RequestError::new(exception::VALUE_ERROR, err.to_string()))?;
    }
    Ok(Checked {
        plan,
        name,
        spec,
        body,
        autostop,
    })
}

/// The checks against what is under the name now (`current`, read by the
/// caller under the cluster's lock): the owner, the workspace it was made
/// in, and that the task fits it; for a cluster still to be made, that it
/// fits the infrastructure. Returns the cluster the launch would reuse.
pub async fn check_target(
    ctx: &RequestContext,
    checked: &Checked,
    current: Option<&ClusterRecord>,
) -> Result<Option<ClusterRecord>, RequestError> {
    if let Some(record) = current {
        check_owner(ctx, record).await?;
        check_same_workspace(ctx, record)?;
    }
    let existing = current.filter(|c| c.status != ClusterStatus::Init).cloned();
    match &existing {
        Some(existing) => {
            let handle = handle_of(existing)?;
            if let Some(reason) = misfit(&checked.plan, existing, &handle) {
                let name = &checked.name;
                return Err(RequestError::new(
                    "ResourcesMismatchError",
                    format!(
                        "Cluster {name:?} exists but cannot run this task: {reason}. Launch \
                         on a new cluster with another -c NAME, or tear this one down first \
                         (`sky down {name}`)."
                    ),
                ));
            }
        }
        None => match fits(ctx, &checked.spec, &checked.plan.infra).await? {
            Ok(()) => {}
            // Provisioning waits for it, trying again until it fits.
            Err(InfraError::Unsatisfiable(reason)) if checked.body.retry_until_up => {
                ctx.log.line(&format!(
                    "{reason} The launch waits until it fits (--retry-until-up)."
                ));
            }
            Err(err) => return Err(infra_error(err)),
        },
    }
    Ok(existing)
}

/// Whether a new cluster of `spec` fits on infrastructure `infra` now,
/// beside the clusters placed there. The one place a launch (or its dry
/// run) asks this before provisioning. `Ok(Err)` says why it does not fit.
async fn fits(
    ctx: &RequestContext,
    spec: &ClusterSpec,
    infra: &str,
) -> Result<Result<(), InfraError>, RequestError> {
    let provider = match ctx.infra.provider(infra) {
        Ok(provider) => provider,
        Err(err) => return Ok(Err(InfraError::Unsatisfiable(err.to_string()))),
    };
    if let Err(err) = provider.admits(spec) {
        return Ok(Err(err));
    }
    Ok(
        placement::check_fit(ctx.store.as_ref(), provider.as_ref(), spec)
            .await?
            .map_err(|no_fit| InfraError::Unsatisfiable(placement::no_fit_message(&no_fit))),
    )
}

/// The caller may still use the request's workspace (it may have been
/// made private since the request was accepted), and its infrastructure
/// is allowed there.
pub(super) async fn check_workspace(ctx: &RequestContext, plan: &Plan) -> Result<(), RequestError> {
    let denied = |message: String| RequestError::new(exception::PERMISSION_DENIED, message);
    let Some(workspace) = ctx.config.workspace(&ctx.workspace) else {
        return Err(denied(format!(
            "Workspace {:?} no longer exists; set `active_workspace` in your config to one \
             that does.",
            ctx.workspace
        )));
    };
    let user_name = ctx
        .store
        .get_user(&ctx.user_id)
        .await
        .ok()
        .flatten()
        .map_or_else(|| ctx.user_id.clone(), |u| u.name);
    if !workspace.admits(&ctx.user_id, &user_name, ctx.sees_all_users().await?) {
        return Err(denied(format!(
            "User {user_name:?} is not allowed to use workspace {:?}; ask an admin to add \
             you to its allowed_users, or choose another workspace.",
            ctx.workspace
        )));
    }
    ctx.config
        // `ssh/<pool>` is allowed as `ssh`.
        .infra_allowed(
            &ctx.workspace,
            plan.infra.split('/').next().unwrap_or_default(),
        )
        .map_err(|reason| denied(format!("Cannot launch: {reason}.")))?;
    if let Some(pool) = plan.infra.strip_prefix("ssh/") {
        crate::ssh_pools::check::allowed(&ctx.config, &ctx.workspace, pool)
            .map_err(|reason| denied(format!("Cannot launch: {reason}.")))?;
    }
    Ok(())
}

/// A cluster is used from the workspace it was launched in.
pub fn check_same_workspace(
    ctx: &RequestContext,
    cluster: &ClusterRecord,
) -> Result<(), RequestError> {
    if cluster.workspace == ctx.workspace {
        return Ok(());
    }
    Err(RequestError::new(
        exception::PERMISSION_DENIED,
        format!(
            "Cluster {:?} belongs to workspace {:?}, not {:?}; switch to that workspace \
             (active_workspace in your config) to use it.",
            cluster.name, cluster.workspace, ctx.workspace
        ),
    ))
}

/// What a dry run prints: the launch it checked, step by step.
pub fn log_plan(ctx: &RequestContext, checked: &Checked, existing: Option<&ClusterRecord>) {
    let Checked {
        plan, name, body, ..
    } = checked;
    let mut lines = vec!["Dry run: every check passed. The launch would:".to_owned()];
    lines.push(match existing {
        Some(cluster) => format!("  Cluster:     {name} (exists, {}; reused)", cluster.status),
        None => format!("  Cluster:     {name} (new)"),
    });
    lines.push(format!(
        "  Infra:       {}",
        records::infra_display(&plan.infra)
    ));
    lines.push(format!("  Nodes:       {}", plan.num_nodes));
    lines.push(format!("  Resources:   {} per node", node_text(plan)));
    if plan.workdir.is_some() {
        lines.push("  Workdir:     synced to ~/sky_workdir on every node".to_owned());
    }
    for (target, _) in &plan.file_mounts {
        lines.push(format!("  File mount:  {target}"));
    }
    let job = match (&plan.setup, &plan.run, body.no_setup) {
        (Some(_), Some(_), false) => "setup, then run",
        (Some(_), None, false) => "setup only",
        (_, Some(_), _) => "run",
        _ => "nothing (no run or setup)",
    };
    lines.push(format!("  Job:         {job} ({})", plan.resources_str()));
    lines.push(match checked.autostop.setting() {
        Some((minutes, down)) if minutes >= 0 => format!(
            "  Autostop:    {} after {minutes} idle minute(s)",
            if down { "tear down" } else { "stop" }
        ),
        _ => "  Autostop:    off".to_owned(),
    });
    for line in lines {
        ctx.log.line(&line);
    }
    ctx.log.line("Dry run: nothing was launched.");
}

/// `4 CPUs, 16 GB memory, H100:1`, or "any" for a task that asks nothing.
fn node_text(plan: &Plan) -> String {
    let node = &plan.node;
    let mut parts = Vec::new();
    if let Some(cpus) = node.cpus {
        parts.push(format!("{cpus} CPUs"));
    }
    if let Some(memory) = node.memory_gb {
        parts.push(format!("{memory} GB memory"));
    }
    for (name, count) in &node.accelerators {
        parts.push(format!("{name}:{count}"));
    }
    if !node.ports.is_empty() {
        let ports: Vec<String> = node.ports.iter().map(u16::to_string).collect();
        parts.push(format!("ports {}", ports.join(",")));
    }
    if parts.is_empty() {
        "any".to_owned()
    } else {
        parts.join(", ")
    }
}
