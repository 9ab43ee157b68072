//! The agent end to end: real daemons, real job processes, driven through
//! the `skydeck-agent` binary exactly as the server drives `skydeck agent`.

mod common;

use common::{Cluster, describe, pid_gone, read_pid, spec, wait_for, wait_for_file};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;

fn one_node() -> Cluster {
    Cluster::new(
        1,
        json!({"cpus": 2.0, "memory_gb": 8.0, "accelerators": {"H100": 1}}),
    )
}

#[test]
fn a_job_succeeds_with_skypilots_environment() {
    let mut cluster = one_node();
    cluster.start_daemon();
    let mut job = spec(
        "k1",
        "echo rank=$SKYPILOT_NODE_RANK; echo ips=$SKYPILOT_NODE_IPS; \
         echo num=$SKYPILOT_NUM_NODES; echo task=$SKYPILOT_TASK_ID; \
         echo gpus=$SKYPILOT_NUM_GPUS_PER_NODE; echo info=$SKYPILOT_CLUSTER_INFO; \
         echo greeting=$GREETING; echo pwd=$PWD; echo home=$HOME; echo oops >&2",
    );
    job["envs"] = json!({"GREETING": "hi"});
    job["demand"] = json!({"cpus": 0.5, "accelerators": {"H100": 1}});
    job["task_id"] = json!("sky-2026-11-22-10-00-00-123456_c1_1");
    let job_id = cluster.submit(&job);
    assert_eq!(job_id, 1);
    cluster.wait_status(job_id, "SUCCEEDED");

    let node = cluster.node_dir(0);
    let expected = [
        "rank=0".to_owned(),
        "ips=127.0.0.1".to_owned(),
        "num=1".to_owned(),
        "task=sky-2026-11-22-10-00-00-123456_c1_1".to_owned(),
        "gpus=1".to_owned(),
        r#"info={"cluster_name":"c1","cloud":"local","region":null,"zone":null,"num_nodes":1}"#
            .to_owned(),
        "greeting=hi".to_owned(),
        format!("pwd={}", node.join("sky_workdir").display()),
        format!("home={}", node.display()),
        "oops".to_owned(),
    ];
    let log = cluster.log(job_id);
    for line in &expected {
        assert!(
            log.lines().any(|l| l == line),
            "{line:?} missing from:\n{log}"
        );
    }

    let output = cluster.agent(&["logs", "--job-id", "1"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), log);

    let queue = cluster.json(&["queue"]);
    let record = &queue[0];
    let keys: Vec<&str> = record
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected_keys = [
        "job_id",
        "job_name",
        "username",
        "user_hash",
        "submitted_at",
        "start_at",
        "end_at",
        "resources",
        "status",
        "log_path",
        "metadata",
        "links",
    ];
    expected_keys.sort_unstable();
    assert_eq!(keys, expected_keys);
    assert_eq!(record["job_name"], "hello");
    assert_eq!(record["username"], "alice");
    assert_eq!(record["resources"], "1x[CPU:0.5]");
    assert_eq!(record["status"], "SUCCEEDED");
    assert_eq!(record["metadata"], json!({}));
    let log_path = record["log_path"].as_str().unwrap();
    assert_eq!(std::fs::read_to_string(log_path).unwrap(), log);
    let (submitted, started, ended) = (
        record["submitted_at"].as_f64().unwrap(),
        record["start_at"].as_f64().unwrap(),
        record["end_at"].as_f64().unwrap(),
    );
    assert!(submitted <= started && started <= ended, "{record}");
}

#[test]
fn a_setup_only_job_succeeds_after_setup_on_its_nodes() {
    let mut cluster = one_node();
    cluster.start_daemon();
    let mut job = spec("k1", "");
    job["run"] = Value::Null;
    job["setup"] = json!("echo setup-rank=$SKYPILOT_SETUP_NODE_RANK ips=$SKYPILOT_SETUP_NODE_IPS");
    let job_id = cluster.submit(&job);
    cluster.wait_status(job_id, "SUCCEEDED");
    assert!(cluster.log(job_id).contains("setup-rank=0 ips=127.0.0.1\n"));
}

#[test]
fn a_failing_run_is_failed_and_logs_exits_100() {
    let mut cluster = one_node();
    cluster.start_daemon();
    let job_id = cluster.submit(&spec("k1", "echo before; exit 7"));
    cluster.wait_status(job_id, "FAILED");
    let output = cluster.agent(&["logs", "--job-id", &job_id.to_string()]);
    assert_eq!(output.status.code(), Some(100), "{}", describe(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("before\n"), "{text}");
    assert!(text.contains("failed with return code list: [7]"), "{text}");
}

#[test]
fn a_failing_setup_is_failed_setup_and_run_never_starts() {
    let mut cluster = one_node();
    cluster.start_daemon();
    let mut job = spec("k1", "echo run-started");
    job["setup"] = json!("echo setting-up; false");
    let job_id = cluster.submit(&job);
    cluster.wait_status(job_id, "FAILED_SETUP");
    let log = cluster.log(job_id);
    assert!(log.contains("setting-up\n"), "{log}");
    assert!(!log.contains("run-started"), "{log}");
    assert_eq!(cluster.agent(&["logs"]).status.code(), Some(100));
}

#[test]
fn a_job_that_can_never_fit_fails_at_once_with_a_reason() {
    let mut cluster = one_node();
    cluster.start_daemon();
    let mut job = spec("k1", "echo ran");
    job["num_nodes"] = json!(2);
    let job_id = cluster.submit(&job);
    cluster.wait_status(job_id, "FAILED_SETUP");
    let log = cluster.log(job_id);
    assert!(
        log.contains("asks for 2 nodes but cluster c1 has 1"),
        "{log}"
    );
}

#[test]
fn a_two_node_job_tags_lines_by_rank_and_sees_both_ips() {
    let mut cluster = Cluster::new(2, json!({"cpus": 1.0}));
    cluster.start_daemon();
    let mut job = spec(
        "k1",
        r#"echo rank=$SKYPILOT_NODE_RANK; echo "ips=$(echo "$SKYPILOT_NODE_IPS" | paste -sd,)""#,
    );
    job["num_nodes"] = json!(2);
    job["setup"] = json!("echo setup=$SKYPILOT_SETUP_NODE_RANK");
    let job_id = cluster.submit(&job);
    cluster.wait_status(job_id, "SUCCEEDED");
    let log = cluster.log(job_id);
    for (rank, tag) in [(0, "head, rank=0"), (1, "worker1, rank=1")] {
        for text in [
            format!("rank={rank}"),
            "ips=127.0.0.1,127.0.0.2".to_owned(),
            format!("setup={rank}"),
        ] {
            let found = log.lines().any(|line| {
                line.strip_prefix(&format!("({tag}, pid="))
                    .and_then(|rest| rest.split_once(") "))
                    .is_some_and(|(pid, content)| pid.parse::<u32>().is_ok() && content == text)
            });
            assert!(found, "no ({tag}, pid=…) {text} in:\n{log}");
        }
    }
}

#[test]
fn cancel_kills_a_running_job_and_its_children() {
    let mut cluster = one_node();
    cluster.start_daemon();
    let home = cluster.node_dir(0);
    // The job ignores SIGTERM, so only the SIGKILL after the grace ends it.
    let job_id = cluster.submit(&spec(
        "k1",
        "trap '' TERM; sleep 1000 & echo $! > $HOME/child.pid; echo $$ > $HOME/main.pid; wait",
    ));
    cluster.wait_status(job_id, "RUNNING");
    let (main, child) = wait_for("the job's pid files", || {
        Some((
            read_pid(&home.join("main.pid"))?,
            read_pid(&home.join("child.pid"))?,
        ))
    });
    assert!(!pid_gone(main) && !pid_gone(child));

    let reply = cluster.json(&["cancel", "--job-ids", &job_id.to_string()]);
    assert_eq!(reply, json!({"cancelled": [job_id]}));
    wait_for("the job's processes to die", || {
        (pid_gone(main) && pid_gone(child)).then_some(())
    });
    assert_eq!(cluster.status(job_id).as_deref(), Some("CANCELLED"));
    assert_eq!(cluster.agent(&["logs"]).status.code(), Some(103));
    // Finished jobs are not cancelled again.
    assert_eq!(cluster.json(&["cancel", "--all"]), json!({"cancelled": []}));
}

#[test]
fn cancel_without_ids_takes_the_newest_unfinished_job_even_before_it_runs() {
    // No daemon: both jobs stay PENDING.
    let cluster = one_node();
    let first = cluster.submit(&spec("k1", "echo one"));
    let second = cluster.submit(&spec("k2", "echo two"));
    assert_eq!(cluster.json(&["cancel"]), json!({"cancelled": [second]}));
    assert_eq!(
        cluster.json(&["cancel", "--all", "--user-hash", "someone-else"]),
        json!({"cancelled": []})
    );
    assert_eq!(
        cluster.json(&["job-status", "--job-ids", &format!("{first},{second},99")]),
        json!({first.to_string(): "PENDING", second.to_string(): "CANCELLED", "99": null})
    );
}

#[test]
fn a_job_waits_for_the_gpu_another_job_holds() {
    let mut cluster = one_node();
    cluster.start_daemon();
    let release = cluster.temp.path().join("release");
    let gpu_job = |key: &str, run: &str| {
        let mut job = spec(key, run);
        job["demand"] = json!({"cpus": 0.5, "accelerators": {"H100": 1}});
        job
    };
    let first = cluster.submit(&gpu_job("k1", &wait_for_file(&release)));
    cluster.wait_status(first, "RUNNING");
    let second = cluster.submit(&gpu_job("k2", "echo second"));
    // A later CPU-only job runs beside the first; once it is done the
    // scheduler has looked at the second job too, and left it waiting.
    let third = cluster.submit(&spec("k3", "echo third"));
    cluster.wait_status(third, "SUCCEEDED");
    assert_eq!(cluster.status(second).as_deref(), Some("PENDING"));

    std::fs::write(&release, "").unwrap();
    cluster.wait_status(first, "SUCCEEDED");
    cluster.wait_status(second, "SUCCEEDED");
    let queue = cluster.json(&["queue"]);
    let record = |id: u64| {
        queue
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["job_id"] == id)
            .unwrap()
            .clone()
    };
    assert!(record(second)["start_at"].as_f64() >= record(first)["end_at"].as_f64());
    // Newest first.
    let ids: Vec<u64> = queue
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["job_id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [third, second, first]);
}

#[test]
fn submitting_twice_with_one_key_gives_one_job() {
    let cluster = one_node();
    let job = spec("request-uuid", "true");
    assert_eq!(cluster.submit(&job), 1);
    assert_eq!(cluster.submit(&job), 1);
    assert_eq!(cluster.submit(&spec("another", "true")), 2);
    assert_eq!(cluster.json(&["queue"]).as_array().unwrap().len(), 2);
}

#[test]
fn a_bad_spec_is_refused_with_the_reason() {
    let cluster = one_node();
    let output = cluster.agent_with_stdin(&["submit"], r#"{"username": "alice"}"#);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("idempotency_key"),
        "{}",
        describe(&output)
    );
    let mut job = spec("k", "true");
    job["num_nodes"] = json!(0);
    let output = cluster.agent_with_stdin(&["submit"], &job.to_string());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("num_nodes"),
        "{}",
        describe(&output)
    );
    assert_eq!(cluster.json(&["queue"]), json!([]));
}

#[test]
fn a_restarted_daemon_fails_orphaned_jobs_and_kills_their_processes() {
    let mut cluster = one_node();
    cluster.start_daemon();
    let home = cluster.node_dir(0);
    let job_id = cluster.submit(&spec(
        "k1",
        "sleep 1000 & echo $! > $HOME/child.pid; echo $$ > $HOME/main.pid; wait",
    ));
    cluster.wait_status(job_id, "RUNNING");
    let (main, child) = wait_for("the job's pid files", || {
        Some((
            read_pid(&home.join("main.pid"))?,
            read_pid(&home.join("child.pid"))?,
        ))
    });

    cluster.signal_daemon(Signal::SIGKILL);
    cluster.wait_daemon_exit();
    assert!(
        !pid_gone(main) && !pid_gone(child),
        "the job outlives a kill -9'd daemon"
    );
    assert_eq!(cluster.status(job_id).as_deref(), Some("RUNNING"));

    cluster.start_daemon();
    cluster.wait_status(job_id, "FAILED_DRIVER");
    wait_for("the orphaned processes to die", || {
        (pid_gone(main) && pid_gone(child)).then_some(())
    });
    let log = cluster.log(job_id);
    assert!(log.contains("the agent restarted"), "{log}");
    let record = &cluster.json(&["queue"])[0];
    assert!(record["end_at"].as_f64().is_some(), "{record}");
}

/// A daemon killed after starting a job's processes but before recording
/// their process groups: the restarted one finds them by the job marker in
/// their environment.
#[test]
fn a_restarted_daemon_finds_job_processes_it_never_recorded() {
    let mut cluster = one_node();
    cluster.start_daemon();
    let home = cluster.node_dir(0);
    let job_id = cluster.submit(&spec("k1", "echo $$ > $HOME/main.pid; sleep 1000"));
    cluster.wait_status(job_id, "RUNNING");
    let main = wait_for("the job's pid file", || read_pid(&home.join("main.pid")));
    cluster.signal_daemon(Signal::SIGKILL);
    cluster.wait_daemon_exit();

    // Forget the recorded groups, as if the daemon died just before
    // writing them.
    let state_path = cluster.dir.join("agent").join("state.json");
    let mut state: Value =
        serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    for job in state["jobs"].as_array_mut().unwrap() {
        job["procs"] = json!([]);
    }
    std::fs::write(&state_path, state.to_string()).unwrap();

    cluster.start_daemon();
    cluster.wait_status(job_id, "FAILED_DRIVER");
    wait_for("the unrecorded processes to die", || {
        pid_gone(main).then_some(())
    });
}

#[test]
fn sigterm_cancels_running_jobs_and_the_daemon_exits_cleanly() {
    let mut cluster = one_node();
    cluster.start_daemon();
    let home = cluster.node_dir(0);
    let running = cluster.submit(&spec("k1", "echo $$ > $HOME/main.pid; sleep 1000"));
    cluster.wait_status(running, "RUNNING");
    let main = wait_for("the job's pid file", || read_pid(&home.join("main.pid")));

    cluster.signal_daemon(Signal::SIGTERM);
    assert!(cluster.wait_daemon_exit().success());
    assert_eq!(cluster.status(running).as_deref(), Some("CANCELLED"));
    assert!(pid_gone(main));
    assert!(cluster.log(running).contains("the agent stopped"));
    assert!(!cluster.dir.join("agent/daemon.pid").exists());
    let status = cluster.json(&["status"]);
    assert_eq!(status["daemon_alive"], false);
    assert_eq!(status["jobs"], json!({"CANCELLED": 1}));
}

#[test]
fn a_second_daemon_exits_at_once() {
    let mut cluster = one_node();
    let pid = cluster.start_daemon();
    let output = cluster.agent(&["daemon"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("already running"));
    let status = cluster.json(&["status"]);
    assert_eq!(status["daemon_pid"], pid);
    assert_eq!(status["daemon_alive"], true);
}

#[test]
fn autostop_writes_its_decision_and_the_daemon_exits() {
    let mut cluster = one_node().with_daemon_env("SKYDECK_AGENT_AUTOSTOP_UNIT_SECS", "1");
    cluster.start_daemon();
    let job_id = cluster.submit(&spec("k1", "true"));
    cluster.wait_status(job_id, "SUCCEEDED");
    let reply = cluster.json(&["autostop", "--idle-minutes", "1", "--down"]);
    assert_eq!(
        reply,
        json!({"autostop": {"idle_minutes": 1, "down": true}})
    );
    assert_eq!(cluster.json(&["status"])["autostop"], reply["autostop"]);

    assert!(cluster.wait_daemon_exit().success());
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(cluster.dir.join("agent/autostop.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(file["action"], "down");
    let idle_since = cluster.json(&["status"])["idle_since"].as_f64().unwrap();
    assert!(file["at"].as_f64().unwrap() >= idle_since + 1.0, "{file}");

    assert_eq!(
        cluster.json(&["autostop", "--idle-minutes", "-1"]),
        json!({"autostop": null})
    );
}

#[test]
fn secrets_reach_the_job_but_not_the_state_or_the_log() {
    let mut cluster = one_node();
    let mut job = spec(
        "k1",
        // The script must not spell the secret out: it is stored with the job.
        r#"[ "${TOKEN#s3cr3t}" = "-value" ] && echo token-ok; echo "visible=$PLAIN""#,
    );
    job["secrets"] = json!({"TOKEN": "s3cr3t-value"});
    job["envs"] = json!({"PLAIN": "yes"});
    let job_id = cluster.submit(&job);
    let secrets = cluster.dir.join(format!("jobs/{job_id}/secrets.json"));
    let mode = std::fs::metadata(&secrets).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    cluster.start_daemon();
    cluster.wait_status(job_id, "SUCCEEDED");
    let log = cluster.log(job_id);
    assert!(
        log.contains("token-ok\n") && log.contains("visible=yes\n"),
        "{log}"
    );
    assert!(!log.contains("s3cr3t-value"));
    let state = std::fs::read_to_string(cluster.dir.join("agent/state.json")).unwrap();
    assert!(!state.contains("s3cr3t-value"));
    assert!(!secrets.exists());
}

#[test]
fn logs_follow_streams_until_the_job_ends_and_tail_trims() {
    let mut cluster = one_node();
    cluster.start_daemon();
    let release = cluster.temp.path().join("release");
    let job_id = cluster.submit(&spec(
        "k1",
        &format!(
            "echo one; echo two; {}; echo three; exit 3",
            wait_for_file(&release)
        ),
    ));
    cluster.wait_status(job_id, "RUNNING");
    assert_eq!(cluster.agent(&["logs"]).status.code(), Some(101));

    let follower = std::process::Command::new(common::AGENT)
        .args(["logs", "--follow", "--cluster-dir"])
        .arg(&cluster.dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::fs::write(&release, "").unwrap();
    let output = follower.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(100));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.starts_with("one\ntwo\nthree\n"), "{text}");
    assert_eq!(cluster.status(job_id).as_deref(), Some("FAILED"));

    let output = cluster.agent(&["logs", "--tail", "2"]);
    let tail = String::from_utf8_lossy(&output.stdout);
    assert_eq!(tail.lines().count(), 2, "{tail}");
    assert!(tail.starts_with("three\n"), "{tail}");

    let output = cluster.agent(&["logs", "--job-id", "42"]);
    assert_eq!(output.status.code(), Some(102));
}
