//! `GET`/`POST /api/config`: the whole server config, for admins. Secrets
//! are shown as `<redacted>`; posting that placeholder back keeps them.

use super::SharedState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::live_config::ReplaceError;
use axum::Json;
use axum::extract::{Extension, State};
use serde::Deserialize;

fn answer(state: &SharedState) -> Json<serde_json::Value> {
    let live = &state.live_config;
    Json(serde_json::json!({
        "config": live.get().redacted_json(),
        "source": live.source().as_str(),
        "version": live.version(),
    }))
}

pub async fn get(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require_admin("read the server config")?;
    Ok(answer(&state))
}

#[derive(Debug, Deserialize)]
pub struct SetBody {
    config: serde_json::Value,
}

pub async fn set(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<SetBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require_admin("change the server config")?;
    let by = caller
        .user()
        .map_or_else(|| state.local_user.name.clone(), |u| u.name.clone());
    match state.live_config.replace(body.config, &by).await {
        Ok(_) => Ok(answer(&state)),
        Err(ReplaceError::Invalid(err)) => {
            Err(ApiError::bad_request(format!("Invalid config: {err}")))
        }
        Err(ReplaceError::Failed(err)) => Err(ApiError::internal(err)),
    }
}
