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
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
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
    // A request that runs for its reader (a followed job log) streams its
    // output straight from the operation; it stops when this response is
    // dropped (the client went away).
    match state.executor.attach_live(&id) {
        Some(live) => {
            tokio::spawn(relay_live(state.clone(), id, live, tx));
        }
        None => {
            let follower = Follower {
                state: state.clone(),
                id,
                path,
                follow,
                tail,
                tx,
            };
            tokio::spawn(follower.run());
        }
    }
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
        let _waiting = self.state.metrics.client_wait("stream");
        let _ = self.follow_log().await;
    }

    async fn send(&self, text: impl Into<Bytes>) -> Result<(), Disconnected> {
        self.tx.send(text.into()).await.map_err(|_| Disconnected)
    }

    async fn follow_log(&self) -> Result<(), Disconnected> {
        let mut offset = match self.tail {
            Some(lines) => {
                let path = self.path.clone();
                tokio::task::spawn_blocking(move || tail_offset(&path, lines))
                    .await
                    .unwrap_or(0)
            }
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
            let (path, at) = (self.path.clone(), *offset);
            let chunk = tokio::task::spawn_blocking(move || read_from(&path, at))
                .await
                .unwrap_or_default();
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
fn read_from(path: &Path, offset: u64) -> Vec<u8> {
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

/// Where the last `lines` lines of the log start (0: the whole log), not
/// counting control payload lines (as SkyPilot's `tail` does). Reads
/// backwards from the end in blocks, so a long log costs only its tail.
fn tail_offset(path: &Path, lines: u64) -> u64 {
    const BLOCK: u64 = 64 * 1024;
    if lines == 0 {
        return 0;
    }
    let Ok(file) = std::fs::File::open(path) else {
        return 0;
    };
    let Ok(len) = file.metadata().map(|m| m.len()) else {
        return 0;
    };
    let mut counted = 0;
    let mut end = len;
    let mut block = Vec::new();
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        block.resize((end - start) as usize, 0);
        if file.read_exact_at(&mut block, start).is_err() {
            return 0;
        }
        for (index, byte) in block.iter().enumerate().rev() {
            let line_start = start + index as u64 + 1;
            // The newline that ends the file does not start another line.
            if *byte == b'\n' && line_start < len && !is_payload_at(&file, line_start) {
                counted += 1;
                if counted == lines {
                    return line_start;
                }
            }
        }
        end = start;
    }
    0
}

/// Whether the line at `offset` is a control payload line.
fn is_payload_at(file: &std::fs::File, offset: u64) -> bool {
    let mut head = [0u8; 16];
    let mut filled = 0;
    while filled < head.len() {
        match file.read_at(&mut head[filled..], offset + filled as u64) {
            Ok(0) | Err(_) => break,
            Ok(n) => filled += n,
        }
    }
    control::is_payload_line(&head[..filled])
}

/// Forwards a live request's output to its response, with heartbeats while
/// it is quiet. Returning drops `live`, which tells the request its reader
/// left when `tx`'s client has gone.
async fn relay_live(
    state: SharedState,
    id: String,
    mut live: mpsc::Receiver<Bytes>,
    tx: mpsc::Sender<Bytes>,
) {
    let heartbeat = state.config.stream_heartbeat;
    let mut at_line_start = true;
    loop {
        tokio::select! {
            chunk = live.recv() => match chunk {
                Some(chunk) => {
                    at_line_start = chunk.ends_with(b"\n") || chunk.ends_with(b"\r");
                    if tx.send(chunk).await.is_err() {
                        return;
                    }
                }
                None => break,
            },
            () = tokio::time::sleep(heartbeat), if at_line_start => {
                if tx.send(control::heartbeat().into()).await.is_err() {
                    return;
                }
            }
            () = tx.closed() => return,
        }
    }
    if !at_line_start && tx.send(Bytes::from_static(b"\n")).await.is_err() {
        return;
    }
    if let Ok(Some(record)) = state.store.get_request(&id).await
        && record.status == RequestStatus::Cancelled
    {
        let _ = tx
            .send(skypilot::cancelled_line(&record.name, &record.id).into())
            .await;
    }
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

    #[test]
    fn tail_reads_back_across_blocks_from_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.log");
        let mut text: Vec<u8> = (0..30_000)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        // A long line without its end, and a byte that is not UTF-8.
        text.extend(std::iter::repeat_n(b'x', 200_000));
        text.extend(b"\xff\nlast\n");
        std::fs::write(&path, &text).unwrap();
        let offset = tail_offset(&path, 3) as usize;
        assert!(text[offset..].starts_with(b"line 29999\nxxx"));
        let offset = tail_offset(&path, 1) as usize;
        assert_eq!(&text[offset..], b"last\n");
    }
}
