//! The official client's endpoints for features this server does not have
//! yet. Each answers the way that client prints as one plain line:
//!
//! - an endpoint SkyPilot runs as a request is accepted and its request
//!   fails at once with a `NotSupportedError` (`ops/unsupported.rs`); the
//!   client raises it from `/api/get` without a traceback;
//! - one the client streams (`sky jobs logs`, `sky serve logs`) answers with
//!   that request's (empty) log, then the same failure;
//! - one the client validates synchronously (`/volumes/validate`) answers
//!   400 with the serialized exception, which the client re-raises;
//! - the rest (browser login, debug dumps, batch user edits) answer 501
//!   with a `detail` saying what is missing.
//!
//! None of them stores what the client sent beyond its base fields: a
//! refused `sky jobs launch` leaves no task (or secret) behind.

use super::{Route, SharedState};
use crate::client_tool::Requester;
use crate::error::ApiError;
use crate::ops::Op;
use crate::ops::unsupported::{find, refuse};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, on};
use skydeck_types::bodies::BaseBody;
use skydeck_types::version::HEADER_REQUEST_ID;

/// How an endpoint answers.
#[derive(Clone, Copy)]
enum Answer {
    /// Accepted as the request called this, which fails at once.
    Request(&'static str),
    /// As `Request`, answered with the request's log stream (like `/logs`).
    Stream(&'static str),
    /// 400 with the serialized exception of the refused request called this.
    Reject(&'static str),
    /// 501 naming the feature.
    NotImplemented(&'static str),
}

const fn at(method: Method, path: &'static str, answer: Answer) -> (Method, &'static str, Answer) {
    (method, path, answer)
}

use Answer::{NotImplemented, Reject, Request, Stream};

/// Every endpoint of the official 0.14.1 client this server does not serve
/// otherwise. The endpoint test (`tests/endpoints.rs`) checks the client's
/// own route list against the router, so a missing one fails it.
const ENDPOINTS: &[(Method, &str, Answer)] = &[
    // Managed jobs and pools.
    at(Method::POST, "/jobs/wait", Request("sky.jobs.wait")),
    at(Method::POST, "/jobs/events", Request("sky.jobs.events")),
    at(
        Method::POST,
        "/jobs/pool_apply",
        Request("sky.jobs.pool_apply"),
    ),
    at(
        Method::POST,
        "/jobs/pool_down",
        Request("sky.jobs.pool_down"),
    ),
    at(
        Method::POST,
        "/jobs/pool_logs",
        Stream("sky.jobs.pool_logs"),
    ),
    at(
        Method::POST,
        "/jobs/pool_sync-down-logs",
        Request("sky.jobs.pool_sync_down_logs"),
    ),
    // SkyServe.
    at(Method::POST, "/serve/up", Request("sky.serve.up")),
    at(Method::POST, "/serve/update", Request("sky.serve.update")),
    at(Method::POST, "/serve/down", Request("sky.serve.down")),
    at(
        Method::POST,
        "/serve/terminate-replica",
        Request("sky.serve.terminate_replica"),
    ),
    at(Method::POST, "/serve/logs", Stream("sky.serve.logs")),
    at(
        Method::POST,
        "/serve/sync-down-logs",
        Request("sky.serve.sync_down_logs"),
    ),
    // Storage and volumes (their listings work: see `listings.rs`).
    at(
        Method::POST,
        "/storage/delete",
        Request("sky.storage_delete"),
    ),
    at(Method::POST, "/volumes/apply", Request("sky.volume_apply")),
    at(
        Method::POST,
        "/volumes/delete",
        Request("sky.volume_delete"),
    ),
    at(
        Method::POST,
        "/volumes/validate",
        Reject("sky.volume_apply"),
    ),
    // Kubernetes and Slurm infrastructure.
    at(
        Method::POST,
        "/kubernetes_label_gpus",
        Request("sky.kubernetes_label_gpus"),
    ),
    at(
        Method::GET,
        "/status_kubernetes",
        Request("sky.status_kubernetes"),
    ),
    at(Method::GET, "/all_contexts", Request("sky.all_contexts")),
    at(
        Method::POST,
        "/slurm_gpu_availability",
        Request("sky.realtime_slurm_gpu_availability"),
    ),
    at(
        Method::POST,
        "/slurm_cluster_names",
        Request("sky.slurm_cluster_names"),
    ),
    at(Method::GET, "/slurm_node_info", NotImplemented(SLURM)),
    at(Method::POST, "/slurm_node_info", NotImplemented(SLURM)),
    at(Method::POST, "/local_up", Request("sky.local_up")),
    at(Method::POST, "/local_down", Request("sky.local_down")),
    // Workspaces are set in the server config.
    at(
        Method::POST,
        "/workspaces/update",
        Request("sky.workspaces.update"),
    ),
    at(
        Method::POST,
        "/workspaces/create",
        Request("sky.workspaces.create"),
    ),
    at(
        Method::POST,
        "/workspaces/delete",
        Request("sky.workspaces.delete"),
    ),
    at(
        Method::POST,
        "/workspaces/batch_add_users",
        Request("sky.workspaces.batch_add_users"),
    ),
    at(
        Method::POST,
        "/workspaces/batch_remove_users",
        Request("sky.workspaces.batch_remove_users"),
    ),
    at(
        Method::POST,
        "/users/me/workspace",
        NotImplemented(WORKSPACE_CHOICE),
    ),
    // Recipes.
    at(Method::GET, "/recipes", Request("sky.recipes.list")),
    at(Method::POST, "/recipes/list", Request("sky.recipes.list")),
    at(Method::POST, "/recipes/get", Request("sky.recipes.get")),
    at(
        Method::POST,
        "/recipes/create",
        Request("sky.recipes.create"),
    ),
    at(
        Method::POST,
        "/recipes/update",
        Request("sky.recipes.update"),
    ),
    at(
        Method::POST,
        "/recipes/delete",
        Request("sky.recipes.delete"),
    ),
    at(Method::POST, "/recipes/pin", Request("sky.recipes.pin")),
    // Cluster history and logs beyond the job logs.
    at(
        Method::POST,
        "/cluster_events",
        Request("sky.cluster_events"),
    ),
    at(
        Method::POST,
        "/provision_logs",
        NotImplemented(PROVISION_LOGS),
    ),
    at(Method::POST, "/hook_logs", NotImplemented(HOOK_LOGS)),
    at(
        Method::POST,
        "/debug/dump_create",
        Request("sky.create_debug_dump"),
    ),
    at(
        Method::GET,
        "/debug/dump_download/{dump_filename}",
        NotImplemented(DEBUG_DUMPS),
    ),
    // Users: Skydeck's own `/users` endpoints manage users and tokens.
    at(Method::POST, "/users/batch_update", NotImplemented(USERS)),
    at(Method::GET, "/users/export", NotImplemented(USERS)),
    at(
        Method::POST,
        "/users/service-account-tokens/get-role",
        NotImplemented(USERS),
    ),
    at(
        Method::POST,
        "/users/service-account-tokens/update-role",
        NotImplemented(USERS),
    ),
    at(
        Method::POST,
        "/users/service-account-tokens/rotate",
        NotImplemented(USERS),
    ),
    // Browser login and the dashboard.
    at(Method::GET, "/token", NotImplemented(BROWSER_LOGIN)),
    at(
        Method::GET,
        "/auth/authorize",
        NotImplemented(BROWSER_LOGIN),
    ),
    at(
        Method::GET,
        "/api/v1/auth/token",
        NotImplemented(BROWSER_LOGIN),
    ),
    at(
        Method::POST,
        "/api/v1/auth/authorize",
        NotImplemented(BROWSER_LOGIN),
    ),
    // The client uploads with `/upload_v2` once the server offers it.
    at(Method::POST, "/upload", NotImplemented(UPLOAD_V1)),
];

const SLURM: &str = "Slurm infrastructure";
const WORKSPACE_CHOICE: &str = "choosing a workspace on the server; set `active_workspace` in \
                                your client config instead";
const PROVISION_LOGS: &str = "provisioning logs; `sky logs CLUSTER` shows the job's";
const HOOK_LOGS: &str = "hook logs";
const DEBUG_DUMPS: &str = "debug dumps; the API server log has the details";
const USERS: &str = "this user-management call; `skydeck users` and `skydeck tokens` manage \
                     users and tokens";
const BROWSER_LOGIN: &str = "browser login; log in with a token (`sky api login -e URL`)";
const UPLOAD_V1: &str = "the old upload endpoint; upgrade the client";

pub(super) fn routes() -> Vec<Route> {
    ENDPOINTS
        .iter()
        .map(|(method, path, answer)| Route {
            method: method.clone(),
            path,
            handler: handler(method.clone(), *answer),
        })
        .collect()
}

fn handler(method: Method, answer: Answer) -> MethodRouter<SharedState> {
    let filter = axum::routing::MethodFilter::try_from(method)
        .expect("the table names only GET, POST and DELETE");
    on(
        filter,
        move |State(state): State<SharedState>, requester: Requester, body: Bytes| async move {
            answer_with(&state, &requester, answer, &body).await
        },
    )
}

async fn answer_with(
    state: &SharedState,
    requester: &Requester,
    answer: Answer,
    body: &[u8],
) -> Result<Response, ApiError> {
    match answer {
        Request(name) => {
            let id = accept(state, requester, name, body).await?;
            let mut response = axum::Json(serde_json::Value::Null).into_response();
            set_request_id(&mut response, &id);
            Ok(response)
        }
        Stream(name) => {
            let id = accept(state, requester, name, body).await?;
            let mut response = super::stream::stream_response(state, id.clone(), None, true, None)?;
            set_request_id(&mut response, &id);
            Ok(response)
        }
        Reject(name) => {
            let error = refuse(name);
            Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                serde_json::json!({
                    "type": error.kind,
                    "message": error.message,
                    "args": [error.message],
                    "attributes": {},
                    "stacktrace": null,
                }),
            ))
        }
        NotImplemented(what) => Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("This API server (Skydeck) does not support {what}."),
        )),
    }
}

/// Stores the refused request, so the client finds it failed where it looks
/// (`/api/stream`, `/api/get`, `sky api status`). Only the base fields are
/// kept, and a body that is not JSON at all is taken as empty: the request
/// fails whatever it carried.
async fn accept(
    state: &SharedState,
    requester: &Requester,
    name: &'static str,
    body: &[u8],
) -> Result<String, ApiError> {
    let op = find(name).map(|refused| Op::Refused(refused.name));
    let op = op.expect("every refused endpoint names a refused request");
    let base: BaseBody = serde_json::from_slice(body).unwrap_or_default();
    super::schedule::accept(
        state,
        requester,
        super::schedule::new_request_id(),
        op,
        &base,
        &base,
        None,
    )
    .await
}

fn set_request_id(response: &mut Response, id: &str) {
    response.headers_mut().insert(
        HEADER_REQUEST_ID,
        HeaderValue::from_str(id).expect("a UUID is a valid header value"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_the_table_names_is_a_refused_request() {
        for (method, path, answer) in ENDPOINTS {
            if let Request(name) | Stream(name) | Reject(name) = answer {
                assert!(find(name).is_some(), "{method} {path}: {name}");
            }
        }
    }
}
