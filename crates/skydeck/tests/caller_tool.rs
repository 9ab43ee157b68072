//! The server's hints name the caller's tool end to end: a `skydeck` user
//! is told `skydeck …` commands, a `sky` user (the official client, run
//! when `SKYDECK_TEST_SKY` is set) `sky …` ones, for the same error.

mod support;

use serde_json::json;
use skydeck_client::Client;
use std::process::Stdio;
use std::time::Duration;
use support::TestServer;
use support::sky::{Report, Sky, official_sky, temp_dir};

/// A server with cluster `napper` launched and stopped.
async fn server_with_a_stopped_cluster(home: &std::path::Path) -> TestServer {
    let server = TestServer::start(home, &[]);
    let api = Client::new(&server.url, None).expect("a client");
    for (path, body) in [
        (
            "/launch",
            json!({"task": "run: echo hi\n", "cluster_name": "napper"}),
        ),
        ("/stop", json!({"cluster_name": "napper"})),
    ] {
        let id = api.submit(path, &body).await.expect("accepted");
        api.wait(&id)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    server
}

#[tokio::test(flavor = "multi_thread")]
async fn skydeck_users_are_told_skydeck_commands() {
    let scratch = tempfile::tempdir().unwrap();
    let server = server_with_a_stopped_cluster(&scratch.path().join("home")).await;
    let child = tokio::process::Command::new(support::BINARY)
        .args(["queue", "napper"])
        .env("SKYDECK_HOME", &server.home)
        .env("SKYDECK_API_SERVER_ENDPOINT", &server.url)
        .env_remove("SKYDECK_SERVICE_ACCOUNT_TOKEN")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot start skydeck");
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("`skydeck queue` ran too long")
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("`skydeck start napper`"), "{text}");
    assert!(!text.contains("`sky "), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sky_users_are_told_sky_commands() {
    let Some(executable) = official_sky() else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let server = server_with_a_stopped_cluster(&temp_dir(scratch.path(), "server")).await;
    let sky = Sky {
        executable,
        home: temp_dir(scratch.path(), "client-home"),
    };
    let mut report = Report {
        server: &server,
        failures: String::new(),
    };
    let login = sky.run(&["api", "login", "-e", &server.url]).await;
    report.expect(&login, &["Logged into SkyPilot API server"]);
    let queue = sky.run(&["queue", "napper"]).await;
    report.check(
        &queue,
        queue.output().contains("`sky start napper`") && !queue.output().contains("`skydeck "),
        "a sky user is told `sky start napper`",
    );
    report.finish();
}
