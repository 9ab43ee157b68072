//! Workers reached over TCP (`node-serve` / `node-connect`, as in
//! Kubernetes pods), here on loopback: the head's agent runs node 0 and
//! node 1 goes through a worker agent listening on a port the system
//! picked.

#[allow(dead_code)]
mod common;

use common::{AGENT, Cluster, spec};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A worker agent serving the head, killed when dropped.
struct Worker {
    child: Child,
    port: u16,
}

impl Worker {
    fn serve(secret_file: &Path) -> Self {
        let mut child = Command::new(AGENT)
            .args([
                "agent",
                "node-serve",
                "--listen",
                "127.0.0.1:0",
                "--secret-file",
            ])
            .arg(secret_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("node-serve said {line:?}"));
        Self { child, port }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A two-node cluster whose worker is `worker`, the head holding the
/// secret `head_secret`.
fn cluster(head_secret: &str, worker_secret: &str) -> (Cluster, Worker) {
    let mut cluster =
        Cluster::new(2, json!({"cpus": 4.0})).with_daemon_env("SKYDECK_AGENT_SSH_ALIVE_SECS", "1");
    let head_file = cluster.temp.path().join("head.secret");
    let worker_file = cluster.temp.path().join("worker.secret");
    std::fs::write(&head_file, head_secret).unwrap();
    std::fs::write(&worker_file, worker_secret).unwrap();
    let worker = Worker::serve(&worker_file);
    let path = cluster.dir.join("cluster.json");
    let mut info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    info["nodes"][1]["tcp"] =
        json!({"host": "127.0.0.1", "port": worker.port, "secret_file": head_file});
    std::fs::write(&path, info.to_string()).unwrap();
    cluster.start_daemon();
    (cluster, worker)
}

fn two_node_spec(key: &str, run: &str) -> serde_json::Value {
    let mut job = spec(key, run);
    job["num_nodes"] = json!(2);
    job
}

#[test]
fn a_job_runs_on_the_worker_through_its_agent() {
    let secret = "s".repeat(64);
    let (cluster, _worker) = cluster(&secret, &secret);
    let id = cluster.submit(&two_node_spec(
        "k1",
        "echo rank=$SKYPILOT_NODE_RANK; exit 0",
    ));
    cluster.wait_status(id, "SUCCEEDED");
    let log = cluster.log(id);
    assert!(log.contains("rank=0"), "{log}");
    assert!(log.contains("(worker1, rank=1, pid="), "{log}");
    assert!(log.contains("rank=1"), "{log}");
    // The worker's exit code travels back.
    let failed = cluster.submit(&two_node_spec(
        "k2",
        "[ $SKYPILOT_NODE_RANK = 1 ] && exit 3; exit 0",
    ));
    cluster.wait_status(failed, "FAILED");
    assert!(
        cluster.log(failed).contains("[0, 3]"),
        "{}",
        cluster.log(failed)
    );
}

#[test]
fn a_worker_whose_agent_dies_fails_the_job_as_failed_driver() {
    let secret = "s".repeat(64);
    let (cluster, mut worker) = cluster(&secret, &secret);
    let started = cluster.temp.path().join("started");
    let run = format!(
        "[ $SKYPILOT_NODE_RANK = 1 ] && touch '{}'; sleep 600",
        started.display()
    );
    let id = cluster.submit(&two_node_spec("k1", &run));
    common::wait_for("the worker's share to start", || {
        started.exists().then_some(())
    });
    worker.child.kill().unwrap();
    worker.child.wait().unwrap();
    cluster.wait_status(id, "FAILED_DRIVER");
    let log = cluster.log(id);
    assert!(log.contains("lost the worker 1 (127.0.0.1:"), "{log}");
}

#[test]
fn a_head_without_the_clusters_secret_is_refused() {
    let (cluster, _worker) = cluster(&"a".repeat(64), &"b".repeat(64));
    let id = cluster.submit(&two_node_spec("k1", "echo ran"));
    cluster.wait_status(id, "FAILED_DRIVER");
    let log = cluster.log(id);
    assert!(log.contains("refused the cluster secret"), "{log}");
    assert!(!log.contains("(worker1, rank=1"), "{log}");
}
