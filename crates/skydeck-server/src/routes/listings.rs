//! Listings the official client asks for beyond clusters: the machine's
//! GPUs (`sky show-gpus`), cluster costs (`sky cost-report`), and the empty
//! lists of things this server does not hold yet (`sky storage ls`, `sky
//! volumes ls`, the v1 managed-jobs queue), plus shell completion.

use super::SharedState;
use super::schedule::schedule;
use crate::client_tool::Requester;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::ops::Op;
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use skydeck_types::bodies::BaseBody;
use skydeck_types::listing_bodies::{
    CostReportBody, KubernetesNodeInfoBody, ListAcceleratorCountsBody, ListAcceleratorsBody,
    RealtimeGpuAvailabilityBody,
};

pub async fn cost_report(
    State(state): State<SharedState>,
    requester: Requester,
    ApiJson(body): ApiJson<CostReportBody>,
) -> Result<Response, ApiError> {
    schedule(&state, &requester, Op::CostReport, &body.base, &body, None).await
}

pub async fn list_accelerators(
    State(state): State<SharedState>,
    requester: Requester,
    ApiJson(body): ApiJson<ListAcceleratorsBody>,
) -> Result<Response, ApiError> {
    schedule(
        &state,
        &requester,
        Op::ListAccelerators,
        &body.base,
        &body,
        None,
    )
    .await
}

pub async fn list_accelerator_counts(
    State(state): State<SharedState>,
    requester: Requester,
    ApiJson(body): ApiJson<ListAcceleratorCountsBody>,
) -> Result<Response, ApiError> {
    schedule(
        &state,
        &requester,
        Op::ListAcceleratorCounts,
        &body.base,
        &body,
        None,
    )
    .await
}

pub async fn kubernetes_gpu_availability(
    State(state): State<SharedState>,
    requester: Requester,
    ApiJson(body): ApiJson<RealtimeGpuAvailabilityBody>,
) -> Result<Response, ApiError> {
    schedule(
        &state,
        &requester,
        Op::KubeGpuAvailability,
        &body.base,
        &body,
        None,
    )
    .await
}

pub async fn kubernetes_node_info(
    State(state): State<SharedState>,
    requester: Requester,
    ApiJson(body): ApiJson<KubernetesNodeInfoBody>,
) -> Result<Response, ApiError> {
    schedule(
        &state,
        &requester,
        Op::KubeNodeInfo,
        &body.base,
        &body,
        None,
    )
    .await
}

pub async fn storage_ls(
    State(state): State<SharedState>,
    requester: Requester,
) -> Result<Response, ApiError> {
    let base = BaseBody::default();
    schedule(&state, &requester, Op::StorageLs, &base, &base, None).await
}

/// The query (`refresh`, `names`) narrows a list that is empty anyway.
pub async fn volume_list(
    State(state): State<SharedState>,
    requester: Requester,
) -> Result<Response, ApiError> {
    let base = BaseBody::default();
    schedule(&state, &requester, Op::VolumeList, &base, &base, None).await
}

/// The v1 queue takes the v2 body's first fields (`refresh`,
/// `skip_finished`, `all_users`, `job_ids`).
pub async fn jobs_queue_v1(
    State(state): State<SharedState>,
    requester: Requester,
    ApiJson(body): ApiJson<skydeck_types::bodies::JobsQueueBody>,
) -> Result<Response, ApiError> {
    schedule(&state, &requester, Op::JobsQueueV1, &body.base, &body, None).await
}

#[derive(Deserialize)]
pub struct Completion {
    #[serde(default)]
    incomplete: String,
}

/// Shell completion of cluster names: the caller's clusters (everyone's for
/// an admin) whose name starts with what was typed.
pub async fn complete_cluster_name(
    State(state): State<SharedState>,
    requester: Requester,
    ApiQuery(query): ApiQuery<Completion>,
) -> Result<Json<Vec<String>>, ApiError> {
    let owner = if requester.caller.sees_all() {
        None
    } else {
        requester.caller.user().map(|user| user.id.clone())
    };
    let names = state
        .store
        .list_clusters(owner.as_deref())
        .await?
        .into_iter()
        .map(|cluster| cluster.name)
        .filter(|name| name.starts_with(&query.incomplete))
        .collect();
    Ok(Json(names))
}

/// Shell completion of request ids, among the requests the caller sees.
pub async fn complete_api_request(
    State(state): State<SharedState>,
    requester: Requester,
    ApiQuery(query): ApiQuery<Completion>,
) -> Result<Json<Vec<String>>, ApiError> {
    // Ids are UUIDs: anything else typed so far completes to nothing.
    if !query
        .incomplete
        .chars()
        .all(|c| c.is_ascii_hexdigit() || c == '-')
    {
        return Ok(Json(Vec::new()));
    }
    let scope = if requester.caller.sees_all() {
        None
    } else {
        requester.caller.user().map(|user| user.id.clone())
    };
    let ids = state
        .store
        .request_ids_with_prefix(&query.incomplete, scope.as_deref(), 100)
        .await?;
    Ok(Json(ids))
}

/// Storage and volume names: there are none yet.
pub async fn complete_nothing(ApiQuery(_query): ApiQuery<Completion>) -> Json<Vec<String>> {
    Json(Vec::new())
}
