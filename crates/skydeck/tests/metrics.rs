//! `skydeck api start --metrics`: Prometheus scrapes a separate port, and
//! after real traffic (health checks, a request that fails, a launch with a
//! job) the counters, histograms and gauges have moved.

mod support;

use serde_json::json;
use skydeck_client::Client;
use std::time::{Duration, Instant};
use support::{TestServer, http};

const DEADLINE: Duration = Duration::from_secs(60);

/// One sample line of the text format: `name{labels} value`.
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("`series value`");
            let value = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line}"));
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, parse_labels(rest.trim_end_matches('}'))),
                None => (series, Vec::new()),
            };
            Sample {
                name: name.to_owned(),
                labels,
                value,
            }
        })
        .collect()
}

/// `a="x",b="y"`; our label values hold no quotes or commas.
fn parse_labels(text: &str) -> Vec<(String, String)> {
    text.split("\",")
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once("=\"").expect("`key=\"value\"`");
            (key.to_owned(), value.trim_end_matches('"').to_owned())
        })
        .collect()
}

/// The sum of the samples of `name` whose labels include `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
        .map(|s| s.value)
        .sum()
}

async fn scrape(server: &TestServer) -> Vec<Sample> {
    let url = server.metrics_url.as_deref().expect("metrics are on");
    let response = http("GET", url, None).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        response.headers
    );
    parse(&response.body)
}

#[tokio::test]
async fn metrics_move_with_real_traffic() {
    let home = tempfile::tempdir().unwrap();
    let server = TestServer::start(
        home.path(),
        &[("SKYDECK_METRICS", "1"), ("SKYDECK_METRICS_PORT", "0")],
    );
    let metrics_url = server.metrics_url.clone().expect("the metrics line");
    assert_ne!(
        metrics_url,
        format!("{}/metrics", server.url),
        "metrics have their own port"
    );
    let on_api_port = http("GET", &format!("{}/metrics", server.url), None).await;
    assert_eq!(
        on_api_port.status, 404,
        "the API port does not serve metrics"
    );

    let before = scrape(&server).await;
    let health = [("route", "/api/health"), ("status", "200")];
    let health_before = value(&before, "skydeck_http_requests_total", &health);
    assert!(value(&before, "process_resident_memory_bytes", &[]) > 1e6);
    assert!(value(&before, "process_start_time_seconds", &[]) > 1.6e9);
    assert_eq!(value(&before, "skydeck_clusters", &[("status", "UP")]), 0.0);

    for _ in 0..3 {
        let answer = http("GET", &format!("{}/api/health", server.url), None).await;
        assert_eq!(answer.status, 200);
    }
    let missing = http("GET", &format!("{}/no/such/route", server.url), None).await;
    assert_eq!(missing.status, 404);

    // A request that fails (no such cluster) and a launch that succeeds.
    let api = Client::new(&server.url, None).unwrap();
    let failing = api
        .submit(
            "/queue",
            &json!({"cluster_name": "nope", "all_users": true}),
        )
        .await
        .unwrap();
    assert!(api.wait(&failing).await.is_err());
    let launch = api
        .submit(
            "/launch",
            &json!({"task": "run: echo hi\n", "cluster_name": "metered", "retry_until_up": false}),
        )
        .await
        .unwrap();
    api.wait(&launch).await.expect("the launch succeeds");

    let after = scrape(&server).await;
    assert_eq!(
        value(&after, "skydeck_http_requests_total", &health) - health_before,
        3.0,
        "each health check is counted once"
    );
    assert!(
        value(
            &after,
            "skydeck_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ) >= 1.0,
        "unknown paths are counted under one label, not one series each"
    );
    assert!(
        value(
            &after,
            "skydeck_http_request_duration_seconds_count",
            &[("route", "/launch"), ("method", "POST")]
        ) >= 1.0
    );
    assert_eq!(
        value(
            &after,
            "skydeck_requests_total",
            &[("name", "sky.queue"), ("status", "FAILED")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "skydeck_requests_total",
            &[("name", "sky.launch"), ("status", "SUCCEEDED")]
        ),
        1.0
    );
    assert!(
        value(
            &after,
            "skydeck_request_duration_seconds_count",
            &[("name", "sky.launch")]
        ) >= 1.0
    );
    assert!(
        value(
            &after,
            "skydeck_db_query_duration_seconds_count",
            &[("op", "put_cluster")]
        ) >= 1.0,
        "database calls are timed"
    );
    assert_eq!(value(&after, "skydeck_clusters", &[("status", "UP")]), 1.0);
    for pool in ["long", "short"] {
        assert!(
            after.iter().any(|s| s.name == "skydeck_requests_queued"
                && s.labels.contains(&("pool".into(), pool.into()))),
            "a queue depth series for the {pool} pool"
        );
    }
    assert!(
        value(&after, "process_cpu_seconds_total", &[])
            >= value(&before, "process_cpu_seconds_total", &[])
    );

    // Job counts come from the periodic cluster check (every 10 s).
    let started = Instant::now();
    loop {
        let now = scrape(&server).await;
        let jobs: f64 = value(&now, "skydeck_jobs", &[]);
        if jobs >= 1.0 {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the launched job never showed in skydeck_jobs"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let down = api
        .submit("/down", &json!({"cluster_name": "metered"}))
        .await
        .unwrap();
    api.wait(&down).await.expect("down succeeds");
    let end = scrape(&server).await;
    assert_eq!(value(&end, "skydeck_clusters", &[("status", "UP")]), 0.0);
}

#[tokio::test]
async fn a_taken_metrics_port_fails_the_start_with_a_clear_message() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let home = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(support::BINARY)
        .args(["api", "start", "--foreground", "--host", "127.0.0.1"])
        .args(["--port", "0", "--metrics", "--metrics-port", &port])
        .env("SKYDECK_HOME", home.path())
        .env_remove("SKYDECK_DB_CONNECTION_URI")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen for metrics on 127.0.0.1:{port}")),
        "{stderr}"
    );
}
