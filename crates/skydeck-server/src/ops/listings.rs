//! Read-only listings a bare `sky status` asks for. Clusters, managed jobs,
//! services and pools arrive with their features; until then the answers
//! are correct empty results, never errors.

use super::{OpResult, RequestContext};
use crate::infra;
use skydeck_types::bodies::{EnabledCloudsQuery, PoolStatusBody, ServeStatusBody};

pub async fn enabled_clouds(ctx: &RequestContext, query: EnabledCloudsQuery) -> OpResult {
    let mut names: Vec<String> = infra::enabled()
        .iter()
        .map(|i| i.display_name.to_owned())
        .collect();
    // SkyPilot lists each SSH Node Pool that is up as `ssh/<pool>` when
    // asked to expand (`sky status`'s "Enabled Infra"), else `SSH` once.
    let workspace = query.workspace.as_deref().unwrap_or(&ctx.workspace);
    let pools = crate::ssh_pools::check::pool_states(
        ctx.infra.home(),
        ctx.store.as_ref(),
        &ctx.config,
        workspace,
    )
    .await
    .unwrap_or_default();
    let up: Vec<String> = pools
        .iter()
        .filter(|p| p.enabled.is_ok())
        .map(|p| format!("ssh/{}", p.name))
        .collect();
    let expand = query
        .expand
        .as_deref()
        .is_some_and(|e| e.eq_ignore_ascii_case("true"));
    // Kubernetes likewise, lower case as the client matches it
    // (`'kubernetes' in enabled_clouds` decides whether `show-gpus` asks).
    let contexts = ctx.infra.kube().enabled(&ctx.config, workspace);
    if expand {
        names.splice(0..0, up);
        names.extend(contexts.iter().map(|c| format!("kubernetes/{c}")));
    } else {
        if !up.is_empty() {
            names.insert(0, "SSH".to_owned());
        }
        if !contexts.is_empty() {
            names.push("kubernetes".to_owned());
        }
    }
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

pub async fn serve_status(_ctx: &RequestContext, _body: ServeStatusBody) -> OpResult {
    Ok(serde_json::json!([]))
}

pub async fn pool_status(_ctx: &RequestContext, _body: PoolStatusBody) -> OpResult {
    Ok(serde_json::json!([]))
}
