//! What SkyPilot 0.14.1's own dashboard asks of its server beyond the
//! client's API, so that its pages work against Skydeck too.
//!
//! It calls every endpoint under `<prefix>/internal/dashboard/` with the
//! header `X-SkyPilot-Version: dashboard;`; [`strip_prefix`] routes those
//! to the API's own handlers, so the same authentication, ownership and
//! roles apply. The dashboard authenticates as a browser does (basic auth,
//! the auth proxy); our own dashboard's session cookie stays ours.

use super::schedule::schedule;
use super::users::{self, RevokeTokenBody};
use super::{Route, SharedState};
use crate::auth::Caller;
use crate::auth::session::SESSION_TOKEN_NAME;
use crate::client_tool::Requester;
use crate::error::ApiError;
use crate::executor::now;
use crate::extract::{ApiJson, ApiQuery};
use crate::ops::Op;
use axum::Json;
use axum::extract::{Extension, Request, State};
use axum::http::Uri;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use skydeck_types::bodies::BaseBody;
use skydeck_types::names::TokenName;
use std::collections::HashMap;

/// Where SkyPilot's dashboard finds the API.
pub const PREFIX: &str = "/internal/dashboard";

/// `/internal/dashboard/<path>` is `/<path>` (SkyPilot's
/// `InternalDashboardPrefixMiddleware`); run before routing.
pub async fn strip_prefix(mut request: Request) -> Request {
    let Some(rest) = request.uri().path().strip_prefix(PREFIX) else {
        return request;
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return request;
    }
    let path = if rest.is_empty() { "/" } else { rest };
    let rewritten = match request.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    if let Ok(uri) = rewritten.parse::<Uri>() {
        *request.uri_mut() = uri;
    }
    request
}

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/users/role", role),
        Route::get("/dashboard_config", dashboard_config),
        Route::get("/api/plugins", |_: Extension<Caller>| async {
            Json(json!({ "plugins": [] }))
        }),
        Route::get("/kubernetes/allowed_nodes", allowed_nodes),
        Route::get("/enabled_clouds/batch", enabled_clouds_batch),
        Route::get("/workspaces/config", get_config),
        Route::post("/workspaces/config", update_config),
        Route::get("/users/service-account-tokens", list_tokens),
        Route::post("/users/service-account-tokens", create_token),
        Route::post("/users/service-account-tokens/delete", delete_token),
    ]
}

/// `{id, name, role}` of the caller; with auth off, as SkyPilot answers
/// without a user: an admin with no id.
async fn role(Extension(caller): Extension<Caller>) -> Json<Value> {
    Json(match caller {
        Caller::User(user) => {
            json!({ "id": user.id, "name": user.name, "role": user.role.as_str() })
        }
        _ => json!({ "id": "", "name": "", "role": "admin" }),
    })
}

/// `dashboard.external_links` from the config, each entry kept only when
/// it has a label and a `regex` or `url`, as SkyPilot sanitises them.
/// `local_contexts` is left out: the dashboard then assumes `in-cluster`.
async fn dashboard_config(State(state): State<SharedState>) -> Json<Value> {
    let config = state.live_config.get();
    let links = config
        .get(&["dashboard", "external_links"])
        .and_then(Value::as_array)
        .map(|entries| entries.iter().filter_map(external_link).collect())
        .unwrap_or_else(Vec::new);
    Json(json!({ "external_links": links }))
}

fn external_link(entry: &Value) -> Option<Value> {
    const SCOPES: &[&str] = &["cluster", "jobs"];
    let label = entry.get("label")?.as_str()?;
    let mut link = if let Some(regex) = entry.get("regex").and_then(Value::as_str) {
        json!({ "label": label, "regex": regex })
    } else {
        json!({ "label": label, "url": entry.get("url")?.as_str()? })
    };
    let scope: Vec<&str> = entry
        .get("scope")
        .and_then(Value::as_array)
        .map(|s| {
            s.iter()
                .filter_map(Value::as_str)
                .filter(|s| SCOPES.contains(s))
                .collect()
        })
        .unwrap_or_default();
    if !scope.is_empty() {
        link["scope"] = json!(scope);
    }
    Some(link)
}

#[derive(Debug, Deserialize)]
struct AllowedNodesQuery {
    #[allow(dead_code, reason = "required as SkyPilot requires it")]
    k8s_context: String,
}

/// Whether a context's nodes are filtered by `allowed_nodes`: Skydeck
/// does not filter nodes, so never.
async fn allowed_nodes(ApiQuery(_): ApiQuery<AllowedNodesQuery>) -> Json<Value> {
    Json(json!({ "configured": false }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct BatchQuery {
    /// Comma-separated names.
    workspaces: String,
    expand: Option<String>,
}

#[derive(Debug, Serialize)]
struct BatchBody {
    workspaces: Vec<String>,
    expand: bool,
}

async fn enabled_clouds_batch(
    State(state): State<SharedState>,
    requester: Requester,
    ApiQuery(query): ApiQuery<BatchQuery>,
) -> Result<Response, ApiError> {
    let workspaces: Vec<String> = query
        .workspaces
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect();
    let body = BatchBody {
        workspaces,
        expand: query.expand.is_some_and(|e| e.eq_ignore_ascii_case("true")),
    };
    let op = Op::EnabledCloudsBatch;
    schedule(&state, &requester, op, &BaseBody::default(), &body, None).await
}

/// The config can hold secrets: admins only, refused before a request is
/// made (SkyPilot's RBAC answers 403 the same way).
async fn get_config(
    State(state): State<SharedState>,
    requester: Requester,
) -> Result<Response, ApiError> {
    requester.caller.require_admin("read the server config")?;
    let op = Op::WorkspacesGetConfig;
    schedule(
        &state,
        &requester,
        op,
        &BaseBody::default(),
        &json!({}),
        None,
    )
    .await
}

#[derive(Debug, Deserialize, Serialize)]
struct ConfigBody {
    #[serde(flatten)]
    base: BaseBody,
    config: serde_json::Map<String, Value>,
}

async fn update_config(
    State(state): State<SharedState>,
    requester: Requester,
    ApiJson(body): ApiJson<ConfigBody>,
) -> Result<Response, ApiError> {
    requester.caller.require_admin("change the server config")?;
    let op = Op::WorkspacesUpdateConfig;
    schedule(&state, &requester, op, &body.base, &body, None).await
}

/// The caller's service-account tokens (an admin's: everyone's) in
/// SkyPilot's shape. A Skydeck token acts as the user who made it, so the
/// token's "service account" is that user. Dashboard sessions are not
/// listed.
async fn list_tokens(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let me = caller.user().unwrap_or(&state.local_user);
    let owner = (!caller.sees_all()).then_some(me.id.as_str());
    let users: HashMap<String, (String, String)> = state
        .store
        .list_users()
        .await?
        .into_iter()
        .map(|u| (u.id, (u.name, u.role.as_str().to_owned())))
        .collect();
    let at = now();
    let tokens = state.store.list_tokens(owner).await?;
    Ok(Json(
        tokens
            .into_iter()
            .filter(|t| t.name != SESSION_TOKEN_NAME && t.revoked_at.is_none())
            .filter(|t| t.expires_at.is_none_or(|e| e > at))
            .map(|t| {
                let (name, role) = users
                    .get(&t.user_id)
                    .cloned()
                    .unwrap_or_else(|| ("Unknown".to_owned(), String::new()));
                json!({
                    "token_id": t.id,
                    "token_name": t.name,
                    "created_at": t.created_at,
                    "last_used_at": t.last_used_at,
                    "expires_at": t.expires_at,
                    "creator_user_hash": t.user_id,
                    "service_account_user_id": t.user_id,
                    "creator_name": name,
                    "service_account_name": name,
                    "service_account_roles": [role],
                })
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize)]
struct CreateTokenBody {
    token_name: TokenName,
    /// 0 or none: never.
    #[serde(default)]
    expires_in_days: Option<u32>,
    /// A Skydeck token has its owner's role; naming another is refused.
    #[serde(default)]
    role: Option<String>,
}

async fn create_token(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<CreateTokenBody>,
) -> Result<Json<Value>, ApiError> {
    let own_role = caller
        .user()
        .map_or("admin", |u| u.role.as_str())
        .to_owned();
    if let Some(role) = body.role.as_deref().filter(|r| *r != own_role) {
        return Err(ApiError::bad_request(format!(
            "A Skydeck token acts as the user who makes it, with their role ({own_role}); \
             it cannot have the role {role:?}. Leave the role out."
        )));
    }
    let made = users::create_token(
        State(state),
        Extension(caller),
        ApiJson(users::CreateTokenBody::new(
            body.token_name,
            body.expires_in_days.filter(|days| *days > 0),
        )),
    )
    .await?;
    let made = serde_json::to_value(made.0).map_err(ApiError::internal)?;
    Ok(Json(json!({
        "token_id": made["id"],
        "token_name": made["name"],
        "token": made["token"],
        "expires_at": made["expires_at"],
        "service_account_user_id": made["user_id"],
        "creator_user_id": made["user_id"],
        "message": "Please save this token - it will not be shown again!",
    })))
}

#[derive(Debug, Deserialize)]
struct DeleteTokenBody {
    token_id: String,
}

/// Revokes the token (it stays listed by `skydeck tokens list --all` as
/// revoked); another user's answers as one that does not exist.
async fn delete_token(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<DeleteTokenBody>,
) -> Result<Json<Value>, ApiError> {
    users::revoke_token(
        State(state),
        Extension(caller),
        ApiJson(RevokeTokenBody { id: body.token_id }),
    )
    .await
    .map(|_| Json(json!({ "message": "Token deleted successfully" })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_prefix_is_taken_off_whole_segments_only() {
        let path = |uri: &'static str| async move {
            let request = Request::builder()
                .uri(uri)
                .body(axum::body::Body::empty())
                .unwrap();
            strip_prefix(request).await.uri().to_string()
        };
        assert_eq!(path("/internal/dashboard/status").await, "/status");
        assert_eq!(
            path("/internal/dashboard/api/get?request_id=x").await,
            "/api/get?request_id=x"
        );
        assert_eq!(path("/internal/dashboard").await, "/");
        assert_eq!(
            path("/internal/dashboards/x").await,
            "/internal/dashboards/x"
        );
        assert_eq!(path("/status").await, "/status");
    }

    #[test]
    fn external_links_are_kept_only_whole() {
        let kept = external_link(
            &json!({"label": "Logs", "url": "https://x/{cluster}", "scope": ["cluster", "nope"]}),
        );
        assert_eq!(
            kept,
            Some(json!({"label": "Logs", "url": "https://x/{cluster}", "scope": ["cluster"]}))
        );
        assert_eq!(
            external_link(&json!({"label": "W", "regex": "wandb.ai/\\S+"})),
            Some(json!({"label": "W", "regex": "wandb.ai/\\S+"}))
        );
        assert_eq!(external_link(&json!({"url": "https://x"})), None);
        assert_eq!(external_link(&json!({"label": "L"})), None);
    }
}
