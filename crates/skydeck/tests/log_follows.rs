//! Following a job's log takes no worker and ends with its client: fifty
//! real `skydeck logs` followers, killed every way a terminal dies, leave
//! nothing running on the server. And a job's output is bytes: a byte that
//! is not UTF-8, or a line of megabytes, never fails a job that succeeded.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::{TestServer, http};
use tokio::process::{Child, Command};

/// Generous: these are deadlines for "it happens", not speed targets.
const DEADLINE: Duration = Duration::from_secs(120);
const FOLLOWERS: usize = 50;

fn cli(server: &TestServer, cwd: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(support::BINARY);
    command
        .args(args)
        .current_dir(cwd)
        .env("SKYDECK_HOME", &server.home)
        .env("SKYDECK_API_SERVER_ENDPOINT", &server.url)
        .env_remove("SKYDECK_SERVICE_ACCOUNT_TOKEN")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Runs a command to its end (within [`DEADLINE`]): exit code, stdout
/// bytes, stderr.
async fn run(server: &TestServer, cwd: &Path, args: &[&str]) -> (Option<i32>, Vec<u8>, String) {
    let child = cli(server, cwd, args).spawn().expect("start skydeck");
    let output = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "`skydeck {}` did not finish\n--- server log ---\n{}",
                args.join(" "),
                server.stderr()
            )
        })
        .expect("skydeck ran");
    (
        output.status.code(),
        output.stdout,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// One series of the server's metrics, e.g. `skydeck_log_follows`.
async fn gauge(server: &TestServer, series: &str) -> f64 {
    let url = server.metrics_url.as_deref().expect("metrics are on");
    let body = http("GET", url, None).await.body;
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.trim().parse().expect("a number"))
}

async fn follows(server: &TestServer) -> f64 {
    gauge(server, "skydeck_log_follows").await
}

/// Polls a gauge until it is `wanted`.
async fn wait_for_gauge(server: &TestServer, series: &str, wanted: f64) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let now = gauge(server, series).await;
        if now == wanted {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} is {now}, expected {wanted}\n--- server log ---\n{}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_for_follows(server: &TestServer, wanted: f64) {
    wait_for_gauge(server, "skydeck_log_follows", wanted).await;
}

fn signal(child: &Child, name: &str) {
    let pid = child.id().expect("still running").to_string();
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name} {pid}");
}

fn start(scratch: &Path) -> (TestServer, PathBuf) {
    let server = TestServer::start(
        &scratch.join("home"),
        &[
            ("SKYDECK_METRICS", "1"),
            ("SKYDECK_METRICS_PORT", "0"),
            ("SKYDECK_TEST_HOLD_REQUESTS", "sky.check"),
        ],
    );
    let cwd = scratch.join("work");
    std::fs::create_dir_all(&cwd).unwrap();
    (server, cwd)
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_log_followers_hold_no_worker_and_leave_nothing_running() {
    let scratch = tempfile::tempdir().unwrap();
    let (server, cwd) = start(scratch.path());
    // A job that outlives the test and prints, so that a follower whose
    // stdout was closed finds out on its next write.
    std::fs::write(
        cwd.join("busy.yaml"),
        "run: |\n  while true; do echo tick; sleep 1; done\n",
    )
    .unwrap();
    let (code, _, stderr) = run(
        &server,
        &cwd,
        &["launch", "-c", "busy", "-y", "-d", "busy.yaml"],
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");

    let mut followers = Vec::new();
    for _ in 0..FOLLOWERS {
        followers.push(
            cli(&server, &cwd, &["logs", "busy", "1"])
                .spawn()
                .expect("start a follower"),
        );
    }
    wait_for_follows(&server, FOLLOWERS as f64).await;

    // More followers than long workers, all attached: a launch still runs.
    let (code, _, stderr) = run(
        &server,
        &cwd,
        &["launch", "-c", "during", "-y", "-d", "--", "true"],
    )
    .await;
    assert_eq!(
        code,
        Some(0),
        "a launch while {FOLLOWERS} logs are followed: {stderr}"
    );

    for (index, follower) in followers.iter_mut().enumerate() {
        match index % 4 {
            0 => signal(follower, "INT"),
            1 => signal(follower, "TERM"),
            2 => signal(follower, "KILL"),
            // A closed terminal: the next line it prints fails.
            _ => drop(follower.stdout.take()),
        }
    }
    for mut follower in followers {
        tokio::time::timeout(DEADLINE, follower.wait())
            .await
            .expect("a killed follower exits")
            .expect("reap");
    }
    wait_for_follows(&server, 0.0).await;

    let (code, _, stderr) = run(&server, &cwd, &["exec", "busy", "-d", "--", "true"]).await;
    assert_eq!(code, Some(0), "exec after the followers left: {stderr}");
    let (code, _, stderr) = run(
        &server,
        &cwd,
        &["launch", "-c", "after", "-y", "-d", "--", "true"],
    )
    .await;
    assert_eq!(code, Some(0), "launch after the followers left: {stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn output_that_is_not_utf8_or_one_huge_line_passes_through() {
    let scratch = tempfile::tempdir().unwrap();
    let (server, cwd) = start(scratch.path());
    // 0xff, then a 3 MB line with no newline until its end.
    std::fs::write(
        cwd.join("bytes.yaml"),
        "run: |\n  printf 'before\\377after\\n'\n  head -c 3000000 /dev/zero | tr '\\0' x\n  echo\n  echo done\n",
    )
    .unwrap();
    let (code, stdout, stderr) = run(
        &server,
        &cwd,
        &["launch", "-c", "bytes", "-y", "bytes.yaml"],
    )
    .await;
    assert_eq!(code, Some(0), "a job that succeeded: {stderr}");
    let text = String::from_utf8(stdout).expect("the CLI prints text");
    assert!(
        text.contains("before\u{fffd}after\n"),
        "{}",
        &text[..text.len().min(200)]
    );
    assert!(text.contains(&format!("{}\ndone", "x".repeat(3_000_000))));

    let (code, stdout, stderr) = run(&server, &cwd, &["logs", "bytes", "1", "--no-follow"]).await;
    assert_eq!(code, Some(0), "logs of a job that succeeded: {stderr}");
    assert!(String::from_utf8_lossy(&stdout).contains("before\u{fffd}after"));

    let (code, _, stderr) = run(&server, &cwd, &["logs", "bytes", "1", "--sync-down"]).await;
    assert_eq!(code, Some(0), "sync-down of a job that succeeded: {stderr}");
    let saved = std::fs::read(cwd.join("skydeck_logs/bytes/job-1/run.log")).unwrap();
    let saved = String::from_utf8_lossy(&saved);
    assert!(saved.contains("before\u{fffd}after") && saved.ends_with("done\n"));
    assert_eq!(follows(&server).await, 0.0);

    // The official client's `--sync-down`: the server prepares the file
    // for download, with the bytes the job wrote.
    let api = skydeck_client::Client::new(&server.url, None).unwrap();
    let id = api
        .submit(
            "/download_logs",
            &serde_json::json!({"cluster_name": "bytes", "job_ids": ["1"]}),
        )
        .await
        .unwrap();
    let folders = api
        .wait(&id)
        .await
        .expect("download_logs of a job that succeeded");
    let folder = folders["1"].as_str().expect("job 1's folder");
    let prepared = server
        .home
        .join("downloads")
        .join(folder.trim_start_matches("~/"))
        .join("run.log");
    let prepared = std::fs::read(&prepared).unwrap();
    assert!(prepared.windows(13).any(|w| w == b"before\xffafter\n"));
    assert!(prepared.ends_with(b"done\n"));
}

/// Opens a raw connection and sends `GET path` with the client's headers;
/// the answer is never read.
async fn hang_on(server: &TestServer, path: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let addr = server.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nX-SkyPilot-API-Version: 62\r\n\
         X-SkyPilot-Version: 0.14.1\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    stream
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_connection_ends_waits_and_streams() {
    let scratch = tempfile::tempdir().unwrap();
    let (server, _cwd) = start(scratch.path());
    // Held: it never finishes, so every wait on it lasts until its client
    // leaves.
    let held = support::submit(&server.url, "/check", "{}").await;
    let mut connections = Vec::new();
    for _ in 0..5 {
        connections.push(hang_on(&server, &format!("/api/get?request_id={held}")).await);
        connections.push(hang_on(&server, &format!("/api/stream?request_id={held}")).await);
    }
    wait_for_gauge(&server, "skydeck_client_waits{endpoint=\"get\"}", 5.0).await;
    wait_for_gauge(&server, "skydeck_client_waits{endpoint=\"stream\"}", 5.0).await;
    drop(connections);
    wait_for_gauge(&server, "skydeck_client_waits{endpoint=\"get\"}", 0.0).await;
    wait_for_gauge(&server, "skydeck_client_waits{endpoint=\"stream\"}", 0.0).await;
}
