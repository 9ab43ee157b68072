//! Every command talks to the same API server: the one
//! `SKYDECK_API_SERVER_ENDPOINT` or `api login` names, else the one running
//! from this state directory (`SKYDECK_HOME`) on whatever port it has, else
//! the local default. A command that reuses a running server does not say
//! it is starting one, and `api stop` stops that server (by the pid in its
//! home's `server.json`), never another.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use support::{BINARY, TestServer};

/// `skydeck ARGS` with `SKYDECK_HOME=home` and nothing else pointing it at
/// a server, plus `envs`.
fn skydeck(home: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(BINARY)
        .args(args)
        .env("SKYDECK_HOME", home)
        .env_remove("SKYDECK_API_SERVER_ENDPOINT")
        .env_remove("SKYDECK_SERVICE_ACCOUNT_TOKEN")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run skydeck")
}

fn describe(args: &[&str], output: &Output) -> String {
    format!(
        "`skydeck {}` exited with {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        args.join(" "),
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs `skydeck ARGS`, asserts it succeeded without starting a server,
/// and returns its stdout.
fn reuse(home: &Path, args: &[&str]) -> String {
    let output = skydeck(home, args, &[]);
    let text = describe(args, &output);
    assert!(output.status.success(), "{text}");
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains("Starting"),
        "{text}"
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Whether process `pid` has exited (gone, or a zombie its parent has not
/// reaped yet).
fn exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_or(true, |stat| stat.split_whitespace().nth(2) == Some("Z"))
}

#[test]
fn commands_reuse_the_homes_server_on_its_own_port_and_api_stop_stops_only_it() {
    let scratch = tempfile::tempdir().unwrap();
    let (home_a, home_b) = (scratch.path().join("a"), scratch.path().join("b"));
    let a = TestServer::start(&home_a, &[]);
    let b = TestServer::start(&home_b, &[]);
    assert!(!a.url.ends_with(":46580"), "{}", a.url);

    // Status, info and the request list all go to A, with no "Starting".
    reuse(&home_a, &["status"]);
    let info = reuse(&home_a, &["api", "info"]);
    assert!(info.contains(&a.url), "{info}");
    let requests = reuse(&home_a, &["api", "status", "-a"]);
    assert!(requests.contains("sky.status"), "{requests}");

    // Aimed at B from A's home: B is not A's to stop; both keep running.
    let args = ["api", "stop"];
    let output = skydeck(&home_a, &args, &[("SKYDECK_API_SERVER_ENDPOINT", &b.url)]);
    let text = describe(&args, &output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("was not started from"), "{text}");
    assert!(!exited(a.pid()) && !exited(b.pid()), "{text}");

    // Aimed at A (by its home, or by its URL): A stops, B does not.
    let output = skydeck(&home_a, &args, &[("SKYDECK_API_SERVER_ENDPOINT", &a.url)]);
    let text = describe(&args, &output);
    assert!(output.status.success(), "{text}");
    assert!(text.contains(&format!("at {} stopped", a.url)), "{text}");
    assert!(exited(a.pid()), "{text}");
    assert!(!exited(b.pid()), "{text}");
    assert!(!home_a.join("server.json").exists());

    let output = skydeck(&home_b, &args, &[]);
    let text = describe(&args, &output);
    assert!(output.status.success(), "{text}");
    assert!(exited(b.pid()), "{text}");
    let output = skydeck(&home_b, &args, &[]);
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("No Skydeck API server is running"),
        "{}",
        describe(&args, &output)
    );
}
