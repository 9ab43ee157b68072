//! `/download`: the zip of job-log folders `/download_logs` prepared (see
//! `crate::downloads`).

use super::SharedState;
use crate::auth::Caller;
use crate::downloads::{DownloadError, Downloads};
use crate::error::ApiError;
use crate::extract::ApiJson;
use axum::extract::{Extension, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use skydeck_types::bodies::DownloadBody;

pub async fn download(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<DownloadBody>,
) -> Result<Response, ApiError> {
    // A proven user reads only their own folder, whatever the body says.
    let user = match caller.user() {
        Some(user) => user.id.as_str(),
        None => body.base.user_id().unwrap_or(&state.local_user.id),
    };
    let downloads = &state.infra.downloads;
    let folders = body
        .folder_paths
        .iter()
        .map(|path| downloads.resolve(user, path))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| match err {
            DownloadError::Invalid(_) => ApiError::bad_request(err.to_string()),
            DownloadError::NotFound(_) => ApiError::not_found(err.to_string()),
        })?;
    let zip = tokio::task::spawn_blocking(move || Downloads::zip(&folders))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let home =
        HeaderValue::from_str(&downloads.home().to_string_lossy()).map_err(ApiError::internal)?;
    let mut response = zip.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"logs.zip\""),
    );
    // The client turns the server's paths in the zip back into its own.
    headers.insert("X-Home-Path", home);
    Ok(response)
}
