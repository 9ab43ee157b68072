//! The caller's command-line tool ([`ClientTool`]) per request: read from
//! its header at the HTTP boundary, kept with a scheduled request (the
//! operation runs later, without the headers), and used to word the
//! request's error in that tool's commands.

use crate::auth::Caller;
use axum::Extension;
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use skydeck_types::ClientTool;
use skydeck_types::client_tool::HEADER_CLIENT;

/// Where a scheduled request's body keeps its caller's tool. Written by
/// the server (over anything the client put there), read by the executor.
const BODY_KEY: &str = "skydeck_client_tool";

/// The caller's tool from its headers.
pub fn of_headers(headers: &HeaderMap) -> ClientTool {
    ClientTool::from_header(headers.get(HEADER_CLIENT).and_then(|v| v.to_str().ok()))
}

/// Who sent a request: the caller the auth layer proved, and the tool
/// they use (no header is `sky`).
pub struct Requester {
    pub caller: Caller,
    pub tool: ClientTool,
}

impl<S: Send + Sync> FromRequestParts<S> for Requester {
    type Rejection = <Extension<Caller> as FromRequestParts<S>>::Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Extension(caller) = Extension::<Caller>::from_request_parts(parts, state).await?;
        Ok(Self {
            caller,
            tool: of_headers(&parts.headers),
        })
    }
}

/// Records `tool` in a request body about to be stored.
pub fn stamp(body: &mut serde_json::Value, tool: ClientTool) {
    if let Some(object) = body.as_object_mut() {
        object.insert(
            BODY_KEY.to_owned(),
            serde_json::to_value(tool).expect("an enum serializes"),
        );
    }
}

/// The tool recorded in a stored body; `sky` for bodies stored before
/// Skydeck recorded it.
pub fn of_body(body: &serde_json::Value) -> ClientTool {
    body.get(BODY_KEY)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_stamped_body_gives_its_tool_back_and_the_clients_claim_is_replaced() {
        let mut body = json!({"cluster_name": "c1", BODY_KEY: "skydeck"});
        stamp(&mut body, ClientTool::Sky);
        assert_eq!(of_body(&body), ClientTool::Sky);
        stamp(&mut body, ClientTool::Skydeck);
        assert_eq!(of_body(&body), ClientTool::Skydeck);
        assert_eq!(of_body(&json!({"cluster_name": "c1"})), ClientTool::Sky);
    }

    #[test]
    fn the_header_decides() {
        let mut headers = HeaderMap::new();
        assert_eq!(of_headers(&headers), ClientTool::Sky);
        headers.insert(HEADER_CLIENT, "skydeck/0.1.0".parse().unwrap());
        assert_eq!(of_headers(&headers), ClientTool::Skydeck);
    }
}
