use super::SharedState;
use crate::skypilot::{self, HealthFacts};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use skydeck_types::HealthUser;
use skydeck_types::version::{HEADER_API_VERSION, HEADER_VERSION};

/// For load balancers and shell scripts: one plain line.
pub async fn plain() -> &'static str {
    "ok\n"
}

/// SkyPilot's health check. A bare probe (no version headers, e.g. a
/// Kubernetes liveness check) gets only the status.
pub async fn api_health(State(state): State<SharedState>, headers: HeaderMap) -> Response {
    let from_client =
        headers.contains_key(HEADER_API_VERSION) || headers.contains_key(HEADER_VERSION);
    if !from_client {
        return Json(serde_json::json!({"status": "healthy"})).into_response();
    }
    Json(skypilot::health(HealthFacts {
        user: Some(HealthUser {
            id: state.local_user.id.clone(),
            name: state.local_user.name.clone(),
        }),
        basic_auth_enabled: false,
        service_account_token_enabled: false,
        ingress_basic_auth_enabled: false,
        external_proxy_auth_enabled: false,
    }))
    .into_response()
}
