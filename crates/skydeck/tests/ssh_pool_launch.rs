//! A cluster on an SSH node pool through the real server: the pool file in
//! the state directory, its host recorded (as `ssh up` records it), then
//! launch, logs, status, down, and nothing of the cluster left on the host.
//! Needs the SSH test hosts (scripts/ssh-hosts-up.sh).

mod support;

use serde_json::{Value, json};
use skydeck_client::{Client, ClientError};
use skydeck_store::{SqlStore, Store};
use skydeck_types::placement::Host;
use std::time::{Duration, Instant};
use support::ssh_hosts::{TestHosts, test_hosts};
use support::{TestServer, http};

async fn submit(client: &Client, path: &str, body: Value) -> Result<Value, ClientError> {
    let id = client.submit(path, &body).await.expect("accepted");
    client.wait(&id).await
}

/// Runs `line` on test host `host` with the tests' own key, outside
/// anything Skydeck set up.
fn on_host(hosts: &TestHosts, host: &str, line: &str) -> String {
    let out = std::process::Command::new("ssh")
        .arg("-F")
        .arg(&hosts.ssh_config)
        .args([host, line])
        .output()
        .unwrap();
    assert!(out.status.success(), "{line} on {host}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls the queue until job `job` of `cluster` has succeeded.
async fn wait_until_succeeded(api: &Client, cluster: &str, job: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let jobs = submit(
            api,
            "/queue",
            json!({"cluster_name": cluster, "all_users": true}),
        )
        .await
        .unwrap();
        let status = jobs
            .as_array()
            .and_then(|jobs| jobs.iter().find(|j| j["job_id"] == job))
            .map(|j| j["status"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_default();
        if status == "SUCCEEDED" {
            break;
        }
        assert!(
            !status.starts_with("FAILED") && Instant::now() < deadline,
            "job {job} is {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn launch_logs_and_down_on_an_ssh_node_pool() {
    let Some(hosts) = test_hosts() else { return };
    let h1 = hosts.host("h1");
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("ssh_node_pools.yaml"),
        format!(
            "rack:\n  user: root\n  identity_file: {}\n  hosts:\n    - {}\n",
            hosts.key.display(),
            h1.address
        ),
    )
    .unwrap();
    let store = SqlStore::open(&format!(
        "sqlite://{}",
        home.path().join("state.db").display()
    ))
    .await
    .unwrap();
    store
        .put_host(&Host {
            id: format!("ssh/rack/{}", h1.address),
            pool: "ssh/rack".to_owned(),
            cpus: 2.0,
            memory_gb: 4.0,
            gpus: Vec::new(),
        })
        .await
        .unwrap();
    drop(store);

    let server = TestServer::start(home.path(), &[]);
    let api = Client::new(&server.url, None).unwrap();
    let cluster = format!("pool-{}", std::process::id());
    let started = Instant::now();
    let launched = submit(
        &api,
        "/launch",
        json!({
            "task": "resources:\n  infra: ssh/rack\n  cpus: 1\nrun: echo hello from $(hostname) at $SKYPILOT_NODE_IPS\n",
            "cluster_name": cluster,
            "retry_until_up": false,
        }),
    )
    .await
    .unwrap_or_else(|err| panic!("launch failed: {err:?}\n{}", server.stderr()));
    eprintln!("launch on the pool took {:?}", started.elapsed());
    let job = launched["job_id"].as_u64().expect("a job id");

    wait_until_succeeded(&api, &cluster, job).await;
    let body = json!({"cluster_name": cluster, "job_id": job, "follow": false}).to_string();
    let log = http("POST", &format!("{}/logs", server.url), Some(&body))
        .await
        .body;
    assert!(
        log.contains(&format!("hello from {} at {}", h1.hostname, h1.address)),
        "{log}"
    );

    let status = submit(&api, "/status", json!({"cluster_names": [cluster]}))
        .await
        .unwrap();
    assert_eq!(status[0]["head_ip"], h1.address.as_str(), "{status}");
    let dir = format!("$HOME/.skydeck/clusters/{cluster}");
    assert_eq!(
        on_host(&hosts, "h1", &format!("test -d {dir} && echo there")),
        "there\n"
    );

    // A relaunch on the set-up cluster: the agent is there, nothing to copy.
    let started = Instant::now();
    let again = submit(
        &api,
        "/launch",
        json!({
            "task": "resources:\n  infra: ssh/rack\n  cpus: 1\nrun: echo again\n",
            "cluster_name": cluster,
            "retry_until_up": false,
        }),
    )
    .await
    .unwrap();
    wait_until_succeeded(&api, &cluster, again["job_id"].as_u64().unwrap()).await;
    eprintln!("relaunch to a finished job took {:?}", started.elapsed());

    // Stop: on machines Skydeck does not own, the processes go and the
    // files stay; start brings the agent back.
    submit(&api, "/stop", json!({"cluster_name": cluster}))
        .await
        .unwrap();
    assert_eq!(
        on_host(
            &hosts,
            "h1",
            &format!(
                "test -d {dir} && echo there; ps -eo args= | grep -F .skydeck/clusters/{cluster} | grep -v grep; true"
            )
        ),
        "there\n"
    );
    submit(&api, "/start", json!({"cluster_name": cluster}))
        .await
        .unwrap();
    let status = submit(&api, "/status", json!({"cluster_names": [cluster]}))
        .await
        .unwrap();
    assert_eq!(status[0]["status"], "UP", "{status}");

    submit(&api, "/down", json!({"cluster_name": cluster}))
        .await
        .unwrap();
    assert_eq!(
        on_host(
            &hosts,
            "h1",
            &format!(
                "test -e {dir} && echo left; ps -eo args= | grep -F .skydeck/clusters/{cluster} | grep -v grep; true"
            )
        ),
        ""
    );
    server.stop();
}
