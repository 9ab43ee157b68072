//! Faults on an SSH node pool, through the real server on real sshd hosts
//! (scripts/ssh-hosts-up.sh; h5 is the host these tests break, with
//! scripts/ssh-hosts-ctl.sh): a worker cut off mid-job, a head cut off for a
//! while, a host rebooted, a host down at `down`, and a wrong key, a changed
//! host key and too few CPUs at launch. Each says so where a user looks:
//! the job's status, `status --refresh` (INIT, shown UNHEALTHY, with the
//! host and what it said), and the error of the command.

mod support;

use serde_json::{Value, json};
use skydeck_client::{Client, ClientError};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::TestServer;
use support::host_faults::{Mend, ctl, on_host};
use support::ssh_hosts::{TestHosts, test_hosts};

/// Longer than any detection here takes: the agent's heartbeats (about
/// 15 s) and the provider's answer bound (10 s), with room for a slow CI.
const DEADLINE: Duration = Duration::from_secs(120);

async fn submit(client: &Client, path: &str, body: Value) -> Result<Value, ClientError> {
    let id = client.submit(path, &body).await.expect("accepted");
    client.wait(&id).await
}

/// A server with SSH node pools on the test hosts: `pair` (h1 and h5,
/// reached by their aliases in the hosts' SSH config) and `solo` (h5).
struct Pools {
    hosts: TestHosts,
    server: TestServer,
    api: Client,
    scratch: tempfile::TempDir,
    _held: nix::fcntl::Flock<std::fs::File>,
}

impl Pools {
    /// The server, with `pools` set up (`skydeck ssh up`); `None` skips.
    async fn start(pools: &[&str]) -> Option<Self> {
        let hosts = test_hosts()?;
        let held = hosts.hold("h5");
        // A test that failed midway may have left h5 cut off or down.
        ctl(&hosts, "h5", "restore");
        ctl(&hosts, "h5", "start");
        let scratch = tempfile::tempdir().unwrap();
        let home = scratch.path().join("server");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(
            home.join("ssh_node_pools.yaml"),
            "pair:\n  hosts: [h1, h5]\nsolo:\n  hosts: [h5]\n",
        )
        .unwrap();
        let ssh_config = hosts.ssh_config.to_str().unwrap().to_owned();
        let server = TestServer::start(&home, &[("SKYDECK_SSH_CONFIG", &ssh_config)]);
        let api = Client::new(&server.url, None).unwrap();
        let this = Self {
            hosts,
            server,
            api,
            scratch,
            _held: held,
        };
        for pool in pools {
            let up = this.skydeck(&["ssh", "up", "--infra", pool]).await;
            up.expect(0, &[&format!("Completed deployment for cluster: {pool}")]);
        }
        Some(this)
    }

    async fn skydeck(&self, args: &[&str]) -> Outcome {
        let child = tokio::process::Command::new(support::BINARY)
            .args(args)
            .current_dir(self.scratch.path())
            .env("SKYDECK_HOME", &self.server.home)
            .env("SKYDECK_API_SERVER_ENDPOINT", &self.server.url)
            .env_remove("SKYDECK_SERVICE_ACCOUNT_TOKEN")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start skydeck");
        let output = tokio::time::timeout(DEADLINE, child.wait_with_output())
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

    /// Launches `run` on `nodes` nodes of `pool` as cluster `cluster`;
    /// the job's id.
    async fn launch(&self, pool: &str, cluster: &str, nodes: u32, run: &str) -> u64 {
        let task = format!(
            "num_nodes: {nodes}\nresources:\n  infra: ssh/{pool}\n  cpus: 1\nrun: |\n  {}\n",
            run.replace('\n', "\n  ")
        );
        let launched = submit(
            &self.api,
            "/launch",
            json!({"task": task, "cluster_name": cluster, "retry_until_up": false}),
        )
        .await
        .unwrap_or_else(|err| panic!("launch failed: {err:?}\n{}", self.server.stderr()));
        launched["job_id"].as_u64().expect("a job id")
    }

    /// The job's status now, if the queue answers.
    async fn job_status(&self, cluster: &str, job: u64) -> Option<String> {
        let jobs = submit(
            &self.api,
            "/queue",
            json!({"cluster_name": cluster, "all_users": true}),
        )
        .await
        .ok()?;
        jobs.as_array()?
            .iter()
            .find(|j| j["job_id"] == job)
            .and_then(|j| j["status"].as_str().map(str::to_owned))
    }

    /// Polls until job `job` is `wanted`; how long that took.
    async fn wait_job(&self, cluster: &str, job: u64, wanted: &str) -> Duration {
        let started = Instant::now();
        loop {
            let status = self.job_status(cluster, job).await;
            if status.as_deref() == Some(wanted) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < DEADLINE,
                "job {job} of {cluster} is {status:?}, not {wanted}\n{}",
                self.server.stderr()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The job's log so far.
    async fn log(&self, cluster: &str, job: u64) -> String {
        let body = json!({"cluster_name": cluster, "job_id": job, "follow": false}).to_string();
        support::http("POST", &format!("{}/logs", self.server.url), Some(&body))
            .await
            .body
    }

    /// Polls the log until it holds every one of `lines`.
    async fn wait_log(&self, cluster: &str, job: u64, lines: &[&str]) {
        let started = Instant::now();
        loop {
            let log = self.log(cluster, job).await;
            if lines.iter().all(|l| log.contains(l)) {
                return;
            }
            assert!(started.elapsed() < DEADLINE, "no {lines:?} in {log}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The cluster's status record after a refresh (`None`: no such
    /// cluster).
    async fn refreshed(&self, cluster: &str) -> Option<Value> {
        let records = submit(
            &self.api,
            "/status",
            json!({"cluster_names": [cluster], "refresh": true, "all_users": true}),
        )
        .await
        .expect("status");
        records.as_array()?.first().cloned()
    }

    /// Refreshes until `holds` is true of the cluster's record; the record
    /// and how long it took.
    async fn refresh_until(
        &self,
        cluster: &str,
        what: &str,
        holds: impl Fn(&Value) -> bool,
    ) -> (Value, Duration) {
        let started = Instant::now();
        loop {
            let record = self.refreshed(cluster).await.unwrap_or(Value::Null);
            if holds(&record) {
                return (record, started.elapsed());
            }
            assert!(
                started.elapsed() < DEADLINE,
                "{cluster} never was {what}: {record:#}\n{}",
                self.server.stderr()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn h5_address(&self) -> String {
        self.hosts.host("h5").address.clone()
    }

    /// What of cluster `cluster` is on `host`: its directory, its
    /// processes, its key.
    fn left_on(&self, host: &str, cluster: &str) -> String {
        on_host(
            &self.hosts,
            host,
            &format!(
                "test -e $HOME/.skydeck/clusters/{cluster} && echo dir; \
                 ps -eo args= | grep -F .skydeck/clusters/{cluster} | grep -v grep; \
                 grep -F skydeck-cluster:{cluster} $HOME/.ssh/authorized_keys; true"
            ),
        )
    }
}

struct Outcome {
    command: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    fn expect(&self, code: i32, needles: &[&str]) {
        let describe = || {
            format!(
                "`skydeck {}` exited {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.command, self.code, self.stdout, self.stderr
            )
        };
        assert_eq!(self.code, Some(code), "{}", describe());
        for needle in needles {
            assert!(
                self.all().contains(needle),
                "missing {needle:?}: {}",
                describe()
            );
        }
    }
}

fn unhealthy(record: &Value) -> bool {
    record["status"] == "INIT" && record["init_kind"] == "unhealthy"
}

fn reason(record: &Value) -> String {
    record["init_status_reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A job that runs until the test lets it go: it waits for a file in the
/// node's own /tmp, so the test decides when it ends without sleeping.
fn held_job(token: &str) -> String {
    format!(
        "echo started on $(hostname)\nwhile [ ! -e /tmp/go-{token} ]; do sleep 0.2; done\necho finished on $(hostname)"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_cut_off_fails_the_job_and_the_cluster_shows_which_host_until_it_is_back() {
    let Some(pools) = Pools::start(&["pair"]).await else {
        return;
    };
    let _mend = Mend(&pools.hosts, "h5");
    let cluster = format!("cut-{}", std::process::id());
    let job = pools.launch("pair", &cluster, 2, &held_job(&cluster)).await;
    pools
        .wait_log(
            &cluster,
            job,
            &["started on skydeck-test-h1", "started on skydeck-test-h5"],
        )
        .await;
    let record = pools.refreshed(&cluster).await.unwrap();
    assert_eq!(record["status"], "UP", "{record:#}");
    assert_eq!(record["head_ip"], pools.hosts.host("h1").address.as_str());

    ctl(&pools.hosts, "h5", "cut");
    let failed_after = pools.wait_job(&cluster, job, "FAILED_DRIVER").await;
    let (record, seen_after) = pools.refresh_until(&cluster, "unhealthy", unhealthy).await;
    eprintln!(
        "worker cut off: job FAILED_DRIVER after {failed_after:?}, status unhealthy {seen_after:?} later"
    );
    let why = reason(&record);
    let h5 = format!("host h5 ({}) is unreachable", pools.h5_address());
    assert!(why.starts_with("Cluster is abnormal because"), "{why}");
    assert!(why.contains(&h5), "{why}");
    assert!(!why.contains("host h1"), "{why}");
    assert_eq!(record["last_event"], why.as_str());
    // Our CLI says the same, and so does the official client.
    let status = pools.skydeck(&["status", &cluster]).await;
    status.expect(0, &["UNHEALTHY", &h5]);
    if let Some(executable) = support::sky::official_sky() {
        let sky = support::sky::Sky {
            executable,
            home: support::sky::temp_dir(pools.scratch.path(), "client-home"),
        };
        let login = sky.run(&["api", "login", "-e", &pools.server.url]).await;
        assert!(login.success(), "{}", login.describe());
        let status = sky.run(&["status", "-v", &cluster]).await;
        assert!(
            status.success()
                && status.output().contains("UNHEALTHY")
                && status.output().contains(&h5),
            "{}",
            status.describe()
        );
    }

    ctl(&pools.hosts, "h5", "restore");
    let (record, back_after) = pools
        .refresh_until(&cluster, "UP", |r| r["status"] == "UP")
        .await;
    eprintln!("link restored: UP again after {back_after:?}");
    assert_eq!(
        record["last_event"], "Every host of the cluster answers again.",
        "{record:#}"
    );
    assert!(record.get("init_kind").is_none_or(Value::is_null));

    pools
        .skydeck(&["down", "-y", &cluster])
        .await
        .expect(0, &[]);
    assert_eq!(pools.left_on("h1", &cluster), "");
    assert_eq!(pools.left_on("h5", &cluster), "");
    pools.server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_head_cut_off_for_a_while_keeps_its_job() {
    let Some(pools) = Pools::start(&["solo"]).await else {
        return;
    };
    let _mend = Mend(&pools.hosts, "h5");
    let cluster = format!("blip-{}", std::process::id());
    let job = pools.launch("solo", &cluster, 1, &held_job(&cluster)).await;
    pools
        .wait_log(&cluster, job, &["started on skydeck-test-h5"])
        .await;

    ctl(&pools.hosts, "h5", "cut");
    let (record, seen_after) = pools.refresh_until(&cluster, "unhealthy", unhealthy).await;
    eprintln!("head cut off: status unhealthy after {seen_after:?}");
    assert!(
        reason(&record).contains(&format!("host h5 ({}) is unreachable", pools.h5_address())),
        "{record:#}"
    );
    ctl(&pools.hosts, "h5", "restore");
    pools
        .refresh_until(&cluster, "UP", |r| r["status"] == "UP")
        .await;

    // The job ran on through the blip: it ends when let go, as it would have.
    on_host(&pools.hosts, "h5", &format!("touch /tmp/go-{cluster}"));
    pools.wait_job(&cluster, job, "SUCCEEDED").await;
    assert!(
        pools
            .log(&cluster, job)
            .await
            .contains("finished on skydeck-test-h5")
    );

    pools
        .skydeck(&["down", "-y", &cluster])
        .await
        .expect(0, &[]);
    assert_eq!(pools.left_on("h5", &cluster), "");
    on_host(&pools.hosts, "h5", &format!("rm -f /tmp/go-{cluster}"));
    pools.server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rebooted_head_gets_its_agent_back_and_its_lost_job_fails() {
    let Some(pools) = Pools::start(&["solo"]).await else {
        return;
    };
    let _mend = Mend(&pools.hosts, "h5");
    let cluster = format!("reboot-{}", std::process::id());
    let job = pools.launch("solo", &cluster, 1, &held_job(&cluster)).await;
    pools
        .wait_log(&cluster, job, &["started on skydeck-test-h5"])
        .await;

    // Every process of the host goes (agent and job); its files stay.
    ctl(&pools.hosts, "h5", "reboot");
    let (record, seen_after) = pools
        .refresh_until(&cluster, "given its agent back", |r| {
            r["last_event"]
                .as_str()
                .is_some_and(|e| e.contains("agent was not running"))
        })
        .await;
    let failed_after = pools.wait_job(&cluster, job, "FAILED_DRIVER").await;
    eprintln!(
        "head rebooted: agent restarted after {seen_after:?}, job FAILED_DRIVER {failed_after:?} later"
    );
    assert_eq!(record["status"], "UP", "{record:#}");

    // The cluster works again.
    let again = pools.launch("solo", &cluster, 1, "echo back").await;
    pools.wait_job(&cluster, again, "SUCCEEDED").await;

    pools
        .skydeck(&["down", "-y", &cluster])
        .await
        .expect(0, &[]);
    assert_eq!(pools.left_on("h5", &cluster), "");
    pools.server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn down_with_a_host_down_cleans_the_others_and_says_how_to_finish() {
    let Some(pools) = Pools::start(&["pair"]).await else {
        return;
    };
    let _mend = Mend(&pools.hosts, "h5");
    let cluster = format!("half-{}", std::process::id());
    let job = pools.launch("pair", &cluster, 2, &held_job(&cluster)).await;
    pools
        .wait_log(
            &cluster,
            job,
            &["started on skydeck-test-h1", "started on skydeck-test-h5"],
        )
        .await;

    // sshd is PID 1 of the host: stopping it takes the host down (the
    // worker's job processes die with it), and its address answers
    // "connection refused".
    ctl(&pools.hosts, "h5", "stop");
    let failed_after = pools.wait_job(&cluster, job, "FAILED_DRIVER").await;
    eprintln!("worker host down: job FAILED_DRIVER after {failed_after:?}");
    let (record, _) = pools.refresh_until(&cluster, "unhealthy", unhealthy).await;
    assert!(reason(&record).contains("Connection refused"), "{record:#}");

    let down = pools.skydeck(&["down", "-y", &cluster]).await;
    down.expect(
        1,
        &[
            &format!("host h5 ({}) is unreachable", pools.h5_address()),
            &format!(
                "It was removed from h1 ({})",
                pools.hosts.host("h1").address
            ),
            "`down --purge`",
        ],
    );
    assert_eq!(pools.left_on("h1", &cluster), "");
    // The record stays (unhealthy) for the next `down`.
    let record = pools
        .refreshed(&cluster)
        .await
        .expect("a failed down keeps the record");
    assert!(unhealthy(&record), "{record:#}");

    pools
        .skydeck(&["down", "-y", "--purge", &cluster])
        .await
        .expect(0, &[]);
    assert_eq!(pools.refreshed(&cluster).await, None);

    // Back up, the host still has what the purge left there.
    ctl(&pools.hosts, "h5", "start");
    let left = pools.left_on("h5", &cluster);
    assert!(left.starts_with("dir\n"), "{left}");
    on_host(
        &pools.hosts,
        "h5",
        &format!(
            "rm -rf $HOME/.skydeck/clusters/{cluster}; \
             sed -i '/skydeck-cluster:{cluster}/d' $HOME/.ssh/authorized_keys"
        ),
    );
    pools.server.stop();
}

/// A key no host accepts.
fn stranger_key(dir: &Path) -> PathBuf {
    let key = dir.join("stranger_ed25519");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .expect("run ssh-keygen");
    assert!(status.success());
    key
}

#[tokio::test(flavor = "multi_thread")]
async fn a_launch_says_what_is_wrong_with_the_key_the_host_key_or_the_resources() {
    let Some(pools) = Pools::start(&["solo"]).await else {
        return;
    };
    let _mend = Mend(&pools.hosts, "h5");
    let cluster = format!("refused-{}", std::process::id());
    let launch = |task: String| {
        let api = &pools.api;
        let cluster = cluster.clone();
        async move {
            submit(
                api,
                "/launch",
                json!({"task": task, "cluster_name": cluster, "retry_until_up": false}),
            )
            .await
            .expect_err("the launch fails")
            .to_string()
        }
    };

    // More CPUs than any host has: what is free.
    let err =
        launch("resources:\n  infra: ssh/solo\n  cpus: 1000\nrun: echo hi\n".to_owned()).await;
    assert!(
        err.contains("needs 1000 CPUs") && err.contains("free"),
        "{err}"
    );

    // The host's key changed since `ssh up` recorded it.
    pools.hosts.rekey("h5");
    let err = launch("resources:\n  infra: ssh/solo\nrun: echo hi\n".to_owned()).await;
    assert!(
        err.contains("changed since this pool first recorded it") && err.contains("ssh-keygen -R"),
        "{err}"
    );
    let up = pools.skydeck(&["ssh", "up", "--infra", "solo"]).await;
    up.expect(1, &["changed since this pool first recorded it"]);

    // A key the host does not accept: the pool names the address and a
    // key of its own, which the hosts' SSH config does not override.
    let known_hosts = pools.server.home.join("ssh/pools/solo/known_hosts");
    let forget = std::process::Command::new("ssh-keygen")
        .args(["-R", &pools.h5_address(), "-f"])
        .arg(&known_hosts)
        .output()
        .unwrap();
    assert!(forget.status.success(), "{forget:?}");
    let wrong = stranger_key(pools.scratch.path());
    std::fs::write(
        pools.server.home.join("ssh_node_pools.yaml"),
        format!(
            "solo:\n  hosts: [h5]\nbykey:\n  user: root\n  identity_file: {}\n  hosts: [{}]\n",
            pools.hosts.key.display(),
            pools.h5_address()
        ),
    )
    .unwrap();
    pools
        .skydeck(&["ssh", "up", "--infra", "bykey"])
        .await
        .expect(0, &["Completed deployment for cluster: bykey"]);
    std::fs::write(
        pools.server.home.join("ssh_node_pools.yaml"),
        format!(
            "solo:\n  hosts: [h5]\nbykey:\n  user: root\n  identity_file: {}\n  hosts: [{}]\n",
            wrong.display(),
            pools.h5_address()
        ),
    )
    .unwrap();
    let err = launch("resources:\n  infra: ssh/bykey\nrun: echo hi\n".to_owned()).await;
    assert!(
        err.contains(&format!("refused the key {}", wrong.display()))
            && err.contains("authorized_keys"),
        "{err}"
    );
    assert_eq!(pools.left_on("h5", &cluster), "");
    pools.server.stop();
}
