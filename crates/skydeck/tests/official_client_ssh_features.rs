//! The official SkyPilot CLI on a two-node cluster of an SSH node pool,
//! beyond launch: `sky status --endpoints` / `--endpoint PORT` name the
//! head host's real address (0.14.1 has no `sky endpoints`) and the task's
//! server answers there; `sky exec` (each node's rank, every node's
//! address), `sky logs --tail`, `sky logs --sync-down`, `sky cancel` (the
//! job's processes gone on both hosts, each checked in its own PID
//! namespace), `sky autostop` (the remote agent stops, the files stay,
//! `sky start` brings it back) and `sky launch -i 1 --down` (autostop in
//! the task: the cluster tears itself down and nothing is left on either
//! host). Real sshd hosts from `scripts/ssh-hosts-up.sh`; skipped without
//! them or without the client (`SKYDECK_TEST_SKY`), except under CI.

mod support;

use std::time::{Duration, Instant};
use support::TestServer;
use support::sky::{Outcome, Report, Sky, official_sky, temp_dir};
use support::ssh_hosts::{TestHosts, test_hosts};

/// The hosts of the pool: the head (rank 0) and one worker.
const HOSTS: [&str; 2] = ["h1", "h2"];

/// How long a state the test waits for may take (each `sky status` starts
/// Python).
const STATE_TIMEOUT: Duration = Duration::from_secs(240);

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

/// The pids on `host` (its own PID namespace) of a job of `cluster`.
fn job_processes(hosts: &TestHosts, host: &str, cluster: &str) -> String {
    on_host(
        hosts,
        host,
        &format!(
            "for p in /proc/[0-9]*; do \
               tr '\\0' '\\n' <$p/environ 2>/dev/null \
                 | grep -q \"^HOME=$HOME/.skydeck/clusters/{cluster}/nodes/\" \
                 && echo ${{p#/proc/}}; \
             done; true"
        ),
    )
}

/// What of `cluster` is still on `host`; empty when nothing is.
fn left_on(hosts: &TestHosts, host: &str, cluster: &str) -> String {
    let mut left = on_host(
        hosts,
        host,
        &format!(
            "test -e $HOME/.skydeck/clusters/{cluster} && echo directory; \
             grep -F 'skydeck-cluster:{cluster}' $HOME/.ssh/authorized_keys; \
             ps -eo args= | grep -F .skydeck/clusters/{cluster} | grep -v grep; true"
        ),
    );
    left.push_str(&job_processes(hosts, host, cluster));
    left
}

/// The line of `sky status` (or `sky queue`) output whose words include
/// `what`.
fn line_with<'a>(outcome: &'a Outcome, what: &str) -> &'a str {
    outcome
        .stdout
        .lines()
        .find(|line| line.split_whitespace().any(|word| word == what))
        .unwrap_or_default()
}

/// A TCP port free on test host `host` just now.
fn free_port_on(hosts: &TestHosts, host: &str) -> u16 {
    on_host(
        hosts,
        host,
        "python3 -c 'import socket; s = socket.socket(); s.bind((\"\", 0)); print(s.getsockname()[1])'",
    )
    .trim()
    .parse()
    .expect("a port number")
}

/// GETs `/` from `address` until something answers; the answer.
async fn fetch_until_up(address: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = Instant::now() + STATE_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(mut stream) = tokio::net::TcpStream::connect(address).await {
            let request = format!("GET / HTTP/1.0\r\nHost: {address}\r\n\r\n");
            let mut answer = String::new();
            if stream.write_all(request.as_bytes()).await.is_ok()
                && stream.read_to_string(&mut answer).await.is_ok()
                && answer.starts_with("HTTP/")
            {
                return Some(answer);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

/// Runs `sky ARGS`, saying how long it took (the client starts Python
/// each time; where a run's minutes go shows here with --no-capture).
async fn run(sky: &Sky, args: &[&str]) -> Outcome {
    let started = Instant::now();
    let outcome = sky.run(args).await;
    eprintln!("`sky {}` took {:?}", args.join(" "), started.elapsed());
    outcome
}

/// Runs `args` until `ready` holds for the outcome or the deadline passes;
/// the last outcome.
async fn poll(sky: &Sky, args: &[&str], ready: impl Fn(&Outcome) -> bool) -> Outcome {
    let deadline = Instant::now() + STATE_TIMEOUT;
    loop {
        let outcome = run(sky, args).await;
        if ready(&outcome) || Instant::now() > deadline {
            return outcome;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Polls until `cluster`'s job processes are there (`wanted`) or gone on
/// every host; whether they were.
async fn job_processes_become(hosts: &TestHosts, cluster: &str, wanted: bool) -> bool {
    let deadline = Instant::now() + STATE_TIMEOUT;
    while Instant::now() < deadline {
        if HOSTS
            .iter()
            .all(|host| job_processes(hosts, host, cluster).is_empty() != wanted)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn official_client_uses_endpoints_logs_cancel_and_autostop_on_an_ssh_node_pool() {
    let Some(executable) = official_sky() else {
        return;
    };
    let Some(hosts) = test_hosts() else {
        return;
    };
    let cluster = format!("feat-{}", std::process::id());
    // What an earlier run that failed midway left: agents, files, keys.
    for name in HOSTS {
        on_host(
            &hosts,
            name,
            "for p in /proc/[0-9]*; do \
               tr '\\0' '\\n' <$p/cmdline 2>/dev/null \
                 | grep -q \"^$HOME/.skydeck/clusters/feat-[^/]*$\" \
                 && kill -9 ${p#/proc/}; \
             done; \
             rm -rf $HOME/.skydeck/clusters/feat-*; \
             sed -i '/skydeck-cluster:feat-/d' $HOME/.ssh/authorized_keys; true",
        );
    }
    let scratch = tempfile::tempdir().unwrap();
    let home = temp_dir(scratch.path(), "server");
    std::fs::write(
        home.join("ssh_node_pools.yaml"),
        format!("feat:\n  hosts: [{}]\n", HOSTS.join(", ")),
    )
    .unwrap();
    let ssh_config = hosts.ssh_config.to_str().unwrap();
    // A fifth of a second per autostop "minute", handed to the remote agent.
    let server = TestServer::start(
        &home,
        &[
            ("SKYDECK_SSH_CONFIG", ssh_config),
            ("SKYDECK_AGENT_AUTOSTOP_UNIT_SECS", "0.2"),
        ],
    );
    let sky = Sky {
        executable,
        home: temp_dir(scratch.path(), "client-home"),
    };
    let mut report = Report {
        server: &server,
        failures: String::new(),
    };
    let login = run(&sky, &["api", "login", "-e", &server.url]).await;
    report.expect(&login, &["Logged into SkyPilot API server"]);
    let up = run(&sky, &["ssh", "up", "--infra", "feat"]).await;
    report.expect(&up, &["SSH Node Pools set up successfully"]);

    let head = hosts.host(HOSTS[0]);
    let worker = hosts.host(HOSTS[1]);
    let port = free_port_on(&hosts, HOSTS[0]).to_string();
    let task = scratch.path().join("serve.yaml");
    std::fs::write(
        &task,
        format!(
            "num_nodes: 2\n\
             resources:\n  cpus: 1\n  ports: {port}\n\
             run: |\n  \
               if [ \"$SKYPILOT_NODE_RANK\" = 0 ]; then\n    \
                 mkdir -p site && echo served-by-$(hostname) >site/index.html\n    \
                 exec python3 -m http.server {port} --bind 0.0.0.0 --directory site\n  \
               fi\n  \
               sleep 600\n"
        ),
    )
    .unwrap();
    let launch = run(
        &sky,
        &[
            "launch",
            "-y",
            "-d",
            "-c",
            &cluster,
            "--infra",
            "ssh/feat",
            task.to_str().unwrap(),
        ],
    )
    .await;
    report.expect(&launch, &[]);

    // Endpoints: the head host's address on the test bridge.
    let at = format!("{}:{port}", head.address);
    let endpoints = run(&sky, &["status", "--endpoints", &cluster]).await;
    report.expect(&endpoints, &[&at]);
    let endpoint = run(&sky, &["status", "--endpoint", &port, &cluster]).await;
    report.expect(&endpoint, &[&at]);
    let page = fetch_until_up(&at).await.unwrap_or_default();
    report.check(
        &endpoints,
        page.contains(&format!("served-by-{}", head.hostname)),
        &format!("the task's server must answer at {at}; got {page:?}"),
    );

    // Cancel: the serving job's processes end on both hosts.
    let running = job_processes_become(&hosts, &cluster, true).await;
    let cancel = run(&sky, &["cancel", "-y", &cluster, "1"]).await;
    report.expect(&cancel, &[]);
    report.check(
        &cancel,
        running && job_processes_become(&hosts, &cluster, false).await,
        "the job must run on both hosts, then nothing of it after cancel",
    );
    let queue = poll(&sky, &["queue", &cluster], |q| {
        line_with(q, "1").contains("CANCELLED")
    })
    .await;
    report.check(
        &queue,
        line_with(&queue, "1").contains("CANCELLED"),
        "job 1 must be CANCELLED",
    );

    // exec: ranks and every node's address.
    let ips = format!("[{} {}]", head.address, worker.address);
    let exec = run(&sky, &[
            "exec",
            &cluster,
            "--num-nodes",
            "2",
            "echo \"node $SKYPILOT_NODE_RANK on $(hostname) of [$(echo $SKYPILOT_NODE_IPS)]\"; \
             if [ $SKYPILOT_NODE_RANK = 0 ]; then sleep 0.5; for i in 1 2 3 4 5; do echo line-$i; done; fi",
        ])
        .await;
    let node_lines = [
        format!("node 0 on {} of {ips}", head.hostname),
        format!("node 1 on {} of {ips}", worker.hostname),
    ];
    report.expect(&exec, &[&node_lines[0], &node_lines[1], "line-5"]);

    let tail = run(&sky, &["logs", "--tail", "2", &cluster, "2"]).await;
    report.expect(&tail, &["line-5"]);
    report.check(
        &tail,
        !tail.output().contains("line-3"),
        "--tail 2 shows only the end of the log",
    );
    let logs = run(&sky, &["logs", &cluster, "2"]).await;
    report.expect(&logs, &[&node_lines[0], &node_lines[1], "line-5"]);

    let sync_down = run(&sky, &["logs", "--sync-down", &cluster, "2"]).await;
    report.expect(&sync_down, &["Job 2 logs:"]);
    let synced = std::fs::read_to_string(sky.home.join(format!("sky_logs/{cluster}/2/run.log")))
        .unwrap_or_default();
    report.check(
        &sync_down,
        synced.contains(&node_lines[0]) && synced.contains(&node_lines[1]),
        &format!(
            "the log arrives in ~/sky_logs/{cluster}/2/run.log with both nodes' lines: {synced:?}"
        ),
    );

    // Autostop: the remote agent stops itself, the files stay.
    let autostop = run(&sky, &["autostop", "-y", &cluster, "-i", "1"]).await;
    report.expect(&autostop, &[]);
    let stopped = poll(&sky, &["status", "--refresh", &cluster], |s| {
        line_with(s, &cluster).contains("STOPPED")
    })
    .await;
    report.check(
        &stopped,
        line_with(&stopped, &cluster).contains("STOPPED"),
        "the cluster must show STOPPED after autostop",
    );
    for name in HOSTS {
        let kept = on_host(
            &hosts,
            name,
            &format!(
                "test -d $HOME/.skydeck/clusters/{cluster} && echo kept; \
                 ps -eo args= | grep -F .skydeck/clusters/{cluster} | grep -v grep; true"
            ),
        ) + &job_processes(&hosts, name, &cluster);
        report.check(
            &stopped,
            kept == "kept\n",
            &format!("after autostop {name} must keep the files and run nothing: {kept:?}"),
        );
    }
    let start = run(&sky, &["start", "-y", &cluster]).await;
    report.expect(&start, &[]);
    let restarted = run(&sky, &["status", &cluster]).await;
    report.check(
        &restarted,
        line_with(&restarted, &cluster).contains("UP"),
        "the cluster must be UP after start",
    );

    // Autostop in the task (`-i 1 --down`, which the client folds into
    // resources.autostop): torn down, nothing left on either host.
    let relaunch = run(
        &sky,
        &[
            "launch", "-y", "-c", &cluster, "-i", "1", "--down", "echo", "last-job",
        ],
    )
    .await;
    report.expect(&relaunch, &["last-job"]);
    let gone = poll(&sky, &["status", "--refresh"], |s| {
        s.success() && !s.stdout.contains(&cluster)
    })
    .await;
    report.check(
        &gone,
        !gone.stdout.contains(&cluster),
        "the cluster must tear itself down",
    );
    for name in HOSTS {
        let left = left_on(&hosts, name, &cluster);
        report.check(
            &gone,
            left.is_empty(),
            &format!("nothing of the cluster may be left on {name}:\n{left}"),
        );
    }
    let ssh_down = run(&sky, &["ssh", "down", "--infra", "feat"]).await;
    report.expect(&ssh_down, &["SSH Node Pools cleaned up successfully"]);
    report.finish();
}
