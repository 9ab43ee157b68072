//! Starts the real `skydeck` binary for end-to-end tests.
//!
//! Servers bind port 0 and report their URL on stdout; the harness reads that
//! line instead of sleeping. Every server is stopped by its own PID when the
//! handle drops.

#![allow(dead_code)]

pub mod browser;
pub mod host_faults;
pub mod sky;
#[path = "../../../skydeck-infra/tests/support/ssh_hosts.rs"]
pub mod ssh_hosts;
pub mod team;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BINARY: &str = env!("CARGO_BIN_EXE_skydeck");

/// A `skydeck api start --foreground` process on a state directory.
pub struct TestServer {
    pub url: String,
    /// `http://…/metrics`, when the server was started with metrics on.
    pub metrics_url: Option<String>,
    pub home: PathBuf,
    child: Option<Child>,
    /// Whether dropping it stops its clusters' agents too.
    stops_agents: bool,
}

impl TestServer {
    /// Starts a server on `home` with extra environment variables.
    pub fn start(home: &Path, envs: &[(&str, &str)]) -> Self {
        std::fs::create_dir_all(home).expect("create the state directory");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(home.join("test-server.stderr"))
            .expect("open the server log");
        let mut command = Command::new(BINARY);
        command
            .args([
                "api",
                "start",
                "--foreground",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
            ])
            .env("SKYDECK_HOME", home)
            .env_remove("SKYDECK_DB_CONNECTION_URI")
            .env_remove("SKYDECK_API_SERVER_ENDPOINT")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        for (key, value) in envs {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("cannot start skydeck");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut metrics_url = None;
        let url = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.strip_prefix("Skydeck metrics at ") {
                        metrics_url = Some(url.trim().to_owned());
                    }
                    // The line's last word is the URL to reach it from here.
                    if let Some(rest) = line.strip_prefix("Skydeck API server listening on ") {
                        break rest
                            .split_whitespace()
                            .last()
                            .unwrap_or_default()
                            .to_owned();
                    }
                }
                _ => {
                    let stderr = std::fs::read_to_string(home.join("test-server.stderr"))
                        .unwrap_or_default();
                    let _ = child.kill();
                    panic!("skydeck exited before listening; stderr:\n{stderr}");
                }
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self {
            url,
            metrics_url,
            home: home.to_owned(),
            child: Some(child),
            stops_agents: true,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn kill9(mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("kill -9");
        child.wait().expect("reap");
    }

    /// Kills the server with SIGKILL and leaves its clusters' agents (and
    /// their jobs) running, as a crash of the server process alone would.
    pub fn kill9_leaving_agents(mut self) {
        self.stops_agents = false;
        self.kill9();
    }

    /// Stops the server with SIGTERM and waits for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        terminate(&mut child)
    }

    /// The server's log so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.home.join("test-server.stderr")).unwrap_or_default()
    }
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return child.wait().expect("reap");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child);
        }
        if self.stops_agents {
            stop_agents(&self.home);
        }
    }
}

/// Stops the agents under `home` and waits until they have exited, as if
/// the machine they ran on was lost.
pub fn stop_agents_and_wait(home: &Path) {
    let pids = stop_agents(home);
    let deadline = Instant::now() + Duration::from_secs(30);
    while pids
        .iter()
        .any(|pid| Path::new(&format!("/proc/{pid}")).exists())
    {
        assert!(Instant::now() < deadline, "agents {pids:?} did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stops the cluster agents the server started under `home` (they outlive
/// it by design), so a test that fails before `down` leaves nothing behind.
/// Only a live `agent daemon` whose command line names this home is
/// signalled; it stops its jobs as it exits. Returns the PIDs signalled.
fn stop_agents(home: &Path) -> Vec<i32> {
    let mut signalled = Vec::new();
    let Ok(clusters) = std::fs::read_dir(home.join("clusters")) else {
        return signalled;
    };
    for cluster in clusters.flatten() {
        let pid_file = cluster.path().join("agent").join("daemon.pid");
        let Some(pid) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|text| text.trim().parse::<i32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
            .unwrap_or_default();
        if cmdline.contains("agent daemon") && cmdline.contains(&*home.to_string_lossy()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
            signalled.push(pid);
        }
    }
    signalled
}

/// An HTTP call to the server with the official client's version headers.
pub async fn http(method: &str, url: &str, body: Option<&str>) -> Response {
    let client = skydeck_client::http_client().expect("an HTTP client");
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = client
        .request(method, url)
        .header("X-SkyPilot-API-Version", "62")
        .header("X-SkyPilot-Version", "0.14.1");
    if let Some(body) = body {
        request = request
            .header("Content-Type", "application/json")
            .body(body.to_owned());
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let body = response.text().await.expect("a body");
    Response {
        status,
        headers,
        body,
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Submits a request and returns its id.
pub async fn submit(url: &str, path: &str, body: &str) -> String {
    let response = http("POST", &format!("{url}{path}"), Some(body)).await;
    assert_eq!(response.status, 200, "{path}: {}", response.body);
    response
        .header("x-skypilot-request-id")
        .expect("a request id")
        .to_owned()
}

/// An agent program that waits at the door of `agent daemon` until the
/// test creates the gate file, so a launch can be held mid-provisioning.
/// Returns the program, the file it creates on arrival, and the gate.
pub fn gated_agent(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let arrived = dir.join("agent-arrived");
    let gate = dir.join("agent-gate");
    let script = dir.join("gated-agent.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             if [ \"$2\" = daemon ]; then\n\
               touch '{arrived}'\n\
               while [ ! -e '{gate}' ]; do sleep 0.05; done\n\
             fi\n\
             exec '{BINARY}' \"$@\"\n",
            arrived = arrived.display(),
            gate = gate.display(),
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, arrived, gate)
}

/// The PostgreSQL server `scripts/test.sh` started (`None` outside CI when
/// none was given; CI must give one).
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var("SKYDECK_TEST_POSTGRES_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run this on PostgreSQL: set SKYDECK_TEST_POSTGRES_URL"
            );
            eprintln!("SKYDECK_TEST_POSTGRES_URL unset: skipping");
            None
        }
    }
}

/// A fresh database on the PostgreSQL server of `admin_url`; its URL.
pub async fn create_database(admin_url: &str) -> String {
    use sqlx::Connection;
    // Unique per test, also when the tests of a file share a process.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("skydeck_test_{}_{n}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(admin_url).await.unwrap();
    for statement in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::query(&statement).execute(&mut admin).await.unwrap();
    }
    let base = admin_url.rsplit_once('/').unwrap().0;
    format!("{base}/{name}")
}

pub async fn drop_database(admin_url: &str, url: &str) {
    use sqlx::Connection;
    let name = url.rsplit_once('/').unwrap().1;
    let mut admin = sqlx::PgConnection::connect(admin_url).await.unwrap();
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
}

/// What a `skydeck` command printed, and its exit status.
pub struct CliRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CliRun {
    pub fn describe(&self) -> String {
        format!(
            "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs the `skydeck` CLI against `server` from `cwd`, for at most two
/// minutes.
pub async fn skydeck_cli(server: &TestServer, cwd: &Path, args: &[&str]) -> CliRun {
    let child = tokio::process::Command::new(BINARY)
        .args(args)
        .current_dir(cwd)
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
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("`skydeck {}` ran too long", args.join(" ")))
        .expect("skydeck ran");
    CliRun {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
