//! `api start --enable-basic-auth` with nobody able to sign in is refused,
//! with the ways to create the first admin; a server that has one starts.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::{BINARY, TestServer};

/// `skydeck api start …` on `home`, with no auth settings from the caller's
/// environment. A server that starts anyway (a foreground one serves until
/// stopped) is killed after a minute, so a regression fails the test rather
/// than hanging it.
fn api_start(home: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(BINARY)
        .args(["api", "start", "--host", "127.0.0.1", "--port", "0"])
        .args(args)
        .env("SKYDECK_HOME", home)
        .env_remove("SKYDECK_DB_CONNECTION_URI")
        .env_remove("SKYDECK_API_SERVER_ENDPOINT")
        .env_remove("SKYDECK_INITIAL_BASIC_AUTH")
        .env_remove("SKYDECK_HTPASSWD_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run skydeck");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            child.kill().expect("kill the server that started");
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("collect the output")
}

/// Stops a server a broken build started, so that a failing test leaves
/// nothing running.
fn stop_server(home: &Path) {
    let _ = Command::new(BINARY)
        .args(["api", "stop"])
        .env("SKYDECK_HOME", home)
        .output();
}

fn assert_refused_with_how_to(output: &Output, home: &Path) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        stop_server(home);
        panic!("the server started with nobody able to sign in; stderr:\n{stderr}");
    }
    assert_eq!(output.status.code(), Some(1), "stderr:\n{stderr}");
    for needed in [
        "no user has a password",
        "SKYDECK_INITIAL_BASIC_AUTH=admin:PASSWORD",
        "--htpasswd FILE",
    ] {
        assert!(stderr.contains(needed), "missing {needed:?} in:\n{stderr}");
    }
}

#[test]
fn basic_auth_without_any_user_refuses_to_start_in_the_foreground() {
    let home = tempfile::tempdir().unwrap();
    let output = api_start(home.path(), &["--foreground", "--enable-basic-auth"]);
    assert_refused_with_how_to(&output, home.path());
    assert!(
        !home.path().join("server.json").exists(),
        "a refused server must not advertise itself"
    );
}

#[test]
fn basic_auth_without_any_user_refuses_to_start_in_the_background() {
    let home = tempfile::tempdir().unwrap();
    let output = api_start(home.path(), &["--enable-basic-auth"]);
    assert_refused_with_how_to(&output, home.path());
}

#[test]
fn a_server_whose_first_admin_exists_restarts_without_the_variable() {
    let home = tempfile::tempdir().unwrap();
    let server = TestServer::start(
        home.path(),
        &[
            ("SKYDECK_ENABLE_BASIC_AUTH", "true"),
            ("SKYDECK_INITIAL_BASIC_AUTH", "admin:first-admin-pw"),
        ],
    );
    assert!(server.stop().success());
    // The admin is in the database now: no variable needed.
    let again = TestServer::start(home.path(), &[("SKYDECK_ENABLE_BASIC_AUTH", "true")]);
    assert!(again.stop().success());
}
