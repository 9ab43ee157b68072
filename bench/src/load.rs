//! The loopback load generator: N workers, each with its own keep-alive
//! connection, issuing one operation after another until a deadline.
//!
//! Closed loop on purpose: each worker waits for its answer before sending
//! the next request, so the rate measured is what the server sustains at
//! that concurrency, not what a generator can push into a queue.

use crate::http::{Conn, Method, Reply, SendError};
use crate::stats::Summary;
use anyhow::Context;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What the official client sends for `sky status -u` with no refresh.
const STATUS_BODY: &str = r#"{"cluster_names": null, "refresh": "NONE", "all_users": true}"#;

/// One request that takes longer than this is an error, and bounds how long
/// a run can overshoot its deadline.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Upper bound on operations per run, so memory for latencies stays bounded
/// (16 bytes each) however fast the server is.
const MAX_OPS_PER_RUN: u64 = 4_000_000;

/// After a failed reconnect: keep a dead server from turning the worker
/// into a busy loop for the rest of the run.
const RECONNECT_PAUSE: Duration = Duration::from_millis(10);

/// Distinct error messages kept per run; the rest are counted together.
const MAX_ERROR_KINDS: usize = 16;

#[derive(Debug, Clone, Copy)]
pub enum Workload {
    /// `GET /api/health`.
    Health,
    /// `POST /status`, then `GET /api/get` for the request id it returns.
    StatusRoundTrip,
}

pub struct LoadConfig {
    pub addr: SocketAddr,
    pub workload: Workload,
    pub concurrency: usize,
    pub duration: Duration,
}

pub struct LoadResult {
    pub concurrency: usize,
    pub completed: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub latency: Summary,
    /// Error messages with their counts, most frequent first.
    pub error_samples: Vec<(String, u64)>,
}

impl LoadResult {
    /// Successful operations per second of wall time.
    pub fn rate(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64()
    }
}

/// Opens every connection first, then starts the clock, so connection set-up
/// is not counted against the server's request rate.
pub async fn run(config: LoadConfig) -> anyhow::Result<LoadResult> {
    let mut conns = Vec::with_capacity(config.concurrency);
    for _ in 0..config.concurrency {
        let conn = Conn::connect(config.addr)
            .await
            .with_context(|| format!("cannot open a connection to {}", config.addr))?;
        conns.push(conn);
    }
    let max_ops = (MAX_OPS_PER_RUN / config.concurrency as u64).max(1);
    let started = Instant::now();
    let deadline = started + config.duration;
    let workers: Vec<_> = conns
        .into_iter()
        .map(|conn| {
            tokio::spawn(worker(
                conn,
                config.addr,
                config.workload,
                deadline,
                max_ops,
            ))
        })
        .collect();
    let mut total = Tally::default();
    for worker in workers {
        total.merge(worker.await.context("a load worker panicked")?);
    }
    let elapsed = started.elapsed();
    Ok(total.into_result(config.concurrency, elapsed))
}

async fn worker(
    conn: Conn,
    addr: SocketAddr,
    workload: Workload,
    deadline: Instant,
    max_ops: u64,
) -> Tally {
    let mut tally = Tally::default();
    let mut conn = Some(conn);
    while Instant::now() < deadline && tally.attempts() < max_ops {
        let Some(open) = conn.as_mut() else {
            match Conn::connect(addr).await {
                Ok(fresh) => conn = Some(fresh),
                Err(err) => {
                    tally.error(format!("reconnect: {err:#}"));
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                }
            }
            continue;
        };
        let began = Instant::now();
        match execute(workload, open).await {
            Ok(()) => tally.latencies.push(began.elapsed()),
            Err(failure) => {
                if failure.reconnect {
                    conn = None;
                }
                tally.error(failure.message);
            }
        }
    }
    tally
}

/// A failed operation: what went wrong, and whether the connection can
/// still be trusted for the next one.
struct Failure {
    message: String,
    reconnect: bool,
}

impl Failure {
    /// The server answered, just not as expected: the connection is fine.
    fn answer(message: String) -> Self {
        Self {
            message,
            reconnect: false,
        }
    }
}

impl From<SendError> for Failure {
    fn from(err: SendError) -> Self {
        Self {
            message: err.to_string(),
            reconnect: true,
        }
    }
}

async fn execute(workload: Workload, conn: &mut Conn) -> Result<(), Failure> {
    match workload {
        Workload::Health => health(conn).await,
        Workload::StatusRoundTrip => status_round_trip(conn).await,
    }
}

async fn health(conn: &mut Conn) -> Result<(), Failure> {
    let reply = conn
        .send(Method::Get, "/api/health", None, REQUEST_TIMEOUT)
        .await?;
    expect_ok(&reply, "GET /api/health")
}

/// What `sky status` does: schedule the request, then block on its result.
async fn status_round_trip(conn: &mut Conn) -> Result<(), Failure> {
    let reply = conn
        .send(Method::Post, "/status", Some(STATUS_BODY), REQUEST_TIMEOUT)
        .await?;
    expect_ok(&reply, "POST /status")?;
    let id = request_id(&reply)?;
    let path = format!("/api/get?request_id={id}");
    let reply = conn.send(Method::Get, &path, None, REQUEST_TIMEOUT).await?;
    expect_ok(&reply, "GET /api/get")?;
    expect_succeeded(&reply)
}

fn expect_ok(reply: &Reply, what: &str) -> Result<(), Failure> {
    if reply.status == 200 {
        Ok(())
    } else {
        Err(Failure::answer(reply.describe(what)))
    }
}

/// The id from `X-Skypilot-Request-ID`, checked to be URL-safe as-is so it
/// can go into the query string without encoding.
fn request_id(reply: &Reply) -> Result<String, Failure> {
    let id = reply
        .headers
        .get("x-skypilot-request-id")
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| {
            Failure::answer("POST /status -> 200 without X-Skypilot-Request-ID".into())
        })?;
    let url_safe = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if id.is_empty() || !id.chars().all(url_safe) {
        return Err(Failure::answer(format!(
            "POST /status -> unexpected request id {id:?}"
        )));
    }
    Ok(id.to_owned())
}

fn expect_succeeded(reply: &Reply) -> Result<(), Failure> {
    let json: serde_json::Value = serde_json::from_slice(&reply.body)
        .map_err(|err| Failure::answer(format!("GET /api/get -> 200 but not JSON: {err}")))?;
    match json.get("status").and_then(|s| s.as_str()) {
        Some("SUCCEEDED") => Ok(()),
        other => Err(Failure::answer(format!(
            "GET /api/get -> 200 with status {other:?}, expected SUCCEEDED"
        ))),
    }
}

/// One worker's (or the merged) counts.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: u64,
    error_kinds: HashMap<String, u64>,
}

impl Tally {
    fn attempts(&self) -> u64 {
        self.latencies.len() as u64 + self.errors
    }

    fn error(&mut self, message: String) {
        self.errors += 1;
        let key = if self.error_kinds.len() < MAX_ERROR_KINDS
            || self.error_kinds.contains_key(&message)
        {
            message
        } else {
            "(other errors)".to_owned()
        };
        *self.error_kinds.entry(key).or_default() += 1;
    }

    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        for (message, count) in other.error_kinds {
            *self.error_kinds.entry(message).or_default() += count;
        }
    }

    fn into_result(self, concurrency: usize, elapsed: Duration) -> LoadResult {
        let mut error_samples: Vec<_> = self.error_kinds.into_iter().collect();
        error_samples.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        LoadResult {
            concurrency,
            completed: self.latencies.len() as u64,
            errors: self.errors,
            elapsed,
            latency: Summary::of(self.latencies),
            error_samples,
        }
    }
}
