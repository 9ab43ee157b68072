use super::SharedState;
use crate::auth::Caller;
use crate::skypilot::{self, HealthFacts};
use axum::Json;
use axum::extract::{Extension, State};
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
pub async fn api_health(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Response {
    let from_client =
        headers.contains_key(HEADER_API_VERSION) || headers.contains_key(HEADER_VERSION);
    if !from_client {
        return Json(serde_json::json!({"status": "healthy"})).into_response();
    }
    let user = match &caller {
        Caller::Trusted => Some(&state.local_user),
        Caller::Anonymous => None,
        Caller::User(user) => Some(user),
    };
    let auth = state.auth.settings();
    Json(skypilot::health(HealthFacts {
        user: user.map(|user| HealthUser {
            id: user.id.clone(),
            name: user.name.clone(),
        }),
        basic_auth_enabled: auth.basic_auth,
        service_account_token_enabled: auth.service_accounts,
        ingress_basic_auth_enabled: auth.ingress_header.is_some(),
        external_proxy_auth_enabled: auth.proxy_header.is_some(),
    }))
    .into_response()
}
