//! Managed jobs: the queue a page at a time (paged in the database, as
//! `sky jobs queue` is), with their recoveries, and cancel.

use super::actions::{self, ActionForm};
use super::layout::{self, action_button, ago, status_class};
use super::{Viewer, listing};
use crate::executor::now;
use crate::ops::Op;
use axum::Form;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;
use serde_json::json;
use skydeck_types::managed_jobs::{JobsCancelBody, JobsLogsBody, ManagedJobStatus};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ListQuery {
    /// Part of the job's name.
    q: listing::Filter,
    page: listing::PageNumber,
}

pub async fn list(
    viewer: Viewer,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return layout::error_page(
            &viewer,
            0,
            StatusCode::BAD_REQUEST,
            "The filters in the address are not valid: `q` is text up to 128 characters, `page` \
             a number from 1.",
        );
    };
    let page = u64::from(query.page.get());
    let mut body = json!({
        "all_users": true,
        "limit": listing::PAGE_SIZE,
        "page": page,
    });
    if !query.q.is_empty() {
        body["name_match"] = json!(query.q.as_str());
    }
    let answer = match viewer.read(Op::JobsQueue, body).await {
        Ok(answer) => answer,
        Err(err) => {
            return layout::error_page(&viewer, 0, StatusCode::INTERNAL_SERVER_ERROR, &err.message);
        }
    };
    let rows = answer["jobs"].as_array().cloned().unwrap_or_default();
    let total = answer["total"].as_u64().unwrap_or(0);
    let pages = u32::try_from(total.div_ceil(listing::PAGE_SIZE as u64).max(1)).unwrap_or(u32::MAX);
    let at = now();
    let in_progress: u64 = answer["status_counts"]
        .as_object()
        .map(|counts| {
            counts
                .iter()
                .filter(|(status, _)| {
                    status
                        .parse::<ManagedJobStatus>()
                        .is_ok_and(|s| !s.is_terminal())
                })
                .filter_map(|(_, n)| n.as_u64())
                .sum()
        })
        .unwrap_or(0);
    let body = html! {
        h1 { "Managed jobs" }
        form.filters method="get" action="jobs" {
            input type="search" name="q" value=(query.q.as_str()) placeholder="job name";
            button type="submit" { "Filter" }
            span.muted { (total) " jobs, " (in_progress) " tasks in progress" }
        }
        table #managed-jobs data-live="live/jobs" {
            thead { tr {
                th { "ID" } th { "Task" } th { "Name" } th { "User" } th { "Submitted" }
                th { "Duration" } th { "Recoveries" } th { "Status" } th { "Infra" } th { "" }
            } }
            tbody {
                @for row in &rows {
                    @let status = row["status"].as_str().unwrap_or("-");
                    @let job_id = row["job_id"].as_u64().unwrap_or(0);
                    tr data-job=(job_id) {
                        td.num { a href=(format!("jobs/{job_id}")) { (job_id) } }
                        td { (row["task_name"].as_str().unwrap_or("-")) }
                        td { (row["job_name"].as_str().unwrap_or("-")) }
                        td { (row["user_name"].as_str().unwrap_or("-")) }
                        td { (ago(row["submitted_at"].as_f64(), at)) }
                        td.num { (duration(row["job_duration"].as_f64())) }
                        td.num { (row["recovery_count"].as_i64().unwrap_or(0)) }
                        td {
                            span class=(format!("status {}", status_class(status))) { (status) }
                            @if let Some(reason) = row["failure_reason"].as_str() { div.error { (reason) } }
                        }
                        td { (row["infra"].as_str().unwrap_or("-")) }
                        td {
                            @if !status.parse::<ManagedJobStatus>().is_ok_and(ManagedJobStatus::is_terminal) && row["task_id"] == 0 {
                                (action_button(&viewer, &format!("jobs/{job_id}/cancel"), "Cancel", &format!("Cancel managed job {job_id}? Its cluster is torn down.")))
                            }
                        }
                    }
                }
                @if rows.is_empty() { tr { td colspan="10" .muted { "No managed jobs." } } }
            }
        }
        (listing::pager("jobs", &[("q", query.q.as_str())], query.page.get().min(pages), pages))
    };
    layout::page(&viewer, 0, "jobs", "Managed jobs", body)
}

fn duration(seconds: Option<f64>) -> String {
    let Some(seconds) = seconds.filter(|s| *s > 0.0) else {
        return "-".to_owned();
    };
    let seconds = seconds as u64;
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m {}s", seconds / 60, seconds % 60),
        _ => format!("{}h {}m", seconds / 3600, seconds % 3600 / 60),
    }
}

pub async fn cancel(
    viewer: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return layout::error_page(
            &viewer,
            2,
            StatusCode::NOT_FOUND,
            "A managed job's id is a number.",
        );
    };
    let body = JobsCancelBody {
        job_ids: Some(vec![id]),
        ..JobsCancelBody::default()
    };
    let what = format!("jobs cancel {id}");
    actions::submit(&viewer, &headers, &form, &what, Op::JobsCancel, &body, None).await
}

/// A managed job's id from the address.
fn job_id(id: &str) -> Option<u64> {
    id.parse::<u64>().ok().filter(|id| *id > 0)
}

/// One managed job: its tasks with their attempts and recoveries, the
/// controller's log (what was launched where, each loss and recovery,
/// each restart) and the job's own log, both followed live.
pub async fn detail(viewer: Viewer, Path(id): Path<String>) -> Response {
    const DEPTH: usize = 1;
    let not_found = |viewer: &Viewer| {
        layout::error_page(
            viewer,
            DEPTH,
            StatusCode::NOT_FOUND,
            &format!("No managed job {id:?} that you can see."),
        )
    };
    let Some(job_id) = job_id(&id) else {
        return not_found(&viewer);
    };
    let body = json!({ "all_users": true, "job_ids": [job_id] });
    let tasks = match viewer.read(Op::JobsQueue, body).await {
        Ok(answer) => answer["jobs"].as_array().cloned().unwrap_or_default(),
        Err(err) => {
            return layout::error_page(
                &viewer,
                DEPTH,
                StatusCode::INTERNAL_SERVER_ERROR,
                &err.message,
            );
        }
    };
    let Some(first) = tasks.first() else {
        return not_found(&viewer);
    };
    let at = now();
    let text = |key: &str| {
        first[key]
            .as_str()
            .filter(|text| !text.is_empty())
            .unwrap_or("-")
            .to_owned()
    };
    let unfinished = tasks.iter().any(|task| {
        !task["status"]
            .as_str()
            .and_then(|s| s.parse::<ManagedJobStatus>().ok())
            .is_some_and(ManagedJobStatus::is_terminal)
    });
    let recoveries: i64 = tasks
        .iter()
        .filter_map(|task| task["recovery_count"].as_i64())
        .sum();
    let body = html! {
        h1 { "Managed job " (job_id) ": " (text("job_name")) }
        dl.facts {
            dt { "User" } dd { (text("user_name")) }
            dt { "Workspace" } dd { (text("workspace")) }
            dt { "Submitted" } dd { (ago(first["submitted_at"].as_f64(), at)) }
            dt { "Command" } dd { code { (text("entrypoint")) } }
            dt { "Recoveries" } dd #recoveries { (recoveries) }
        }
        @if unfinished {
            p { (action_button(&viewer, &format!("jobs/{job_id}/cancel"), "Cancel", &format!("Cancel managed job {job_id}? Its cluster is torn down."))) }
        }
        h2 { "Tasks" }
        table #tasks {
            thead { tr {
                th { "Task" } th { "Name" } th { "Status" } th { "Infra" } th { "Cluster" }
                th { "Started" } th { "Duration" } th { "Recoveries" }
            } }
            tbody {
                @for task in &tasks {
                    @let status = task["status"].as_str().unwrap_or("-");
                    tr {
                        td.num { (task["task_id"].as_u64().unwrap_or(0)) }
                        td { (task["task_name"].as_str().unwrap_or("-")) }
                        td {
                            span class=(format!("status {}", status_class(status))) { (status) }
                            @if let Some(reason) = task["failure_reason"].as_str() { div.error { (reason) } }
                        }
                        td { (task["infra"].as_str().unwrap_or("-")) }
                        td { (task["current_cluster_name"].as_str().unwrap_or("-")) }
                        td { (ago(task["start_at"].as_f64(), at)) }
                        td.num { (duration(task["job_duration"].as_f64())) }
                        td.num { (task["recovery_count"].as_i64().unwrap_or(0)) }
                    }
                }
            }
        }
        h2 { "History" }
        p.muted { "The controller's log: each launch, where it went, every loss and recovery, every restart." }
        pre.log #controller-log data-follow=(format!("jobs/{job_id}/log?controller=true")) {}
        h2 { "Log" }
        pre.log #log data-follow=(format!("jobs/{job_id}/log")) {}
    };
    layout::page(
        &viewer,
        DEPTH,
        "jobs",
        &format!("Managed job {job_id}"),
        body,
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LogQuery {
    controller: bool,
}

/// A managed job's log (or its controller's) as it is written: the same
/// live request as `sky jobs logs [--controller]`, ownership checked when
/// it is accepted.
pub async fn log(
    viewer: Viewer,
    Path(id): Path<String>,
    Query(query): Query<LogQuery>,
) -> Response {
    let Some(job_id) = job_id(&id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let body = JobsLogsBody {
        job_id: Some(job_id),
        follow: true,
        controller: query.controller,
        ..JobsLogsBody::default()
    };
    let what = format!(
        "jobs logs {}{job_id}",
        if query.controller {
            "--controller "
        } else {
            ""
        }
    );
    match actions::stream(&viewer, &what, Op::JobsLogs, &body, None).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}
