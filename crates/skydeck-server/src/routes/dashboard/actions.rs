//! Dashboard actions: a form post becomes an ordinary request, accepted
//! through the same `accept` as the API's (ownership, roles, workspace),
//! and the browser is sent to the requests page to watch it.

use super::super::schedule::accept;
use super::csrf::{self, Refused};
use super::{Viewer, layout, redirect};
use crate::client_tool::Requester;
use crate::ops::Op;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use skydeck_types::ClientTool;
use skydeck_types::bodies::BaseBody;
use skydeck_types::names::ClusterName;

/// The request's command line, as the requests list shows it.
fn from_dashboard(what: &str) -> BaseBody {
    BaseBody {
        entrypoint_command: format!("dashboard: {what}"),
        ..BaseBody::default()
    }
}

/// What every action form sends.
#[derive(Debug, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    pub csrf: String,
}

/// Every action is posted to `<root>/<section>/<object>/<verb>`: two
/// levels below the page it came from.
const ACTION_DEPTH: usize = 2;

/// Checks the form, stores the request and answers with a redirect to it;
/// or a page saying why not.
pub async fn submit<B: Serialize>(
    viewer: &Viewer,
    headers: &HeaderMap,
    form: &ActionForm,
    what: &str,
    op: Op,
    body: &B,
    cluster: Option<ClusterName>,
) -> Response {
    if let Some(refused) = refusal(viewer, headers, form) {
        return refused;
    }
    let requester = Requester {
        caller: viewer.caller.clone(),
        tool: ClientTool::Skydeck,
    };
    let id = super::super::schedule::new_request_id();
    match accept(
        &viewer.state,
        &requester,
        id,
        op,
        &from_dashboard(what),
        body,
        cluster,
    )
    .await
    {
        Ok(id) => redirect(&format!(
            "{}requests?submitted={id}",
            "../".repeat(ACTION_DEPTH)
        )),
        Err(err) => layout::error_page(viewer, ACTION_DEPTH, err.status, &err.message()),
    }
}

/// Why the form may not act, as a page: it must come from our own origin
/// with this viewer's token. `None` when it may.
pub fn refusal(viewer: &Viewer, headers: &HeaderMap, form: &ActionForm) -> Option<Response> {
    csrf::check(
        headers,
        &viewer.state.dashboard_secret,
        &viewer.user_id,
        &form.csrf,
    )
    .map_err(|refused| {
        let message = match refused {
            Refused::CrossSite => "This form was sent from another site; nothing was done.",
            Refused::BadToken => {
                "This form is out of date (the server restarted, or it was made for another \
                 user); reload the page and try again."
            }
        };
        layout::error_page(viewer, ACTION_DEPTH, StatusCode::FORBIDDEN, message)
    })
    .err()
}

/// Accepts a request whose output the page reads as it comes (a followed
/// log) and answers with that stream, as the API's `/logs` does.
pub async fn stream<B: Serialize>(
    viewer: &Viewer,
    what: &str,
    op: Op,
    body: &B,
    cluster: Option<ClusterName>,
) -> Result<Response, crate::error::ApiError> {
    let requester = Requester {
        caller: viewer.caller.clone(),
        tool: ClientTool::Skydeck,
    };
    let id = super::super::schedule::new_request_id();
    let id = accept(
        &viewer.state,
        &requester,
        id,
        op,
        &from_dashboard(what),
        body,
        cluster,
    )
    .await?;
    super::super::stream::stream_response(&viewer.state, id, None, true, None)
}
