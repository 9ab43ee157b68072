//! The web dashboard under `/dashboard`: clusters, managed jobs, requests,
//! infrastructure, workspaces, users and the server config, rendered on the server from templates checked
//! at compile time (maud), with a little plain JavaScript.
//!
//! It is another client of the same domain code as the API: pages read
//! through the same operations (`ops::execute`, run unrecorded, and only
//! those that change nothing), and actions are stored as ordinary
//! requests through the same `accept` as the API's, so ownership, roles
//! and workspaces are checked in one place. The auth middleware in front
//! of every route applies here too.
//!
//! Every link is relative (each page sets `<base>` to the dashboard's
//! root), so the dashboard works under any path prefix an ingress adds.
//! Forms that change something carry a token bound to the user (see
//! `csrf.rs`) and must come from the dashboard's own origin.

mod actions;
mod assets;
mod clusters;
mod config_page;
mod csrf;
mod infra_page;
mod layout;
mod listing;
mod live;
mod login;
mod managed_jobs;
mod requests_page;
mod users_page;
mod viewer;
mod workspaces_page;

use super::Route;
use axum::extract::Query;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub use viewer::Viewer;

/// The dashboard's routes.
pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/", |_: Viewer| async { redirect("dashboard/clusters") }),
        Route::get("/dashboard", |_: Viewer| async {
            redirect("dashboard/clusters")
        }),
        Route::get("/dashboard/", |_: Viewer| async { redirect("clusters") }),
        Route::get("/dashboard/static/{file}", assets::serve),
        Route::get("/dashboard/login", login::page),
        Route::post("/dashboard/login", login::log_in),
        Route::post("/dashboard/logout", login::log_out),
        Route::get("/dashboard/clusters", clusters::list),
        Route::get("/dashboard/clusters/{name}", clusters::detail),
        Route::post("/dashboard/clusters/{name}/{action}", clusters::act),
        Route::get("/dashboard/clusters/{name}/jobs/{job}", clusters::job),
        Route::get(
            "/dashboard/clusters/{name}/jobs/{job}/log",
            clusters::job_log,
        ),
        Route::get("/dashboard/jobs", managed_jobs::list),
        Route::get("/dashboard/jobs/{id}", managed_jobs::detail),
        Route::get("/dashboard/jobs/{id}/log", managed_jobs::log),
        Route::post("/dashboard/jobs/{id}/cancel", managed_jobs::cancel),
        Route::get("/dashboard/infra", infra_page::page),
        Route::get("/dashboard/workspaces", workspaces_page::page),
        Route::get("/dashboard/users", users_page::page),
        Route::post("/dashboard/users/{name}/{action}", users_page::set_role),
        Route::post("/dashboard/tokens/{id}/revoke", users_page::revoke_token),
        Route::get("/dashboard/requests", requests_page::list),
        Route::get("/dashboard/requests/{id}", requests_page::detail),
        Route::post("/dashboard/requests/{id}/cancel", requests_page::cancel),
        Route::get(
            "/dashboard/live/clusters",
            |viewer: Viewer,
             Query(query): Query<clusters::ListQuery>,
             Query(live): Query<live::LiveQuery>| async move {
                live::updates(viewer, live, move |viewer| {
                    clusters::list(viewer, Ok(Query(query.clone())))
                })
            },
        ),
        Route::get(
            "/dashboard/live/jobs",
            |viewer: Viewer,
             Query(query): Query<managed_jobs::ListQuery>,
             Query(live): Query<live::LiveQuery>| async move {
                live::updates(viewer, live, move |viewer| {
                    managed_jobs::list(viewer, Ok(Query(query.clone())))
                })
            },
        ),
        Route::get(
            "/dashboard/live/requests",
            |viewer: Viewer,
             Query(query): Query<requests_page::ListQuery>,
             Query(live): Query<live::LiveQuery>| async move {
                live::updates(viewer, live, move |viewer| {
                    requests_page::list(viewer, Ok(Query(query.clone())))
                })
            },
        ),
        Route::get("/dashboard/config", config_page::page),
        Route::post("/dashboard/config", config_page::save),
        Route::get("/dashboard/settings", |_: Viewer| async {
            redirect("settings/config")
        }),
        Route::get("/dashboard/settings/config", config_page::page),
        Route::post("/dashboard/settings/config", config_page::save),
        // Any other dashboard address (SkyPilot's dashboard has more):
        // a page that says so, not the API's JSON 404.
        Route::get(
            "/dashboard/{*rest}",
            |viewer: Viewer, uri: axum::extract::OriginalUri| async move {
                let depth = uri
                    .path()
                    .trim_start_matches("/dashboard/")
                    .matches('/')
                    .count();
                layout::error_page(
                    &viewer,
                    depth,
                    StatusCode::NOT_FOUND,
                    "There is no such dashboard page.",
                )
            },
        ),
    ]
}

/// 303 to `location`, relative to the current page (see the module doc).
fn redirect(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}
