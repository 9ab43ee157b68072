//! `skydeck api health`, the container health check: exit 0 only while a
//! healthy server answers, and never start a server of its own.

mod support;

use std::process::Command;
use support::{BINARY, TestServer};

fn health(endpoint: &str, home: &std::path::Path) -> (bool, String) {
    let output = Command::new(BINARY)
        .args(["api", "health", "--endpoint", endpoint])
        .env("SKYDECK_HOME", home)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn api_health_exits_zero_only_for_a_healthy_server() {
    let home = tempfile::tempdir().unwrap();
    let server = TestServer::start(&home.path().join("server"), &[]);
    let (ok, out) = health(&server.url, home.path());
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "healthy");

    let url = server.url.clone();
    server.stop();
    let (ok, out) = health(&url, home.path());
    assert!(!ok, "a stopped server is not healthy: {out}");
    assert!(out.starts_with("unhealthy:"), "{out}");

    let client_home = home.path().join("client");
    let (ok, _) = health("http://127.0.0.1:1", &client_home);
    assert!(!ok);
    assert!(
        !client_home.join("server.json").exists(),
        "the health check must not start a server"
    );
}
