//! `/api/stream`: a request's log from byte 0, followed until it finishes.
//!
//! The body is line-oriented text the official client prints as it comes.
//! It always ends with a newline (the client drops a final partial line),
//! sends a heartbeat line while idle, and echoes the id exactly as sent.

use super::SharedState;
use super::requests::resolve_owned_id;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::skypilot::{self, control};
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use skydeck_store::{RequestFilter, RequestRecord};
use skydeck_types::RequestStatus;
use skydeck_types::version::HEADER_STREAM_REQUEST_ID;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How often a follower re-checks a request another replica runs.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
const READ_CHUNK: usize = 64 * 1024;

#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    log_path: Option<String>,
    #[serde(default)]
    tail: Option<u64>,
    #[serde(default)]
    follow: Option<bool>,
}

pub async fn api_stream(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(query): ApiQuery<StreamQuery>,
) -> Result<Response, ApiError> {
    if query.request_id.is_some() && query.log_path.is_some() {
        return Err(ApiError::bad_request(
            "Give either request_id or log_path, not both.",
        ));
    }
    if query.log_path.is_some() {
        return Err(ApiError::bad_request(
            "Streaming by log_path is not supported; stream a request by its request_id.",
        ));
    }
    let (id, echo) = match &query.request_id {
        Some(prefix) => (
            resolve_owned_id(&state, &caller, prefix).await?,
            Some(prefix.clone()),
        ),
        None => {
            let latest = state
                .store
                .list_requests(&RequestFilter {
                    limit: Some(1),
                    user_id: caller
                        .user()
                        .filter(|_| !caller.sees_all())
                        .map(|user| user.id.clone()),
                    ..Default::default()
                })
                .await?;
            let record = latest
                .into_iter()
                .next()
                .ok_or_else(|| ApiError::not_found("No request to stream"))?;
            (record.id, None)
        }
    };
    stream_response(&state, id, echo, query.follow.unwrap_or(true), query.tail)
}

/// A response that streams request `id`'s log from the start (or its last
/// `tail` lines) and, with `follow`, until the request has finished.
/// `echo` is sent back as `X-SkyPilot-Stream-Request-ID`.
pub fn stream_response(
    state: &SharedState,
    id: String,
    echo: Option<String>,
    follow: bool,
    tail: Option<u64>,
) -> Result<Response, ApiError> {
    let path = state
        .executor
        .logs()
        .path(&id)
        .ok_or_else(|| ApiError::not_found(format!("Request {id:?} not found")))?;
    let (tx, mut rx) = mpsc::channel::<Bytes>(16);
    let follower = Follower {
        state: state.clone(),
        id,
        path,
        follow,
        tail,
        tx,
    };
    tokio::spawn(follower.run());
    let stream = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|chunk| chunk.map(Ok::<_, std::convert::Infallible>))
    });
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-transform"),
    );
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if let Some(echo) = echo.and_then(|e| HeaderValue::from_str(&e).ok()) {
        headers.insert(HEADER_STREAM_REQUEST_ID, echo);
    }
    Ok(response)
}

struct Follower {
    state: SharedState,
    id: String,
    path: PathBuf,
    follow: bool,
    tail: Option<u64>,
    tx: mpsc::Sender<Bytes>,
}

/// Why a follower stopped early.
struct Disconnected;

impl Follower {
    async fn run(self) {
        let _ = self.follow_log().await;
    }

    async fn send(&self, text: impl Into<Bytes>) -> Result<(), Disconnected> {
        self.tx.send(text.into()).await.map_err(|_| Disconnected)
    }

    async fn follow_log(&self) -> Result<(), Disconnected> {
        let mut offset = match self.tail {
            Some(lines) => tail_offset(&self.path, lines),
            None => 0,
        };
        let mut at_line_start = true;
        let mut last_sent = Instant::now();
        let heartbeat = self.state.config.stream_heartbeat;
        loop {
            let subscription = self.state.executor.signals().subscribe(&self.id);
            let notified = subscription.notified();
            let sent = self.send_new_bytes(&mut offset, &mut at_line_start).await?;
            if sent {
                last_sent = Instant::now();
            }
            let finished = self.finished_record().await;
            if let Some(record) = finished {
                self.send_new_bytes(&mut offset, &mut at_line_start).await?;
                if !at_line_start {
                    self.send("\n").await?;
                }
                if record.status == RequestStatus::Cancelled {
                    self.send(skypilot::cancelled_line(&record.name, &record.id))
                        .await?;
                }
                return Ok(());
            }
            if !self.follow {
                if !at_line_start {
                    self.send("\n").await?;
                }
                return Ok(());
            }
            let idle_for = last_sent.elapsed();
            if idle_for >= heartbeat && at_line_start {
                self.send(control::heartbeat()).await?;
                last_sent = Instant::now();
                continue;
            }
            let wait = heartbeat.saturating_sub(idle_for).min(POLL_INTERVAL);
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(wait) => {}
                _ = self.tx.closed() => return Err(Disconnected),
                _ = self.state.shutdown.cancelled() => {
                    // Ask the client to come back: it re-requests the stream
                    // and skips the lines it already printed.
                    if !at_line_start {
                        self.send("\n").await?;
                    }
                    self.send(control::retry()).await?;
                    return Ok(());
                }
            }
        }
    }

    /// The request, if it has finished. Requests running in this process
    /// are answered from memory, so following costs no query per wake-up.
    async fn finished_record(&self) -> Option<RequestRecord> {
        if self.state.executor.is_running_here(&self.id) {
            return None;
        }
        match self.state.store.get_request(&self.id).await {
            Ok(Some(record)) if record.status.is_finished() => Some(record),
            Ok(Some(_)) => None,
            // Gone (or unreadable): end the stream rather than hang.
            Ok(None) | Err(_) => Some(RequestRecord {
                status: RequestStatus::Failed,
                ..placeholder(&self.id)
            }),
        }
    }

    /// Sends whatever the log gained since `offset`.
    async fn send_new_bytes(
        &self,
        offset: &mut u64,
        at_line_start: &mut bool,
    ) -> Result<bool, Disconnected> {
        let mut sent = false;
        loop {
            let chunk = read_from(&self.path, *offset);
            if chunk.is_empty() {
                return Ok(sent);
            }
            *offset += chunk.len() as u64;
            *at_line_start = chunk.ends_with(b"\n") || chunk.ends_with(b"\r");
            self.send(chunk).await?;
            sent = true;
        }
    }
}

fn placeholder(id: &str) -> RequestRecord {
    RequestRecord {
        id: id.to_owned(),
        name: String::new(),
        entrypoint: String::new(),
        body: serde_json::Value::Null,
        status: RequestStatus::Failed,
        schedule_type: skydeck_types::ScheduleType::Short,
        user_id: String::new(),
        cluster_name: None,
        created_at: 0.0,
        started_at: None,
        finished_at: None,
        return_value: None,
        error: None,
        status_msg: None,
        server_id: None,
        attempts: 0,
        workspace: String::new(),
    }
}

/// Up to one chunk of the file from `offset`; empty when there is nothing
/// new or no file yet.
fn read_from(path: &PathBuf, offset: u64) -> Vec<u8> {
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    if file.seek(SeekFrom::Start(offset)).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::with_capacity(READ_CHUNK);
    let _ = file.take(READ_CHUNK as u64).read_to_end(&mut buf);
    buf
}

/// Where the last `lines` lines of the log start, not counting control
/// payload lines (as SkyPilot's `tail` does).
fn tail_offset(path: &PathBuf, lines: u64) -> u64 {
    let Ok(content) = std::fs::read(path) else {
        return 0;
    };
    let mut starts: Vec<usize> = vec![0];
    starts.extend(
        content
            .iter()
            .enumerate()
            .filter(|(i, b)| **b == b'\n' && i + 1 < content.len())
            .map(|(i, _)| i + 1),
    );
    let mut counted = 0;
    for start in starts.iter().rev() {
        if !control::is_payload_line(&content[*start..]) {
            counted += 1;
        }
        if counted == lines {
            return *start as u64;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_skips_payload_lines_when_counting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.log");
        let payload = control::heartbeat();
        std::fs::write(&path, format!("a\nb\n{payload}c\n")).unwrap();
        let offset = tail_offset(&path, 2) as usize;
        let content = std::fs::read_to_string(&path).unwrap();
        assert_eq!(&content[offset..], format!("b\n{payload}c\n"));
        assert_eq!(tail_offset(&path, 10), 0);
    }
}
