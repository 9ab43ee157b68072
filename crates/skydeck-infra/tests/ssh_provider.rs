//! The SSH node pool provider against real sshd hosts
//! (scripts/ssh-hosts-up.sh): clusters on h1 and h2, their agent, their
//! keys, and nothing left on any host after `terminate`.
//!
//! Installs the `skydeck` binary as the agent: `cargo build -p skydeck`
//! first.

mod support;

use skydeck_agent::protocol::{JobSpec, JobStatus};
use skydeck_infra::placement::Allocation;
use skydeck_infra::ssh::{SshPool, SshPoolOptions, SshProvider};
use skydeck_infra::{
    ClusterInfo, ClusterName, ClusterSpec, ClusterState, CommandRunner, Handle, LogFollow,
    NodeRequest, Provider,
};
use skydeck_types::names::PoolName;
use skydeck_types::ssh_node_pools::NodePools;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::ssh_hosts::{TestHosts, test_hosts};

/// The `skydeck` binary of this build (beside the test's `deps/`).
fn skydeck_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let binary = exe.parent().unwrap().parent().unwrap().join("skydeck");
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build -p skydeck` first",
        binary.display()
    );
    binary
}

/// A pool of h1, h2 and h5 by address, as a pool file names hosts.
fn provider(hosts: &TestHosts, state: &Path, connect_timeout: Duration) -> SshProvider {
    let yaml = format!(
        "test:\n  user: root\n  identity_file: {}\n  hosts:\n    - {}\n    - {}\n    - {}\n",
        hosts.key.display(),
        hosts.host("h1").address,
        hosts.host("h2").address,
        hosts.host("h5").address,
    );
    let pools = NodePools::from_yaml(&yaml).unwrap();
    let name = PoolName::new("test").unwrap();
    let (pool_hosts, _) = pools.pools[&name].hosts();
    let ssh = SshPool::open(
        &state.join("pool"),
        SshPoolOptions {
            connect_timeout,
            command_timeout: Some(Duration::from_secs(120)),
            ..SshPoolOptions::default()
        },
    )
    .unwrap();
    SshProvider::new(
        name,
        ssh,
        &pool_hosts,
        Path::new("/nonexistent"),
        skydeck_binary(),
    )
}

fn spec(provider: &SshProvider, hosts: &TestHosts, name: &str, on: &[&str]) -> ClusterSpec {
    let allocations = on
        .iter()
        .enumerate()
        .map(|(rank, h)| Allocation {
            cluster: name.to_owned(),
            node_rank: rank as u32,
            host: provider.host_id(&hosts.host(h).address),
            cpus: 0.0,
            memory_gb: 0.0,
            gpus: Vec::new(),
            ports: Vec::new(),
        })
        .collect();
    ClusterSpec {
        name: ClusterName::new(name).unwrap(),
        num_nodes: on.len() as u32,
        user_hash: "abcd1234".to_owned(),
        node: NodeRequest::default(),
        allocations,
    }
}

/// A fresh cluster name per test run, so leftovers of an earlier run never
/// count.
fn cluster_name(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{what}-{}-{nanos}", std::process::id())
}

fn job(run: &str) -> JobSpec {
    serde_json::from_value(serde_json::json!({
        "idempotency_key": cluster_name("job"),
        "username": "alice",
        "user_hash": "abcd1234",
        "run": run,
    }))
    .unwrap()
}

async fn sh(runner: &dyn CommandRunner, line: &str) -> String {
    let out = runner
        .run(&["sh".to_owned(), "-c".to_owned(), line.to_owned()], None)
        .await
        .unwrap();
    assert!(out.success(), "{line}: {out:?}");
    out.stdout
}

async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What of cluster `name` is on the host behind `runner`: its directory,
/// its key line, and its processes (by command line and by the job marker
/// in their environment), each host seen through its own PID namespace.
async fn leftovers(runner: &dyn CommandRunner, name: &str) -> Vec<String> {
    let line = format!(
        r#"d="$HOME/.skydeck/clusters/{name}"
[ -e "$d" ] && echo "directory $d"
grep -q "skydeck-cluster:{name}$" "$HOME/.ssh/authorized_keys" 2>/dev/null && echo "authorized key"
ps -eo pid=,args= | grep -F "$d" | grep -v -e grep -e "ps -eo" -e 'sh -c' | sed 's/^/process /'
for p in /proc/[0-9]*; do
  tr '\0' '\n' <"$p/environ" 2>/dev/null | grep -q "^SKYDECK_AGENT_JOB=$d#" && echo "job process ${{p#/proc/}}"
done
true"#
    );
    sh(runner, &line).await.lines().map(str::to_owned).collect()
}

async fn wait_for_status(provider: &SshProvider, handle: &Handle, job: u64, want: JobStatus) {
    let agent = provider.agent(handle);
    let reached = eventually(Duration::from_secs(60), || async {
        let status = agent.job_status(&[job]).await.unwrap();
        status.get(&job.to_string()).cloned().flatten() == Some(want)
    })
    .await;
    assert!(reached, "job {job} never became {want:?}");
}

#[tokio::test]
async fn a_one_node_cluster_runs_a_job_and_leaves_nothing() {
    let Some(hosts) = test_hosts() else { return };
    let state = tempfile::tempdir().unwrap();
    let provider = provider(&hosts, state.path(), Duration::from_secs(5));
    let name = cluster_name("one");
    let spec = spec(&provider, &hosts, &name, &["h1"]);
    let handle = provider.provision(&spec).await.unwrap();
    assert_eq!(handle.nodes[0].ip, hosts.host("h1").address);
    assert!(handle.nodes[0].ssh.is_none(), "the head reaches itself");
    assert_eq!(
        provider.query(&handle).await.unwrap(),
        ClusterState::Running
    );
    // Provisioning again (a relaunch) changes nothing.
    let again = provider.provision(&spec).await.unwrap();
    assert_eq!(again, handle);

    let agent = provider.agent(&handle);
    let id = agent
        .submit(&job("echo hello from $(hostname) rank $SKYPILOT_NODE_RANK"))
        .await
        .unwrap();
    wait_for_status(&provider, &handle, id, JobStatus::Succeeded).await;
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let code = agent
        .logs(
            Some(id),
            LogFollow {
                follow: false,
                tail: 0,
            },
            tx,
        )
        .await
        .unwrap();
    let mut log = Vec::new();
    while let Some(chunk) = rx.recv().await {
        log.extend(chunk);
    }
    let log = String::from_utf8_lossy(&log);
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains(&format!("hello from {} rank 0", hosts.host("h1").hostname)),
        "{log}"
    );

    provider.terminate(&handle).await.unwrap();
    let h1 = provider.head_runner(&handle);
    assert_eq!(leftovers(&*h1, &name).await, Vec::<String>::new());
    assert_eq!(provider.query(&handle).await.unwrap(), ClusterState::Gone);
    // Idempotent.
    provider.terminate(&handle).await.unwrap();
}

#[tokio::test]
async fn a_two_node_cluster_gives_the_head_a_key_to_its_worker() {
    let Some(hosts) = test_hosts() else { return };
    let state = tempfile::tempdir().unwrap();
    let provider = provider(&hosts, state.path(), Duration::from_secs(5));
    let name = cluster_name("two");
    let spec = spec(&provider, &hosts, &name, &["h1", "h2"]);
    let handle = provider.provision(&spec).await.unwrap();
    let head = provider.head_runner(&handle);

    let json = sh(
        &*head,
        &format!("cat \"$HOME/.skydeck/clusters/{name}/cluster.json\""),
    )
    .await;
    let cluster: ClusterInfo = serde_json::from_str(&json).unwrap();
    assert_eq!(cluster.num_nodes, 2);
    assert_eq!(cluster.nodes[0].ip, hosts.host("h1").address);
    assert_eq!(cluster.nodes[1].ip, hosts.host("h2").address);
    assert!(cluster.nodes[0].ssh.is_none());
    let worker = cluster.nodes[1]
        .ssh
        .clone()
        .expect("the worker is reached over SSH");
    assert_eq!(
        (worker.host.as_str(), worker.port, worker.user.as_str()),
        (hosts.host("h2").address.as_str(), 22, "root")
    );
    assert!(
        cluster.nodes[1]
            .dir
            .ends_with(format!(".skydeck/clusters/{name}/nodes/1")),
        "{:?}",
        cluster.nodes[1].dir
    );

    // The head reaches the worker with exactly what cluster.json says: the
    // cluster's key, the recorded host key (strict), the installed agent.
    let line = format!(
        "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} \
         -o StrictHostKeyChecking=yes -o BatchMode=yes -p {} {}@{} \
         'hostname; test -x {} && echo agent'",
        worker.identity_file.display(),
        worker.known_hosts.display(),
        worker.port,
        worker.user,
        worker.host,
        worker.agent.display(),
    );
    let out = sh(&*head, &line).await;
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [hosts.host("h2").hostname.as_str(), "agent"],
        "{out}"
    );
    let key_mode = sh(
        &*head,
        &format!("stat -c %a {}", worker.identity_file.display()),
    )
    .await;
    assert_eq!(key_mode.trim(), "600");

    // Files reach every node; a second sync of the same tree moves nothing
    // (rsync over the kept connection).
    let local = tempfile::tempdir().unwrap();
    std::fs::write(local.path().join("train.py"), "print('hi')\n").unwrap();
    provider
        .sync_up(&handle, local.path(), "~/sky_workdir")
        .await
        .unwrap();
    let worker_runner = support_runner(&provider, &hosts, state.path(), "h2").await;
    let on_worker = sh(
        &*worker_runner,
        &format!("cat \"$HOME/.skydeck/clusters/{name}/nodes/1/sky_workdir/train.py\""),
    )
    .await;
    assert_eq!(on_worker, "print('hi')\n");

    provider.terminate(&handle).await.unwrap();
    for (runner, host) in [(&head, "h1"), (&worker_runner, "h2")] {
        assert_eq!(
            leftovers(&**runner, &name).await,
            Vec::<String>::new(),
            "on {host}"
        );
    }
}

/// A runner to `host` that is not the cluster's (a fresh connection).
async fn support_runner(
    _provider: &SshProvider,
    hosts: &TestHosts,
    state: &Path,
    host: &str,
) -> std::sync::Arc<dyn CommandRunner> {
    let pool = SshPool::open(&state.join("checker"), SshPoolOptions::default()).unwrap();
    let mut target = skydeck_infra::ssh::SshTarget::new(
        skydeck_infra::ssh::SshHost::parse(&hosts.host(host).address).unwrap(),
    );
    target.user = Some(skydeck_infra::ssh::SshUser::parse("root").unwrap());
    target.identity_file = Some(hosts.key.clone());
    std::sync::Arc::new(pool.connect(&target).await.unwrap())
}

#[tokio::test]
async fn stop_kills_the_jobs_and_keeps_the_files_and_start_brings_the_agent_back() {
    let Some(hosts) = test_hosts() else { return };
    let state = tempfile::tempdir().unwrap();
    let provider = provider(&hosts, state.path(), Duration::from_secs(5));
    let name = cluster_name("stop");
    let handle = provider
        .provision(&spec(&provider, &hosts, &name, &["h1"]))
        .await
        .unwrap();
    let agent = provider.agent(&handle);
    let id = agent.submit(&job("sleep 7321")).await.unwrap();
    wait_for_status(&provider, &handle, id, JobStatus::Running).await;
    let head = provider.head_runner(&handle);
    assert!(
        !leftovers(&*head, &name)
            .await
            .iter()
            .all(|l| l.starts_with("directory")),
        "the job and the agent run"
    );

    provider.stop(&handle).await.unwrap();
    let left = leftovers(&*head, &name).await;
    assert_eq!(left.len(), 1, "only the directory stays: {left:?}");
    assert!(left[0].starts_with("directory"), "{left:?}");
    let sleeping = sh(&*head, "ps -eo args= | grep -c '^sleep 7321' || true").await;
    assert_eq!(sleeping.trim(), "0");
    assert_eq!(
        provider.query(&handle).await.unwrap(),
        ClusterState::AgentDown
    );

    provider.start(&handle).await.unwrap();
    assert_eq!(
        provider.query(&handle).await.unwrap(),
        ClusterState::Running
    );
    // The job was stopped with the cluster; its record is still there.
    let jobs = agent.queue(None, false).await.unwrap();
    assert_eq!(jobs.len(), 1);

    provider.terminate(&handle).await.unwrap();
    assert_eq!(leftovers(&*head, &name).await, Vec::<String>::new());
}

#[tokio::test]
async fn terminate_reports_a_host_that_does_not_answer_and_cleans_the_others() {
    let Some(hosts) = test_hosts() else { return };
    let _h5 = hosts.hold("h5");
    let state = tempfile::tempdir().unwrap();
    let provider = provider(&hosts, state.path(), Duration::from_secs(2));
    let name = cluster_name("cut");
    let handle = provider
        .provision(&spec(&provider, &hosts, &name, &["h1", "h5"]))
        .await
        .unwrap();
    let link = hosts.host("h5").link.clone().unwrap();
    let set_link = |state: &str| {
        let ok = std::process::Command::new("ip")
            .args(["link", "set", &link, state])
            .status()
            .unwrap()
            .success();
        assert!(ok, "ip link set {link} {state}");
    };
    set_link("down");
    // A new provider, as a server that restarted: no connection to reuse.
    let fresh = self::provider(&hosts, state.path(), Duration::from_secs(2));
    let err = fresh.terminate(&handle).await.unwrap_err().to_string();
    set_link("up");
    let (h1_address, h5_address) = (&hosts.host("h1").address, &hosts.host("h5").address);
    assert!(
        err.contains(&format!("host {h5_address} is unreachable")),
        "{err}"
    );
    // h1 answered: it is named as cleaned, not as lost.
    assert!(
        err.contains(&format!("It was removed from {h1_address}."))
            && !err.contains(&format!("host {h1_address}")),
        "{err}"
    );
    assert!(err.contains("`down --purge`"), "{err}");
    let h1 = support_runner(&provider, &hosts, state.path(), "h1").await;
    assert_eq!(leftovers(&*h1, &name).await, Vec::<String>::new());

    // Once it answers again, `down` finishes the job.
    let again = self::provider(&hosts, state.path(), Duration::from_secs(5));
    let cleaned = eventually(Duration::from_secs(30), || async {
        again.terminate(&handle).await.is_ok()
    })
    .await;
    assert!(cleaned, "terminate never reached h5 again");
    let h5 = support_runner(&provider, &hosts, state.path(), "h5").await;
    assert_eq!(leftovers(&*h5, &name).await, Vec::<String>::new());
}

#[tokio::test]
async fn a_cluster_whose_handle_was_lost_is_removed_from_every_host_of_the_pool() {
    let Some(hosts) = test_hosts() else { return };
    // Every host of the pool is visited, h5 too.
    let _h5 = hosts.hold("h5");
    let state = tempfile::tempdir().unwrap();
    let provider = provider(&hosts, state.path(), Duration::from_secs(5));
    let name = cluster_name("lost");
    let handle = provider
        .provision(&spec(&provider, &hosts, &name, &["h1", "h2"]))
        .await
        .unwrap();
    let agent = provider.agent(&handle);
    let id = agent.submit(&job("sleep 7322")).await.unwrap();
    wait_for_status(&provider, &handle, id, JobStatus::Running).await;
    let head = provider.head_runner(&handle);
    let running = leftovers(&*head, &name).await;
    assert!(
        running.iter().any(|l| l.starts_with("job process"))
            && running.iter().any(|l| l.starts_with("process")),
        "the job and the agent are seen: {running:?}"
    );

    // A server that restarted without the handle: a fresh provider.
    let fresh = self::provider(&hosts, state.path(), Duration::from_secs(5));
    fresh
        .terminate_unrecorded(&ClusterName::new(&name).unwrap())
        .await
        .unwrap();
    for host in ["h1", "h2", "h5"] {
        let runner = support_runner(&provider, &hosts, state.path(), host).await;
        assert_eq!(
            leftovers(&*runner, &name).await,
            Vec::<String>::new(),
            "on {host}"
        );
    }
}

/// sshd reads authorized_keys at every login: editing it in place (truncate,
/// then write) would shut every other key of the login out for a moment,
/// the server's own included. The edit is one rename, and none at all when
/// nothing changes.
#[tokio::test]
async fn authorized_keys_are_replaced_in_one_rename_and_only_when_they_change() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let Some(hosts) = test_hosts() else { return };
    let state = tempfile::tempdir().unwrap();
    let h2 = support_runner_plain(&hosts, state.path(), "h2").await;
    let file = hosts.host("h2").dir.join("root/.ssh/authorized_keys");
    let inode = || std::fs::metadata(&file).unwrap().ino();

    let marker = format!("skydeck-cluster:{}", cluster_name("rename"));
    let before = inode();
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    h2.revoke_key(&marker).await.unwrap();
    assert_eq!(
        inode(),
        before,
        "nothing to remove: the file is not touched"
    );

    let key = skydeck_infra::ssh::ClusterKey::generate(&state.path().join("key"), &marker)
        .await
        .unwrap();
    h2.authorize_key(&key).await.unwrap();
    let with = inode();
    assert_ne!(
        with, before,
        "a new file renamed over the old, not a rewrite in place"
    );
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(meta.permissions().mode(), mode, "the file keeps its mode");
    assert!(std::fs::read_to_string(&file).unwrap().contains(&marker));
    h2.authorize_key(&key).await.unwrap();
    assert_eq!(inode(), with, "already there: not touched");
    h2.revoke_key(&marker).await.unwrap();
    assert!(!std::fs::read_to_string(&file).unwrap().contains(&marker));
}

async fn support_runner_plain(
    hosts: &TestHosts,
    state: &Path,
    host: &str,
) -> skydeck_infra::ssh::SshRunner {
    let pool = SshPool::open(&state.join("plain"), SshPoolOptions::default()).unwrap();
    let mut target = skydeck_infra::ssh::SshTarget::new(
        skydeck_infra::ssh::SshHost::parse(&hosts.host(host).address).unwrap(),
    );
    target.user = Some(skydeck_infra::ssh::SshUser::parse("root").unwrap());
    target.identity_file = Some(hosts.key.clone());
    pool.connect(&target).await.unwrap()
}
