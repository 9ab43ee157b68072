//! Prometheus metrics, served apart from the API on `--metrics-port`.
//!
//! What the server does (HTTP calls, finished API requests, database calls)
//! is counted as it happens. What it holds (queues, clusters, jobs) is read
//! when Prometheus scrapes, so the numbers are never stale and nothing runs
//! while nobody is looking — except the job counts, which need a call to
//! each cluster's agent and are refreshed by the cluster check instead.

mod http;
mod store;

pub use http::record_http;
pub use store::InstrumentedStore;

use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use skydeck_store::{ClusterStatus, Store};
use skydeck_types::{RequestStatus, ScheduleType};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Job statuses as the agent reports them, listed so that each has a series
/// (at 0) before the first job reaches it.
const JOB_STATUSES: [&str; 9] = [
    "INIT",
    "PENDING",
    "SETTING_UP",
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
    "FAILED_SETUP",
    "FAILED_DRIVER",
    "CANCELLED",
];

pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    queued: IntGaugeVec,
    running: IntGaugeVec,
    clusters: IntGaugeVec,
    jobs: IntGaugeVec,
    db_duration: HistogramVec,
    log_follows: IntGauge,
    client_waits: IntGaugeVec,
    /// The last job counts seen on each cluster, by status.
    cluster_jobs: Mutex<HashMap<String, BTreeMap<String, i64>>>,
    /// Whether anyone can scrape: counting jobs costs a call to every
    /// cluster's agent, made only when it is.
    serving: AtomicBool,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let metrics = Self {
            http_requests: IntCounterVec::new(
                Opts::new(
                    "skydeck_http_requests_total",
                    "HTTP calls answered, by route and status code.",
                ),
                &["method", "route", "status"],
            )
            .expect("valid metric"),
            http_duration: HistogramVec::new(
                HistogramOpts::new(
                    "skydeck_http_request_duration_seconds",
                    "Time to answer an HTTP call (until the response starts).",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["method", "route"],
            )
            .expect("valid metric"),
            requests: IntCounterVec::new(
                Opts::new(
                    "skydeck_requests_total",
                    "API requests that finished, by name and final status.",
                ),
                &["name", "status"],
            )
            .expect("valid metric"),
            request_duration: HistogramVec::new(
                HistogramOpts::new(
                    "skydeck_request_duration_seconds",
                    "Time from accepting an API request to its end.",
                )
                .buckets(REQUEST_BUCKETS.to_vec()),
                &["name"],
            )
            .expect("valid metric"),
            queued: IntGaugeVec::new(
                Opts::new(
                    "skydeck_requests_queued",
                    "API requests waiting for a worker, per pool (all replicas).",
                ),
                &["pool"],
            )
            .expect("valid metric"),
            running: IntGaugeVec::new(
                Opts::new(
                    "skydeck_requests_running",
                    "API requests running, per pool (all replicas).",
                ),
                &["pool"],
            )
            .expect("valid metric"),
            clusters: IntGaugeVec::new(
                Opts::new("skydeck_clusters", "Clusters by status."),
                &["status"],
            )
            .expect("valid metric"),
            jobs: IntGaugeVec::new(
                Opts::new(
                    "skydeck_jobs",
                    "Jobs on UP clusters by status, as of the last cluster check.",
                ),
                &["status"],
            )
            .expect("valid metric"),
            db_duration: HistogramVec::new(
                HistogramOpts::new(
                    "skydeck_db_query_duration_seconds",
                    "Time of each database call, by store operation.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["op"],
            )
            .expect("valid metric"),
            log_follows: IntGauge::new(
                "skydeck_log_follows",
                "Job logs being followed for a connected client (they take no worker).",
            )
            .expect("valid metric"),
            client_waits: IntGaugeVec::new(
                Opts::new(
                    "skydeck_client_waits",
                    "Clients waiting on a request (`/api/get`) or reading its log (`/api/stream`).",
                ),
                &["endpoint"],
            )
            .expect("valid metric"),
            cluster_jobs: Mutex::new(HashMap::new()),
            serving: AtomicBool::new(false),
            registry,
        };
        let collectors: [Box<dyn prometheus::core::Collector>; 11] = [
            Box::new(metrics.client_waits.clone()),
            Box::new(metrics.log_follows.clone()),
            Box::new(metrics.http_requests.clone()),
            Box::new(metrics.http_duration.clone()),
            Box::new(metrics.requests.clone()),
            Box::new(metrics.request_duration.clone()),
            Box::new(metrics.queued.clone()),
            Box::new(metrics.running.clone()),
            Box::new(metrics.clusters.clone()),
            Box::new(metrics.jobs.clone()),
            Box::new(metrics.db_duration.clone()),
        ];
        for collector in collectors {
            metrics
                .registry
                .register(collector)
                .expect("metric names are unique");
        }
        // RSS, CPU seconds, open files, start time: from /proc/self.
        metrics
            .registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("process metrics register once");
        metrics
    }

    pub fn observe_http(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.http_requests
            .with_label_values(&[method, route, &status.to_string()])
            .inc();
        self.http_duration
            .with_label_values(&[method, route])
            .observe(elapsed.as_secs_f64());
    }

    /// An API request ended; `seconds` since it was accepted.
    pub fn observe_request(&self, name: &str, status: RequestStatus, seconds: f64) {
        self.requests
            .with_label_values(&[name, status.as_str()])
            .inc();
        self.request_duration
            .with_label_values(&[name])
            .observe(seconds.max(0.0));
    }

    pub fn observe_db(&self, op: &str, elapsed: Duration) {
        self.db_duration
            .with_label_values(&[op])
            .observe(elapsed.as_secs_f64());
    }

    /// The count of live log follows (`executor/live.rs`).
    pub fn log_follows(&self) -> IntGauge {
        self.log_follows.clone()
    }

    /// Counts one client waiting at `endpoint` until the guard drops (when
    /// the wait ends, or its connection closes).
    pub fn client_wait(&self, endpoint: &str) -> GaugeGuard {
        GaugeGuard::new(self.client_waits.with_label_values(&[endpoint]))
    }

    /// Whether the metrics endpoint is up (and job counts worth their cost).
    pub fn is_serving(&self) -> bool {
        self.serving.load(Ordering::Relaxed)
    }

    /// Replaces what is known of the jobs on one cluster.
    pub fn set_cluster_jobs<'a>(&self, cluster: &str, statuses: impl Iterator<Item = &'a str>) {
        let mut counts = BTreeMap::new();
        for status in statuses {
            *counts.entry(status.to_owned()).or_insert(0) += 1;
        }
        self.cluster_jobs
            .lock()
            .expect("job counts lock")
            .insert(cluster.to_owned(), counts);
    }

    /// Forgets the jobs of clusters that are no longer UP.
    pub fn retain_cluster_jobs(&self, up: &[&str]) {
        self.cluster_jobs
            .lock()
            .expect("job counts lock")
            .retain(|name, _| up.contains(&name.as_str()));
    }

    /// The Prometheus text exposition, with the gauges read from `store` now.
    pub async fn render(&self, store: &dyn Store) -> String {
        if let Err(err) = self.refresh_gauges(store).await {
            // The counters are still worth serving; the stale gauges say so
            // in the server log.
            tracing::warn!(error = %err, "cannot read queue and cluster counts for metrics");
        }
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into memory cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }

    async fn refresh_gauges(&self, store: &dyn Store) -> skydeck_store::Result<()> {
        let counts = store.active_request_counts().await?;
        for pool in [ScheduleType::Long, ScheduleType::Short] {
            let count = |wanted: &[RequestStatus]| -> i64 {
                counts
                    .iter()
                    .filter(|(p, s, _)| *p == pool && wanted.contains(s))
                    .map(|(_, _, n)| n)
                    .sum()
            };
            self.queued
                .with_label_values(&[pool.as_str()])
                .set(count(&[RequestStatus::Pending, RequestStatus::Waiting]));
            self.running
                .with_label_values(&[pool.as_str()])
                .set(count(&[RequestStatus::Running]));
        }
        let clusters = store.list_clusters(None).await?;
        for status in [
            ClusterStatus::Init,
            ClusterStatus::Up,
            ClusterStatus::Stopped,
        ] {
            let n = clusters.iter().filter(|c| c.status == status).count();
            self.clusters
                .with_label_values(&[status.as_str()])
                .set(n as i64);
        }
        let jobs = self.cluster_jobs.lock().expect("job counts lock");
        for status in JOB_STATUSES {
            let n = jobs.values().filter_map(|counts| counts.get(status)).sum();
            self.jobs.with_label_values(&[status]).set(n);
        }
        Ok(())
    }
}

/// Holds one unit of a gauge while alive.
pub struct GaugeGuard(IntGauge);

impl GaugeGuard {
    pub fn new(gauge: IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// For HTTP calls and database calls: 0.5 ms to 10 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// For API requests, which include launches: 1 ms to an hour.
const REQUEST_BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.025, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// The metrics endpoint: `GET /metrics`, and nothing else.
pub fn router(state: Arc<AppState>) -> axum::Router {
    state.metrics.serving.store(true, Ordering::Relaxed);
    axum::Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .with_state(state)
}

async fn scrape(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let text = state.metrics.render(state.store.as_ref()).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_counts_add_up_across_clusters_and_forget_gone_ones() {
        let metrics = Metrics::new();
        metrics.set_cluster_jobs("a", ["RUNNING", "SUCCEEDED", "SUCCEEDED"].into_iter());
        metrics.set_cluster_jobs("b", ["RUNNING"].into_iter());
        let jobs = metrics.cluster_jobs.lock().unwrap();
        let running: i64 = jobs.values().filter_map(|c| c.get("RUNNING")).sum();
        assert_eq!(running, 2);
        drop(jobs);
        metrics.retain_cluster_jobs(&["b"]);
        assert_eq!(
            metrics
                .cluster_jobs
                .lock()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["b"]
        );
    }

    #[test]
    fn every_family_has_help_and_a_skydeck_or_process_name() {
        let metrics = Metrics::new();
        metrics.observe_http("GET", "/api/health", 200, Duration::from_millis(1));
        metrics.observe_request("sky.status", RequestStatus::Succeeded, 0.01);
        metrics.observe_db("get_request", Duration::from_micros(300));
        let families = metrics.registry.gather();
        for family in &families {
            assert!(
                family.name().starts_with("skydeck_") || family.name().starts_with("process_"),
                "{}",
                family.name()
            );
            assert!(!family.help().is_empty(), "{} has no help", family.name());
        }
        let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
        for expected in [
            "skydeck_http_requests_total",
            "skydeck_requests_total",
            "skydeck_db_query_duration_seconds",
            "process_resident_memory_bytes",
            "process_cpu_seconds_total",
        ] {
            assert!(
                names.contains(&expected),
                "{expected} missing from {names:?}"
            );
        }
    }
}
