//! Read-only listings a bare `sky status` asks for. Clusters, managed jobs,
//! services and pools arrive with their features; until then the answers
//! are correct empty results, never errors.

use super::{OpResult, RequestContext};
use crate::infra;
use skydeck_types::bodies::{JobsQueueBody, PoolStatusBody, ServeStatusBody};

pub async fn enabled_clouds(_ctx: &RequestContext) -> OpResult {
    let names: Vec<&str> = infra::enabled().iter().map(|i| i.display_name).collect();
    Ok(serde_json::json!(names))
}

pub async fn workspaces(_ctx: &RequestContext) -> OpResult {
    Ok(serde_json::json!({"default": {}}))
}

pub async fn jobs_queue(_ctx: &RequestContext, _body: JobsQueueBody) -> OpResult {
    Ok(serde_json::json!({"jobs": [], "total": 0, "total_no_filter": 0, "status_counts": {}}))
}

pub async fn serve_status(_ctx: &RequestContext, _body: ServeStatusBody) -> OpResult {
    Ok(serde_json::json!([]))
}

pub async fn pool_status(_ctx: &RequestContext, _body: PoolStatusBody) -> OpResult {
    Ok(serde_json::json!([]))
}
