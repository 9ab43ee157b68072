//! Autostop that arrives in the task: the official 0.14.1 client folds
//! `-i`, `--down` and `resources.autostop` into the task's
//! `resources.autostop` and sends the body's flags empty. Clusters
//! launched that way (or exec'd on with such a task) must stop, and a
//! stopped cluster shows no autostop.
//!
//! The first test speaks the API directly, as that client does; the second
//! drives the real `sky` (skipped without `SKYDECK_TEST_SKY`, see
//! `support::sky`). Both shorten the agents' autostop minute with
//! `SKYDECK_AGENT_AUTOSTOP_UNIT_SECS`.

mod support;

use serde_json::{Value, json};
use skydeck_client::Client;
use std::time::{Duration, Instant};
use support::TestServer;
use support::sky::{Outcome, Report, Sky, official_sky, temp_dir};

/// How long any one state change may take before the test gives up.
const DEADLINE: Duration = Duration::from_secs(90);
/// The same through `sky status`, each call of which starts Python.
const SKY_DEADLINE: Duration = Duration::from_secs(300);

/// An autostop "minute" of a fifth of a second: a 1-minute autostop fires
/// within seconds, a 6000-minute one not within the test.
const FAST_MINUTES: (&str, &str) = ("SKYDECK_AGENT_AUTOSTOP_UNIT_SECS", "0.2");

async fn refresh_status(api: &Client) -> Vec<Value> {
    let id = api
        .submit(
            "/status",
            &json!({"cluster_names": null, "refresh": "FORCE", "all_users": true}),
        )
        .await
        .expect("status accepted");
    match api.wait(&id).await.expect("status answers") {
        Value::Array(clusters) => clusters,
        other => panic!("status answered {other}"),
    }
}

async fn record(api: &Client, cluster: &str) -> Option<Value> {
    refresh_status(api)
        .await
        .into_iter()
        .find(|c| c["name"] == cluster)
}

/// Polls until `cluster` has `status` (None: is gone); returns its record.
async fn wait_cluster(api: &Client, cluster: &str, status: Option<&str>) -> Option<Value> {
    let started = Instant::now();
    loop {
        let now = record(api, cluster).await;
        if now
            .as_ref()
            .map(|c| c["status"].as_str().unwrap_or_default())
            == status
        {
            return now;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{cluster} is {now:?}, not {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn run(api: &Client, path: &str, body: Value) -> Value {
    let id = api.submit(path, &body).await.expect("request accepted");
    api.wait(&id)
        .await
        .unwrap_or_else(|e| panic!("{path} failed: {e}"))
}

fn autostop_of(record: &Value) -> (i64, bool) {
    (
        record["autostop"].as_i64().expect("autostop is a number"),
        record["to_down"].as_bool().expect("to_down is a bool"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn autostop_in_the_task_is_applied_on_launch_and_exec_and_cleared_on_stop() {
    let home = tempfile::tempdir().unwrap();
    let server = TestServer::start(home.path(), &[FAST_MINUTES]);
    let api = Client::new(&server.url, None).expect("a client");

    // What `sky launch -i 1` sends: no flags in the body, the setting in
    // the task. The cluster stops by itself, and then shows no autostop.
    run(
        &api,
        "/launch",
        json!({
            "task": "resources:\n  autostop:\n    idle_minutes: 1\n    down: false\nrun: echo napping\n",
            "cluster_name": "napper",
        }),
    )
    .await;
    let stopped = wait_cluster(&api, "napper", Some("STOPPED")).await.unwrap();
    assert_eq!(autostop_of(&stopped), (-1, false), "{stopped}");

    // `autostop: {idle_minutes: 1, down: true}`: torn down by itself.
    run(
        &api,
        "/launch",
        json!({
            "task": "resources:\n  autostop: {idle_minutes: 1, down: true}\nrun: echo bye\n",
            "cluster_name": "goner",
        }),
    )
    .await;
    wait_cluster(&api, "goner", None).await;

    // A long autostop arriving with an exec onto an existing cluster is
    // set on it, and `stop` clears it.
    run(
        &api,
        "/launch",
        json!({"task": "run: echo up\n", "cluster_name": "keeper"}),
    )
    .await;
    let up = record(&api, "keeper").await.unwrap();
    assert_eq!(autostop_of(&up), (-1, false), "{up}");
    run(
        &api,
        "/exec",
        json!({
            "task": "resources:\n  autostop: {idle_minutes: 6000, down: true}\nrun: echo again\n",
            "cluster_name": "keeper",
        }),
    )
    .await;
    let set = record(&api, "keeper").await.unwrap();
    assert_eq!(autostop_of(&set), (6000, true), "{set}");
    run(&api, "/stop", json!({"cluster_name": "keeper"})).await;
    let stopped = record(&api, "keeper").await.unwrap();
    assert_eq!(stopped["status"], "STOPPED");
    assert_eq!(autostop_of(&stopped), (-1, false), "{stopped}");

    // Started again, it has no autostop: not in the record, and not in
    // the agent either (it would stop the cluster within seconds here).
    run(&api, "/start", json!({"cluster_name": "napper"})).await;
    run(
        &api,
        "/exec",
        json!({"task": "run: echo awake\n", "cluster_name": "napper"}),
    )
    .await;
    let agent_state = home.path().join("clusters/napper/agent/state.json");
    let state: Value = serde_json::from_slice(&std::fs::read(&agent_state).unwrap()).unwrap();
    assert!(state["autostop"].is_null(), "{state}");
    let awake = record(&api, "napper").await.unwrap();
    assert_eq!(awake["status"], "UP");
    assert_eq!(autostop_of(&awake), (-1, false), "{awake}");

    for cluster in ["napper", "keeper"] {
        run(&api, "/down", json!({"cluster_name": cluster})).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policys_forced_autostop_caps_the_tasks_and_leaves_a_plain_exec_alone() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path()).unwrap();
    std::fs::write(
        home.path().join("config.yaml"),
        "admin_policy:\n  autostop: {idle_minutes: 6000, down: false}\n",
    )
    .unwrap();
    let server = TestServer::start(home.path(), &[]);
    let api = Client::new(&server.url, None).expect("a client");

    // The task asks for longer than the policy allows: capped.
    run(
        &api,
        "/launch",
        json!({
            "task": "resources:\n  autostop: {idle_minutes: 9000, down: false}\nrun: echo hi\n",
            "cluster_name": "capped",
        }),
    )
    .await;
    let capped = record(&api, "capped").await.unwrap();
    assert_eq!(autostop_of(&capped), (6000, false), "{capped}");

    // Set shorter by hand, then an exec that asks nothing: kept.
    run(
        &api,
        "/autostop",
        json!({"cluster_name": "capped", "idle_minutes": 3000, "down": true}),
    )
    .await;
    run(
        &api,
        "/exec",
        json!({"task": "run: echo again\n", "cluster_name": "capped"}),
    )
    .await;
    let kept = record(&api, "capped").await.unwrap();
    assert_eq!(autostop_of(&kept), (3000, true), "{kept}");
    run(&api, "/down", json!({"cluster_name": "capped"})).await;
}

/// The AUTOSTOP cell of `cluster`'s row in `sky status`, read at the
/// column where the header puts it.
fn autostop_cell(status: &Outcome, cluster: &str) -> Option<String> {
    let mut lines = status.stdout.lines();
    let header = lines.by_ref().find(|l| l.contains("AUTOSTOP"))?;
    let start = header.find("AUTOSTOP")?;
    let end = header.find("LAUNCHED").unwrap_or(header.len());
    let row = lines.find(|l| l.split_whitespace().next() == Some(cluster))?;
    row.get(start..end.min(row.len()))
        .map(|cell| cell.trim().to_owned())
}

/// Polls `sky status` until `holds` is true of its outcome.
async fn wait_sky_status(sky: &Sky, what: &str, holds: impl Fn(&Outcome) -> bool) -> Outcome {
    let started = Instant::now();
    loop {
        let status = sky.run(&["status"]).await;
        if status.success() && holds(&status) {
            return status;
        }
        assert!(
            started.elapsed() < SKY_DEADLINE,
            "waiting for {what}:\n{}",
            status.describe()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn official_sky_autostop_flags_and_yaml_stop_the_cluster() {
    let Some(executable) = official_sky() else {
        return;
    };
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let server = TestServer::start(&temp_dir(scratch.path(), "server"), &[FAST_MINUTES]);
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

    // Flags: the column says what was asked.
    let launch = sky
        .run(&[
            "launch", "-y", "-c", "keeper", "-i", "6000", "--down", "echo hi",
        ])
        .await;
    report.expect(&launch, &["hi"]);
    let status = sky.run(&["status"]).await;
    let cell = autostop_cell(&status, "keeper");
    report.check(
        &status,
        cell.as_deref() == Some("100h (down)"),
        &format!("keeper's AUTOSTOP must read \"100h (down)\", not {cell:?}"),
    );

    // `sky exec` sends the task's `resources.autostop` too.
    let task = scratch.path().join("exec.yaml");
    std::fs::write(
        &task,
        "resources:\n  autostop:\n    idle_minutes: 3000\nrun: echo exec-ran\n",
    )
    .unwrap();
    let exec = sky.run(&["exec", "keeper", task.to_str().unwrap()]).await;
    report.expect(&exec, &["exec-ran"]);
    let status = sky.run(&["status"]).await;
    let cell = autostop_cell(&status, "keeper");
    report.check(
        &status,
        cell.as_deref() == Some("50h"),
        &format!("after exec, keeper's AUTOSTOP must read \"50h\", not {cell:?}"),
    );

    // `sky stop` clears the column.
    let stop = sky.run(&["stop", "-y", "keeper"]).await;
    report.expect(&stop, &[]);
    let status = sky.run(&["status"]).await;
    let cell = autostop_cell(&status, "keeper");
    report.check(
        &status,
        cell.as_deref() == Some("-"),
        &format!("a stopped cluster's AUTOSTOP must read \"-\", not {cell:?}"),
    );

    // YAML: stops by itself, then shows no autostop.
    let task = scratch.path().join("nap.yaml");
    std::fs::write(&task, "resources:\n  autostop: 1\nrun: echo napping\n").unwrap();
    let launch = sky
        .run(&["launch", "-y", "-c", "napper", task.to_str().unwrap()])
        .await;
    report.expect(&launch, &["napping"]);
    let stopped = wait_sky_status(&sky, "napper to stop by itself", |status| {
        status
            .stdout
            .lines()
            .any(|l| l.starts_with("napper ") && l.contains("STOPPED"))
    })
    .await;
    let cell = autostop_cell(&stopped, "napper");
    report.check(
        &stopped,
        cell.as_deref() == Some("-"),
        &format!("an autostopped cluster's AUTOSTOP must read \"-\", not {cell:?}"),
    );

    // `-i 1 --down`: torn down by itself.
    let launch = sky
        .run(&[
            "launch", "-y", "-c", "goner", "-i", "1", "--down", "echo bye",
        ])
        .await;
    report.expect(&launch, &["bye"]);
    wait_sky_status(&sky, "goner to be torn down by itself", |status| {
        !status.stdout.lines().any(|l| l.starts_with("goner "))
    })
    .await;

    for cluster in ["keeper", "napper"] {
        let down = sky.run(&["down", "-y", cluster]).await;
        report.expect(&down, &[]);
    }
    report.finish();
}
