//! Workspaces: the ones this viewer may use (as `GET /workspaces` shows
//! them), who may use each, where each may launch, and what runs in it.
//! Workspaces are set in the server config; admins edit them there.

use super::layout;
use super::viewer::Viewer;
use crate::ops::Op;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// What runs in one workspace, of what the viewer may see.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub clusters: usize,
    pub clusters_up: usize,
    pub managed_jobs: usize,
}

/// Clusters (from `status`) and unfinished managed jobs (from `jobs
/// queue`) counted per workspace.
pub fn count(clusters: &[Value], jobs: &[Value]) -> BTreeMap<String, Counts> {
    let mut counts: BTreeMap<String, Counts> = BTreeMap::new();
    let workspace = |row: &Value| row["workspace"].as_str().unwrap_or("default").to_owned();
    for cluster in clusters {
        let entry = counts.entry(workspace(cluster)).or_default();
        entry.clusters += 1;
        if cluster["status"] == "UP" {
            entry.clusters_up += 1;
        }
    }
    // One row per task; a job is counted once.
    for job in jobs.iter().filter(|job| job["task_id"].as_u64() == Some(0)) {
        counts.entry(workspace(job)).or_default().managed_jobs += 1;
    }
    counts
}

pub async fn page(viewer: Viewer) -> Response {
    let shown = match viewer.read(Op::WorkspacesGet, json!({})).await {
        Ok(Value::Object(shown)) => shown,
        Ok(_) => Default::default(),
        Err(err) => {
            return layout::error_page(&viewer, 0, StatusCode::INTERNAL_SERVER_ERROR, &err.message);
        }
    };
    let clusters = match viewer.read(Op::Status, json!({ "all_users": true })).await {
        Ok(Value::Array(rows)) => rows,
        _ => Vec::new(),
    };
    let jobs = viewer
        .read(
            Op::JobsQueue,
            json!({ "all_users": true, "skip_finished": true }),
        )
        .await
        .ok()
        .and_then(|answer| answer["jobs"].as_array().cloned())
        .unwrap_or_default();
    let counts = count(&clusters, &jobs);
    let config = viewer.state.live_config.get();
    let active = config.active_workspace().to_owned();
    let mut rows = Vec::new();
    for name in shown.keys() {
        let enabled = viewer
            .read(
                Op::EnabledClouds,
                json!({ "workspace": name, "expand": "true" }),
            )
            .await
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default();
        rows.push((name, config.workspaces().get(name), enabled));
    }
    let none = Counts::default();
    let body = html! {
        h1 { "Workspaces" }
        p.muted {
            "Requests without a workspace of their own run in " code { (active) } ". "
            @if viewer.admin {
                "Workspaces are set under " code { "workspaces:" } " in the "
                a href="config" { "server config" } "."
            }
        }
        table #workspaces {
            thead { tr {
                th { "Name" } th { "Who may use it" } th { "Infrastructure" }
                th.num { "Clusters" } th.num { "Up" } th.num { "Managed jobs in progress" }
            } }
            tbody {
                @for (name, settings, enabled) in &rows {
                    @let counts = counts.get(name.as_str()).unwrap_or(&none);
                    tr data-workspace=(name) {
                        td { (name) @if **name == active { " " span.muted { "(default)" } } }
                        td {
                            @match settings {
                                Some(ws) if ws.private => {
                                    "private: " (ws.allowed_users.join(", ")) " and admins"
                                }
                                _ => { "everyone" }
                            }
                        }
                        td {
                            @for infra in enabled { code { (infra.as_str().unwrap_or("?")) } " " }
                            @if enabled.is_empty() { span.muted { "none enabled" } }
                            @if let Some(ws) = settings {
                                @if !ws.disabled_infra.is_empty() {
                                    div.muted { "disabled: " (ws.disabled_infra.iter().cloned().collect::<Vec<_>>().join(", ")) }
                                }
                                @if let Some(contexts) = &ws.kubernetes_allowed_contexts {
                                    div.muted { "Kubernetes contexts: " (contexts.join(", ")) }
                                }
                            }
                        }
                        td.num { a href=(format!("clusters?q={}", super::listing::query_escape(name))) { (counts.clusters) } }
                        td.num { (counts.clusters_up) }
                        td.num { (counts.managed_jobs) }
                    }
                }
            }
        }
    };
    layout::page(&viewer, 0, "workspaces", "Workspaces", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clusters_and_jobs_are_counted_per_workspace_once_each() {
        let clusters = [
            json!({"workspace": "team", "status": "UP"}),
            json!({"workspace": "team", "status": "STOPPED"}),
            json!({"status": "UP"}),
        ];
        let jobs = [
            json!({"workspace": "team", "task_id": 0}),
            json!({"workspace": "team", "task_id": 1}),
            json!({"workspace": "default", "task_id": 0}),
        ];
        let counts = count(&clusters, &jobs);
        assert_eq!(
            counts["team"],
            Counts {
                clusters: 2,
                clusters_up: 1,
                managed_jobs: 1
            }
        );
        assert_eq!(
            counts["default"],
            Counts {
                clusters: 1,
                clusters_up: 1,
                managed_jobs: 1
            }
        );
    }
}
