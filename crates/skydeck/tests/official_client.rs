//! Drives the official SkyPilot CLI (`pip install skypilot==0.14.1`) against
//! a real `skydeck` server.
//!
//! The `sky` executable comes from `SKYDECK_TEST_SKY`; `scripts/sky-venv.sh`
//! installs it and prints its path. Without it the test is skipped, except
//! under CI, where it fails.
//!
//! The client runs with a HOME of its own, usage collection off, no proxies
//! and the server on a kernel-chosen port of 127.0.0.1, so it never treats the
//! server as its local one (`127.0.0.1:46580`) and never talks to any other
//! host.

mod support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use support::TestServer;

/// How long one `sky` command may run before it is killed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// The path of the official `sky` executable, or `None` to skip the test.
fn official_sky() -> Option<PathBuf> {
    match std::env::var_os("SKYDECK_TEST_SKY") {
        Some(path) if !path.is_empty() => {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "SKYDECK_TEST_SKY={} is not a file",
                path.display()
            );
            Some(path)
        }
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must set SKYDECK_TEST_SKY to the official `sky` executable \
                 (skypilot==0.14.1); scripts/sky-venv.sh installs it and prints its path: \
                 SKYDECK_TEST_SKY=$(scripts/sky-venv.sh | tail -n 1)"
            );
            eprintln!(
                "skipping the official client test: SKYDECK_TEST_SKY is not set \
                 (SKYDECK_TEST_SKY=$(scripts/sky-venv.sh | tail -n 1) provides it)"
            );
            None
        }
    }
}

/// The official CLI with a HOME of its own, shared by every command so the
/// login persists.
struct Sky {
    executable: PathBuf,
    home: PathBuf,
}

/// What one `sky` command did; ANSI styling removed from its output.
struct Outcome {
    command: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Both streams: the client prints some messages on stderr.
    fn output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    fn describe(&self) -> String {
        format!(
            "`{}` exited with {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }
}

impl Sky {
    async fn run(&self, args: &[&str]) -> Outcome {
        self.run_with(args, &[]).await
    }

    /// `run` with extra environment variables (set after the caller's
    /// `SKYPILOT_*` ones are removed).
    async fn run_with(&self, args: &[&str], envs: &[(&str, &str)]) -> Outcome {
        let mut command = tokio::process::Command::new(&self.executable);
        command.args(args);
        // Nothing inherited may redirect the client: no endpoint, token,
        // config or proxy of the caller's.
        for (key, _) in std::env::vars_os() {
            let name = key.to_string_lossy().to_ascii_uppercase();
            if name.starts_with("SKYPILOT_") || name.ends_with("_PROXY") {
                command.env_remove(&key);
            }
        }
        command
            .env_remove("SKYPILOT_API_SERVER_ENDPOINT")
            .env("HOME", &self.home)
            .env("SKYPILOT_DISABLE_USAGE_COLLECTION", "1")
            .env("DO_NOT_TRACK", "1")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost")
            .env("NO_COLOR", "1")
            .env("TERM", "dumb")
            .env("COLUMNS", "200")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command.envs(envs.iter().copied());
        let rendered = format!("sky {}", args.join(" "));
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.executable.display()));
        // On timeout the future, and with it the child, is dropped: killed.
        let output = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("`{rendered}` ran longer than {COMMAND_TIMEOUT:?}"))
            .unwrap_or_else(|e| panic!("`{rendered}`: {e}"));
        Outcome {
            command: rendered,
            code: output.status.code(),
            stdout: strip_ansi(&String::from_utf8_lossy(&output.stdout)),
            stderr: strip_ansi(&String::from_utf8_lossy(&output.stderr)),
        }
    }
}

/// Removes ANSI escape sequences (CSI and OSC), in case the client styles
/// its output even without a terminal.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\u{7}' || (c == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Collects failures so one run reports every broken command at once.
struct Report<'a> {
    server: &'a TestServer,
    failures: String,
}

impl Report<'_> {
    /// Records a failure unless the command exited 0 and its output has
    /// every fragment.
    fn expect(&mut self, outcome: &Outcome, fragments: &[&str]) {
        let output = outcome.output();
        let missing: Vec<&str> = fragments
            .iter()
            .copied()
            .filter(|fragment| !output.contains(fragment))
            .collect();
        if outcome.success() && missing.is_empty() {
            eprintln!("ok: `{}`\n{}", outcome.command, outcome.stdout.trim_end());
            return;
        }
        let _ = writeln!(
            self.failures,
            "\n===== `{}`: exit 0 and {:?} expected; missing {:?}\n{}",
            outcome.command,
            fragments,
            missing,
            outcome.describe()
        );
    }

    /// Records a failure with a free-form check.
    fn check(&mut self, outcome: &Outcome, holds: bool, what: &str) {
        if !holds {
            let _ = writeln!(
                self.failures,
                "\n===== `{}`: {what}\n{}",
                outcome.command,
                outcome.describe()
            );
        }
    }

    fn finish(self) {
        let log = self.server.stderr();
        let mut failures = self.failures;
        for bad in ["panicked", "internal error"] {
            if log.contains(bad) {
                let _ = writeln!(failures, "\n===== the server log mentions {bad:?}");
            }
        }
        assert!(
            failures.is_empty(),
            "the official client failed against skydeck:{failures}\n===== server log =====\n{log}"
        );
    }
}

fn temp_dir(parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn official_sky_client_manages_the_api_server_and_checks_status() {
    let Some(executable) = official_sky() else {
        return;
    };
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let server = TestServer::start(&temp_dir(scratch.path(), "server"), &[]);
    let url = server.url.clone();
    assert!(
        url.starts_with("http://127.0.0.1:") && !url.ends_with(":46580"),
        "the server must be remote to the client: {url}"
    );
    let sky = Sky {
        executable,
        home: temp_dir(scratch.path(), "client-home"),
    };
    let mut report = Report {
        server: &server,
        failures: String::new(),
    };

    let login = sky.run(&["api", "login", "-e", &url]).await;
    report.expect(
        &login,
        &[&format!("Logged into SkyPilot API server at: {url}")],
    );

    let info = sky.run(&["api", "info"]).await;
    report.expect(
        &info,
        &[
            &format!("Using SkyPilot API server and dashboard: {url}"),
            "HEALTHY",
        ],
    );
    // `api info` exits 0 even when it cannot reach the server; the line
    // about the server must carry the healthy status and its version.
    let status_line = info
        .stdout
        .lines()
        .find(|line| line.contains("Status:"))
        .unwrap_or_default();
    report.check(
        &info,
        status_line.contains("HEALTHY") && status_line.contains("version: 0.14.1"),
        "the server's status line must report HEALTHY and version 0.14.1",
    );

    let active = sky.run(&["api", "status"]).await;
    report.expect(&active, &["ID", "User", "Name", "Created", "Status"]);

    let check = sky.run(&["check"]).await;
    report.expect(
        &check,
        &["Local", &format!("Using SkyPilot API server: {url}")],
    );

    let status = sky.run(&["status"]).await;
    report.expect(&status, &["Enabled Infra", "No existing clusters."]);

    let history = sky.run(&["api", "status", "-a"]).await;
    report.expect(
        &history,
        &[
            "ID",
            "Name",
            "Status",
            "sky.check",
            "sky.status",
            "SUCCEEDED",
        ],
    );

    // Every request has finished, so nothing is left to cancel, but the
    // cancel request itself must run to completion.
    let cancel = sky.run(&["api", "cancel", "--all", "-y"]).await;
    report.expect(&cancel, &[]);
    report.check(
        &cancel,
        cancel
            .output()
            .contains("No requests need to be cancelled.")
            || cancel.output().contains("Cancelled"),
        "the cancel must report what it cancelled",
    );

    let after_cancel = sky
        .run(&["api", "status", "--all-status", "-l", "all"])
        .await;
    report.expect(
        &after_cancel,
        &["sky.api_cancel", "sky.check", "sky.status"],
    );

    report.finish();
}

/// `sky launch` with a workdir, then exec, logs, queue, cancel, status,
/// stop, start and down, all on the `local` infrastructure.
#[tokio::test(flavor = "multi_thread")]
async fn official_sky_client_runs_a_task_through_a_cluster_lifecycle() {
    let Some(executable) = official_sky() else {
        return;
    };
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let server = TestServer::start(&temp_dir(scratch.path(), "server"), &[]);
    let url = server.url.clone();
    let sky = Sky {
        executable,
        home: temp_dir(scratch.path(), "client-home"),
    };
    let mut report = Report {
        server: &server,
        failures: String::new(),
    };
    let project = temp_dir(scratch.path(), "project");
    std::fs::write(project.join("data.txt"), "payload-from-the-workdir\n").unwrap();
    let task = project.join("task.yaml");
    std::fs::write(
        &task,
        format!(
            "name: hello\nworkdir: {}\nsetup: echo setup-ran\nrun: |\n  cat data.txt\n  echo rank=$SKYPILOT_NODE_RANK nodes=$SKYPILOT_NUM_NODES\n",
            project.display()
        ),
    )
    .unwrap();
    let task = task.to_str().unwrap();

    let login = sky.run(&["api", "login", "-e", &url]).await;
    report.expect(&login, &["Logged into SkyPilot API server"]);

    let launch = sky.run(&["launch", "-y", "-c", "c1", task]).await;
    report.expect(
        &launch,
        &["setup-ran", "payload-from-the-workdir", "rank=0 nodes=1"],
    );

    let exec = sky.run(&["exec", "c1", "--", "echo", "exec-says-hi"]).await;
    report.expect(&exec, &["exec-says-hi"]);

    let logs = sky.run(&["logs", "c1", "1"]).await;
    report.expect(&logs, &["payload-from-the-workdir"]);

    let job_status = sky.run(&["logs", "--status", "c1", "1"]).await;
    report.expect(&job_status, &["SUCCEEDED"]);

    let tail = sky.run(&["logs", "--tail", "1", "c1", "1"]).await;
    report.expect(&tail, &[]);
    report.check(
        &tail,
        !tail.output().contains("setup-ran"),
        "--tail 1 shows only the end of the log",
    );

    let sync_down = sky.run(&["logs", "--sync-down", "c1", "1"]).await;
    report.expect(&sync_down, &["Job 1 logs:"]);
    let synced = std::fs::read_to_string(sky.home.join("sky_logs/c1/1/run.log"));
    report.check(
        &sync_down,
        synced.is_ok_and(|log| log.contains("payload-from-the-workdir")),
        "the job's log is downloaded to ~/sky_logs/c1/1/run.log",
    );

    let sleeper = sky.run(&["exec", "c1", "-d", "--", "sleep", "600"]).await;
    report.expect(&sleeper, &[]);
    let queue = sky.run(&["queue", "c1"]).await;
    report.expect(&queue, &["SUCCEEDED", "RUNNING"]);

    let cancel = sky.run(&["cancel", "-y", "c1", "3"]).await;
    report.expect(&cancel, &[]);
    let queue = sky.run(&["queue", "c1"]).await;
    report.expect(&queue, &["CANCELLED"]);

    let status = sky.run(&["status"]).await;
    report.expect(&status, &["c1", "UP"]);

    let stop = sky.run(&["stop", "-y", "c1"]).await;
    report.expect(&stop, &[]);
    let status = sky.run(&["status"]).await;
    report.expect(&status, &["STOPPED"]);

    let start = sky.run(&["start", "-y", "c1"]).await;
    report.expect(&start, &[]);
    let status = sky.run(&["status"]).await;
    report.expect(&status, &["UP"]);

    let down = sky.run(&["down", "-y", "c1"]).await;
    report.expect(&down, &[]);
    let status = sky.run(&["status"]).await;
    report.check(
        &status,
        status.success() && !status.stdout.contains("c1 "),
        "the cluster is gone after down",
    );
    report.finish();
}

/// A task without `name:` (as SkyPilot's examples and SDK-built tasks often
/// are) still leaves the cluster's queue readable by the client, and the
/// cluster's resources show in `sky status`.
#[tokio::test(flavor = "multi_thread")]
async fn official_sky_client_queues_a_task_without_a_name() {
    let Some(executable) = official_sky() else {
        return;
    };
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let server = TestServer::start(&temp_dir(scratch.path(), "server"), &[]);
    let url = server.url.clone();
    let sky = Sky {
        executable,
        home: temp_dir(scratch.path(), "client-home"),
    };
    let mut report = Report {
        server: &server,
        failures: String::new(),
    };
    let task = scratch.path().join("unnamed.yaml");
    std::fs::write(&task, "run: echo unnamed-job-ran\n").unwrap();
    let task = task.to_str().unwrap();

    let login = sky.run(&["api", "login", "-e", &url]).await;
    report.expect(&login, &["Logged into SkyPilot API server"]);

    let launch = sky.run(&["launch", "-y", "-c", "anon", task]).await;
    report.expect(&launch, &["unnamed-job-ran"]);

    let queue = sky.run(&["queue", "anon"]).await;
    report.expect(&queue, &["SUCCEEDED"]);
    let row = queue
        .stdout
        .lines()
        .find(|line| line.trim_start().starts_with("1 "))
        .unwrap_or_default()
        .to_owned();
    report.check(
        &queue,
        row.split_whitespace().nth(1) == Some("-"),
        "the unnamed job is listed with `-` as its name",
    );

    // INFRA and RESOURCES show the cluster's infrastructure and size, in
    // both the short and the full (`-v`, with WORKSPACE) table.
    for args in [&["status"][..], &["status", "-v"][..]] {
        let status = sky.run(args).await;
        report.expect(&status, &["anon", "UP"]);
        let row = status
            .stdout
            .lines()
            .find(|line| line.starts_with("anon "))
            .unwrap_or_default()
            .to_owned();
        report.check(
            &status,
            row.contains("1x(cpus="),
            "the RESOURCES column shows the cluster's nodes and size",
        );
        report.check(
            &status,
            row.split_whitespace()
                .nth(if args.len() == 1 { 1 } else { 2 })
                == Some("Local"),
            "the INFRA column shows the cluster's infrastructure",
        );
    }

    // The client reads the head IP from the same (pickled) handle.
    let ip = sky.run(&["status", "--ip", "anon"]).await;
    report.expect(&ip, &["127.0.0.1"]);

    let down = sky.run(&["down", "-y", "anon"]).await;
    report.expect(&down, &[]);
    report.finish();
}

/// Launches `cluster` through the API as the user in `url`'s credentials
/// and waits for it to be up.
async fn launch_as(url: &str, cluster: &str, task: &str) {
    let body = serde_json::json!({"cluster_name": cluster, "task": task}).to_string();
    let id = support::submit(url, "/launch", &body).await;
    let done = support::http("GET", &format!("{url}/api/get?request_id={id}"), None).await;
    assert_eq!(done.status, 200, "launch of {cluster}: {}", done.body);
}

/// With basic auth and tokens on: the official client logs in with a
/// password in the URL and with a service-account token, each user sees
/// only their own clusters, and no password, token or task secret reaches
/// the server's logs or the client's listings.
#[tokio::test(flavor = "multi_thread")]
async fn official_sky_client_logs_in_by_password_or_token_and_sees_only_its_clusters() {
    let Some(executable) = official_sky() else {
        return;
    };
    const ADMIN_PASSWORD: &str = "Adm1n-7f3e-pw";
    const ALICE_PASSWORD: &str = "al1ce-c0rrect-h0rse";
    const BOB_PASSWORD: &str = "b0b-b4ttery-st4ple";
    const SECRET: &str = "task-secret-9d2c41";
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let server = TestServer::start(
        &temp_dir(scratch.path(), "server"),
        &[
            ("SKYDECK_ENABLE_BASIC_AUTH", "1"),
            ("SKYDECK_ENABLE_SERVICE_ACCOUNTS", "1"),
            (
                "SKYDECK_INITIAL_BASIC_AUTH",
                &format!("admin:{ADMIN_PASSWORD}"),
            ),
        ],
    );
    let with = |user: &str, password: &str| {
        server
            .url
            .replacen("http://", &format!("http://{user}:{password}@"), 1)
    };
    let admin = with("admin", ADMIN_PASSWORD);
    for (name, password) in [("alice", ALICE_PASSWORD), ("bob", BOB_PASSWORD)] {
        let body = serde_json::json!({"name": name, "password": password}).to_string();
        let created = support::http("POST", &format!("{admin}/users/create"), Some(&body)).await;
        assert_eq!(created.status, 200, "{}", created.body);
    }
    let token = support::http(
        "POST",
        &format!("{admin}/users/tokens/create"),
        Some(r#"{"name": "bob-ci", "user": "bob"}"#),
    )
    .await
    .json()["token"]
        .as_str()
        .expect("a token")
        .to_owned();
    let secret_task = format!("run: echo ok\nsecrets:\n  API_KEY: {SECRET}\n");
    launch_as(&with("alice", ALICE_PASSWORD), "alices", &secret_task).await;
    launch_as(&with("bob", BOB_PASSWORD), "bobs", "run: echo ok\n").await;

    let mut report = Report {
        server: &server,
        failures: String::new(),
    };

    // Alice: the password in the endpoint URL.
    let alice = Sky {
        executable: executable.clone(),
        home: temp_dir(scratch.path(), "alice-home"),
    };
    let login = alice
        .run(&["api", "login", "-e", &with("alice", ALICE_PASSWORD)])
        .await;
    report.expect(&login, &["Logged into SkyPilot API server"]);
    let info = alice.run(&["api", "info"]).await;
    report.expect(&info, &["alice"]);
    let status = alice.run(&["status"]).await;
    report.expect(&status, &["alices"]);
    report.check(
        &status,
        !status.output().contains("bobs"),
        "alice must not see bob's cluster",
    );
    let requests = alice.run(&["api", "status", "-a"]).await;
    report.expect(&requests, &["sky.status"]);

    // Bob: a service-account token from the environment.
    let bob = Sky {
        executable: executable.clone(),
        home: temp_dir(scratch.path(), "bob-home"),
    };
    let token_env = [
        ("SKYPILOT_SERVICE_ACCOUNT_TOKEN", token.as_str()),
        ("SKYPILOT_API_SERVER_ENDPOINT", server.url.as_str()),
    ];
    let status = bob.run_with(&["status"], &token_env).await;
    report.expect(&status, &["bobs"]);
    report.check(
        &status,
        !status.output().contains("alices"),
        "bob must not see alice's cluster",
    );
    let info = bob.run_with(&["api", "info"], &token_env).await;
    report.expect(&info, &["bob"]);

    // A wrong password is refused at login.
    let stranger = Sky {
        executable,
        home: temp_dir(scratch.path(), "stranger-home"),
    };
    let refused = stranger
        .run(&["api", "login", "-e", &with("alice", "wrong-password")])
        .await;
    report.check(
        &refused,
        !refused.success(),
        "a wrong password must not log in",
    );

    // Nothing secret in what the server logged or answered. (`api login`
    // and `api info` echo the endpoint URL the user typed, password and
    // all: that is the client's own doing, so they are not checked.)
    let mut seen = server.stderr();
    for outcome in [&status, &requests] {
        seen.push_str(&outcome.output());
    }
    if let Ok(entries) = std::fs::read_dir(server.home.join("requests")) {
        for entry in entries.flatten() {
            seen.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    for secret in [
        ADMIN_PASSWORD,
        ALICE_PASSWORD,
        BOB_PASSWORD,
        &token,
        &token[4..],
        SECRET,
    ] {
        if seen.contains(secret) {
            let _ = writeln!(
                report.failures,
                "\n===== a secret ({}…) appears in the logs or output",
                &secret[..6]
            );
        }
    }
    for cluster in ["alices", "bobs"] {
        let body = serde_json::json!({"cluster_name": cluster}).to_string();
        let id = support::submit(&admin, "/down", &body).await;
        support::http("GET", &format!("{admin}/api/get?request_id={id}"), None).await;
    }
    report.finish();
}
