//! Requests (what `sky api status` lists): newest first, a page at a time,
//! one request's log followed live, and cancel.

use super::actions::{self, ActionForm};
use super::layout::{self, action_button, ago, status_class};
use super::{Viewer, listing};
use crate::executor::now;
use crate::ops::Op;
use axum::Form;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use skydeck_store::RequestFilter;
use skydeck_types::RequestStatus;
use skydeck_types::bodies::ApiCancelBody;
use skydeck_types::names::RequestIdPrefix;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ListQuery {
    /// Finished requests too.
    all: bool,
    /// Part of the name, command, user or cluster.
    q: listing::Filter,
    page: listing::PageNumber,
    /// A request the dashboard just submitted, to point at.
    submitted: Option<RequestIdPrefix>,
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
            "The filters in the address are not valid: `q` is text up to 128 characters, `all` \
             true or false, `page` a number from 1.",
        );
    };
    let statuses = (!query.all).then(|| {
        vec![
            RequestStatus::Pending,
            RequestStatus::Waiting,
            RequestStatus::Running,
        ]
    });
    // Paged, counted and searched in the database: the table may hold
    // every request of the retention period.
    let mut filter = RequestFilter {
        statuses,
        user_id: super::super::requests::request_scope(&viewer.caller),
        text: (!query.q.is_empty()).then(|| query.q.as_str().to_owned()),
        ..Default::default()
    };
    let store = &viewer.state.store;
    let total = match store.count_requests(&filter).await {
        Ok(total) => total,
        Err(err) => {
            return layout::error_page(
                &viewer,
                0,
                StatusCode::SERVICE_UNAVAILABLE,
                &err.to_string(),
            );
        }
    };
    let pages = u32::try_from(total.div_ceil(listing::PAGE_SIZE as u64).max(1)).unwrap_or(u32::MAX);
    let number = query.page.get().min(pages);
    filter.limit = Some(listing::PAGE_SIZE as u32);
    filter.offset = Some((number - 1).saturating_mul(listing::PAGE_SIZE as u32));
    let records = match store.list_requests(&filter).await {
        Ok(records) => records,
        Err(err) => {
            return layout::error_page(
                &viewer,
                0,
                StatusCode::SERVICE_UNAVAILABLE,
                &err.to_string(),
            );
        }
    };
    let mut rows = Vec::with_capacity(records.len());
    for record in records {
        let user = viewer
            .state
            .user_name(&record.user_id)
            .await
            .unwrap_or_else(|| record.user_id.clone());
        rows.push((record, user));
    }
    let at = now();
    let body = html! {
        h1 { "Requests" }
        @if let Some(id) = &query.submitted {
            p.notice {
                "Submitted as request "
                a href=(format!("requests/{}", listing::path_segment(id.as_str()))) { code { (id.as_str()) } }
                "; follow it there."
            }
        }
        form.filters method="get" action="requests" {
            input type="search" name="q" value=(query.q.as_str()) placeholder="name, command, user or cluster";
            label { input type="checkbox" name="all" value="true" checked[query.all]; " finished too" }
            button type="submit" { "Filter" }
            span.muted { (total) " requests" @if !query.all { " in progress" } }
        }
        table #requests data-live="live/requests" {
            thead { tr { th { "ID" } th { "Name" } th { "Command" } th { "User" } th { "Cluster" } th { "Created" } th { "Status" } th { "" } } }
            tbody {
                @for (record, user) in &rows {
                    @let status = record.status.as_str();
                    tr data-request=(record.id) {
                        td { a href=(format!("requests/{}", listing::path_segment(&record.id))) { code { (&record.id[..record.id.len().min(8)]) } } }
                        td { (record.name) }
                        td { code { (record.entrypoint) } }
                        td { (user) }
                        td { (record.cluster_name.as_deref().unwrap_or("-")) }
                        td { (ago(Some(record.created_at), at)) }
                        td { span class=(format!("status {}", status_class(status))) { (status) } }
                        td {
                            @if !record.status.is_finished() {
                                (action_button(&viewer, &format!("requests/{}/cancel", listing::path_segment(&record.id)), "Cancel", &format!("Cancel request {} ({})?", record.id, record.name)))
                            }
                        }
                    }
                }
                @if rows.is_empty() { tr { td colspan="8" .muted { "No requests." } } }
            }
        }
        (listing::pager(
            "requests",
            &[("q", query.q.as_str()), ("all", if query.all { "true" } else { "" })],
            number,
            pages,
        ))
    };
    layout::page(&viewer, 0, "requests", "Requests", body)
}

/// One request: what it is and its log, followed while it runs.
pub async fn detail(viewer: Viewer, Path(id): Path<String>) -> Response {
    let Ok(id) = RequestIdPrefix::new(id) else {
        return layout::error_page(&viewer, 1, StatusCode::NOT_FOUND, "Not a request id.");
    };
    let record = match viewer.state.store.get_request(id.as_str()).await {
        Ok(Some(record)) if viewer.caller.may_act_for(&record.user_id) => record,
        Ok(_) => {
            return layout::error_page(
                &viewer,
                1,
                StatusCode::NOT_FOUND,
                &format!("No request {:?} that you can see.", id.as_str()),
            );
        }
        Err(err) => {
            return layout::error_page(
                &viewer,
                1,
                StatusCode::SERVICE_UNAVAILABLE,
                &err.to_string(),
            );
        }
    };
    let status = record.status.as_str();
    let body = html! {
        h1 { "Request " code { (record.id) } }
        @if !record.status.is_finished() {
            p { (action_button(&viewer, &format!("requests/{}/cancel", listing::path_segment(&record.id)), "Cancel", &format!("Cancel request {} ({})?", record.id, record.name))) }
        }
        dl.facts {
            dt { "Name" } dd { (record.name) }
            dt { "Command" } dd { code { (record.entrypoint) } }
            dt { "Status" } dd { span #request-status class=(format!("status {}", status_class(status))) { (status) } }
            dt { "Cluster" } dd { (record.cluster_name.as_deref().unwrap_or("-")) }
            @if let Some(error) = &record.error { dt { "Error" } dd.error { (error.message) } }
        }
        h2 { "Log" }
        pre.log #log data-follow=(format!("../api/stream?request_id={}&format=plain", listing::query_escape(&record.id))) {}
    };
    layout::page(&viewer, 1, "requests", &record.name, body)
}

pub async fn cancel(
    viewer: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    let Ok(prefix) = RequestIdPrefix::new(id) else {
        return layout::error_page(&viewer, 2, StatusCode::NOT_FOUND, "Not a request id.");
    };
    let what = format!("api cancel {}", prefix.as_str());
    let body = ApiCancelBody {
        request_ids: Some(vec![prefix]),
        ..ApiCancelBody::default()
    };
    actions::submit(&viewer, &headers, &form, &what, Op::ApiCancel, &body, None).await
}
