//! Scheduling endpoints: validate the body, store the request, answer 200
//! with its id at once. The work happens in the executor.

use super::SharedState;
use crate::auth::Caller;
use crate::client_tool::Requester;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::ops::Op;
use axum::Json;
use axum::extract::{Extension, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use skydeck_store::NewRequest;
use skydeck_types::bodies::{
    ApiCancelBody, AutostopBody, BaseBody, CancelBody, CheckBody, DownloadLogsBody,
    EnabledCloudsQuery, EndpointsBody, ExecBody, JobStatusBody, JobsQueueBody, LaunchBody,
    LogsBody, OptimizeBody, PoolStatusBody, QueueBody, ServeStatusBody, StartBody, StatusBody,
    StopOrDownBody, UserWorkspace, ValidateBody,
};
use skydeck_types::managed_jobs::{
    JobsCancelBody, JobsDownloadLogsBody, JobsLaunchBody, JobsLogsBody,
};
use skydeck_types::names::ClusterName;
use skydeck_types::version::HEADER_REQUEST_ID;

/// Stores a request for `op` and answers with its id.
pub(super) async fn schedule<B: Serialize>(
    state: &SharedState,
    requester: &Requester,
    op: Op,
    base: &BaseBody,
    body: &B,
    cluster_name: Option<ClusterName>,
) -> Result<Response, ApiError> {
    schedule_as(
        state,
        requester,
        new_request_id(),
        op,
        base,
        body,
        cluster_name,
    )
    .await
}

/// [`schedule`] under an id chosen beforehand.
async fn schedule_as<B: Serialize>(
    state: &SharedState,
    requester: &Requester,
    id: String,
    op: Op,
    base: &BaseBody,
    body: &B,
    cluster_name: Option<ClusterName>,
) -> Result<Response, ApiError> {
    let id = accept(state, requester, id, op, base, body, cluster_name).await?;
    let mut response = Json(serde_json::Value::Null).into_response();
    response.headers_mut().insert(
        HEADER_REQUEST_ID,
        HeaderValue::from_str(&id).expect("a UUID is a valid header value"),
    );
    Ok(response)
}

pub(super) fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The task YAML a request may be stored with: secret values redacted, the
/// original kept aside for the operation (see `secrets.rs`).
async fn storable_task(state: &SharedState, id: &str, task: String) -> Result<String, ApiError> {
    // Parsing and an fsync'd write: off the async workers.
    let (state, id) = (state.clone(), id.to_owned());
    crate::task_limits::checked(task, move |task| {
        state
            .infra
            .secrets
            .stash_task(&id, &task)
            .map_err(ApiError::internal)
    })
    .await
}

/// Writes the acting user into the body's client environment, where the
/// operations (and SkyPilot's own code) read it.
fn set_client_user(body: &mut serde_json::Value, id: &str, name: &str) {
    if let Some(object) = body.as_object_mut() {
        let env = object
            .entry("env_vars")
            .or_insert_with(|| serde_json::json!({}));
        if let Some(env) = env.as_object_mut() {
            env.insert("SKYPILOT_USER_ID".into(), id.into());
            env.insert("SKYPILOT_USER".into(), name.into());
        }
    }
}

/// 403 when `name` is an existing cluster of a user the caller may not act
/// for.
async fn check_cluster_owner(
    state: &SharedState,
    caller: &Caller,
    name: &ClusterName,
) -> Result<(), ApiError> {
    if caller.sees_all() {
        return Ok(());
    }
    match state.store.get_cluster(name).await? {
        Some(cluster) if !caller.may_act_for(&cluster.user_id) => {
            Err(ApiError::forbidden(format!(
                "Cluster {:?} belongs to another user; only they or an admin can use it.",
                name.as_str()
            )))
        }
        _ => Ok(()),
    }
}

/// The workspace a request acts in: the client's `active_workspace`, else
/// the server's. 400 for one that does not exist, 403 for one the caller
/// may not use.
fn workspace_for(
    state: &SharedState,
    caller: &Caller,
    base: &BaseBody,
    user_id: &str,
) -> Result<String, ApiError> {
    let config = state.live_config.get();
    let name = base
        .active_workspace()
        .unwrap_or_else(|| config.active_workspace())
        .to_owned();
    let Some(workspace) = config.workspace(&name) else {
        return Err(ApiError::bad_request(format!(
            "Workspace {name:?} does not exist; the workspaces are: {}. Set `active_workspace` \
             in your config to one of them.",
            config.workspace_names().join(", ")
        )));
    };
    let user_name = caller.user().map_or("", |u| u.name.as_str());
    if !workspace.admits(user_id, user_name, caller.sees_all()) {
        return Err(ApiError::forbidden(format!(
            "User {user_name:?} is not allowed to use workspace {name:?}; ask an admin to add \
             you to its allowed_users, or choose another workspace."
        )));
    }
    Ok(name)
}

/// Stores a request for `op`; once this returns its id, it is durable.
pub(super) async fn accept<B: Serialize>(
    state: &SharedState,
    requester: &Requester,
    id: String,
    op: Op,
    base: &BaseBody,
    body: &B,
    cluster_name: Option<ClusterName>,
) -> Result<String, ApiError> {
    let Requester { caller, tool } = requester;
    let mut body = serde_json::to_value(body).map_err(ApiError::internal)?;
    crate::client_tool::stamp(&mut body, *tool);
    let user_id = match caller.user() {
        // The proven identity replaces whatever the client says it is, so
        // the operation acts for (and only for) that user.
        Some(user) => {
            set_client_user(&mut body, &user.id, &user.name);
            user.id.clone()
        }
        None => {
            let user_id = base.user_id().unwrap_or(&state.local_user.id).to_owned();
            let user_name = base.user_name().unwrap_or(&state.local_user.name);
            state.remember_user(&user_id, user_name).await?;
            user_id
        }
    };
    if let Some(name) = &cluster_name {
        check_cluster_owner(state, caller, name).await?;
    }
    let workspace = workspace_for(state, caller, base, &user_id)?;
    let entrypoint = crate::secrets::redact_command_lines(
        &state.infra.secrets,
        &id,
        &mut body,
        &base.entrypoint,
    )
    .await
    .map_err(ApiError::internal)?;
    state
        .executor
        .submit(NewRequest {
            id: id.clone(),
            name: op.name().to_owned(),
            entrypoint,
            body,
            schedule_type: op.schedule(),
            user_id,
            cluster_name: cluster_name.map(ClusterName::into_string),
            created_at: crate::executor::now(),
            workspace,
        })
        .await?;
    tracing::debug!(request.id = %id, request.name = op.name(), "accepted");
    Ok(id)
}

pub async fn status(
    State(state): State<SharedState>,
    requester: Requester,
    ApiJson(body): ApiJson<StatusBody>,
) -> Result<Response, ApiError> {
    schedule(&state, &requester, Op::Status, &body.base, &body, None).await
}

pub async fn check(
    State(state): State<SharedState>,
    requester: Requester,
    ApiJson(body): ApiJson<CheckBody>,
) -> Result<Response, ApiError> {
    schedule(&state, &requester, Op::Check, &body.base, &body, None).await
}

pub async fn jobs_queue(
    State(state): State<SharedState>,
    requester: Requester,
    ApiJson(body): ApiJson<JobsQueueBody>,
) -> Result<Response, ApiError> {
    schedule(&state, &requester, Op::JobsQueue, &body.base, &body, None).await
}

pub async fn serve_status(
    State(state): State<SharedState>,
    requester: Requester,
    ApiJson(body): ApiJson<ServeStatusBody>,
) -> Result<Response, ApiError> {
    schedule(&state, &requester, Op::ServeStatus, &body.base, &body, None).await
}

pub async fn pool_status(
    State(state): State<SharedState>,
    requester: Requester,
    ApiJson(body): ApiJson<PoolStatusBody>,
) -> Result<Response, ApiError> {
    schedule(&state, &requester, Op::PoolStatus, &body.base, &body, None).await
}

pub async fn api_cancel(
    State(state): State<SharedState>,
    requester: Requester,
    ApiJson(body): ApiJson<ApiCancelBody>,
) -> Result<Response, ApiError> {
    schedule(&state, &requester, Op::ApiCancel, &body.base, &body, None).await
}

pub async fn enabled_clouds(
    State(state): State<SharedState>,
    requester: Requester,
    ApiQuery(query): ApiQuery<EnabledCloudsQuery>,
) -> Result<Response, ApiError> {
    schedule(
        &state,
        &requester,
        Op::EnabledClouds,
        &BaseBody::default(),
        &query,
        None,
    )
    .await
}

pub async fn workspaces(
    State(state): State<SharedState>,
    requester: Requester,
) -> Result<Response, ApiError> {
    schedule(
        &state,
        &requester,
        Op::WorkspacesGet,
        &BaseBody::default(),
        &serde_json::json!({}),
        None,
    )
    .await
}

/// Answered directly: the client calls it synchronously.
pub async fn my_workspace(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
) -> Json<UserWorkspace> {
    let config = state.live_config.get();
    let user = caller.user().unwrap_or(&state.local_user);
    let accessible = config
        .workspaces()
        .iter()
        .filter(|(_, w)| w.admits(&user.id, &user.name, caller.sees_all()))
        .map(|(name, _)| name.clone())
        .collect();
    Json(UserWorkspace {
        workspace: config.active_workspace().to_owned(),
        source: None,
        note: None,
        preferred: None,
        accessible,
    })
}

/// Handlers that store the body as it came for an operation on one cluster.
macro_rules! cluster_op {
    ($($handler:ident: $body:ty => $op:expr, $cluster:ident;)*) => {$(
        pub async fn $handler(
            State(state): State<SharedState>,
            requester: Requester,
            ApiJson(body): ApiJson<$body>,
        ) -> Result<Response, ApiError> {
            let cluster = Some(body.$cluster.clone());
            schedule(&state, &requester, $op, &body.base, &body, cluster).await
        }
    )*};
}

cluster_op! {
    start: StartBody => Op::Start, cluster_name;
    stop: StopOrDownBody => Op::Stop, cluster_name;
    down: StopOrDownBody => Op::Down, cluster_name;
    autostop: AutostopBody => Op::Autostop, cluster_name;
    queue: QueueBody => Op::Queue, cluster_name;
    cancel: CancelBody => Op::Cancel, cluster_name;
    job_status: JobStatusBody => Op::JobStatus, cluster_name;
    endpoints: EndpointsBody => Op::Endpoints, cluster;
    download_logs: DownloadLogsBody => Op::DownloadLogs, cluster_name;
}

pub async fn launch(
    State(state): State<SharedState>,
    requester: Requester,
    ApiJson(mut body): ApiJson<LaunchBody>,
) -> Result<Response, ApiError> {
    let id = new_request_id();
    body.task = storable_task(&state, &id, std::mem::take(&mut body.task)).await?;
    let cluster = body.cluster_name.clone();
    schedule_as(
        &state,
        &requester,
        id,
        Op::Launch,
        &body.base,
        &body,
        cluster,
    )
    .await
}

pub async fn exec(
    State(state): State<SharedState>,
    requester: Requester,
    ApiJson(mut body): ApiJson<ExecBody>,
) -> Result<Response, ApiError> {
    let id = new_request_id();
    body.task = storable_task(&state, &id, std::mem::take(&mut body.task)).await?;
    let cluster = Some(body.cluster_name.clone());
    schedule_as(&state, &requester, id, Op::Exec, &body.base, &body, cluster).await
}

/// Optimizing needs no secret, so the stored dag keeps none.
pub async fn optimize(
    State(state): State<SharedState>,
    requester: Requester,
    ApiJson(mut body): ApiJson<OptimizeBody>,
) -> Result<Response, ApiError> {
    let dag = std::mem::take(&mut body.dag);
    body.dag =
        crate::task_limits::checked(dag, |dag| Ok(skydeck_types::task::redact_task_yaml(&dag)))
            .await?;
    schedule(&state, &requester, Op::Optimize, &body.base, &body, None).await
}

/// `/logs` answers with the log stream itself (the id in the header), as
/// SkyPilot's server does; `/api/get` then gives the job's exit code.
pub async fn logs(
    State(state): State<SharedState>,
    requester: Requester,
    ApiJson(body): ApiJson<LogsBody>,
) -> Result<Response, ApiError> {
    let cluster = Some(body.cluster_name.clone());
    let id = accept(
        &state,
        &requester,
        new_request_id(),
        Op::Logs,
        &body.base,
        &body,
        cluster,
    )
    .await?;
    let mut response = super::stream::stream_response(&state, id.clone(), None, true, None)?;
    response.headers_mut().insert(
        HEADER_REQUEST_ID,
        HeaderValue::from_str(&id).expect("a UUID is a valid header value"),
    );
    Ok(response)
}

pub async fn jobs_launch(
    State(state): State<SharedState>,
    requester: Requester,
    ApiJson(mut body): ApiJson<JobsLaunchBody>,
) -> Result<Response, ApiError> {
    let id = new_request_id();
    body.task = storable_task(&state, &id, std::mem::take(&mut body.task)).await?;
    schedule_as(
        &state,
        &requester,
        id,
        Op::JobsLaunch,
        &body.base,
        &body,
        None,
    )
    .await
}

pub async fn jobs_cancel(
    State(state): State<SharedState>,
    requester: Requester,
    ApiJson(body): ApiJson<JobsCancelBody>,
) -> Result<Response, ApiError> {
    // Refused before it is stored: a cancel that names no jobs, or several
    // kinds of them.
    body.selector().map_err(ApiError::bad_request)?;
    schedule(&state, &requester, Op::JobsCancel, &body.base, &body, None).await
}

pub async fn jobs_download_logs(
    State(state): State<SharedState>,
    requester: Requester,
    ApiJson(body): ApiJson<JobsDownloadLogsBody>,
) -> Result<Response, ApiError> {
    schedule(
        &state,
        &requester,
        Op::JobsDownloadLogs,
        &body.base,
        &body,
        None,
    )
    .await
}

/// Like `/logs`, `/jobs/logs` answers with the log stream itself.
pub async fn jobs_logs(
    State(state): State<SharedState>,
    requester: Requester,
    ApiJson(body): ApiJson<JobsLogsBody>,
) -> Result<Response, ApiError> {
    let id = accept(
        &state,
        &requester,
        new_request_id(),
        Op::JobsLogs,
        &body.base,
        &body,
        None,
    )
    .await?;
    let mut response = super::stream::stream_response(&state, id.clone(), None, true, None)?;
    response.headers_mut().insert(
        HEADER_REQUEST_ID,
        HeaderValue::from_str(&id).expect("a UUID is a valid header value"),
    );
    Ok(response)
}

/// `/validate` answers at once: 200 when the task is valid, else 400 with
/// the error in SkyPilot's serialized-exception shape.
pub async fn validate(ApiJson(body): ApiJson<ValidateBody>) -> Result<Response, ApiError> {
    // Reading a task (up to its size limit) is CPU work: not on an async
    // worker. Limits are among the checks, answered in the same shape.
    let checked = tokio::task::spawn_blocking(move || {
        skydeck_types::task::parse_tasks(&body.dag)
            .and_then(|tasks| tasks.iter().try_for_each(|task| task.validate()))
    })
    .await
    .map_err(ApiError::internal)?;
    match checked {
        Ok(()) => Ok(Json(serde_json::Value::Null).into_response()),
        // The client rebuilds the exception from this plain dict
        // (`exceptions.deserialize_exception`).
        Err(err) => {
            let message = format!("Invalid task: {err}");
            Err(ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                serde_json::json!({
                    "type": crate::skypilot::exception::VALUE_ERROR,
                    "message": message,
                    "args": [message],
                    "attributes": {},
                    "stacktrace": null,
                }),
            ))
        }
    }
}
