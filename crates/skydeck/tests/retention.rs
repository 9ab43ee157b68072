//! Finished requests and their logs are deleted once older than
//! `SKYDECK_REQUEST_RETENTION_HOURS`; requests still running are kept.

mod support;

use serde_json::json;
use skydeck_client::Client;
use std::time::{Duration, Instant};
use support::{TestServer, http};

const DEADLINE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread")]
async fn finished_requests_and_their_logs_go_after_the_retention() {
    let home = tempfile::tempdir().unwrap();
    // About two seconds.
    let server = TestServer::start(
        home.path(),
        &[
            ("SKYDECK_REQUEST_RETENTION_HOURS", "0.0005"),
            ("SKYDECK_TEST_HOLD_REQUESTS", "sky.check"),
        ],
    );
    let api = Client::new(&server.url, None).unwrap();
    // Held on the server until the test ends: RUNNING all along.
    let running = api.submit("/check", &json!({})).await.unwrap();
    let launch = api
        .submit(
            "/launch",
            &json!({"task": "run: echo hi\n", "cluster_name": "kept", "retry_until_up": false}),
        )
        .await
        .unwrap();
    api.wait(&launch).await.expect("the launch succeeds");
    let log = home.path().join("requests").join(format!("{launch}.log"));
    assert!(log.exists(), "a launch logs its stages");

    let deadline = Instant::now() + DEADLINE;
    loop {
        let answer = http(
            "GET",
            &format!("{}/api/get?request_id={launch}", server.url),
            None,
        )
        .await;
        if answer.status == 404 && !log.exists() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the finished launch is still kept ({}, log exists: {})\n{}",
            answer.status,
            log.exists(),
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Older than the launch, so past the retention too, and still there.
    let status = http(
        "GET",
        &format!(
            "{}/api/status?request_ids={running}&all_status=true",
            server.url
        ),
        None,
    )
    .await;
    assert_eq!(status.status, 200, "{}", status.body);
    assert_eq!(status.json()[0]["status"], "RUNNING", "{}", status.body);
}
