//! Clusters: the list (filtered, sorted and paged on the server), one
//! cluster with its jobs, and stop, start and tear down.

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
use serde_json::{Value, json};
use skydeck_types::bodies::{LogsBody, StartBody, StopOrDownBody};
use skydeck_types::names::ClusterName;

/// How the list is sorted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortBy {
    /// Newest first.
    #[default]
    Launched,
    Name,
    Status,
    User,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ListQuery {
    /// Part of the name, user, workspace or infrastructure.
    q: listing::Filter,
    status: Option<String>,
    sort: SortBy,
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
            "The filters in the address are not valid: `q` is text up to 128 characters, `sort` \
             one of launched, name, status, user, `page` a number from 1.",
        );
    };
    let clusters = match viewer.read(Op::Status, json!({ "all_users": true })).await {
        Ok(Value::Array(rows)) => rows,
        Ok(_) => Vec::new(),
        Err(err) => {
            return layout::error_page(&viewer, 0, StatusCode::INTERNAL_SERVER_ERROR, &err.message);
        }
    };
    let text = |row: &Value, key: &str| row[key].as_str().unwrap_or_default().to_owned();
    let mut shown: Vec<&Value> = clusters
        .iter()
        .filter(|row| {
            query.q.matches(&[
                &text(row, "name"),
                &text(row, "user_name"),
                &text(row, "workspace"),
                &text(row, "infra"),
            ])
        })
        .filter(|row| {
            query
                .status
                .as_deref()
                .filter(|s| !s.is_empty())
                .is_none_or(|wanted| shown_status(row) == wanted)
        })
        .collect();
    match query.sort {
        SortBy::Launched => shown.sort_by(|a, b| {
            b["launched_at"]
                .as_f64()
                .unwrap_or(0.0)
                .total_cmp(&a["launched_at"].as_f64().unwrap_or(0.0))
        }),
        SortBy::Name => shown.sort_by_key(|row| text(row, "name")),
        SortBy::Status => shown.sort_by_key(|row| shown_status(row)),
        SortBy::User => shown.sort_by_key(|row| text(row, "user_name")),
    }
    let total = shown.len();
    let page = listing::page(&shown, query.page);
    let at = now();
    let body = html! {
        h1 { "Clusters" }
        form.filters method="get" action="clusters" {
            input type="search" name="q" value=(query.q.as_str()) placeholder="name, user, workspace or infra";
            select name="status" {
                option value="" { "any status" }
                @for status in ["UP", "INIT", "UNHEALTHY", "STOPPED"] {
                    option value=(status) selected[query.status.as_deref() == Some(status)] { (status) }
                }
            }
            button type="submit" { "Filter" }
            span.muted { (total) " of " (clusters.len()) " clusters" }
        }
        table #clusters data-live="live/clusters" {
            thead { tr {
                th { a href=(sort_link(&query, SortBy::Name)) { "Name" } }
                th { a href=(sort_link(&query, SortBy::Status)) { "Status" } }
                th { "Infra" }
                th { "Resources" }
                th { a href=(sort_link(&query, SortBy::User)) { "User" } }
                th { "Workspace" }
                th { "Autostop" }
                th { a href=(sort_link(&query, SortBy::Launched)) { "Launched" } }
                th { "" }
            } }
            tbody {
                @for row in page.items {
                    @let name = text(row, "name");
                    @let status = shown_status(row);
                    tr data-cluster=(name) {
                        td { a href=(format!("clusters/{}", listing::path_segment(&name))) { (name) } }
                        td { span class=(format!("status {}", status_class(&status))) { (status) } }
                        td { (text(row, "infra")) }
                        td { (text(row, "resources_str")) }
                        td { (text(row, "user_name")) }
                        td { (text(row, "workspace")) }
                        td { (autostop(row)) }
                        td { (ago(row["launched_at"].as_f64(), at)) }
                        td { (buttons(&viewer, &name, &status)) }
                    }
                }
                @if page.items.is_empty() {
                    tr { td colspan="9" .muted { "No clusters" @if !query.q.is_empty() { " match" } "." } }
                }
            }
        }
        (listing::pager(
            "clusters",
            &[
                ("q", query.q.as_str()),
                ("status", query.status.as_deref().unwrap_or_default()),
                ("sort", query.sort.as_str()),
            ],
            page.number,
            page.pages,
        ))
    };
    layout::page(&viewer, 0, "clusters", "Clusters", body)
}

/// The status as SkyPilot's dashboard shows it: an INIT cluster that a
/// health check found broken is UNHEALTHY.
fn shown_status(row: &Value) -> String {
    if row["init_kind"] == "unhealthy" {
        return "UNHEALTHY".to_owned();
    }
    row["status"].as_str().unwrap_or("-").to_owned()
}

fn autostop(row: &Value) -> String {
    match row["autostop"].as_i64() {
        Some(minutes) if minutes >= 0 => {
            let down = if row["to_down"].as_bool() == Some(true) {
                " (down)"
            } else {
                ""
            };
            format!("{minutes} min{down}")
        }
        _ => "-".to_owned(),
    }
}

impl SortBy {
    fn as_str(self) -> &'static str {
        match self {
            SortBy::Launched => "launched",
            SortBy::Name => "name",
            SortBy::Status => "status",
            SortBy::User => "user",
        }
    }
}

/// The list sorted by `sort`, its filters kept.
fn sort_link(query: &ListQuery, sort: SortBy) -> String {
    let mut link = format!("clusters?sort={}", sort.as_str());
    for (name, value) in [
        ("q", query.q.as_str()),
        ("status", query.status.as_deref().unwrap_or_default()),
    ] {
        if !value.is_empty() {
            link.push_str(&format!("&{name}={}", listing::query_escape(value)));
        }
    }
    link
}

/// The actions a cluster in `status` allows.
fn buttons(viewer: &Viewer, name: &str, status: &str) -> maud::Markup {
    let segment = listing::path_segment(name);
    html! {
        @if status == "UP" {
            (action_button(viewer, &format!("clusters/{segment}/stop"), "Stop", &format!("Stop cluster {name}?")))
        }
        @if status == "STOPPED" {
            (action_button(viewer, &format!("clusters/{segment}/start"), "Start", &format!("Start cluster {name}?")))
        }
        (action_button(viewer, &format!("clusters/{segment}/down"), "Tear down", &format!("Tear down cluster {name}? Everything on it is lost.")))
    }
}

pub async fn detail(viewer: Viewer, Path(name): Path<String>) -> Response {
    let Ok(cluster) = ClusterName::new(name.clone()) else {
        return layout::error_page(
            &viewer,
            1,
            StatusCode::NOT_FOUND,
            &format!("No cluster named {name:?}."),
        );
    };
    // Status answers only with clusters this viewer may see.
    let rows = match viewer
        .read(
            Op::Status,
            json!({ "cluster_names": [cluster.as_str()], "all_users": true }),
        )
        .await
    {
        Ok(Value::Array(rows)) => rows,
        Ok(_) => Vec::new(),
        Err(err) => {
            return layout::error_page(&viewer, 1, StatusCode::INTERNAL_SERVER_ERROR, &err.message);
        }
    };
    let Some(row) = rows.into_iter().find(|row| row["name"] == cluster.as_str()) else {
        return layout::error_page(
            &viewer,
            1,
            StatusCode::NOT_FOUND,
            &format!("No cluster named {:?} that you can see.", cluster.as_str()),
        );
    };
    let status = shown_status(&row);
    let jobs = if row["status"] == "UP" {
        viewer
            .read(
                Op::Queue,
                json!({ "cluster_name": cluster.as_str(), "all_users": true }),
            )
            .await
    } else {
        Ok(Value::Array(Vec::new()))
    };
    let at = now();
    let text = |key: &str| row[key].as_str().unwrap_or("-").to_owned();
    let body = html! {
        h1 { "Cluster " (cluster.as_str()) }
        p { (buttons(&viewer, cluster.as_str(), &status)) }
        dl.facts {
            dt { "Status" } dd { span class=(format!("status {}", status_class(&status))) { (status) } }
            @if let Some(reason) = row["init_status_reason"].as_str() { dt { "Why" } dd.error { (reason) } }
            dt { "Infra" } dd { (text("infra")) }
            dt { "Resources" } dd { (text("resources_str_full")) }
            dt { "Nodes" } dd { (row["nodes"].as_i64().unwrap_or(0)) }
            dt { "User" } dd { (text("user_name")) }
            dt { "Workspace" } dd { (text("workspace")) }
            dt { "Autostop" } dd { (autostop(&row)) }
            dt { "Launched" } dd { (ago(row["launched_at"].as_f64(), at)) }
            @if let Some(command) = row["last_use"].as_str().filter(|c| !c.is_empty()) {
                dt { "Last command" } dd { code { (command) } }
            }
        }
        h2 { "Jobs" }
        @match &jobs {
            Ok(Value::Array(jobs)) => {
                table #jobs {
                    thead { tr { th { "ID" } th { "Name" } th { "User" } th { "Submitted" } th { "Status" } th { "Resources" } } }
                    tbody {
                        @for job in jobs {
                            @let job_status = job["status"].as_str().unwrap_or("-");
                            tr data-job=(job["job_id"]) {
                                td.num { a href=(format!("clusters/{}/jobs/{}", listing::path_segment(cluster.as_str()), job["job_id"])) { (job["job_id"]) } }
                                td { (job["job_name"].as_str().unwrap_or("-")) }
                                td { (job["username"].as_str().unwrap_or("-")) }
                                td { (ago(job["submitted_at"].as_f64(), at)) }
                                td { span class=(format!("status {}", status_class(job_status))) { (job_status) } }
                                td { (job["resources"].as_str().unwrap_or("-")) }
                            }
                        }
                        @if jobs.is_empty() { tr { td colspan="6" .muted { "No jobs." } } }
                    }
                }
            }
            Ok(_) => {}
            Err(err) => { p.error { "Cannot read the cluster's jobs: " (err.message) } }
        }
    };
    layout::page(&viewer, 1, "clusters", cluster.as_str(), body)
}

/// Whether `status` shows `cluster` to this viewer.
async fn visible(viewer: &Viewer, cluster: &ClusterName) -> bool {
    matches!(
        viewer
            .read(Op::Status, json!({ "cluster_names": [cluster.as_str()], "all_users": true }))
            .await,
        Ok(Value::Array(rows)) if rows.iter().any(|row| row["name"] == cluster.as_str())
    )
}

/// What the buttons post to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Stop,
    Start,
    Down,
}

pub async fn act(
    viewer: Viewer,
    Path((name, action)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    let action = match action.as_str() {
        "stop" => Action::Stop,
        "start" => Action::Start,
        "down" => Action::Down,
        _ => {
            return layout::error_page(
                &viewer,
                2,
                StatusCode::NOT_FOUND,
                "No such action: a cluster can be stopped, started or torn down.",
            );
        }
    };
    let Ok(cluster) = ClusterName::new(name.clone()) else {
        return layout::error_page(
            &viewer,
            2,
            StatusCode::NOT_FOUND,
            &format!("No cluster named {name:?}."),
        );
    };
    let stop_or_down = StopOrDownBody {
        base: Default::default(),
        cluster_name: cluster.clone(),
        purge: false,
        graceful: false,
        graceful_timeout: None,
    };
    let (op, verb) = match action {
        Action::Stop => (Op::Stop, "stop"),
        Action::Down => (Op::Down, "down"),
        Action::Start => (Op::Start, "start"),
    };
    let what = format!("{verb} {}", cluster.as_str());
    if action == Action::Start {
        let body = StartBody::new(cluster.clone());
        return actions::submit(&viewer, &headers, &form, &what, op, &body, Some(cluster)).await;
    }
    actions::submit(
        &viewer,
        &headers,
        &form,
        &what,
        op,
        &stop_or_down,
        Some(cluster),
    )
    .await
}

/// One job of a cluster: its log, followed live while it runs.
pub async fn job(viewer: Viewer, Path((name, job)): Path<(String, String)>) -> Response {
    const DEPTH: usize = 3;
    let (Ok(cluster), Ok(job)) = (ClusterName::new(name.clone()), job.parse::<u64>()) else {
        return layout::error_page(&viewer, DEPTH, StatusCode::NOT_FOUND, "No such job.");
    };
    // Only a cluster this viewer may see has a job page.
    if !visible(&viewer, &cluster).await {
        return layout::error_page(
            &viewer,
            DEPTH,
            StatusCode::NOT_FOUND,
            &format!("No cluster named {:?} that you can see.", cluster.as_str()),
        );
    }
    let segment = listing::path_segment(cluster.as_str());
    let body = html! {
        h1 { "Job " (job) " on " a href=(format!("clusters/{segment}")) { (cluster.as_str()) } }
        pre.log #log data-follow=(format!("clusters/{segment}/jobs/{job}/log")) {}
    };
    layout::page(
        &viewer,
        DEPTH,
        "clusters",
        &format!("Job {job} on {}", cluster.as_str()),
        body,
    )
}

/// The job's log as it is written: the same live request as `sky logs`
/// makes (ownership checked when it is accepted), ended when the page
/// goes away.
pub async fn job_log(viewer: Viewer, Path((name, job)): Path<(String, String)>) -> Response {
    let (Ok(cluster), Ok(job)) = (ClusterName::new(name), job.parse::<u64>()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut body = LogsBody::new(cluster.clone());
    body.job_id = Some(job);
    body.follow = true;
    let what = format!("logs {} {job}", cluster.as_str());
    match actions::stream(&viewer, &what, Op::Logs, &body, Some(cluster)).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}
