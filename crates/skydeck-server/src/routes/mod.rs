//! The router: every route the server answers, in one list.

mod config;
mod dashboard;
mod download;
mod health;
mod listings;
mod requests;
mod schedule;
mod skypilot_dashboard;
mod ssh_pools;
mod ssh_session;
mod stream;
mod unsupported;
mod upload;
mod users;

use crate::error::ApiError;
use crate::state::AppState;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::handler::Handler;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use skydeck_types::version::{
    API_VERSION, HEADER_API_VERSION, HEADER_REQUEST_ID, HEADER_VERSION, MIN_COMPATIBLE_API_VERSION,
    SKYPILOT_COMPAT_VERSION,
};
use std::sync::Arc;
use tower_http::catch_panic::CatchPanicLayer;

pub type SharedState = Arc<AppState>;

/// One route: method, path and handler.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    handler: MethodRouter<SharedState>,
}

impl Route {
    fn get<H: Handler<T, SharedState>, T: 'static>(path: &'static str, handler: H) -> Self {
        Self {
            method: Method::GET,
            path,
            handler: get(handler),
        }
    }

    fn post<H: Handler<T, SharedState>, T: 'static>(path: &'static str, handler: H) -> Self {
        Self {
            method: Method::POST,
            path,
            handler: post(handler),
        }
    }

    fn delete<H: Handler<T, SharedState>, T: 'static>(path: &'static str, handler: H) -> Self {
        Self {
            method: Method::DELETE,
            path,
            handler: axum::routing::delete(handler),
        }
    }
}

/// Every route the server answers. The router is built from this list and
/// the authentication test walks it, so no route can exist untested.
pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/health", health::plain),
        Route::get("/api/health", health::api_health),
        Route::get("/api/get", requests::api_get),
        Route::get("/api/stream", stream::api_stream),
        Route::get("/api/status", requests::api_status),
        Route::post("/api/cancel", schedule::api_cancel),
        Route::post("/status", schedule::status),
        Route::post("/check", schedule::check),
        Route::get("/enabled_clouds", schedule::enabled_clouds),
        Route::get("/workspaces", schedule::workspaces),
        Route::get("/users/me/workspace", schedule::my_workspace),
        Route::post("/jobs/queue/v2", schedule::jobs_queue),
        Route::post("/serve/status", schedule::serve_status),
        Route::post("/jobs/pool_status", schedule::pool_status),
        Route::post("/jobs/launch", schedule::jobs_launch),
        Route::post("/jobs/cancel", schedule::jobs_cancel),
        Route::post("/jobs/logs", schedule::jobs_logs),
        Route::post("/jobs/download_logs", schedule::jobs_download_logs),
        Route::post("/launch", schedule::launch),
        Route::post("/exec", schedule::exec),
        Route::post("/start", schedule::start),
        Route::post("/stop", schedule::stop),
        Route::post("/down", schedule::down),
        Route::post("/autostop", schedule::autostop),
        Route::post("/queue", schedule::queue),
        Route::post("/cancel", schedule::cancel),
        Route::post("/logs", schedule::logs),
        Route::post("/job_status", schedule::job_status),
        Route::post("/endpoints", schedule::endpoints),
        Route::post("/validate", schedule::validate),
        Route::post("/optimize", schedule::optimize),
        Route::post("/download_logs", schedule::download_logs),
        Route::post("/download", download::download),
        Route::get("/upload_v2/blob", upload::blob_exists),
        Route::post("/upload_v2", upload::upload),
        Route::get("/api/config", config::get),
        Route::post("/api/config", config::set),
        Route::get("/users", users::list),
        Route::get("/users/me", users::me),
        Route::post("/users/create", users::create),
        Route::post("/users/update", users::update),
        Route::post("/users/delete", users::delete),
        Route::post("/users/import", users::import),
        Route::get("/users/tokens", users::list_tokens),
        Route::post("/users/tokens/create", users::create_token),
        Route::post("/users/tokens/revoke", users::revoke_token),
        Route::post("/cost_report", listings::cost_report),
        Route::post("/list_accelerators", listings::list_accelerators),
        Route::post(
            "/list_accelerator_counts",
            listings::list_accelerator_counts,
        ),
        Route::post(
            "/realtime_kubernetes_gpu_availability",
            listings::kubernetes_gpu_availability,
        ),
        Route::post("/kubernetes_node_info", listings::kubernetes_node_info),
        Route::get("/storage/ls", listings::storage_ls),
        Route::get("/volumes", listings::volume_list),
        Route::post("/jobs/queue", listings::jobs_queue_v1),
        Route::get(
            "/api/completion/cluster_name",
            listings::complete_cluster_name,
        ),
        Route::get(
            "/api/completion/api_request",
            listings::complete_api_request,
        ),
        Route::get(skydeck_types::ssh_session::PATH, ssh_session::ssh),
        Route::get("/api/completion/storage_name", listings::complete_nothing),
        Route::get("/api/completion/volume_name", listings::complete_nothing),
        Route::post("/ssh_node_pools/deploy", ssh_pools::up_all),
        Route::post("/ssh_node_pools/{pool_name}/deploy", ssh_pools::up_pool),
        Route::post("/ssh_node_pools/down", ssh_pools::down_all),
        Route::post("/ssh_node_pools/{pool_name}/down", ssh_pools::down_pool),
        Route::get("/ssh_node_pools", ssh_pools::list),
        Route::get("/ssh_node_pools/{pool_name}/status", ssh_pools::status),
        Route::post("/ssh_node_pools", ssh_pools::update),
        Route::delete("/ssh_node_pools/{pool_name}", ssh_pools::delete),
        Route::get("/ssh_node_pools/keys", ssh_pools::list_keys),
        Route::post("/ssh_node_pools/keys", ssh_pools::upload_key),
    ]
    .into_iter()
    .chain(dashboard::routes())
    .chain(skypilot_dashboard::routes())
    // The client's endpoints for features to come, each refused plainly.
    .chain(unsupported::routes())
    .collect()
}

pub fn router(state: SharedState) -> Router {
    router_with(state, Router::new())
}

/// The router with `extra` routes behind the same middleware (for tests).
pub fn router_with(state: SharedState, extra: Router<SharedState>) -> Router {
    let body_limit = state.config.max_body_bytes;
    let routes = routes()
        .into_iter()
        .fold(extra, |router, route| {
            router.route(route.path, route.handler)
        })
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
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::record_http,
        ))
        .with_state(state);
    // SkyPilot's dashboard calls every route under a prefix; taken off
    // before the routes are matched.
    Router::new()
        .fallback_service(routes)
        .layer(middleware::map_request(skypilot_dashboard::strip_prefix))
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
