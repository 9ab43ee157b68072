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
