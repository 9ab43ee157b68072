//! Restarts lose nothing: kill -9 the real server while requests are PENDING
//! and RUNNING; the next start runs the PENDING ones and settles the RUNNING
//! ones (resumed, or FAILED saying the server restarted).

mod support;

use support::{TestServer, http, submit};

const STATUS_BODY: &str = r#"{"cluster_names": null, "refresh": "NONE", "all_users": true}"#;

async fn status_of(url: &str, id: &str) -> serde_json::Value {
    let response = http(
        "GET",
        &format!("{url}/api/status?all_status=true&request_ids={id}"),
        None,
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    response.json()[0].clone()
}

/// Returns once the request runs: the hold hook's line is the first thing
/// its log gets, so following the stream is the synchronisation.
async fn wait_running(url: &str, id: &str) {
    let mut response = skydeck_client::http_client()
        .unwrap()
        .get(format!("{url}/api/stream?request_id={id}"))
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    while !seen.contains("Held by") {
        let chunk = response
            .chunk()
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("stream ended before {id} ran: {seen}"));
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_server_runs_pending_and_settles_running_requests_on_restart() {
    let home = tempfile::tempdir().unwrap();
    // One short worker, held by the first request: the next ones stay PENDING.
    let server = TestServer::start(
        home.path(),
        &[
            ("SKYDECK_TEST_HOLD_REQUESTS", "sky.api_cancel,sky.check"),
            ("SKYDECK_SHORT_WORKERS", "1"),
        ],
    );
    let url = server.url.clone();
    let resumable = submit(&url, "/check", "{}").await;
    let not_resumable = submit(
        &url,
        "/api/cancel",
        r#"{"request_ids": ["00000000-0000-4000-8000-000000000000"]}"#,
    )
    .await;
    wait_running(&url, &resumable).await;
    wait_running(&url, &not_resumable).await;
    let pending = submit(&url, "/status", STATUS_BODY).await;
    assert_eq!(status_of(&url, &resumable).await["status"], "RUNNING");
    assert_eq!(status_of(&url, &not_resumable).await["status"], "RUNNING");
    assert_eq!(status_of(&url, &pending).await["status"], "PENDING");

    server.kill9();

    let server = TestServer::start(home.path(), &[]);
    let url = server.url.clone();
    // /api/get blocks until each request has finished.
    let resumed = http(
        "GET",
        &format!("{url}/api/get?request_id={resumable}"),
        None,
    )
    .await;
    assert_eq!(resumed.status, 200, "{}", resumed.body);
    assert_eq!(resumed.json()["status"], "SUCCEEDED");

    let failed = http(
        "GET",
        &format!("{url}/api/get?request_id={not_resumable}"),
        None,
    )
    .await;
    assert_eq!(
        failed.status, 500,
        "a failed request answers 500: {}",
        failed.body
    );
    let detail = &failed.json()["detail"];
    assert_eq!(detail["status"], "FAILED");
    let error: serde_json::Value = serde_json::from_str(detail["error"].as_str().unwrap()).unwrap();
    assert_eq!(error["type"], "RequestInterruptedError");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("API server restart"),
        "{error}"
    );

    let ran = http("GET", &format!("{url}/api/get?request_id={pending}"), None).await;
    assert_eq!(ran.status, 200, "{}", ran.body);
    assert_eq!(ran.json()["status"], "SUCCEEDED");
    assert_eq!(ran.json()["return_value"], "[]");

    // The resumed request's log says what happened, from the start.
    let log = http(
        "GET",
        &format!("{url}/api/stream?request_id={resumable}"),
        None,
    )
    .await;
    assert!(log.body.contains("resuming"), "{}", log.body);
    assert!(log.body.contains("Local: enabled"), "{}", log.body);
    assert!(log.body.ends_with('\n'));
    assert!(server.stop().success(), "a SIGTERM stop exits cleanly");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_graceful_stop_requeues_long_requests_for_the_next_server() {
    let home = tempfile::tempdir().unwrap();
    let server = TestServer::start(home.path(), &[("SKYDECK_TEST_HOLD_REQUESTS", "sky.check")]);
    let url = server.url.clone();
    let long = submit(&url, "/check", "{}").await;
    wait_running(&url, &long).await;
    assert!(server.stop().success());

    let server = TestServer::start(home.path(), &[]);
    let done = http(
        "GET",
        &format!("{}/api/get?request_id={long}", server.url),
        None,
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.json()["status"], "SUCCEEDED");
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_a_running_request_stops_it_and_ends_its_stream() {
    let home = tempfile::tempdir().unwrap();
    let server = TestServer::start(home.path(), &[("SKYDECK_TEST_HOLD_REQUESTS", "sky.check")]);
    let url = server.url.clone();
    let held = submit(&url, "/check", "{}").await;
    wait_running(&url, &held).await;
    let prefix = &held[..8];
    let cancel = submit(
        &url,
        "/api/cancel",
        &format!(r#"{{"request_ids": ["{prefix}"]}}"#),
    )
    .await;
    let cancelled = http("GET", &format!("{url}/api/get?request_id={cancel}"), None).await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    let ids: Vec<String> =
        serde_json::from_str(cancelled.json()["return_value"].as_str().unwrap()).unwrap();
    assert_eq!(
        ids,
        std::slice::from_ref(&held),
        "the full id of what was cancelled"
    );

    let stream = http(
        "GET",
        &format!("{url}/api/stream?request_id={prefix}"),
        None,
    )
    .await;
    assert_eq!(stream.header("x-skypilot-stream-request-id"), Some(prefix));
    assert!(
        stream
            .body
            .ends_with(&format!("'sky.check' request {held} cancelled\n")),
        "{}",
        stream.body
    );
    let get = http("GET", &format!("{url}/api/get?request_id={held}"), None).await;
    assert_eq!(get.json()["status"], "CANCELLED");
}
