//! Managed jobs through the official SkyPilot 0.14.1 CLI, on `local`:
//! launch and its log to the end, the queue, `sky status` hiding the
//! jobs' clusters, a restart on failure within `max_restarts_on_errors`,
//! recovery when the job's cluster is lost, a two-task pipeline, cancel,
//! and a server killed with SIGKILL mid-job whose successor carries the
//! job on without running it twice.
//!
//! Jobs that must wait for the test wait on a gate file the test creates:
//! no sleeps stand in for synchronisation. Runs only with
//! `SKYDECK_TEST_SKY` (see `official_client.rs`).

mod support;

use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use support::sky::{Report, Sky, official_sky, temp_dir};
use support::{TestServer, http, stop_agents_and_wait, submit};

/// How long a job may take to reach a state the test waits for.
const WAIT: Duration = Duration::from_secs(90);

/// Every task row of every user's managed jobs, as the server answers the
/// client's queue request.
async fn queue(url: &str) -> Vec<Value> {
    let id = submit(url, "/jobs/queue/v2", r#"{"all_users": true}"#).await;
    let answer = http("GET", &format!("{url}/api/get?request_id={id}"), None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let value = answer.json();
    let result = &value["return_value"];
    let result: Value = match result {
        Value::String(text) => serde_json::from_str(text).expect("a JSON result"),
        other => other.clone(),
    };
    result["jobs"].as_array().cloned().unwrap_or_default()
}

/// Waits until task 0 of job `job_id` satisfies `check`; returns its row.
async fn wait_for(url: &str, job_id: u64, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let rows = queue(url).await;
        let row = rows
            .iter()
            .find(|row| row["job_id"] == job_id && row["task_id"] == 0)
            .cloned();
        if let Some(row) = &row
            && check(row)
        {
            return row.clone();
        }
        assert!(
            Instant::now() < deadline,
            "job {job_id} never reached {what}; last row: {row:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A task that announces each attempt, counts its runs in `count`, then
/// waits for `gate` before finishing.
fn gated_task(dir: &Path, name: &str) -> (String, std::path::PathBuf, std::path::PathBuf) {
    let gate = dir.join(format!("{name}.gate"));
    let count = dir.join(format!("{name}.count"));
    let task = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &task,
        format!(
            "name: {name}\nrun: |\n  echo attempt-of-$SKYPILOT_MANAGED_JOB_ID\n  echo ran >> '{count}'\n  \
             while [ ! -e '{gate}' ]; do sleep 0.1; done\n  echo finished-{name}\n",
            count = count.display(),
            gate = gate.display(),
        ),
    )
    .unwrap();
    (task.to_str().unwrap().to_owned(), gate, count)
}

fn job_id_of(output: &str) -> u64 {
    output
        .lines()
        .find_map(|line| line.split("Job submitted, ID: ").nth(1))
        .and_then(|id| id.trim().parse().ok())
        .unwrap_or_else(|| panic!("no job id in:\n{output}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn official_client_runs_restarts_recovers_and_cancels_managed_jobs() {
    let Some(executable) = official_sky() else {
        return;
    };
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let home = temp_dir(scratch.path(), "server");
    let server = TestServer::start(&home, &[]);
    let sky = Sky {
        executable,
        home: temp_dir(scratch.path(), "client-home"),
    };
    let mut report = Report {
        server: &server,
        failures: String::new(),
    };
    let dir = temp_dir(scratch.path(), "tasks");
    let login = sky.run(&["api", "login", "-e", &server.url]).await;
    report.expect(&login, &["Logged into SkyPilot API server"]);

    // Launch, then the log to the end.
    let hello = dir.join("hello.yaml");
    std::fs::write(
        &hello,
        "name: hello\nrun: echo hello-from-job-$SKYPILOT_MANAGED_JOB_ID\n",
    )
    .unwrap();
    let launch = sky
        .run(&["jobs", "launch", "-y", hello.to_str().unwrap()])
        .await;
    report.expect(
        &launch,
        &[
            "Job submitted, ID: 1",
            "hello-from-job-1",
            "Managed job finished: 1 (status: SUCCEEDED)",
        ],
    );
    let queued = sky.run(&["jobs", "queue"]).await;
    report.expect(&queued, &["hello", "SUCCEEDED"]);
    let controller = sky.run(&["jobs", "logs", "--controller", "1"]).await;
    report.expect(
        &controller,
        &["Cluster hello-1 is UP", "Cluster hello-1 terminated"],
    );

    // The user's code fails; restarted once, then FAILED.
    let flaky = dir.join("flaky.yaml");
    std::fs::write(
        &flaky,
        "name: flaky\nresources:\n  job_recovery:\n    max_restarts_on_errors: 1\n\
         run: |\n  echo flaky-attempt\n  exit 3\n",
    )
    .unwrap();
    let failed = sky
        .run(&["jobs", "launch", "-y", flaky.to_str().unwrap()])
        .await;
    let output = failed.output();
    report.check(
        &failed,
        !failed.success()
            && output.matches("flaky-attempt").count() == 2
            && output.contains("[1/1]")
            && output.contains("status: FAILED"),
        "a failing job runs twice (max_restarts_on_errors: 1), then fails",
    );

    // A two-task pipeline: in order, each on a cluster of its own.
    let pipeline = dir.join("pipe.yaml");
    std::fs::write(
        &pipeline,
        "name: pipe\n---\nname: prep\nrun: echo prep-ran\n---\nname: train\nrun: echo train-ran\n",
    )
    .unwrap();
    let piped = sky
        .run(&["jobs", "launch", "-y", pipeline.to_str().unwrap()])
        .await;
    let output = piped.output();
    report.check(
        &piped,
        piped.success()
            && output
                .find("prep-ran")
                .is_some_and(|prep| output.find("train-ran").is_some_and(|train| prep < train))
            && output.contains("status: SUCCEEDED"),
        "a pipeline runs its tasks in order to SUCCEEDED",
    );
    let rows = queue(&server.url).await;
    let pipe_rows: Vec<&Value> = rows.iter().filter(|r| r["job_name"] == "pipe").collect();
    assert_eq!(pipe_rows.len(), 2, "{rows:?}");
    assert!(
        pipe_rows.iter().all(|r| r["status"] == "SUCCEEDED"),
        "{pipe_rows:?}"
    );

    // Recovery: the job's cluster is lost mid-run (its agent and job
    // processes stop, as when the machine goes); the job comes back on a
    // new cluster and succeeds, its log holding both attempts.
    let (task, gate, count) = gated_task(&dir, "long");
    let detached = sky.run(&["jobs", "launch", "-y", "-d", &task]).await;
    report.expect(&detached, &["Job submitted"]);
    let long = job_id_of(&detached.output());
    wait_for(&server.url, long, "RUNNING", |row| {
        row["status"] == "RUNNING" && count.exists()
    })
    .await;
    let status = sky.run(&["status"]).await;
    report.check(
        &status,
        !status.output().contains(&format!("long-{long}")),
        "sky status does not list a managed job's cluster",
    );
    stop_agents_and_wait(&home);
    let recovered = wait_for(&server.url, long, "RUNNING again", |row| {
        row["status"] == "RUNNING" && row["recovery_count"] == 1
    })
    .await;
    assert_eq!(recovered["current_cluster_name"], format!("long-{long}"));
    std::fs::write(&gate, "").unwrap();
    let logs = sky.run(&["jobs", "logs", &long.to_string()]).await;
    let output = logs.output();
    report.check(
        &logs,
        output.matches(&format!("attempt-of-{long}")).count() == 2
            && output.contains("preempted or failed")
            && output.contains("finished-long")
            && output.contains("status: SUCCEEDED"),
        "the recovered job's log shows both attempts and the recovery",
    );
    assert_eq!(std::fs::read_to_string(&count).unwrap().lines().count(), 2);
    // Saved to a file, as `--sync-down` does (streamed, like SkyPilot's).
    let synced = sky
        .run(&["jobs", "logs", "--sync-down", &long.to_string()])
        .await;
    let saved = sky
        .home
        .join(format!("sky_logs/managed_jobs/managed-job-{long}/run.log"));
    let saved = std::fs::read_to_string(&saved).unwrap_or_default();
    report.check(
        &synced,
        synced.success()
            && saved.matches(&format!("attempt-of-{long}")).count() == 2
            && saved.contains("finished-long"),
        "--sync-down saves the whole log, both attempts",
    );

    // Cancel: the job stops and its cluster goes.
    let (task, _gate, count) = gated_task(&dir, "stuck");
    let detached = sky.run(&["jobs", "launch", "-y", "-d", &task]).await;
    let stuck = job_id_of(&detached.output());
    wait_for(&server.url, stuck, "RUNNING", |row| {
        row["status"] == "RUNNING" && count.exists()
    })
    .await;
    let cancel = sky.run(&["jobs", "cancel", "-y", &stuck.to_string()]).await;
    report.expect(
        &cancel,
        &[&format!("Job with ID {stuck} is scheduled to be cancelled")],
    );
    wait_for(&server.url, stuck, "CANCELLED", |row| {
        row["status"] == "CANCELLED"
    })
    .await;
    let status = sky.run(&["status", &format!("stuck-{stuck}")]).await;
    report.check(
        &status,
        !status.output().contains(&format!("stuck-{stuck}  ")),
        "a cancelled job's cluster is torn down",
    );
    report.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_killed_mid_job_is_followed_by_one_that_carries_it_on() {
    let Some(executable) = official_sky() else {
        return;
    };
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let home = temp_dir(scratch.path(), "server");
    let server = TestServer::start(&home, &[]);
    let sky = Sky {
        executable,
        home: temp_dir(scratch.path(), "client-home"),
    };
    let dir = temp_dir(scratch.path(), "tasks");
    let login = sky.run(&["api", "login", "-e", &server.url]).await;
    assert!(login.success(), "{}", login.describe());
    let (task, gate, count) = gated_task(&dir, "durable");
    let detached = sky.run(&["jobs", "launch", "-y", "-d", &task]).await;
    let job = job_id_of(&detached.output());
    wait_for(&server.url, job, "RUNNING", |row| {
        row["status"] == "RUNNING" && count.exists()
    })
    .await;

    server.kill9_leaving_agents();
    let server = TestServer::start(&home, &[]);
    let mut report = Report {
        server: &server,
        failures: String::new(),
    };
    let login = sky.run(&["api", "login", "-e", &server.url]).await;
    report.expect(&login, &["Logged into SkyPilot API server"]);
    std::fs::write(&gate, "").unwrap();
    let done = wait_for(&server.url, job, "SUCCEEDED", |row| {
        row["status"] == "SUCCEEDED"
    })
    .await;
    assert_eq!(done["recovery_count"], 0, "{done}");
    // The job ran once: the new server followed the running job, neither
    // launching another cluster nor running it again.
    assert_eq!(std::fs::read_to_string(&count).unwrap().lines().count(), 1);
    let logs = sky.run(&["jobs", "logs", &job.to_string()]).await;
    report.expect(&logs, &["finished-durable", "status: SUCCEEDED"]);
    report.finish();
}
