//! Who is looking at a page, and what they may read.

use super::super::SharedState;
use super::csrf;
use crate::auth::Caller;
use crate::ops::{Op, RequestContext};
use crate::request_log::RequestLog;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use skydeck_types::RequestError;
use std::sync::Arc;

/// The caller of a dashboard page, as the auth layer proved it.
#[derive(Clone)]
pub struct Viewer {
    pub state: SharedState,
    pub caller: Caller,
    /// Who actions are taken for: the proven user, or the server's local
    /// user when auth is off (as for a client that names nobody).
    pub user_id: String,
    pub user_name: String,
    /// Sees and acts on everyone's clusters, jobs and requests.
    pub admin: bool,
}

impl FromRequestParts<SharedState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let State(state) = State::<SharedState>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let caller = parts
            .extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or(Caller::Anonymous);
        let (user_id, user_name) = match caller.user() {
            Some(user) => (user.id.clone(), user.name.clone()),
            None => (state.local_user.id.clone(), state.local_user.name.clone()),
        };
        Ok(Self {
            admin: caller.sees_all(),
            state,
            caller,
            user_id,
            user_name,
        })
    }
}

impl Viewer {
    /// The token this viewer's forms carry.
    pub fn csrf_token(&self) -> String {
        csrf::token(&self.state.dashboard_secret, &self.user_id)
    }

    /// Runs a read-only operation for a page, as this viewer, without
    /// recording a request: the same code and checks as the API's answer.
    pub async fn read(&self, op: Op, body: Value) -> Result<Value, RequestError> {
        // `queue` and `kubernetes_node_info` ask a cluster or an API
        // server, and change nothing either.
        assert!(
            op.answers_at_once_for(&body) || matches!(op, Op::Queue | Op::KubeNodeInfo),
            "the dashboard reads only operations that change nothing"
        );
        let log = Arc::new(RequestLog::discarding(
            self.state.executor.signals().clone(),
        ));
        let workspace = self.state.live_config.get().active_workspace().to_owned();
        let ctx: RequestContext =
            self.state
                .executor
                .context("dashboard", &self.user_id, &workspace, log);
        crate::ops::execute(op, &ctx, body).await
    }
}
