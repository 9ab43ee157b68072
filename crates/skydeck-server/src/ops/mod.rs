//! Operations: what each kind of request does once the executor runs it.
//!
//! Handlers validate a body and store it; the operation here re-reads it from
//! the stored JSON, does the work, writes progress to the request log and
//! returns a JSON value that the wire adapter hands to the client.

mod api_cancel;
mod catalog;
mod check;
pub mod clusters;
mod cost_report;
mod jobs;
mod kube_endpoints;
mod kube_gpus;
mod launch_checks;
mod listings;
mod managed_jobs;
mod not_yet_listings;
mod ownership;
pub use ownership::not_owner;
mod policy;
mod progress;
pub mod unsupported;
mod workspace_config;

use crate::executor::Executor;
use crate::request_log::RequestLog;
use crate::skypilot::exception;
use serde::de::DeserializeOwned;
use skydeck_store::Store;
use skydeck_types::{RequestError, ScheduleType};
use std::sync::{Arc, Weak};

/// Every operation the server runs as a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Status,
    Check,
    EnabledClouds,
    WorkspacesGet,
    JobsQueue,
    ServeStatus,
    PoolStatus,
    ApiCancel,
    Launch,
    Exec,
    Start,
    Stop,
    Down,
    Autostop,
    Queue,
    Cancel,
    Logs,
    JobStatus,
    Endpoints,
    Optimize,
    DownloadLogs,
    CostReport,
    ListAccelerators,
    ListAcceleratorCounts,
    StorageLs,
    VolumeList,
    JobsQueueV1,
    SshUp,
    SshDown,
    KubeGpuAvailability,
    KubeNodeInfo,
    JobsLaunch,
    JobsCancel,
    JobsLogs,
    JobsDownloadLogs,
    WorkspacesGetConfig,
    WorkspacesUpdateConfig,
    EnabledCloudsBatch,
    /// A SkyPilot request this server does not support yet, by its name
    /// (see `unsupported.rs`).
    Refused(&'static str),
}

/// What a server does with a request that was RUNNING when its server died.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRestart {
    /// Run it again: the operation is idempotent.
    Resume,
    /// Fail it with a reason: running it twice could do harm.
    Fail,
}

impl Op {
    /// Every operation but the refused ones (`unsupported::REFUSED`).
    pub const ALL: [Op; 38] = [
        Op::Status,
        Op::Check,
        Op::EnabledClouds,
        Op::WorkspacesGet,
        Op::JobsQueue,
        Op::ServeStatus,
        Op::PoolStatus,
        Op::ApiCancel,
        Op::Launch,
        Op::Exec,
        Op::Start,
        Op::Stop,
        Op::Down,
        Op::Autostop,
        Op::Queue,
        Op::Cancel,
        Op::Logs,
        Op::JobStatus,
        Op::Endpoints,
        Op::Optimize,
        Op::DownloadLogs,
        Op::CostReport,
        Op::ListAccelerators,
        Op::ListAcceleratorCounts,
        Op::StorageLs,
        Op::VolumeList,
        Op::JobsQueueV1,
        Op::SshUp,
        Op::SshDown,
        Op::KubeGpuAvailability,
        Op::KubeNodeInfo,
        Op::JobsLaunch,
        Op::JobsCancel,
        Op::JobsLogs,
        Op::JobsDownloadLogs,
        Op::WorkspacesGetConfig,
        Op::WorkspacesUpdateConfig,
        Op::EnabledCloudsBatch,
    ];

    /// SkyPilot's request name.
    pub fn name(self) -> &'static str {
        match self {
            Op::Status => "sky.status",
            Op::Check => "sky.check",
            Op::EnabledClouds => "sky.enabled_clouds",
            Op::WorkspacesGet => "sky.workspaces.get",
            Op::JobsQueue => "sky.jobs.queue_v2",
            Op::ServeStatus => "sky.serve.status",
            Op::PoolStatus => "sky.jobs.pool_status",
            Op::ApiCancel => "sky.api_cancel",
            Op::Launch => "sky.launch",
            Op::Exec => "sky.exec",
            Op::Start => "sky.start",
            Op::Stop => "sky.stop",
            Op::Down => "sky.down",
            Op::Autostop => "sky.autostop",
            Op::Queue => "sky.queue",
            Op::Cancel => "sky.cancel",
            Op::Logs => "sky.logs",
            Op::JobStatus => "sky.job_status",
            Op::Endpoints => "sky.endpoints",
            Op::Optimize => "sky.optimize",
            Op::DownloadLogs => "sky.download_logs",
            Op::CostReport => "sky.cost_report",
            Op::ListAccelerators => "sky.list_accelerators",
            Op::ListAcceleratorCounts => "sky.list_accelerator_counts",
            Op::StorageLs => "sky.storage_ls",
            Op::VolumeList => "sky.volume_list",
            Op::JobsQueueV1 => "sky.jobs.queue",
            Op::SshUp => "sky.ssh_node_pools.up",
            Op::SshDown => "sky.ssh_node_pools.down",
            Op::KubeGpuAvailability => "sky.realtime_kubernetes_gpu_availability",
            Op::KubeNodeInfo => "sky.kubernetes_node_info",
            Op::JobsLaunch => "sky.jobs.launch",
            Op::JobsCancel => "sky.jobs.cancel",
            Op::JobsLogs => "sky.jobs.logs",
            Op::JobsDownloadLogs => "sky.jobs.download_logs",
            Op::WorkspacesGetConfig => "sky.workspaces.get_config",
            Op::WorkspacesUpdateConfig => "sky.workspaces.update_config",
            Op::EnabledCloudsBatch => "sky.enabled_clouds_batch",
            Op::Refused(name) => name,
        }
    }

    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL
            .into_iter()
            .find(|op| op.name() == name)
            .or_else(|| unsupported::find(name).map(|refused| Op::Refused(refused.name)))
    }

    pub fn schedule(self) -> ScheduleType {
        match self {
            // Probing infrastructure can take seconds per backend; cluster
            // lifecycles take as long as provisioning; a followed log lasts
            // as long as its job.
            Op::Check
            | Op::Launch
            | Op::Exec
            | Op::Start
            | Op::Stop
            | Op::Down
            | Op::Logs
            | Op::JobsLogs
            | Op::SshUp
            | Op::SshDown => ScheduleType::Long,
            _ => ScheduleType::Short,
        }
    }

    /// [`Op::answers_at_once`] for this request: a `status` that asks to
    /// refresh reaches the infrastructure (and may restart an agent), so it
    /// goes to a worker instead of running in the accepting handler.
    pub fn answers_at_once_for(self, body: &serde_json::Value) -> bool {
        if !self.answers_at_once() {
            return false;
        }
        if self != Op::Status {
            return true;
        }
        body.get("refresh")
            .filter(|refresh| !refresh.is_null())
            .and_then(|refresh| {
                serde_json::from_value::<skydeck_types::bodies::RefreshArg>(refresh.clone()).ok()
            })
            .is_none_or(|refresh| refresh.mode() == skydeck_types::bodies::RefreshMode::None)
    }

    /// True for operations that only read what the server itself holds and
    /// answer in moments. The server runs them while accepting the request
    /// (see `Executor::submit`), which is safe only because they change
    /// nothing: a client that hangs up midway leaves no trace.
    pub fn answers_at_once(self) -> bool {
        match self {
            Op::Status
            | Op::EnabledClouds
            | Op::WorkspacesGet
            | Op::JobsQueue
            | Op::ServeStatus
            | Op::PoolStatus
            | Op::CostReport
            | Op::StorageLs
            | Op::VolumeList
            | Op::JobsQueueV1
            | Op::WorkspacesGetConfig
            | Op::EnabledCloudsBatch
            | Op::Refused(_) => true,
            // Reach infrastructure or agents, or change things.
            Op::Check
            | Op::ApiCancel
            | Op::Launch
            | Op::Exec
            | Op::Start
            | Op::Stop
            | Op::Down
            | Op::Autostop
            | Op::Queue
            | Op::Cancel
            | Op::Logs
            | Op::JobStatus
            | Op::Endpoints
            | Op::Optimize
            | Op::DownloadLogs
            | Op::SshUp
            | Op::SshDown
            // Probe the machine's GPUs.
            | Op::ListAccelerators
            | Op::ListAcceleratorCounts
            // Ask a Kubernetes API server.
            | Op::KubeGpuAvailability
            | Op::KubeNodeInfo
            // Write managed jobs, follow their logs or copy them.
            | Op::JobsLaunch
            | Op::JobsCancel
            | Op::JobsLogs
            | Op::JobsDownloadLogs
            // Replaces the server config.
            | Op::WorkspacesUpdateConfig => false,
        }
    }

    /// True for operations whose output is read while they run (a
    /// followed job log): they run outside the pools and stop when their
    /// reader leaves (see `executor/live.rs`).
    pub fn runs_live(self) -> bool {
        matches!(self, Op::Logs | Op::JobsLogs)
    }

    pub fn on_restart(self) -> OnRestart {
        match self {
            // Its reader left with the server that ran it.
            Op::Logs | Op::JobsLogs => OnRestart::Fail,
            // Re-running `api cancel --all` after a restart would also
            // cancel requests the user submitted since.
            Op::ApiCancel => OnRestart::Fail,
            _ => OnRestart::Resume,
        }
    }
}

/// What an operation gets to work with.
pub struct RequestContext {
    pub id: String,
    pub user_id: String,
    pub log: Arc<RequestLog>,
    pub store: Arc<dyn Store>,
    pub infra: Arc<crate::clusters::Infra>,
    pub executor: Weak<Executor>,
    /// Whether callers proved who they are; if not, `all_users` flags are
    /// honoured for anyone, as on a single-user machine.
    pub auth_enabled: bool,
    /// The server config when the operation started.
    pub config: Arc<skydeck_types::config::SkyConfig>,
    /// The workspace the request acts in.
    pub workspace: String,
    /// How long a REST admin policy may take to answer.
    pub policy_timeout: std::time::Duration,
}

impl RequestContext {
    /// Whether the requester may see other users' clusters and requests:
    /// an admin, or anyone when auth is off.
    pub async fn sees_all_users(&self) -> Result<bool, RequestError> {
        if !self.auth_enabled {
            return Ok(true);
        }
        let user = self.store.get_user(&self.user_id).await.map_err(internal)?;
        Ok(user.is_some_and(|u| u.role == skydeck_store::Role::Admin))
    }

    fn executor(&self) -> Result<Arc<Executor>, RequestError> {
        self.executor.upgrade().ok_or_else(|| {
            RequestError::new(exception::RUNTIME_ERROR, "The API server is shutting down.")
        })
    }
}

pub type OpResult = Result<serde_json::Value, RequestError>;

/// Decodes the stored body. It was validated when accepted, so a failure
/// means the row was changed underneath us.
fn body<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, RequestError> {
    serde_json::from_value(value).map_err(|err| {
        RequestError::new(
            exception::VALUE_ERROR,
            format!("The stored request body is invalid: {err}"),
        )
    })
}

pub fn internal(err: impl std::fmt::Display) -> RequestError {
    tracing::error!(error = %err, "operation failed");
    RequestError::new(
        exception::RUNTIME_ERROR,
        format!("Internal error in the API server: {err}"),
    )
}

pub async fn execute(op: Op, ctx: &RequestContext, value: serde_json::Value) -> OpResult {
    match op {
        Op::Status => clusters::status(ctx, body(value)?).await,
        Op::Check => check::check(ctx, body(value)?).await,
        Op::EnabledClouds => listings::enabled_clouds(ctx, body(value)?).await,
        Op::WorkspacesGet => listings::workspaces(ctx).await,
        Op::JobsQueue => managed_jobs::queue(ctx, body(value)?).await,
        Op::ServeStatus => listings::serve_status(ctx, body(value)?).await,
        Op::PoolStatus => listings::pool_status(ctx, body(value)?).await,
        Op::ApiCancel => api_cancel::cancel(ctx, body(value)?).await,
        Op::Launch => forgetting_secrets(ctx, clusters::launch(ctx, body(value)?)).await,
        Op::Exec => forgetting_secrets(ctx, clusters::exec(ctx, body(value)?)).await,
        Op::Start => clusters::start(ctx, body(value)?).await,
        Op::Stop => clusters::stop(ctx, body(value)?).await,
        Op::Down => clusters::down(ctx, body(value)?).await,
        Op::Autostop => clusters::autostop(ctx, body(value)?).await,
        Op::Queue => jobs::queue(ctx, body(value)?).await,
        Op::Cancel => jobs::cancel(ctx, body(value)?).await,
        Op::Logs => jobs::logs(ctx, body(value)?).await,
        Op::JobStatus => jobs::job_status(ctx, body(value)?).await,
        Op::Endpoints => jobs::endpoints(ctx, body(value)?).await,
        Op::Optimize => optimize(ctx).await,
        Op::DownloadLogs => jobs::download_logs(ctx, body(value)?).await,
        Op::CostReport => cost_report::cost_report(ctx, body(value)?).await,
        Op::ListAccelerators => catalog::list_accelerators(ctx, body(value)?).await,
        Op::ListAcceleratorCounts => catalog::list_accelerator_counts(ctx, body(value)?).await,
        Op::StorageLs => not_yet_listings::storage_ls(ctx).await,
        Op::VolumeList => not_yet_listings::volume_list(ctx).await,
        Op::JobsQueueV1 => managed_jobs::queue_v1(ctx, body(value)?).await,
        Op::SshUp => crate::ssh_pools::deploy::up(ctx, body(value)?).await,
        Op::SshDown => crate::ssh_pools::deploy::down(ctx, body(value)?).await,
        Op::KubeGpuAvailability => kube_gpus::realtime_gpu_availability(ctx, body(value)?).await,
        Op::KubeNodeInfo => kube_gpus::node_info(ctx, body(value)?).await,
        Op::JobsLaunch => forgetting_secrets(ctx, managed_jobs::launch(ctx, body(value)?)).await,
        Op::JobsCancel => managed_jobs::cancel(ctx, body(value)?).await,
        Op::JobsLogs => managed_jobs::logs(ctx, body(value)?).await,
        Op::JobsDownloadLogs => managed_jobs::download_logs(ctx, body(value)?).await,
        Op::WorkspacesGetConfig => workspace_config::get_config(ctx).await,
        Op::WorkspacesUpdateConfig => workspace_config::update_config(ctx, body(value)?).await,
        Op::EnabledCloudsBatch => workspace_config::enabled_clouds_batch(ctx, body(value)?).await,
        Op::Refused(name) => Err(unsupported::refuse(name)),
    }
}

/// Runs an operation that may have stashed secrets and removes them once it
/// is over, failed or not. (A cancelled one is swept by the server's upkeep.)
async fn forgetting_secrets(ctx: &RequestContext, op: impl Future<Output = OpResult>) -> OpResult {
    let result = op.await;
    ctx.infra.secrets.discard(&ctx.id);
    result
}

/// `sky launch` without `-y` shows the optimizer's table: on local
/// infrastructure there is one choice, so say so.
async fn optimize(ctx: &RequestContext) -> OpResult {
    ctx.log
        .line("Considered resources: Local (this machine). Chosen: Local.");
    Ok(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_status_without_refresh_runs_in_the_handler() {
        let status = |refresh: serde_json::Value| {
            Op::Status.answers_at_once_for(&serde_json::json!({ "refresh": refresh }))
        };
        assert!(status(serde_json::json!("NONE")));
        assert!(status(serde_json::json!(false)));
        assert!(status(serde_json::Value::Null));
        assert!(!status(serde_json::json!("FORCE")));
        assert!(!status(serde_json::json!("AUTO")));
        assert!(!status(serde_json::json!(true)));
        assert!(!Op::Launch.answers_at_once_for(&serde_json::json!({})));
        assert!(Op::EnabledClouds.answers_at_once_for(&serde_json::json!({})));
    }

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut names = std::collections::HashSet::new();
        for op in Op::ALL {
            assert_eq!(Op::from_name(op.name()), Some(op));
            assert!(names.insert(op.name()));
        }
        assert_eq!(Op::from_name("sky.nope"), None);
    }
}
