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

/// The workspaces the requester may use, each with its settings.
pub async fn workspaces(ctx: &RequestContext) -> OpResult {
    let is_admin = ctx.sees_all_users().await?;
    let name = ctx
        .store
        .get_user(&ctx.user_id)
        .await
        .map_err(super::internal)?
        .map(|u| u.name)
        .unwrap_or_default();
    let configured = ctx.config.get(&["workspaces"]);
    let mut out = serde_json::Map::new();
    for (workspace, settings) in ctx.config.workspaces() {
        if settings.admits(&ctx.user_id, &name, is_admin) {
            let shown = configured
                .and_then(|w| w.get(workspace))
                .cloned()
                .unwrap_or_else(|| serde_json::json!({}));
            out.insert(workspace.clone(), shown);
        }
    }
    Ok(serde_json::Value::Object(out))
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
