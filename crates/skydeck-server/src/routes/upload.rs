//! `/upload_v2`: the workdir and file mounts of a task, as one zip sent in
//! chunks before `/launch` or `/exec` (see `crate::uploads`). Every blob
//! belongs to the user who uploaded it.

use super::SharedState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::uploads::{Progress, UploadError};
use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use skydeck_types::names::{BlobId, UserId};
use tokio::io::AsyncWriteExt;

/// The client sends at most this many chunks of 95 MB.
const MAX_CHUNKS: usize = 1000;

#[derive(Debug, Deserialize)]
pub struct BlobQuery {
    blob_id: String,
    #[serde(default)]
    user_hash: String,
}

/// Whose blobs a call reads or writes: the proven caller, else (auth off)
/// the user the client names, else the server's local user.
fn uploader(state: &SharedState, caller: &Caller, user_hash: &str) -> Result<UserId, ApiError> {
    match caller {
        Caller::User(user) => return UserId::new(user.id.as_str()).map_err(ApiError::internal),
        // The auth layer turns strangers away first; never let one name a
        // user's scope.
        Caller::Anonymous => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "Log in to upload files (`sky api login`).",
            ));
        }
        Caller::Trusted => {}
    }
    let named = if user_hash.is_empty() {
        state.local_user.id.as_str()
    } else {
        user_hash
    };
    UserId::new(named).map_err(|err| ApiError::bad_request(format!("Invalid `user_hash`: {err}")))
}

fn blob_id(field: &str, value: &str) -> Result<BlobId, ApiError> {
    BlobId::new(value).map_err(|err| ApiError::bad_request(format!("Invalid `{field}`: {err}")))
}

pub async fn blob_exists(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(query): ApiQuery<BlobQuery>,
) -> Result<Json<Value>, ApiError> {
    let id = blob_id("blob_id", &query.blob_id)?;
    let user = uploader(&state, &caller, &query.user_hash)?;
    Ok(Json(json!({"exists": state.uploads.exists(&user, &id)})))
}

#[derive(Debug, Deserialize)]
pub struct UploadQuery {
    upload_id: String,
    #[serde(default)]
    user_hash: String,
    #[serde(default)]
    chunk_index: usize,
    #[serde(default = "one")]
    total_chunks: usize,
}

fn one() -> usize {
    1
}

fn upload_error(err: UploadError) -> ApiError {
    match err {
        UploadError::Invalid(_) | UploadError::HashMismatch { .. } => {
            ApiError::bad_request(format!("Upload refused: {err}"))
        }
        UploadError::TooLarge { .. } | UploadError::TooManyEntries { .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Upload refused: {err}"),
        ),
        UploadError::Io(err) => ApiError::internal(err),
    }
}

pub async fn upload(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(query): ApiQuery<UploadQuery>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let id = blob_id("upload_id", &query.upload_id)?;
    let user = uploader(&state, &caller, &query.user_hash)?;
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
    if !uploads.exists(&user, &id) {
        let path = uploads
            .chunk_path(&user, &id, query.chunk_index)
            .map_err(ApiError::internal)?;
        // The limit holds for the whole upload, not per chunk: a client
        // may send any number of chunks of any size.
        let room =
            uploads
                .max_bytes()
                .saturating_sub(uploads.stored_bytes(&user, &id, query.chunk_index));
        if let Err(err) = receive(body, &path, room, uploads.max_bytes()).await {
            if err.status == StatusCode::PAYLOAD_TOO_LARGE {
                // Over the limit for good: nothing of it is worth keeping.
                let (state, user, id) = (state.clone(), user.clone(), id.clone());
                let _ =
                    tokio::task::spawn_blocking(move || state.uploads.discard(&user, &id)).await;
            }
            return Err(err);
        }
    }
    let (state, total) = (state.clone(), query.total_chunks);
    let progress = tokio::task::spawn_blocking(move || state.uploads.complete(&user, &id, total))
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

/// Streams a chunk to disk, at most `room` bytes; it only takes its final
/// name once whole, so an interrupted chunk is never mistaken for a
/// received one. Each writer has its own temporary file: the same chunk may
/// arrive twice at once (client retries, two clients with the same files).
async fn receive(
    body: Body,
    path: &std::path::Path,
    room: u64,
    limit: u64,
) -> Result<(), ApiError> {
    let partial = path.with_extension(format!("tmp.{}", uuid::Uuid::new_v4().simple()));
    let result = write_chunk(body, &partial, room, limit).await;
    let result = match result {
        Ok(()) => tokio::fs::rename(&partial, path)
            .await
            .map_err(ApiError::internal),
        Err(err) => Err(err),
    };
    if result.is_err() {
        let _ = tokio::fs::remove_file(&partial).await;
    }
    result
}

async fn write_chunk(
    body: Body,
    partial: &std::path::Path,
    room: u64,
    limit: u64,
) -> Result<(), ApiError> {
    let mut file = tokio::fs::File::create(partial)
        .await
        .map_err(ApiError::internal)?;
    let mut stream = body.into_data_stream();
    let mut size: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|err| ApiError::bad_request(format!("the upload was cut off: {err}")))?;
        size += chunk.len() as u64;
        if size > room {
            return Err(upload_error(UploadError::TooLarge { limit }));
        }
        file.write_all(&chunk).await.map_err(ApiError::internal)?;
    }
    file.sync_all().await.map_err(ApiError::internal)
}
