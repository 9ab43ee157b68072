//! Scheduling endpoints: validate the body, store the request, answer 200
//! with its id at once. The work happens in the executor.

use super::SharedState;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::ops::Op;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use skydeck_store::NewRequest;
use skydeck_types::bodies::{
    ApiCancelBody, BaseBody, CheckBody, EnabledCloudsQuery, JobsQueueBody, PoolStatusBody,
    ServeStatusBody, StatusBody, UserWorkspace,
};
use skydeck_types::version::HEADER_REQUEST_ID;

/// Stores a request for `op` and answers with its id.
async fn schedule<B: Serialize>(
    state: &SharedState,
    op: Op,
    base: &BaseBody,
    body: &B,
    cluster_name: Option<String>,
) -> Result<Response, ApiError> {
    let user_id = base.user_id().unwrap_or(&state.local_user.id).to_owned();
    let user_name = base
        .user_name()
        .unwrap_or(&state.local_user.name)
        .to_owned();
    state.remember_user(&user_id, &user_name).await?;
    let id = uuid::Uuid::new_v4().to_string();
    let body = serde_json::to_value(body).map_err(ApiError::internal)?;
    state
        .executor
        .submit(NewRequest {
            id: id.clone(),
            name: op.name().to_owned(),
            entrypoint: base.entrypoint.clone(),
            body,
            schedule_type: op.schedule(),
            user_id,
            cluster_name,
            created_at: crate::executor::now(),
        })
        .await?;
    tracing::debug!(request.id = %id, request.name = op.name(), "accepted");
    let mut response = Json(serde_json::Value::Null).into_response();
    response.headers_mut().insert(
        HEADER_REQUEST_ID,
        HeaderValue::from_str(&id).expect("a UUID is a valid header value"),
    );
    Ok(response)
}

pub async fn status(
    State(state): State<SharedState>,
    ApiJson(body): ApiJson<StatusBody>,
) -> Result<Response, ApiError> {
    schedule(&state, Op::Status, &body.base, &body, None).await
}

pub async fn check(
    State(state): State<SharedState>,
    ApiJson(body): ApiJson<CheckBody>,
) -> Result<Response, ApiError> {
    schedule(&state, Op::Check, &body.base, &body, None).await
}

pub async fn jobs_queue(
    State(state): State<SharedState>,
    ApiJson(body): ApiJson<JobsQueueBody>,
) -> Result<Response, ApiError> {
    schedule(&state, Op::JobsQueue, &body.base, &body, None).await
}

pub async fn serve_status(
    State(state): State<SharedState>,
    ApiJson(body): ApiJson<ServeStatusBody>,
) -> Result<Response, ApiError> {
    schedule(&state, Op::ServeStatus, &body.base, &body, None).await
}

pub async fn pool_status(
    State(state): State<SharedState>,
    ApiJson(body): ApiJson<PoolStatusBody>,
) -> Result<Response, ApiError> {
    schedule(&state, Op::PoolStatus, &body.base, &body, None).await
}

pub async fn api_cancel(
    State(state): State<SharedState>,
    ApiJson(body): ApiJson<ApiCancelBody>,
) -> Result<Response, ApiError> {
    schedule(&state, Op::ApiCancel, &body.base, &body, None).await
}

pub async fn enabled_clouds(
    State(state): State<SharedState>,
    ApiQuery(query): ApiQuery<EnabledCloudsQuery>,
) -> Result<Response, ApiError> {
    schedule(
        &state,
        Op::EnabledClouds,
        &BaseBody::default(),
        &query,
        None,
    )
    .await
}

pub async fn workspaces(State(state): State<SharedState>) -> Result<Response, ApiError> {
    schedule(
        &state,
        Op::WorkspacesGet,
        &BaseBody::default(),
        &serde_json::json!({}),
        None,
    )
    .await
}

/// Answered directly: the client calls it synchronously.
pub async fn my_workspace() -> Json<UserWorkspace> {
    Json(UserWorkspace {
        workspace: "default".to_owned(),
        source: None,
        note: None,
        preferred: None,
        accessible: vec!["default".to_owned()],
    })
}
