//! Managed jobs on SSH Node Pools of real sshd hosts
//! (scripts/ssh-hosts-up.sh): a job on a bare `ssh` whose host goes away
//! recovers on another pool (EAGER_NEXT_REGION, SkyPilot's default), and
//! one with FAILOVER whose cluster is lost comes back to its own pool. The
//! lost cluster, whose host cannot be cleaned, does not hold the job up.
//! Skipped without `SKYDECK_TEST_SSH_HOSTS`.

mod support;

use serde_json::{Value, json};
use skydeck_client::Client;
use std::time::{Duration, Instant};
use support::host_faults::{Mend, ctl, on_host};
use support::ssh_hosts::{TestHosts, test_hosts};
use support::{TestServer, skydeck_cli};

/// Longer than losing a host takes to notice (the agent's heartbeats and
/// the provider's answer bound), with room for a slow CI.
const DEADLINE: Duration = Duration::from_secs(180);

/// Pools `a-lossy` (h5, the host these tests break; first by name, so a
/// bare `ssh` goes there) and `b-steady` (h1), set up.
async fn server_with_two_pools(hosts: &TestHosts, scratch: &std::path::Path) -> TestServer {
    let home = scratch.join("server");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join("ssh_node_pools.yaml"),
        "a-lossy:\n  hosts: [h5]\nb-steady:\n  hosts: [h1]\n",
    )
    .unwrap();
    let ssh_config = hosts.ssh_config.to_str().unwrap().to_owned();
    let server = TestServer::start(&home, &[("SKYDECK_SSH_CONFIG", &ssh_config)]);
    for pool in ["a-lossy", "b-steady"] {
        let up = skydeck_cli(&server, scratch, &["ssh", "up", "--infra", pool]).await;
        assert_eq!(up.code, Some(0), "{}", up.describe());
    }
    server
}

/// The job's one row of `jobs queue`.
async fn row(api: &Client, job: u64) -> Value {
    let id = api
        .submit("/jobs/queue/v2", &json!({ "job_ids": [job] }))
        .await
        .unwrap();
    api.wait(&id).await.unwrap()["jobs"][0].clone()
}

async fn wait_row(api: &Client, job: u64, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let row = row(api, job).await;
        if check(&row) {
            return row;
        }
        assert!(Instant::now() < deadline, "never {what}: {row}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A task `name` on a bare `ssh` that waits for `/tmp/go-<token>` on its
/// host. Each run names its own: a cluster forgotten on a stopped host
/// leaves its files there.
fn gated_task(name: &str, strategy: &str, token: &str) -> String {
    format!(
        "name: {name}\nresources:\n  infra: ssh\n  job_recovery: {strategy}\nrun: |\n  \
         echo attempt on $(hostname)\n  \
         while [ ! -e /tmp/go-{token} ]; do sleep 0.2; done\n  echo finished on $(hostname)\n"
    )
}

async fn controller_log(api: &Client, job: u64) -> String {
    let (_, stream) = api
        .submit_streaming(
            "/jobs/logs",
            &json!({ "job_id": job, "controller": true, "follow": false }),
        )
        .await
        .unwrap();
    let mut seen = Vec::new();
    stream.copy_to(&mut seen).await.unwrap();
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_whose_pool_loses_its_host_goes_on_in_another_pool() {
    let Some(hosts) = test_hosts() else {
        return;
    };
    let _held = hosts.hold("h5");
    ctl(&hosts, "h5", "restore");
    ctl(&hosts, "h5", "start");
    let _mend = Mend(&hosts, "h5");
    let scratch = tempfile::tempdir().unwrap();
    let server = server_with_two_pools(&hosts, scratch.path()).await;
    let api = Client::new(&server.url, None).unwrap();
    let token = format!("{}-eager", std::process::id());
    let name = format!("eager{}", std::process::id());

    let id = api
        .submit(
            "/jobs/launch",
            &json!({ "task": gated_task(&name, "EAGER_NEXT_REGION", &token) }),
        )
        .await
        .unwrap();
    let job = api.wait(&id).await.unwrap()["job_id"].as_u64().unwrap();
    wait_row(&api, job, "RUNNING on a-lossy", |row| {
        row["status"] == "RUNNING" && row["infra"].as_str().unwrap_or("").contains("a-lossy")
    })
    .await;

    ctl(&hosts, "h5", "stop");
    let moved = wait_row(&api, job, "RUNNING again on b-steady", |row| {
        row["status"] == "RUNNING" && row["recovery_count"] == 1
    })
    .await;
    assert!(
        moved["infra"].as_str().unwrap_or("").contains("b-steady"),
        "EAGER_NEXT_REGION recovers on the other pool: {moved}"
    );
    on_host(&hosts, "h1", &format!("touch /tmp/go-{token}"));
    wait_row(&api, job, "SUCCEEDED", |row| row["status"] == "SUCCEEDED").await;

    let log = controller_log(&api, job).await;
    assert!(
        log.contains(
            "It was on ssh/a-lossy; trying ssh/b-steady, then ssh/a-lossy (EAGER_NEXT_REGION \
             recovery)."
        ) && log.contains("forgetting it and going on"),
        "{log}"
    );
    // Neither cluster is left: the lost one forgotten, the finished one
    // torn down.
    let id = api
        .submit(
            "/status",
            &json!({ "cluster_names": [format!("{name}-1")] }),
        )
        .await
        .unwrap();
    assert_eq!(api.wait(&id).await.unwrap(), json!([]));
    on_host(&hosts, "h1", &format!("rm -f /tmp/go-{token}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn with_failover_a_job_tries_its_own_pool_first() {
    let Some(hosts) = test_hosts() else {
        return;
    };
    let _held = hosts.hold("h5");
    ctl(&hosts, "h5", "restore");
    ctl(&hosts, "h5", "start");
    let _mend = Mend(&hosts, "h5");
    let scratch = tempfile::tempdir().unwrap();
    let server = server_with_two_pools(&hosts, scratch.path()).await;
    let api = Client::new(&server.url, None).unwrap();
    let token = format!("{}-failover", std::process::id());
    let name = format!("failover{}", std::process::id());

    let id = api
        .submit(
            "/jobs/launch",
            &json!({ "task": gated_task(&name, "FAILOVER", &token) }),
        )
        .await
        .unwrap();
    let job = api.wait(&id).await.unwrap()["job_id"].as_u64().unwrap();
    wait_row(&api, job, "RUNNING on a-lossy", |row| {
        row["status"] == "RUNNING" && row["infra"].as_str().unwrap_or("").contains("a-lossy")
    })
    .await;

    // The job stops on the cluster, its host still there (as when a
    // machine is shut down under it): the cluster counts as lost.
    let id = api
        .submit(
            "/cancel",
            &json!({ "cluster_name": format!("{name}-1"), "job_ids": [1] }),
        )
        .await
        .unwrap();
    api.wait(&id).await.unwrap();
    let back = wait_row(&api, job, "RUNNING again", |row| {
        row["status"] == "RUNNING" && row["recovery_count"] == 1
    })
    .await;
    assert!(
        back["infra"].as_str().unwrap_or("").contains("a-lossy"),
        "FAILOVER relaunches where the job was: {back}"
    );
    on_host(&hosts, "h5", &format!("touch /tmp/go-{token}"));
    wait_row(&api, job, "SUCCEEDED", |row| row["status"] == "SUCCEEDED").await;
    let log = controller_log(&api, job).await;
    assert!(
        log.contains(
            "It was on ssh/a-lossy; trying ssh/a-lossy, then ssh/b-steady (FAILOVER recovery)."
        ),
        "{log}"
    );
}
