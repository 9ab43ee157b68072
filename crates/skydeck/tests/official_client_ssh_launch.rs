//! The official SkyPilot CLI runs a two-node cluster on an SSH node pool of
//! a `skydeck` server, end to end: `sky ssh up`, `sky check`, `sky launch
//! --infra ssh/<pool>` of a task on two hosts, `sky status` (INFRA `SSH
//! (<pool>)`), `sky queue`, `sky logs` (both hosts' hostnames), `sky exec`,
//! `sky stop`/`sky start`, `sky down`, and then, on each host, nothing of
//! the cluster left: no directory, no key, no process. Real sshd hosts from
//! `scripts/ssh-hosts-up.sh`; skipped without them or without the client
//! (`SKYDECK_TEST_SKY`), except under CI.

mod support;

use std::time::Instant;
use support::TestServer;
use support::sky::{Outcome, Report, Sky, official_sky, temp_dir};
use support::ssh_hosts::{TestHosts, test_hosts};

/// The hosts of the pool: the head (rank 0) and one worker.
const HOSTS: [&str; 2] = ["h1", "h2"];

/// Runs `line` on test host `host` with the tests' own key, outside
/// anything Skydeck set up.
fn on_host(hosts: &TestHosts, host: &str, line: &str) -> String {
    let out = std::process::Command::new("ssh")
        .arg("-F")
        .arg(&hosts.ssh_config)
        .args([host, line])
        .output()
        .expect("run ssh");
    assert!(out.status.success(), "{line} on {host}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What of cluster `cluster` is still on `host`: its directory, its key in
/// authorized_keys, its processes; empty when nothing is.
fn left_on(hosts: &TestHosts, host: &str, cluster: &str) -> String {
    on_host(
        hosts,
        host,
        &format!(
            "test -e $HOME/.skydeck/clusters/{cluster} && echo directory; \
             grep -F 'skydeck-cluster:{cluster}' $HOME/.ssh/authorized_keys; \
             ps -eo args= | grep -F .skydeck/clusters/{cluster} | grep -v grep; true"
        ),
    )
}

/// The line of `sky status` (or `sky queue`) output that names `what`.
fn line_with<'a>(outcome: &'a Outcome, what: &str) -> &'a str {
    outcome
        .stdout
        .lines()
        .find(|line| line.split_whitespace().any(|word| word == what))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn official_client_runs_a_two_node_cluster_on_an_ssh_node_pool() {
    let Some(executable) = official_sky() else {
        return;
    };
    let Some(hosts) = test_hosts() else {
        return;
    };
    let cluster = format!("pair-{}", std::process::id());
    // What an earlier run that failed midway left on this test's hosts.
    for name in HOSTS {
        let _ = on_host(
            &hosts,
            name,
            "rm -rf $HOME/.skydeck/clusters/pair-*; \
             sed -i '/skydeck-cluster:pair-/d' $HOME/.ssh/authorized_keys; true",
        );
    }
    let scratch = tempfile::tempdir().unwrap();
    let home = temp_dir(scratch.path(), "server");
    std::fs::write(
        home.join("ssh_node_pools.yaml"),
        format!("pair:\n  hosts: [{}]\n", HOSTS.join(", ")),
    )
    .unwrap();
    let ssh_config = hosts.ssh_config.to_str().unwrap();
    let server = TestServer::start(&home, &[("SKYDECK_SSH_CONFIG", ssh_config)]);
    let url = server.url.clone();
    let sky = Sky {
        executable,
        home: temp_dir(scratch.path(), "client-home"),
    };
    let mut report = Report {
        server: &server,
        failures: String::new(),
    };
    let login = sky.run(&["api", "login", "-e", &url]).await;
    report.expect(&login, &["Logged into SkyPilot API server"]);

    let up = sky.run(&["ssh", "up", "--infra", "pair"]).await;
    report.expect(&up, &["SSH Node Pools set up successfully"]);
    let check = sky.run(&["check"]).await;
    report.expect(&check, &["SSH: enabled [compute]", "pair: enabled."]);

    let task = scratch.path().join("task.yaml");
    std::fs::write(
        &task,
        "num_nodes: 2\n\
         resources:\n  cpus: 1\n\
         run: |\n  \
           echo \"node $SKYPILOT_NODE_RANK on $(hostname) of [$(echo $SKYPILOT_NODE_IPS)]\"\n",
    )
    .unwrap();
    let task = task.to_str().unwrap();
    let started = Instant::now();
    let launch = sky
        .run(&["launch", "-y", "-c", &cluster, "--infra", "ssh/pair", task])
        .await;
    eprintln!(
        "`sky launch` of a two-node task on a set-up pool took {:?}",
        started.elapsed()
    );
    let head = hosts.host(HOSTS[0]);
    let worker = hosts.host(HOSTS[1]);
    let ips = format!("[{} {}]", head.address, worker.address);
    let node_lines = [
        format!("node 0 on {} of {ips}", head.hostname),
        format!("node 1 on {} of {ips}", worker.hostname),
    ];
    report.expect(&launch, &[&node_lines[0], &node_lines[1]]);

    let status = sky.run(&["status"]).await;
    report.expect(&status, &[&cluster]);
    let row = line_with(&status, &cluster);
    report.check(
        &status,
        row.contains("SSH (pair)") && row.contains("UP"),
        "the cluster's row must show INFRA `SSH (pair)` and UP",
    );

    let queue = sky.run(&["queue", &cluster]).await;
    report.expect(&queue, &["SUCCEEDED"]);

    let logs = sky.run(&["logs", &cluster, "1"]).await;
    report.expect(&logs, &[&node_lines[0], &node_lines[1]]);

    let exec = sky
        .run(&[
            "exec",
            &cluster,
            "--num-nodes",
            "2",
            "echo exec $SKYPILOT_NODE_RANK on $(hostname)",
        ])
        .await;
    report.expect(
        &exec,
        &[
            &format!("exec 0 on {}", head.hostname),
            &format!("exec 1 on {}", worker.hostname),
        ],
    );

    // On hosts Skydeck does not own, stop ends the processes and keeps the
    // files; start brings the cluster back.
    let stop = sky.run(&["stop", "-y", &cluster]).await;
    report.expect(&stop, &[]);
    for name in HOSTS {
        let left = left_on(&hosts, name, &cluster);
        report.check(
            &stop,
            left.lines().all(|line| !line.contains(".skydeck/clusters")),
            &format!("no process of the cluster may run on {name} after stop:\n{left}"),
        );
    }
    let start = sky.run(&["start", "-y", &cluster]).await;
    report.expect(&start, &[]);
    let restarted = sky.run(&["status", &cluster]).await;
    report.check(
        &restarted,
        line_with(&restarted, &cluster).contains("UP"),
        "the cluster must be UP after start",
    );

    let down = sky.run(&["down", "-y", &cluster]).await;
    report.expect(&down, &[]);
    for name in HOSTS {
        let left = left_on(&hosts, name, &cluster);
        report.check(
            &down,
            left.is_empty(),
            &format!("nothing of the cluster may be left on {name}:\n{left}"),
        );
    }
    let gone = sky.run(&["status"]).await;
    report.check(
        &gone,
        !gone.stdout.contains(&cluster),
        "the cluster must be gone from `sky status`",
    );

    let ssh_down = sky.run(&["ssh", "down", "--infra", "pair"]).await;
    report.expect(&ssh_down, &["SSH Node Pools cleaned up successfully"]);
    report.finish();
}
