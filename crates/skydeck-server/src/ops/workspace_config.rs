//! What SkyPilot's own dashboard runs as requests about workspaces: the
//! whole server config read and replaced (`GET`/`POST /workspaces/config`,
//! its config editor; admins only, the same `LiveConfig::replace` as
//! `POST /api/config`), and the enabled infrastructure of several
//! workspaces at once (`/enabled_clouds/batch`, its infrastructure page).

use super::{OpResult, RequestContext, internal, listings};
use crate::live_config::ReplaceError;
use crate::skypilot::exception;
use serde::Deserialize;
use skydeck_types::RequestError;
use skydeck_types::bodies::EnabledCloudsQuery;

/// `POST /workspaces/config`.
#[derive(Debug, Deserialize)]
pub struct UpdateConfigBody {
    pub config: serde_json::Value,
}

/// `GET /enabled_clouds/batch?workspaces=a,b&expand=true`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EnabledCloudsBatchBody {
    pub workspaces: Vec<String>,
    pub expand: bool,
}

async fn require_admin(ctx: &RequestContext, to: &str) -> Result<(), RequestError> {
    if ctx.sees_all_users().await? {
        Ok(())
    } else {
        Err(RequestError::new(
            exception::PERMISSION_DENIED,
            format!("Only an admin may {to}."),
        ))
    }
}

/// The config as it is now, secrets shown as `<redacted>`.
pub async fn get_config(ctx: &RequestContext) -> OpResult {
    require_admin(ctx, "read the server config").await?;
    Ok(ctx.config.redacted_json())
}

/// Replaces the whole config (a `<redacted>` secret keeps its value) and
/// answers with what is in force.
pub async fn update_config(ctx: &RequestContext, body: UpdateConfigBody) -> OpResult {
    require_admin(ctx, "change the server config").await?;
    let by = ctx
        .store
        .get_user(&ctx.user_id)
        .await
        .map_err(internal)?
        .map_or_else(|| ctx.user_id.clone(), |user| user.name);
    let live = ctx.executor()?.live_config().clone();
    match live.replace(body.config, &by).await {
        Ok(_) => {
            ctx.log.line(&format!("Config saved by {by}."));
            Ok(live.get().redacted_json())
        }
        Err(ReplaceError::Invalid(err)) => Err(RequestError::new(
            exception::VALUE_ERROR,
            format!("Invalid SkyPilot configuration: {err}"),
        )),
        Err(ReplaceError::Failed(err)) => Err(internal(err)),
    }
}

/// `{workspace: [infra…]}` for each named workspace the caller may use;
/// the others are left out, as SkyPilot does.
pub async fn enabled_clouds_batch(ctx: &RequestContext, body: EnabledCloudsBatchBody) -> OpResult {
    let is_admin = ctx.sees_all_users().await?;
    let name = ctx
        .store
        .get_user(&ctx.user_id)
        .await
        .map_err(internal)?
        .map(|u| u.name)
        .unwrap_or_default();
    let mut out = serde_json::Map::new();
    for workspace in body.workspaces {
        let admitted = ctx
            .config
            .workspace(&workspace)
            .is_some_and(|w| w.admits(&ctx.user_id, &name, is_admin));
        if !admitted || out.contains_key(&workspace) {
            continue;
        }
        let query = EnabledCloudsQuery {
            workspace: Some(workspace.clone()),
            expand: Some(body.expand.to_string()),
        };
        out.insert(workspace, listings::enabled_clouds(ctx, query).await?);
    }
    Ok(serde_json::Value::Object(out))
}
