//! `/upload_v2`: the workdir and file mounts of a task, as one zip sent in
//! chunks before `/launch` or `/exec` (see `crate::uploads`).

use super::SharedState;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::uploads::{Progress, UploadError, valid_blob_id};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

/// The client sends at most this many chunks of 95 MB.
const MAX_CHUNKS: usize = 1000;

#[derive(Debug, Deserialize)]
pub struct BlobQuery {
    blob_id: String,
}

pub async fn blob_exists(
    State(state): State<SharedState>,
    ApiQuery(query): ApiQuery<BlobQuery>,
) -> Result<Json<Value>, ApiError> {
    if !valid_blob_id(&query.blob_id) {
        return Err(invalid_id(&query.blob_id));
    }
    Ok(Json(
        json!({"exists": state.uploads.exists(&query.blob_id)}),
    ))
}

#[derive(Debug, Deserialize)]
pub struct UploadQuery {
    upload_id: String,
    #[serde(default)]
    chunk_index: usize,
    #[serde(default = "one")]
    total_chunks: usize,
}

fn one() -> usize {
    1
}

fn invalid_id(id: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid upload id {id:?}: expected the 64 hex digits of a SHA-256"
    ))
}

fn upload_error(err: UploadError) -> ApiError {
    match err {
        UploadError::Invalid(message) => ApiError::bad_request(message),
        too_large @ UploadError::TooLarge { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, too_large.to_string())
        }
        UploadError::Io(err) => ApiError::internal(err),
    }
}

pub async fn upload(
    State(state): State<SharedState>,
    ApiQuery(query): ApiQuery<UploadQuery>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    if !valid_blob_id(&query.upload_id) {
        return Err(invalid_id(&query.upload_id));
    }
    if query.total_chunks == 0
        || query.total_chunks > MAX_CHUNKS
        || query.chunk_index >= query.total_chunks
    {
        return Err(ApiError::bad_request(format!(
            "Invalid chunk {} of {}: expected 0 <= chunk_index < total_chunks <= {MAX_CHUNKS}",
            query.chunk_index, query.total_chunks
        )));
    }
    let uploads = &state.uploads;
    if !uploads.exists(&query.upload_id) {
        let path = uploads
            .chunk_path(&query.upload_id, query.chunk_index)
            .map_err(ApiError::internal)?;
        receive(body, &path, uploads.max_bytes).await?;
    }
    let (uploads, id, total) = (state.clone(), query.upload_id.clone(), query.total_chunks);
    let progress = tokio::task::spawn_blocking(move || uploads.uploads.complete(&id, total))
        .await
        .map_err(ApiError::internal)?
        .map_err(upload_error)?;
    Ok(Json(match progress {
        Progress::Completed => json!({"status": "completed", "missing_chunks": null}),
        Progress::Uploading { missing } => json!({
            "status": "uploading",
            "missing_chunks": missing.iter().map(|i| format!("part{i}")).collect::<Vec<_>>(),
        }),
    }))
}

/// Streams a chunk to disk; it only takes its final name once whole, so an
/// interrupted chunk is never mistaken for a received one.
async fn receive(body: Body, path: &std::path::Path, limit: u64) -> Result<(), ApiError> {
    let partial = path.with_extension("partial");
    let mut file = tokio::fs::File::create(&partial)
        .await
        .map_err(ApiError::internal)?;
    let mut stream = body.into_data_stream();
    let mut size: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|err| ApiError::bad_request(format!("the upload was cut off: {err}")))?;
        size += chunk.len() as u64;
        if size > limit {
            drop(file);
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(upload_error(UploadError::TooLarge { limit }));
        }
        file.write_all(&chunk).await.map_err(ApiError::internal)?;
    }
    file.sync_all().await.map_err(ApiError::internal)?;
    tokio::fs::rename(&partial, path)
        .await
        .map_err(ApiError::internal)
}
