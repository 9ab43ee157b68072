//! The router: every route the server answers, in one list.

mod download;
mod health;
mod requests;
mod schedule;
mod stream;
mod upload;

use crate::error::ApiError;
use crate::state::AppState;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use skydeck_types::version::{
    API_VERSION, HEADER_API_VERSION, HEADER_REQUEST_ID, HEADER_VERSION, MIN_COMPATIBLE_API_VERSION,
    SKYPILOT_COMPAT_VERSION,
};
use std::sync::Arc;
use tower_http::catch_panic::CatchPanicLayer;

pub type SharedState = Arc<AppState>;

/// Every route with its method, for documentation and for the test that
/// proves each one is covered by authentication.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/api/health"),
    ("GET", "/api/get"),
    ("GET", "/api/stream"),
    ("GET", "/api/status"),
    ("POST", "/api/cancel"),
    ("POST", "/status"),
    ("POST", "/check"),
    ("GET", "/enabled_clouds"),
    ("GET", "/workspaces"),
    ("GET", "/users/me/workspace"),
    ("POST", "/jobs/queue/v2"),
    ("POST", "/serve/status"),
    ("POST", "/jobs/pool_status"),
    ("POST", "/launch"),
    ("POST", "/exec"),
    ("POST", "/start"),
    ("POST", "/stop"),
    ("POST", "/down"),
    ("POST", "/autostop"),
    ("POST", "/queue"),
    ("POST", "/cancel"),
    ("POST", "/logs"),
    ("POST", "/job_status"),
    ("POST", "/endpoints"),
    ("POST", "/validate"),
    ("POST", "/optimize"),
    ("POST", "/download_logs"),
    ("POST", "/download"),
    ("GET", "/upload_v2/blob"),
    ("POST", "/upload_v2"),
];

pub fn router(state: SharedState) -> Router {
    router_with(state, Router::new())
}

/// The router with `extra` routes behind the same middleware (for tests).
pub fn router_with(state: SharedState, extra: Router<SharedState>) -> Router {
    let body_limit = state.config.max_body_bytes;
    extra
        .route("/health", get(health::plain))
        .route("/api/health", get(health::api_health))
        .route("/api/get", get(requests::api_get))
        .route("/api/stream", get(stream::api_stream))
        .route("/api/status", get(requests::api_status))
        .route("/api/cancel", post(schedule::api_cancel))
        .route("/status", post(schedule::status))
        .route("/check", post(schedule::check))
        .route("/enabled_clouds", get(schedule::enabled_clouds))
        .route("/workspaces", get(schedule::workspaces))
        .route("/users/me/workspace", get(schedule::my_workspace))
        .route("/jobs/queue/v2", post(schedule::jobs_queue))
        .route("/serve/status", post(schedule::serve_status))
        .route("/jobs/pool_status", post(schedule::pool_status))
        .route("/launch", post(schedule::launch))
        .route("/exec", post(schedule::exec))
        .route("/start", post(schedule::start))
        .route("/stop", post(schedule::stop))
        .route("/down", post(schedule::down))
        .route("/autostop", post(schedule::autostop))
        .route("/queue", post(schedule::queue))
        .route("/cancel", post(schedule::cancel))
        .route("/logs", post(schedule::logs))
        .route("/job_status", post(schedule::job_status))
        .route("/endpoints", post(schedule::endpoints))
        .route("/validate", post(schedule::validate))
        .route("/optimize", post(schedule::optimize))
        .route("/download_logs", post(schedule::download_logs))
        .route("/download", post(download::download))
        .route("/upload_v2/blob", get(upload::blob_exists))
        .route("/upload_v2", post(upload::upload))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::authenticate,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), drain_gate))
        .layer(middleware::from_fn(versions))
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "Not Found")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
}

fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = %message, "a handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Internal server error; the API server log has the details.",
    )
    .into_response()
}

/// Refuses new work while the server drains, so a stopping server finishes
/// what it has instead of accepting more. Clients retry a 503.
async fn drain_gate(State(state): State<SharedState>, request: Request, next: Next) -> Response {
    if state.is_draining() {
        return ApiError::unavailable("The API server is shutting down; retry shortly.")
            .into_response();
    }
    next.run(request).await
}

/// Refuses clients too old to speak our protocol and stamps every response
/// with our versions (the official client requires both headers).
async fn versions(request: Request, next: Next) -> Response {
    if let Some(client_version) = request.headers().get(HEADER_API_VERSION) {
        let parsed = client_version
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok());
        let too_old = match parsed {
            Some(version) => version < MIN_COMPATIBLE_API_VERSION,
            None => true,
        };
        if too_old {
            let message = format!(
                "Your SkyPilot client speaks API version {}, older than the oldest this server \
                 supports ({MIN_COMPATIBLE_API_VERSION}). Upgrade it with: pip install -U \
                 \"skypilot=={SKYPILOT_COMPAT_VERSION}\"",
                client_version.to_str().unwrap_or("?")
            );
            let body = serde_json::json!({"error": "version_mismatch", "message": message});
            let mut response = (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
            stamp(&mut response);
            return response;
        }
    }
    let mut response = next.run(request).await;
    stamp(&mut response);
    response
}

fn stamp(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(HEADER_API_VERSION, HeaderValue::from(API_VERSION));
    headers.insert(
        HEADER_VERSION,
        HeaderValue::from_static(SKYPILOT_COMPAT_VERSION),
    );
    if !headers.contains_key(HEADER_REQUEST_ID) {
        let id = uuid::Uuid::new_v4().to_string();
        headers.insert(
            HEADER_REQUEST_ID,
            HeaderValue::from_str(&id).expect("a UUID is a valid header value"),
        );
    }
}
