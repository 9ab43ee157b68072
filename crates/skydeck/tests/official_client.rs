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

use support::TestServer;
use support::sky::{Report, Sky, official_sky, temp_dir};

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
