//! Jobs run in the shell SkyPilot gives them: an interactive bash that has
//! sourced the node's `~/.bashrc`, stdout and stderr in one ordered log,
//! and `SKYPILOT_TASK_ID` in SkyPilot's format.

// Shared with agent.rs; not every helper is used here.
#[allow(dead_code)]
mod common;

use common::{Cluster, pid_gone, read_pid, spec, wait_for};
use serde_json::json;

fn one_node() -> Cluster {
    Cluster::new(1, json!({"cpus": 2.0, "memory_gb": 8.0}))
}

/// Debian's and Ubuntu's stock `~/.bashrc` both stop early for a
/// non-interactive shell; what follows the guard must still apply.
#[test]
fn the_nodes_bashrc_is_sourced_whole_even_behind_an_interactive_guard() {
    let mut cluster = one_node();
    std::fs::write(
        cluster.node_dir(0).join(".bashrc"),
        "[ -z \"$PS1\" ] && return\n\
         case $- in *i*) ;; *) return;; esac\n\
         echo bashrc says hello\n\
         echo bashrc warns >&2\n\
         export FROM_BASHRC=yes\n\
         export GREETING=overridden-by-bashrc\n\
         alias greet='echo alias works'\n\
         cd /\n",
    )
    .unwrap();
    cluster.start_daemon();
    let mut job = spec(
        "k1",
        "echo from_bashrc=$FROM_BASHRC; echo greeting=$GREETING; greet; echo pwd=$PWD; \
         echo \"bang!x\"",
    );
    job["envs"] = json!({"GREETING": "from-the-task"});
    let job_id = cluster.submit(&job);
    cluster.wait_status(job_id, "SUCCEEDED");
    let log = cluster.log(job_id);
    let workdir = cluster.node_dir(0).join("sky_workdir");
    let expected = [
        "bashrc says hello".to_owned(),
        "bashrc warns".to_owned(),
        "from_bashrc=yes".to_owned(),
        // The task's envs are applied after ~/.bashrc, as SkyPilot exports them.
        "greeting=from-the-task".to_owned(),
        "alias works".to_owned(),
        // …and the job starts in the workdir whatever ~/.bashrc did.
        format!("pwd={}", workdir.display()),
        // No history expansion in a batch job.
        "bang!x".to_owned(),
    ];
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines, expected, "{log}");
    assert!(
        !cluster.node_dir(0).join(".bash_history").exists(),
        "the job's commands went into ~/.bash_history"
    );
}

#[test]
fn a_bashrc_that_setup_extends_is_seen_by_run() {
    // SkyPilot's examples/env_check.yaml does exactly this.
    let mut cluster = one_node();
    cluster.start_daemon();
    let mut job = spec(
        "k1",
        "if [[ -z \"$TEST_VAR\" ]]; then echo unset; exit 1; fi; echo TEST_VAR=$TEST_VAR",
    );
    job["setup"] = json!(
        "echo \"export TEST_VAR=test\" >> ~/.bashrc\n\
         [[ -v CUDA_VISIBLE_DEVICES ]] && exit 1 || exit 0"
    );
    let job_id = cluster.submit(&job);
    cluster.wait_status(job_id, "SUCCEEDED");
    assert!(cluster.log(job_id).contains("TEST_VAR=test\n"));
}

#[test]
fn stdout_and_stderr_keep_their_order_in_one_log() {
    let mut cluster = one_node();
    cluster.start_daemon();
    // Alternating streams, many times: two pipes read apart would reorder
    // some of these lines.
    let run = "for i in $(seq 1 200); do echo out-$i; echo err-$i >&2; done";
    let job_id = cluster.submit(&spec("k1", run));
    cluster.wait_status(job_id, "SUCCEEDED");
    let expected: Vec<String> = (1..=200)
        .flat_map(|i| [format!("out-{i}"), format!("err-{i}")])
        .collect();
    let log = cluster.log(job_id);
    assert_eq!(log.lines().collect::<Vec<_>>(), expected);
}

#[test]
fn cancel_stops_the_script_not_only_its_current_command() {
    let mut cluster = one_node();
    cluster.start_daemon();
    let marker = cluster.node_dir(0).join("went-on");
    let pid_file = cluster.node_dir(0).join("shell.pid");
    let run = format!(
        "echo $$ > '{}'; sleep 1000; touch '{}'; sleep 1000",
        pid_file.display(),
        marker.display()
    );
    let job_id = cluster.submit(&spec("k1", &run));
    let shell = wait_for("the job's shell to start", || read_pid(&pid_file));
    let output = cluster.agent(&["cancel", "--job-ids", &job_id.to_string()]);
    assert!(output.status.success(), "{}", common::describe(&output));
    cluster.wait_status(job_id, "CANCELLED");
    wait_for("the job's shell to end", || pid_gone(shell).then_some(()));
    // An interactive bash ignores SIGTERM: it would have gone on to the line
    // after the killed sleep.
    assert!(!marker.exists(), "the shell ran on after cancel");
}

#[test]
fn the_task_id_has_skypilots_format_and_the_submission_time() {
    let mut cluster = one_node();
    cluster.start_daemon();
    let job_id = cluster.submit(&spec("k1", "echo task=$SKYPILOT_TASK_ID"));
    cluster.wait_status(job_id, "SUCCEEDED");
    let log = cluster.log(job_id);
    let task_id = log
        .lines()
        .find_map(|line| line.strip_prefix("task="))
        .unwrap_or_else(|| panic!("no task id in:\n{log}"));
    // sky-YYYY-MM-DD-HH-MM-SS-ffffff_<cluster>_<job id>
    let (stamp, rest) = task_id
        .strip_prefix("sky-")
        .and_then(|id| id.split_once('_'))
        .unwrap_or_else(|| panic!("{task_id}"));
    assert_eq!(rest, format!("c1_{job_id}"));
    let fields: Vec<&str> = stamp.split('-').collect();
    let widths: Vec<usize> = fields.iter().map(|f| f.len()).collect();
    assert_eq!(widths, [4, 2, 2, 2, 2, 2, 6], "{task_id}");
    assert!(stamp.bytes().all(|b| b.is_ascii_digit() || b == b'-'));
    // The stamp is the job's submission time (UTC), to the microsecond.
    let queue = cluster.json(&["queue"]);
    let submitted = queue[0]["submitted_at"].as_f64().unwrap();
    let micros = (submitted * 1e6).round() as u64 % 1_000_000;
    assert_eq!(
        fields[6],
        format!("{micros:06}"),
        "{task_id} vs {submitted}"
    );
    let secs = submitted as u64;
    assert_eq!(
        fields[3..6].join(":"),
        format!(
            "{:02}:{:02}:{:02}",
            secs % 86_400 / 3600,
            secs % 3600 / 60,
            secs % 60
        )
    );
}

/// An interactive bash that shares a terminal with the agent (a server
/// started from someone's shell) stops itself trying to take the terminal
/// over; each job's shell leads a session of its own instead.
#[test]
fn the_jobs_shell_leads_its_own_session_without_a_terminal() {
    let mut cluster = one_node();
    cluster.start_daemon();
    // Fields 6 and 7 of /proc/PID/stat: session id and controlling tty.
    let run = "read -ra stat < /proc/$$/stat; echo \"pid=$$ sid=${stat[5]} tty=${stat[6]}\"";
    let job_id = cluster.submit(&spec("k1", run));
    cluster.wait_status(job_id, "SUCCEEDED");
    let log = cluster.log(job_id);
    let line = log
        .lines()
        .find(|line| line.starts_with("pid="))
        .unwrap_or_else(|| panic!("{log}"));
    let fields: Vec<&str> = line
        .split(' ')
        .map(|field| field.split_once('=').unwrap().1)
        .collect();
    assert_eq!(fields[0], fields[1], "not a session leader: {line}");
    assert_eq!(fields[2], "0", "has a controlling terminal: {line}");
}

#[test]
fn task_variables_survive_a_bashrc_that_changes_them_and_bashs_own_names_do_not_break_it() {
    let mut cluster = one_node();
    std::fs::write(
        cluster.node_dir(0).join(".bashrc"),
        "export MULTI=clobbered; unset SECRET_TOKEN\n",
    )
    .unwrap();
    cluster.start_daemon();
    let mut job = spec(
        "k1",
        "printf '%s|' \"$MULTI\" \"$SECRET_TOKEN\" \"$PPID_LIKE\"; echo",
    );
    job["envs"] =
        json!({"MULTI": "line one\nline 'two' \"quoted\" $dollar", "UID": "5", "PPID_LIKE": "x"});
    job["secrets"] = json!({"SECRET_TOKEN": "s3cr3t"});
    let job_id = cluster.submit(&job);
    cluster.wait_status(job_id, "SUCCEEDED");
    assert_eq!(
        cluster.log(job_id),
        "line one\nline 'two' \"quoted\" $dollar|s3cr3t|x|\n"
    );
    // Values travel in the environment only, never in the script on disk.
    let script = std::fs::read_to_string(cluster.dir.join("jobs/1/run-0.sh")).unwrap();
    assert!(script.contains("source ~/.bashrc"), "{script}");
    assert!(!script.contains("s3cr3t") && !script.contains("line one"));
}
