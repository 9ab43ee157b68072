//! `/ssh_node_pools/*`: the official client's `sky ssh up/down` and the
//! pool file. Setting pools up or down changes what every user shares, so
//! those are for admins (docs/security.md).

use super::SharedState;
use super::schedule::{accept, new_request_id};
use crate::client_tool::Requester;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::ops::Op;
use crate::ssh_pools::deploy::SshUpBody;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use skydeck_types::names::PoolName;
use skydeck_types::version::HEADER_REQUEST_ID;

/// Schedules `ssh up`/`down` and answers as SkyPilot does: the request id
/// in the header (what the CLI reads) and a body the dashboard reads.
async fn deploy(
    state: &SharedState,
    requester: &Requester,
    op: Op,
    body: SshUpBody,
) -> Result<Response, ApiError> {
    let action = if op == Op::SshUp {
        "set up SSH Node Pools"
    } else {
        "take SSH Node Pools down"
    };
    requester.caller.require_admin(action)?;
    if let Some(pool) = &body.infra {
        PoolName::new(pool.strip_prefix("ssh/").unwrap_or(pool))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    let what = body.infra.clone().map_or_else(
        || "SSH Node Pools".to_owned(),
        |p| format!("SSH Node Pool `{p}`"),
    );
    let id = accept(
        state,
        requester,
        new_request_id(),
        op,
        &body.base.clone(),
        &body,
        None,
    )
    .await?;
    let message = if op == Op::SshUp {
        format!("{what} deployment started")
    } else {
        format!("{what} teardown started")
    };
    let mut response = Json(serde_json::json!({
        "status": "success",
        "request_id": id,
        "message": message,
    }))
    .into_response();
    response.headers_mut().insert(
        HEADER_REQUEST_ID,
        HeaderValue::from_str(&id).expect("a UUID is a valid header value"),
    );
    Ok(response)
}

pub async fn up_all(
    State(state): State<SharedState>,
    requester: Requester,
    ApiJson(body): ApiJson<SshUpBody>,
) -> Result<Response, ApiError> {
    let body = SshUpBody {
        cleanup: false,
        ..body
    };
    deploy(&state, &requester, Op::SshUp, body).await
}

/// The CLI sends no body here.
pub async fn up_pool(
    State(state): State<SharedState>,
    requester: Requester,
    Path(pool): Path<String>,
) -> Result<Response, ApiError> {
    let body = SshUpBody {
        infra: Some(pool),
        ..SshUpBody::default()
    };
    deploy(&state, &requester, Op::SshUp, body).await
}

pub async fn down_all(
    State(state): State<SharedState>,
    requester: Requester,
    ApiJson(body): ApiJson<SshUpBody>,
) -> Result<Response, ApiError> {
    let body = SshUpBody {
        cleanup: true,
        ..body
    };
    deploy(&state, &requester, Op::SshDown, body).await
}

pub async fn down_pool(
    State(state): State<SharedState>,
    requester: Requester,
    Path(pool): Path<String>,
) -> Result<Response, ApiError> {
    let body = SshUpBody {
        infra: Some(pool),
        cleanup: true,
        ..SshUpBody::default()
    };
    deploy(&state, &requester, Op::SshDown, body).await
}

/// The pool file as JSON (`{}` without one). It holds sudo passwords and
/// key paths: admins only.
pub async fn list(
    State(state): State<SharedState>,
    requester: Requester,
) -> Result<Json<serde_json::Value>, ApiError> {
    requester
        .caller
        .require_admin("read the SSH Node Pools file")?;
    let pools = crate::ssh_pools::load(state.infra.home()).map_err(ApiError::internal)?;
    let value = serde_json::to_value(&pools).map_err(ApiError::internal)?;
    Ok(Json(value))
}

/// Whether a pool is set up: SkyPilot's shape, with its context name.
pub async fn status(
    State(state): State<SharedState>,
    Path(pool): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let name = PoolName::new(&pool).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let pools = crate::ssh_pools::load(state.infra.home()).map_err(ApiError::internal)?;
    let hosts = state
        .store
        .list_hosts(&crate::ssh_pools::placement_pool(&name))
        .await
        .map_err(ApiError::internal)?;
    let (status, reason) = if !pools.pools.contains_key(&name) {
        (
            "Not Ready",
            format!("No pool {name} in the SSH Node Pools file."),
        )
    } else if hosts.is_empty() {
        (
            "Not Ready",
            format!("Not set up. Use `sky ssh up --infra {name}` to set up."),
        )
    } else {
        ("Ready", String::new())
    };
    Ok(Json(serde_json::json!({
        "pool_name": name.as_str(),
        "context_name": format!("ssh-{name}"),
        "status": status,
        "reason": reason,
    })))
}

impl From<crate::ssh_pools::edit::EditError> for ApiError {
    fn from(err: crate::ssh_pools::edit::EditError) -> Self {
        use crate::ssh_pools::edit::EditError;
        match err {
            EditError::Invalid(message) => ApiError::bad_request(message),
            EditError::NotFound(message) => ApiError::not_found(message),
            EditError::Io(message) => ApiError::internal(message),
        }
    }
}

/// `POST /ssh_node_pools`: each pool sent replaces the file's pool of that
/// name (what `sky ssh up -f` sends before it deploys). Parsed whole before
/// anything is written, so a bad host or name changes nothing.
pub async fn update(
    State(state): State<SharedState>,
    requester: Requester,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    requester
        .caller
        .require_admin("change the SSH Node Pools file")?;
    let limit = crate::ssh_pools::edit::MAX_POOL_FILE_BYTES;
    if body.len() > limit {
        return Err(ApiError::bad_request(format!(
            "Failed to update SSH Node Pools: the body is {} bytes, more than the {limit} a pool file may hold",
            body.len()
        )));
    }
    let pools: skydeck_types::ssh_node_pools::NodePools = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("Failed to update SSH Node Pools: {e}")))?;
    let names: Vec<String> = pools.pools.keys().map(|p| p.to_string()).collect();
    let path = crate::ssh_pools::edit::merge_pools(state.infra.home(), pools).await?;
    tracing::info!(pools = %names.join(","), file = %path.display(), "SSH Node Pools updated");
    Ok(Json(serde_json::json!({"status": "success"})))
}

/// `DELETE /ssh_node_pools/{pool}`: takes a pool out of the file, unless a
/// cluster runs on it. Its hosts stay recorded while the pool is up, so
/// `ssh down` of it still works after.
pub async fn delete(
    State(state): State<SharedState>,
    requester: Requester,
    Path(pool): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    requester.caller.require_admin("delete SSH Node Pools")?;
    let name = PoolName::new(&pool).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let allocations = state
        .store
        .list_allocations(&crate::ssh_pools::placement_pool(&name))
        .await
        .map_err(ApiError::internal)?;
    let clusters: std::collections::BTreeSet<String> =
        allocations.into_iter().map(|a| a.cluster).collect();
    if !clusters.is_empty() {
        let names: Vec<String> = clusters.into_iter().collect();
        return Err(ApiError::conflict(format!(
            "SSH Node Pool `{name}` is in use by cluster{} {}: take {} down first (`sky down {}`).",
            if names.len() == 1 { "" } else { "s" },
            names.join(", "),
            if names.len() == 1 { "it" } else { "them" },
            names.join(" ")
        )));
    }
    crate::ssh_pools::edit::delete_pool(state.infra.home(), &name).await?;
    tracing::info!(pool = %name, "SSH Node Pool deleted from the pool file");
    Ok(Json(serde_json::json!({"status": "success"})))
}

/// `GET /ssh_node_pools/keys`: the stored keys' names.
pub async fn list_keys(
    State(state): State<SharedState>,
    requester: Requester,
) -> Result<Json<Vec<String>>, ApiError> {
    requester.caller.require_admin("list the SSH key store")?;
    Ok(Json(crate::ssh_pools::edit::list_keys(state.infra.home())?))
}

/// `POST /ssh_node_pools/keys`: a multipart upload of one private key
/// (`key_name`, and `key_file` whose content is the key), stored 0600 in
/// the server's key store; answers the path to write as `identity_file`.
pub async fn upload_key(
    State(state): State<SharedState>,
    requester: Requester,
    mut form: axum::extract::Multipart,
) -> Result<Json<serde_json::Value>, ApiError> {
    use skydeck_types::names::SshKeyName;
    requester
        .caller
        .require_admin("upload SSH keys to the server")?;
    let bad_form = |e: axum::extract::multipart::MultipartError| {
        ApiError::bad_request(format!("Failed to upload SSH key: {}", e.body_text()))
    };
    let mut key_name: Option<String> = None;
    let mut content: Option<Vec<u8>> = None;
    while let Some(mut field) = form.next_field().await.map_err(bad_form)? {
        let what = field.name().unwrap_or_default().to_owned();
        // Each part is read with a bound: the key itself, or a short name.
        let limit = if what == "key_file" {
            crate::ssh_pools::edit::MAX_KEY_BYTES
        } else {
            1024
        };
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(bad_form)? {
            if bytes.len() + chunk.len() > limit {
                return Err(ApiError::bad_request(format!(
                    "Failed to upload SSH key: `{}` is larger than {limit} bytes",
                    what.chars().take(40).collect::<String>()
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        match what.as_str() {
            "key_name" => {
                key_name = Some(String::from_utf8(bytes).map_err(|_| {
                    ApiError::bad_request("Failed to upload SSH key: `key_name` is not text")
                })?);
            }
            "key_file" => content = Some(bytes),
            // Other parts (the client sends none) are ignored, as FastAPI does.
            _ => {}
        }
    }
    let (Some(key_name), Some(content)) = (key_name, content) else {
        return Err(ApiError::bad_request(
            "Missing key_name or key_file: send both as multipart form fields",
        ));
    };
    let name = SshKeyName::new(key_name).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let path = crate::ssh_pools::edit::store_key(state.infra.home(), &name, &content)?;
    tracing::info!(key = %name, "SSH key stored");
    Ok(Json(serde_json::json!({
        "status": "success",
        "key_path": path.display().to_string(),
    })))
}
