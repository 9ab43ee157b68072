//! What `local` can do, on an SSH node pool, through the real server and
//! the native `skydeck` CLI: exec on a two-node cluster (each node's rank,
//! every node's real address), queue, logs (follow, `--tail`,
//! `--sync-down`), cancel (the job's processes gone on every host),
//! endpoints at the head host's address (a test connects to the task's
//! server there), ports another program holds refused at launch, and
//! autostop (the remote agent stops, files stay, `start` brings it back,
//! `--down` leaves nothing on any host). Each host is checked in its own
//! PID namespace. Needs the SSH test hosts (scripts/ssh-hosts-up.sh).

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::TestServer;
use support::ssh_hosts::{TestHosts, test_hosts};
use tokio::io::{AsyncBufReadExt, BufReader};

/// How long one CLI command may run before the test gives up on it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a state the test waits for may take to come.
const STATE_TIMEOUT: Duration = Duration::from_secs(90);

/// An autostop "minute" of a fifth of a second, in the server and (handed
/// on by the SSH provider) in the agents it starts on the hosts.
const FAST_MINUTES: (&str, &str) = ("SKYDECK_AGENT_AUTOSTOP_UNIT_SECS", "0.2");

/// What one command did.
struct Outcome {
    command: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn describe(&self) -> String {
        format!(
            "`skydeck {}` exited with {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }

    /// Asserts success and that stdout has every `needle`.
    fn expect_stdout(&self, needles: &[&str]) -> &Self {
        assert_eq!(self.code, Some(0), "{}", self.describe());
        for needle in needles {
            assert!(
                self.stdout.contains(needle),
                "missing {needle:?} in stdout of {}",
                self.describe()
            );
        }
        self
    }
}

/// The CLI pointed at one server whose pool file names some test hosts
/// (by their aliases in the hosts' SSH config), run from a scratch
/// directory.
struct Cli {
    server: TestServer,
    cwd: PathBuf,
}

impl Cli {
    /// A server with pool `pool` of `hosts`, set up with `skydeck ssh up`.
    async fn with_pool(
        scratch: &Path,
        hosts: &TestHosts,
        pool: &str,
        members: &[&str],
        envs: &[(&str, &str)],
    ) -> Self {
        let home = scratch.join("home");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(
            home.join("ssh_node_pools.yaml"),
            format!("{pool}:\n  hosts: [{}]\n", members.join(", ")),
        )
        .unwrap();
        let mut all = vec![("SKYDECK_SSH_CONFIG", hosts.ssh_config.to_str().unwrap())];
        all.extend_from_slice(envs);
        let server = TestServer::start(&home, &all);
        let cwd = scratch.join("work");
        std::fs::create_dir_all(&cwd).unwrap();
        let cli = Self { server, cwd };
        cli.run(&["ssh", "up", "--infra", pool])
            .await
            .expect_stdout(&[]);
        cli
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(support::BINARY);
        command
            .args(args)
            .current_dir(&self.cwd)
            .env("SKYDECK_HOME", &self.server.home)
            .env("SKYDECK_API_SERVER_ENDPOINT", &self.server.url)
            .env_remove("SKYDECK_SERVICE_ACCOUNT_TOKEN")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    async fn run(&self, args: &[&str]) -> Outcome {
        let child = self.command(args).spawn().expect("cannot start skydeck");
        let output = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("`skydeck {}` ran too long", args.join(" ")))
            .expect("skydeck ran");
        Outcome {
            command: args.join(" "),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs `args` until `ready` accepts its outcome, or fails at the
    /// deadline.
    async fn poll(&self, args: &[&str], ready: impl Fn(&Outcome) -> bool) -> Outcome {
        let deadline = Instant::now() + STATE_TIMEOUT;
        loop {
            let outcome = self.run(args).await;
            if ready(&outcome) {
                return outcome;
            }
            assert!(
                Instant::now() < deadline,
                "gave up waiting; last: {}\n--- server log ---\n{}",
                outcome.describe(),
                self.server.stderr()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The row of job `id` in `skydeck queue CLUSTER`.
    async fn job_row(&self, cluster: &str, id: u64) -> String {
        let queue = self.run(&["queue", cluster]).await;
        queue.expect_stdout(&[]);
        row(&queue.stdout, &id.to_string())
    }

    /// The cluster's row of `skydeck status --refresh CLUSTER`.
    async fn status_row(&self, cluster: &str) -> String {
        let status = self.run(&["status", "--refresh", cluster]).await;
        status.expect_stdout(&[]);
        row(&status.stdout, cluster)
    }
}

/// The table row whose first cell is `first`.
fn row(table: &str, first: &str) -> String {
    table
        .lines()
        .find(|line| line.split_whitespace().next() == Some(first))
        .unwrap_or_default()
        .to_owned()
}

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

/// The pids of `host` (in its own PID namespace) whose environment makes
/// them part of a job of `cluster`: their home is one of its nodes.
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

/// What of `cluster` is still on `host`: its directory, its key in
/// authorized_keys, its processes; empty when nothing is.
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

/// Whether the cluster's agent daemon runs on `host`.
fn agent_runs(hosts: &TestHosts, host: &str, cluster: &str) -> bool {
    !on_host(
        hosts,
        host,
        &format!(
            "ps -eo args= | grep -F 'agent daemon --cluster-dir' \
             | grep -F .skydeck/clusters/{cluster} | grep -v grep; true"
        ),
    )
    .is_empty()
}

/// Removes what an earlier run that failed midway left of clusters named
/// `prefix-*` on `members`: its agents (a server that died leaves them
/// running), directories and keys.
fn clean_earlier_runs(hosts: &TestHosts, members: &[&str], prefix: &str) {
    for host in members {
        on_host(
            hosts,
            host,
            &format!(
                "for p in /proc/[0-9]*; do \
                   tr '\\0' '\\n' <$p/cmdline 2>/dev/null \
                     | grep -q \"^$HOME/.skydeck/clusters/{prefix}-[^/]*$\" \
                     && kill -9 ${{p#/proc/}}; \
                 done; \
                 rm -rf $HOME/.skydeck/clusters/{prefix}-*; \
                 sed -i '/skydeck-cluster:{prefix}-/d' $HOME/.ssh/authorized_keys; true"
            ),
        );
    }
}

/// Polls until each of `members` has (or, with `wanted` false, no longer
/// has) a process of a job of `cluster`.
async fn wait_for_job_processes(hosts: &TestHosts, members: &[&str], cluster: &str, wanted: bool) {
    let deadline = Instant::now() + STATE_TIMEOUT;
    loop {
        let found: Vec<(&str, String)> = members
            .iter()
            .map(|host| (*host, job_processes(hosts, host, cluster)))
            .collect();
        if found.iter().all(|(_, pids)| pids.is_empty() != wanted) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "job processes of {cluster} (wanted: {wanted}): {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_queue_logs_and_cancel_on_a_two_node_pool_cluster() {
    let Some(hosts) = test_hosts() else { return };
    const MEMBERS: [&str; 2] = ["h1", "h2"];
    clean_earlier_runs(&hosts, &MEMBERS, "duo");
    let scratch = tempfile::tempdir().unwrap();
    let cli = Cli::with_pool(scratch.path(), &hosts, "duo", &MEMBERS, &[]).await;
    let cluster = format!("duo-{}", std::process::id());
    let head = hosts.host("h1");
    let worker = hosts.host("h2");
    let ips = format!("[{} {}]", head.address, worker.address);

    cli.run(&[
        "launch",
        "-y",
        "-c",
        &cluster,
        "--infra",
        "ssh/duo",
        "--num-nodes",
        "2",
        "--cpus",
        "1",
        "echo launched $SKYPILOT_NODE_RANK",
    ])
    .await
    .expect_stdout(&["launched 0", "launched 1"]);

    // exec: each node its rank, on its own host, and every node's address.
    cli.run(&[
        "exec",
        &cluster,
        "--num-nodes",
        "2",
        "echo \"node $SKYPILOT_NODE_RANK of $SKYPILOT_NUM_NODES on $(hostname) of [$(echo $SKYPILOT_NODE_IPS)]\"",
    ])
    .await
    .expect_stdout(&[
        &format!("node 0 of 2 on {} of {ips}", head.hostname),
        &format!("node 1 of 2 on {} of {ips}", worker.hostname),
    ]);
    assert!(
        cli.job_row(&cluster, 2).await.contains("SUCCEEDED"),
        "job 2 must have succeeded"
    );

    // logs, following: attached while the job waits on both hosts, it
    // shows what the job writes after that and returns when it ends.
    cli.run(&[
        "exec",
        &cluster,
        "-d",
        "--num-nodes",
        "2",
        "echo waiting-$SKYPILOT_NODE_RANK; \
         while [ ! -e release ]; do sleep 0.1; done; \
         echo released-$SKYPILOT_NODE_RANK",
    ])
    .await
    .expect_stdout(&[]);
    let mut follow = cli
        .command(&["logs", &cluster, "3"])
        .spawn()
        .expect("start logs");
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    let attached = tokio::time::timeout(STATE_TIMEOUT, async {
        while !(seen.contains("waiting-0") && seen.contains("waiting-1")) {
            match lines.next_line().await.unwrap() {
                Some(line) => seen.push_str(&(line + "\n")),
                None => break,
            }
        }
    })
    .await;
    assert!(
        attached.is_ok() && seen.contains("waiting-1"),
        "both nodes' first lines while following: {seen}"
    );
    for (rank, host) in MEMBERS.iter().enumerate() {
        on_host(
            &hosts,
            host,
            &format!("touch $HOME/.skydeck/clusters/{cluster}/nodes/{rank}/sky_workdir/release"),
        );
    }
    let rest = tokio::time::timeout(STATE_TIMEOUT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            seen.push_str(&(line + "\n"));
        }
        follow.wait().await.unwrap()
    })
    .await
    .expect("logs returns when the job ends");
    assert!(rest.success(), "{seen}");
    assert!(
        seen.contains("released-0") && seen.contains("released-1"),
        "what was written after attaching: {seen}"
    );

    // --tail: the end of the log only.
    cli.run(&[
        "exec",
        &cluster,
        "--num-nodes",
        "2",
        "if [ $SKYPILOT_NODE_RANK = 0 ]; then for i in 1 2 3 4 5; do echo line-$i; done; fi",
    ])
    .await
    .expect_stdout(&["line-5"]);
    let tail = cli.run(&["logs", &cluster, "4", "--tail", "2"]).await;
    tail.expect_stdout(&["line-5"]);
    assert!(!tail.stdout.contains("line-3"), "{}", tail.describe());

    // --sync-down: the logs land here with the nodes' output.
    cli.run(&["logs", &cluster, "2", "4", "--sync-down"])
        .await
        .expect_stdout(&[&format!("skydeck_logs/{cluster}/job-4/run.log")]);
    let saved = |job: u32| {
        std::fs::read_to_string(
            cli.cwd
                .join(format!("skydeck_logs/{cluster}/job-{job}/run.log")),
        )
        .unwrap()
    };
    let exec_log = saved(2);
    assert!(
        exec_log.contains(&format!("node 1 of 2 on {} of {ips}", worker.hostname)),
        "{exec_log}"
    );
    assert!(saved(4).contains("line-5"), "{}", saved(4));

    // cancel: the job's processes end on both hosts.
    cli.run(&[
        "exec",
        &cluster,
        "-d",
        "--num-nodes",
        "2",
        "sleep 600 & sleep 600; wait",
    ])
    .await
    .expect_stdout(&[]);
    wait_for_job_processes(&hosts, &MEMBERS, &cluster, true).await;
    cli.run(&["cancel", "-y", &cluster, "5"])
        .await
        .expect_stdout(&[]);
    wait_for_job_processes(&hosts, &MEMBERS, &cluster, false).await;
    cli.poll(&["queue", &cluster], |q| {
        row(&q.stdout, "5").contains("CANCELLED")
    })
    .await;
    for id in [1, 2, 3, 4] {
        let job = cli.job_row(&cluster, id).await;
        assert!(job.contains("SUCCEEDED"), "job {id}: {job}");
    }

    cli.run(&["down", "-y", &cluster]).await.expect_stdout(&[]);
    for host in MEMBERS {
        let left = left_on(&hosts, host, &cluster);
        assert!(left.is_empty(), "left on {host} after down:\n{left}");
    }
}

/// A TCP port free on test host `host` just now (bound to 0 there).
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

/// GETs `/` from `address` (`ip:port`) until something answers; its body.
async fn fetch_until_up(address: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = Instant::now() + STATE_TIMEOUT;
    loop {
        if let Ok(mut stream) = tokio::net::TcpStream::connect(address).await {
            let request = format!("GET / HTTP/1.0\r\nHost: {address}\r\n\r\n");
            let mut answer = String::new();
            if stream.write_all(request.as_bytes()).await.is_ok()
                && stream.read_to_string(&mut answer).await.is_ok()
                && answer.starts_with("HTTP/")
            {
                return answer;
            }
        }
        assert!(Instant::now() < deadline, "nothing answers at {address}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pool_clusters_ports_are_reached_at_its_head_hosts_address() {
    let Some(hosts) = test_hosts() else { return };
    const MEMBERS: [&str; 1] = ["h3"];
    clean_earlier_runs(&hosts, &MEMBERS, "web");
    let scratch = tempfile::tempdir().unwrap();
    let cli = Cli::with_pool(scratch.path(), &hosts, "rack", &MEMBERS, &[]).await;
    let head = hosts.host("h3");
    let port = free_port_on(&hosts, "h3").to_string();
    let cluster = format!("web-{}", std::process::id());

    // The task serves a page naming its host on the port it exposes.
    cli.run(&[
        "launch",
        "-y",
        "-d",
        "-c",
        &cluster,
        "--infra",
        "ssh/rack",
        "--ports",
        &port,
        &format!(
            "mkdir -p site && echo served-by-$(hostname) >site/index.html && \
             exec python3 -m http.server {port} --bind 0.0.0.0 --directory site"
        ),
    ])
    .await
    .expect_stdout(&[]);
    let at = format!("{}:{port}", head.address);
    cli.run(&["endpoints", &cluster])
        .await
        .expect_stdout(&[&format!("{port}: {at}")]);
    let one = cli.run(&["endpoints", &cluster, &port]).await;
    assert_eq!(one.stdout.trim(), at, "{}", one.describe());
    cli.run(&["status", "--endpoints", &cluster])
        .await
        .expect_stdout(&[&format!("{port}: {at}")]);
    let one = cli.run(&["status", "--endpoint", &port, &cluster]).await;
    assert_eq!(one.stdout.trim(), at, "{}", one.describe());
    let page = fetch_until_up(&at).await;
    assert!(
        page.contains(&format!("served-by-{}", head.hostname)),
        "{page}"
    );

    // Another cluster on the same host cannot have that port.
    let second = format!("web-{}-b", std::process::id());
    let refused = cli
        .run(&[
            "launch", "-y", "-c", &second, "--infra", "ssh/rack", "--ports", &port, "true",
        ])
        .await;
    assert_ne!(refused.code, Some(0), "{}", refused.describe());
    assert!(
        refused
            .stderr
            .contains(&format!("port {port} is held by cluster {cluster}")),
        "{}",
        refused.describe()
    );

    // Nor a port some program outside Skydeck listens on there; nothing
    // of the refused cluster is made on the host.
    let outside = free_port_on(&hosts, "h3").to_string();
    let listener = on_host(
        &hosts,
        "h3",
        &format!(
            "setsid python3 -m http.server {outside} --bind 127.0.0.1 >/dev/null 2>&1 </dev/null & \
             echo $!"
        ),
    );
    let listener = listener.trim().to_owned();
    let deadline = Instant::now() + STATE_TIMEOUT;
    while on_host(
        &hosts,
        "h3",
        &format!("python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {outside}))' 2>/dev/null && echo up; true"),
    )
    .is_empty()
    {
        assert!(Instant::now() < deadline, "the outside listener never came up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = cli
        .run(&[
            "launch", "-y", "-c", &second, "--infra", "ssh/rack", "--ports", &outside, "true",
        ])
        .await;
    on_host(&hosts, "h3", &format!("kill {listener}"));
    assert_ne!(refused.code, Some(0), "{}", refused.describe());
    assert!(
        refused.stderr.contains(&format!(
            "Port {outside} on host h3 of SSH node pool rack is in use by a program outside Skydeck"
        )),
        "{}",
        refused.describe()
    );
    let left = left_on(&hosts, "h3", &second);
    assert!(left.is_empty(), "the refused cluster made {left}");

    cli.run(&["down", "-y", &cluster]).await.expect_stdout(&[]);
    let left = left_on(&hosts, "h3", &cluster);
    assert!(left.is_empty(), "left on h3 after down:\n{left}");
}

#[tokio::test(flavor = "multi_thread")]
async fn autostop_on_a_pool_stops_the_remote_agent_and_down_leaves_nothing() {
    let Some(hosts) = test_hosts() else { return };
    const MEMBERS: [&str; 2] = ["h1", "h2"];
    clean_earlier_runs(&hosts, &MEMBERS, "nap");
    let scratch = tempfile::tempdir().unwrap();
    let cli = Cli::with_pool(scratch.path(), &hosts, "naps", &MEMBERS, &[FAST_MINUTES]).await;
    let cluster = format!("nap-{}", std::process::id());

    // `-i 5`: with a "minute" of 0.2 s (the server's setting, handed to the
    // agent on the remote head), it stops itself after a second idle; the
    // server then shows STOPPED.
    cli.run(&[
        "launch",
        "-y",
        "-c",
        &cluster,
        "--infra",
        "ssh/naps",
        "--num-nodes",
        "2",
        "-i",
        "5",
        "echo napping-$SKYPILOT_NODE_RANK",
    ])
    .await
    .expect_stdout(&["napping-0", "napping-1"]);
    cli.poll(&["status", "--refresh", &cluster], |s| {
        row(&s.stdout, &cluster).contains("STOPPED")
    })
    .await;
    // On hosts Skydeck does not own, the agent and the jobs stop and the
    // files stay.
    for host in MEMBERS {
        let kept = on_host(
            &hosts,
            host,
            &format!("test -d $HOME/.skydeck/clusters/{cluster} && echo kept"),
        );
        assert_eq!(kept, "kept\n", "{host}");
        assert!(!agent_runs(&hosts, host, &cluster), "agent on {host}");
        assert!(job_processes(&hosts, host, &cluster).is_empty(), "{host}");
    }

    // start brings the agent back, with no autostop left.
    cli.run(&["start", "-y", &cluster]).await.expect_stdout(&[]);
    assert!(agent_runs(&hosts, "h1", &cluster), "the agent after start");
    // The agent started over SSH has the server's setting (no SSH session
    // carries it by itself).
    let setting = on_host(
        &hosts,
        "h1",
        &format!(
            "tr '\\0' '\\n' </proc/$(cat $HOME/.skydeck/clusters/{cluster}/agent/daemon.pid)/environ \
             | grep ^SKYDECK_AGENT_AUTOSTOP_UNIT_SECS=; true"
        ),
    );
    assert_eq!(
        setting, "SKYDECK_AGENT_AUTOSTOP_UNIT_SECS=0.2\n",
        "the agent's setting"
    );
    let up = cli.status_row(&cluster).await;
    assert!(up.contains("UP"), "{up}");
    cli.run(&[
        "exec",
        &cluster,
        "--num-nodes",
        "2",
        "echo awake-$SKYPILOT_NODE_RANK",
    ])
    .await
    .expect_stdout(&["awake-0", "awake-1"]);
    let still = cli.status_row(&cluster).await;
    assert!(still.contains("UP"), "no autostop after start: {still}");

    // autostop --down: the cluster tears itself down; nothing is left on
    // either host.
    cli.run(&["autostop", "-y", &cluster, "-i", "1", "--down"])
        .await
        .expect_stdout(&[]);
    cli.poll(&["status", "--refresh"], |s| {
        s.code == Some(0) && !s.stdout.contains(&cluster)
    })
    .await;
    for host in MEMBERS {
        let left = left_on(&hosts, host, &cluster);
        assert!(left.is_empty(), "left on {host} after autodown:\n{left}");
    }
}
