//! Reading requests: `/api/get` (wait for the result) and `/api/status`.

use super::SharedState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::executor::WaitResult;
use crate::extract::ApiQuery;
use crate::skypilot;
use axum::Json;
use axum::extract::{Extension, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use skydeck_store::RequestFilter;
use skydeck_types::RequestStatus;
use skydeck_types::limits::limit_error;
use skydeck_types::names::RequestIdPrefix;

/// What a request id or prefix that matches nothing the caller may see
/// answers: the same whether it matches nothing at all or only another
/// user's requests, so ids cannot be probed.
fn no_such_request(prefix: &str) -> ApiError {
    ApiError::not_found(format!("Request {prefix:?} not found"))
}

/// Parses a request id or prefix from a client: 400 stating the rule.
pub fn parse_prefix(prefix: &str) -> Result<RequestIdPrefix, ApiError> {
    RequestIdPrefix::new(prefix).map_err(|err| ApiError::bad_request(err.to_string()))
}

/// Expands a request id prefix among the requests `scope` may see (all when
/// `None`): 404 for none, 400 when it is ambiguous. The scope is applied in
/// the store's query, so another user's ids never leave it.
pub async fn resolve_id(
    state: &SharedState,
    prefix: &str,
    scope: Option<&str>,
) -> Result<String, ApiError> {
    let prefix = parse_prefix(prefix)?;
    // Clients nearly always send whole ids: a primary-key lookup answers
    // those without the prefix scan. A whole id also wins over longer ids
    // it happens to prefix, as in SkyPilot.
    if let Some(record) = state.store.get_request(&prefix).await?
        && scope.is_none_or(|user| user == record.user_id)
    {
        return Ok(record.id);
    }
    let ids = state
        .store
        .request_ids_with_prefix(&prefix, scope, 2)
        .await?;
    match ids.as_slice() {
        [] => Err(no_such_request(&prefix)),
        [only] => Ok(only.clone()),
        _ if ids.iter().any(|id| *id == *prefix) => Ok(prefix.into_string()),
        _ => Err(ApiError::bad_request(format!(
            "Multiple requests found for request ID prefix: {prefix}"
        ))),
    }
}

/// [`resolve_id`] among the requests the caller may read: theirs, or all
/// for an admin. Another user's request is "not found", as if it did not
/// exist.
pub async fn resolve_owned_id(
    state: &SharedState,
    caller: &Caller,
    prefix: &str,
) -> Result<String, ApiError> {
    resolve_id(state, prefix, read_scope(caller)).await
}

/// The user whose requests the caller may read; `None`: everyone's.
fn read_scope(caller: &Caller) -> Option<&str> {
    if caller.sees_all() {
        return None;
    }
    // A caller who is no user (anonymous) gets a scope nobody matches.
    Some(caller.user().map_or("", |user| user.id.as_str()))
}

#[derive(Debug, Deserialize)]
pub struct GetQuery {
    request_id: String,
}

/// Blocks until the request has finished, then returns it: 200, or 500 with
/// the payload as `detail` when it failed (the client raises its error).
pub async fn api_get(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(query): ApiQuery<GetQuery>,
) -> Result<Response, ApiError> {
    // Clients send whole ids, so an admin's wait starts on the id as given
    // and resolves it as a prefix only when it is not found. Anyone else's
    // is resolved among their own requests first.
    let scope = read_scope(&caller);
    // Dropped with this handler when the client's connection closes, which
    // ends the wait.
    let _waiting = state.metrics.client_wait("get");
    let id = match scope {
        Some(_) => resolve_id(&state, &query.request_id, scope).await?,
        None => parse_prefix(&query.request_id)?.into_string(),
    };
    let mut waited = state.executor.wait_finished(&id, &state.shutdown).await?;
    if matches!(waited, WaitResult::Missing) && scope.is_none() {
        let id = resolve_id(&state, &id, None).await?;
        waited = state.executor.wait_finished(&id, &state.shutdown).await?;
    }
    let record = match waited {
        WaitResult::Finished(record) => record,
        WaitResult::Missing => return Err(no_such_request(&query.request_id)),
        WaitResult::ShuttingDown => {
            return Err(ApiError::unavailable(
                "The API server is restarting; retry shortly.",
            ));
        }
    };
    let user_name = state.user_name(&record.user_id).await;
    let payload = skypilot::request_payload(&record, user_name);
    if record.error.is_some() {
        let detail = serde_json::to_value(&payload).map_err(ApiError::internal)?;
        return Ok((
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({"detail": detail})),
        )
            .into_response());
    }
    Ok(Json(payload).into_response())
}

/// `/api/status`: list parameters repeat (`fields=a&fields=b`), which is why
/// the query is parsed by hand.
#[derive(Debug, Default)]
struct StatusQuery {
    request_ids: Vec<String>,
    all_status: bool,
    limit: Option<u32>,
    cluster_name: Option<String>,
}

/// Request ids one `/api/status` call may name: each is a query.
const MAX_STATUS_IDS: usize = 100;

fn parse_status_query(raw: &str) -> Result<StatusQuery, ApiError> {
    let mut query = StatusQuery::default();
    let invalid = |name: &str, value: &str, expected: &str| {
        ApiError::validation(
            vec!["query".into(), name.into()],
            format!("Invalid query parameter `{name}`: expected {expected}, got {value:?}"),
            "value_error",
        )
    };
    for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
        match key.as_ref() {
            "request_ids" if query.request_ids.len() == MAX_STATUS_IDS => {
                return Err(ApiError::bad_request(limit_error(format_args!(
                    "`/api/status` takes at most {MAX_STATUS_IDS} request ids at once"
                ))));
            }
            "request_ids" => query.request_ids.push(value.into_owned()),
            "all_status" => {
                query.all_status = match value.to_ascii_lowercase().as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(invalid("all_status", &value, "a boolean")),
                }
            }
            "limit" => {
                query.limit = Some(
                    value
                        .parse()
                        .map_err(|_| invalid("limit", &value, "a whole number"))?,
                )
            }
            "fields" if !skypilot::REQUEST_FIELDS.contains(&value.as_ref()) => {
                return Err(ApiError::bad_request(format!(
                    "Unknown field {value:?}; valid fields: {}",
                    skypilot::REQUEST_FIELDS.join(", ")
                )));
            }
            "cluster_name" => query.cluster_name = Some(value.into_owned()),
            _ => {}
        }
    }
    Ok(query)
}

/// Whose requests `caller` lists: their own; admins (and anyone without
/// auth) everyone's (`None`).
pub(super) fn request_scope(caller: &Caller) -> Option<String> {
    caller
        .user()
        .filter(|_| !caller.sees_all())
        .map(|user| user.id.clone())
}

pub async fn api_status(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = parse_status_query(raw.as_deref().unwrap_or_default())?;
    let scope = request_scope(&caller);
    let records = if query.request_ids.is_empty() {
        let statuses = (!query.all_status).then(|| {
            vec![
                RequestStatus::Pending,
                RequestStatus::Waiting,
                RequestStatus::Running,
            ]
        });
        state
            .store
            .list_requests(&RequestFilter {
                statuses,
                cluster_name: query.cluster_name.clone(),
                limit: query.limit,
                user_id: scope,
                ..Default::default()
            })
            .await?
    } else {
        let mut records = Vec::new();
        for prefix in &query.request_ids {
            let prefix = parse_prefix(prefix)?;
            for id in state
                .store
                .request_ids_with_prefix(&prefix, scope.as_deref(), 100)
                .await?
            {
                if let Some(record) = state.store.get_request(&id).await? {
                    records.push(record);
                }
            }
        }
        records
    };
    let mut payloads = Vec::with_capacity(records.len());
    for record in &records {
        let user_name = state.user_name(&record.user_id).await;
        payloads.push(skypilot::readable_payload(record, user_name, true));
    }
    Ok(Json(payloads).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_query_accepts_repeated_lists_and_python_booleans() {
        let q = parse_status_query(
            "all_status=True&limit=50&fields=request_id&fields=name&request_ids=ab&request_ids=cd",
        )
        .unwrap();
        assert!(q.all_status);
        assert_eq!(q.limit, Some(50));
        assert_eq!(q.request_ids, ["ab", "cd"]);
    }

    #[test]
    fn too_many_request_ids_are_refused_naming_the_limit() {
        let many = vec!["request_ids=ab"; MAX_STATUS_IDS + 1].join("&");
        let err = parse_status_query(&many).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(parse_status_query(&many[15..]).is_ok());
    }

    #[test]
    fn unknown_fields_and_bad_numbers_are_refused() {
        assert_eq!(
            parse_status_query("fields=password").unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            parse_status_query("limit=lots").unwrap_err().status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
}
