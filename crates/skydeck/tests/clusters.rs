//! Clusters on the local infrastructure through the real server and its
//! agents: crashes of the server and of an agent, secrets kept out of the
//! database, multi-node jobs, ports, and launches that cannot fit.

mod support;

use serde_json::{Value, json};
use skydeck_client::{Client, ClientError};
use std::path::Path;
use std::time::{Duration, Instant};
use support::{TestServer, gated_agent, http};

/// How long any one state change may take before the test gives up.
const DEADLINE: Duration = Duration::from_secs(60);

fn client(server: &TestServer) -> Client {
    Client::new(&server.url, None).expect("a client")
}

async fn launch(client: &Client, cluster: &str, task: &str) -> String {
    client
        .submit(
            "/launch",
            &json!({"task": task, "cluster_name": cluster, "retry_until_up": false}),
        )
        .await
        .expect("launch accepted")
}

/// The job id a finished launch or exec request answered with.
async fn job_of(client: &Client, request_id: &str) -> u64 {
    let value = client.wait(request_id).await.expect("the request succeeds");
    value["job_id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no job id in {value}"))
}

async fn queue(client: &Client, cluster: &str) -> Vec<Value> {
    let id = client
        .submit(
            "/queue",
            &json!({"cluster_name": cluster, "all_users": true}),
        )
        .await
        .expect("queue accepted");
    match client.wait(&id).await.expect("queue answers") {
        Value::Array(jobs) => jobs,
        other => panic!("queue answered {other}"),
    }
}

async fn job_status(client: &Client, cluster: &str, job: u64) -> String {
    queue(client, cluster)
        .await
        .into_iter()
        .find(|j| j["job_id"] == job)
        .map(|j| j["status"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_else(|| panic!("job {job} is not in {cluster}'s queue"))
}

/// Polls until the job reaches `want`, failing on any other final status.
async fn wait_job(client: &Client, cluster: &str, job: u64, want: &str) {
    let started = Instant::now();
    loop {
        let status = job_status(client, cluster, job).await;
        if status == want {
            return;
        }
        let finished = [
            "SUCCEEDED",
            "FAILED",
            "FAILED_SETUP",
            "FAILED_DRIVER",
            "CANCELLED",
        ];
        assert!(
            !finished.contains(&status.as_str()),
            "job {job} ended {status}, not {want}"
        );
        assert!(
            started.elapsed() < DEADLINE,
            "job {job} is still {status}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The whole log of a finished job, as `sky logs --no-follow` shows it.
async fn job_log(server: &TestServer, cluster: &str, job: u64) -> String {
    let body = json!({"cluster_name": cluster, "job_id": job, "follow": false}).to_string();
    let response = http("POST", &format!("{}/logs", server.url), Some(&body)).await;
    assert_eq!(response.status, 200, "{}", response.body);
    response.body
}

async fn down(client: &Client, cluster: &str) {
    let id = client
        .submit("/down", &json!({"cluster_name": cluster}))
        .await
        .expect("down accepted");
    client.wait(&id).await.expect("down succeeds");
}

async fn refresh_status(client: &Client) -> Vec<Value> {
    let id = client
        .submit(
            "/status",
            &json!({"cluster_names": null, "refresh": "FORCE", "all_users": true}),
        )
        .await
        .expect("status accepted");
    match client.wait(&id).await.expect("status answers") {
        Value::Array(clusters) => clusters,
        other => panic!("status answered {other}"),
    }
}

/// Processes that live inside `home`: started from a path under it, or
/// working in a directory under it (every job process does).
fn processes_in(home: &Path) -> Vec<(u32, String)> {
    let home = home.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline"))
            .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
            .unwrap_or_default();
        let cwd = std::fs::read_link(entry.path().join("cwd"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, rest)| rest.trim().starts_with('Z'))
            })
            .unwrap_or(true);
        if !zombie && (cmdline.contains(&home) || cwd.starts_with(&home)) {
            found.push((pid, cmdline));
        }
    }
    found
}

/// Waits until nothing runs inside `home` any more.
async fn assert_no_processes_left(home: &Path) {
    let started = Instant::now();
    loop {
        let left = processes_in(home);
        if left.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "processes left behind: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_for_file(path: &Path) {
    let started = Instant::now();
    while !path.exists() {
        assert!(
            started.elapsed() < DEADLINE,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_killed_mid_launch_finishes_it_after_restart_and_leaves_no_orphans() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let (agent, arrived, gate) = gated_agent(dir.path());
    let envs = [("SKYDECK_AGENT_PROGRAM", agent.to_str().unwrap())];
    let server = TestServer::start(&home, &envs);
    let api = client(&server);
    let task = "setup: echo set-up-once\nrun: echo ran-on-$SKYPILOT_NODE_RANK\n";
    let request = launch(&api, "crash", task).await;

    // Provisioning has begun (the cluster is recorded INIT, its agent is
    // starting) when the server dies.
    wait_for_file(&arrived).await;
    let clusters = refresh_status(&api).await;
    assert_eq!(clusters[0]["status"], "INIT", "{clusters:?}");
    server.kill9();
    std::fs::write(&gate, "").unwrap();

    let server = TestServer::start(&home, &envs);
    let api = client(&server);
    let job = job_of(&api, &request).await;
    wait_job(&api, "crash", job, "SUCCEEDED").await;
    let log = job_log(&server, "crash", job).await;
    assert_eq!(log.matches("set-up-once").count(), 1, "{log}");
    assert!(log.contains("ran-on-0"), "{log}");
    let clusters = refresh_status(&api).await;
    assert_eq!(clusters.len(), 1, "{clusters:?}");
    assert_eq!(clusters[0]["status"], "UP");
    // One agent, whichever server started it.
    let agents: Vec<_> = processes_in(&home)
        .into_iter()
        .filter(|(_, cmd)| cmd.contains("agent daemon"))
        .collect();
    assert_eq!(agents.len(), 1, "{agents:?}");

    down(&api, "crash").await;
    assert_no_processes_left(&home).await;
    assert!(refresh_status(&api).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_agent_fails_its_running_job_and_is_restarted() {
    let home = tempfile::tempdir().unwrap();
    let server = TestServer::start(home.path(), &[]);
    let api = client(&server);
    let request = launch(&api, "victim", "run: echo started; sleep 300\n").await;
    let job = job_of(&api, &request).await;
    wait_job(&api, "victim", job, "RUNNING").await;

    let pid_file = home.path().join("clusters/victim/agent/daemon.pid");
    let agent_pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();

    // Refreshing finds the agent gone on an UP cluster and restarts it; the
    // new agent fails the job it lost and stops its processes.
    let started = Instant::now();
    loop {
        let clusters = refresh_status(&api).await;
        assert_eq!(clusters[0]["status"], "UP", "{clusters:?}");
        if job_status(&api, "victim", job).await == "FAILED_DRIVER" {
            break;
        }
        assert!(started.elapsed() < DEADLINE, "the job was never failed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sleepers: Vec<_> = processes_in(home.path())
        .into_iter()
        .filter(|(_, cmd)| cmd.contains("sleep 300"))
        .collect();
    assert!(sleepers.is_empty(), "the lost job still runs: {sleepers:?}");

    // The cluster still takes work.
    let request = api
        .submit(
            "/exec",
            &json!({"task": "run: echo after-the-crash\n", "cluster_name": "victim"}),
        )
        .await
        .unwrap();
    let next = job_of(&api, &request).await;
    wait_job(&api, "victim", next, "SUCCEEDED").await;
    assert!(
        job_log(&server, "victim", next)
            .await
            .contains("after-the-crash")
    );

    down(&api, "victim").await;
    assert_no_processes_left(home.path()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_do_not_inherit_the_servers_own_settings() {
    let home = tempfile::tempdir().unwrap();
    // Read by the server; stands in for its database URL and first admin.
    let server = TestServer::start(home.path(), &[("SKYDECK_MAX_UPLOAD_BYTES", "123456789")]);
    let api = client(&server);
    let task = "run: |\n  env | grep '^SKYDECK_' | sed 's/^/seen=/'\n  echo listed\n";
    let request = launch(&api, "scrubbed", task).await;
    let job = job_of(&api, &request).await;
    wait_job(&api, "scrubbed", job, "SUCCEEDED").await;
    let log = job_log(&server, "scrubbed", job).await;
    assert!(log.contains("listed"), "{log}");
    assert!(!log.contains("SKYDECK_MAX_UPLOAD_BYTES"), "{log}");
    assert!(
        !log.contains("seen=SKYDECK_HOME="),
        "the server's state directory leaked: {log}"
    );
    down(&api, "scrubbed").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_values_reach_the_job_but_not_the_database_or_request_listings() {
    let home = tempfile::tempdir().unwrap();
    let server = TestServer::start(home.path(), &[]);
    let api = client(&server);
    let secret = "hf_Zq81xVerySecretValue";
    // The job compares the value reversed, so the command holds no secret.
    let reversed: String = secret.chars().rev().collect();
    let task = format!(
        "run: test \"$(printf %s \"$HF_TOKEN\" | rev)\" = {reversed} && echo the-secret-arrived\n\
         secrets:\n  HF_TOKEN: {secret}\n"
    );
    let request = launch(&api, "secret", &task).await;
    let job = job_of(&api, &request).await;
    wait_job(&api, "secret", job, "SUCCEEDED").await;
    assert!(
        job_log(&server, "secret", job)
            .await
            .contains("the-secret-arrived")
    );

    let listed = http(
        "GET",
        &format!("{}/api/status?all_status=true", server.url),
        None,
    )
    .await;
    assert!(listed.body.contains("<redacted>"), "{}", listed.body);
    assert!(!listed.body.contains(secret), "{}", listed.body);
    down(&api, "secret").await;
    let stash = home.path().join("secrets");
    let stashed = std::fs::read_dir(&stash).map(|d| d.count()).unwrap_or(0);
    assert_eq!(stashed, 0, "secrets outlived their request in {stash:?}");
    drop(server);

    for file in [
        "state.db",
        "state.db-wal",
        "server.log",
        "test-server.stderr",
    ] {
        let path = home.path().join(file);
        if let Ok(bytes) = std::fs::read(&path) {
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains(secret),
                "the secret is in {}",
                path.display()
            );
        }
    }
    let logs = home.path().join("request_logs");
    for entry in std::fs::read_dir(&logs).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        assert!(
            !text.contains(secret),
            "the secret is in {}",
            entry.path().display()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_two_node_job_runs_on_both_nodes_with_their_ranks_and_ips() {
    let home = tempfile::tempdir().unwrap();
    let server = TestServer::start(home.path(), &[]);
    let api = client(&server);
    let task = "num_nodes: 2\nresources:\n  ports: 8080\nrun: |\n  echo rank=$SKYPILOT_NODE_RANK of=$SKYPILOT_NUM_NODES\n  echo ips=$(echo \"$SKYPILOT_NODE_IPS\" | tr '\\n' ,)\n";
    let request = launch(&api, "pair", task).await;
    let job = job_of(&api, &request).await;
    wait_job(&api, "pair", job, "SUCCEEDED").await;
    let log = job_log(&server, "pair", job).await;
    assert!(log.contains("rank=0 of=2"), "{log}");
    assert!(log.contains("rank=1 of=2"), "{log}");
    assert_eq!(log.matches("ips=127.0.0.1,127.0.0.2,").count(), 2, "{log}");

    let id = api
        .submit("/endpoints", &json!({"cluster": "pair"}))
        .await
        .unwrap();
    assert_eq!(
        api.wait(&id).await.unwrap(),
        json!({"8080": "127.0.0.1:8080"})
    );
    let id = api
        .submit("/endpoints", &json!({"cluster": "pair", "port": 9999}))
        .await
        .unwrap();
    let err = api.wait(&id).await.unwrap_err().to_string();
    assert!(err.contains("Port 9999 is not exposed"), "{err}");

    // A smaller task reuses the cluster without shrinking it.
    let request = launch(&api, "pair", "run: echo single-node-task\n").await;
    let job = job_of(&api, &request).await;
    wait_job(&api, "pair", job, "SUCCEEDED").await;
    let request = api
        .submit(
            "/exec",
            &json!({"task": "num_nodes: 2\nrun: echo still-rank-$SKYPILOT_NODE_RANK\n", "cluster_name": "pair"}),
        )
        .await
        .unwrap();
    let job = job_of(&api, &request).await;
    wait_job(&api, "pair", job, "SUCCEEDED").await;
    let log = job_log(&server, "pair", job).await;
    assert!(log.contains("still-rank-1"), "{log}");

    // A bigger task does not fit the cluster, and says why.
    let request = launch(&api, "pair", "num_nodes: 3\nrun: echo no\n").await;
    let err = api.wait(&request).await.unwrap_err().to_string();
    assert!(err.contains("asks for 3 nodes, the cluster has 2"), "{err}");
    down(&api, "pair").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_launch_this_machine_cannot_hold_fails_fast_and_leaves_nothing() {
    let home = tempfile::tempdir().unwrap();
    let server = TestServer::start(home.path(), &[("SKYDECK_LOCAL_ACCELERATORS", "H100:2")]);
    let api = client(&server);

    let request = launch(
        &api,
        "huge",
        "resources:\n  accelerators: H100:8\nrun: echo no\n",
    )
    .await;
    match api.wait(&request).await {
        Err(ClientError::Request(error)) => {
            assert_eq!(error.kind, "ResourcesUnavailableError", "{error:?}");
            assert!(error.message.contains("H100"), "{}", error.message);
        }
        other => panic!("the launch did not fail as it should: {other:?}"),
    }
    let request = launch(&api, "cpus", "resources:\n  cpus: 100000\nrun: echo no\n").await;
    let err = api.wait(&request).await.unwrap_err().to_string();
    assert!(err.contains("CPU"), "{err}");
    assert!(refresh_status(&api).await.is_empty());
    assert!(!home.path().join("clusters/huge").exists());

    // What fits the configured fake GPUs runs, and sees them.
    let task = "resources:\n  accelerators: H100:2\nrun: echo gpus=$SKYPILOT_NUM_GPUS_PER_NODE\n";
    let request = launch(&api, "gpus", task).await;
    let job = job_of(&api, &request).await;
    wait_job(&api, "gpus", job, "SUCCEEDED").await;
    assert!(job_log(&server, "gpus", job).await.contains("gpus=2"));
    down(&api, "gpus").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_launch_that_fails_after_making_its_nodes_takes_them_away() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    // An agent that cannot start: provisioning fails after the node
    // directories and cluster.json are made.
    let agent = dir.path().join("broken-agent.sh");
    std::fs::write(
        &agent,
        format!(
            "#!/bin/sh\nif [ \"$2\" = daemon ]; then echo cannot start >&2; exit 1; fi\n\
             exec '{}' \"$@\"\n",
            support::BINARY
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = TestServer::start(&home, &[("SKYDECK_AGENT_PROGRAM", agent.to_str().unwrap())]);
    let api = client(&server);

    let request = launch(&api, "broken", "run: echo no\n").await;
    let err = api.wait(&request).await.unwrap_err().to_string();
    assert!(err.contains("agent"), "{err}");
    assert!(refresh_status(&api).await.is_empty());
    assert!(
        !home.join("clusters/broken").exists(),
        "the failed launch left its nodes behind"
    );
}

/// Follows a request's log until `needle` appears in it.
async fn wait_for_log_line(server: &TestServer, request_id: &str, needle: &str) -> String {
    let mut response = skydeck_client::http_client()
        .unwrap()
        .get(format!("{}/api/stream?request_id={request_id}", server.url))
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    while !seen.contains(needle) {
        let chunk = tokio::time::timeout(DEADLINE, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} in the log so far: {seen}"))
            .unwrap()
            .unwrap_or_else(|| panic!("the log ended without {needle:?}: {seen}"));
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    seen
}

async fn cancel_request(client: &Client, request_id: &str) {
    let id = client
        .submit("/api/cancel", &json!({"request_ids": [request_id]}))
        .await
        .unwrap();
    client.wait(&id).await.unwrap();
    match client.wait(request_id).await {
        Err(ClientError::Cancelled(_)) => {}
        other => panic!("{request_id} was not cancelled: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn down_removes_a_cluster_whose_launch_was_cancelled_mid_provisioning() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let (agent, arrived, gate) = gated_agent(dir.path());
    let server = TestServer::start(&home, &[("SKYDECK_AGENT_PROGRAM", agent.to_str().unwrap())]);
    let api = client(&server);
    let request = launch(&api, "halfway", "run: echo never\n").await;
    wait_for_file(&arrived).await;
    cancel_request(&api, &request).await;

    // Recorded INIT without a handle; its directory and a starting agent
    // exist all the same.
    let clusters = refresh_status(&api).await;
    assert_eq!(clusters[0]["status"], "INIT", "{clusters:?}");
    assert!(home.join("clusters/halfway/cluster.json").exists());
    down(&api, "halfway").await;
    assert!(!home.join("clusters/halfway").exists());
    std::fs::write(&gate, "").unwrap();
    assert_no_processes_left(&home).await;
    assert!(refresh_status(&api).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_until_up_keeps_trying_until_cancelled() {
    let home = tempfile::tempdir().unwrap();
    let server = TestServer::start(home.path(), &[("SKYDECK_LOCAL_ACCELERATORS", "H100:2")]);
    let api = client(&server);
    let request = api
        .submit(
            "/launch",
            &json!({
                "task": "resources:\n  accelerators: H100:4\nrun: echo no\n",
                "cluster_name": "patient",
                "retry_until_up": true,
            }),
        )
        .await
        .unwrap();
    let log = wait_for_log_line(&server, &request, "Retrying in 5s").await;
    assert!(log.contains("H100"), "{log}");
    cancel_request(&api, &request).await;
    let clusters = refresh_status(&api).await;
    assert_eq!(clusters[0]["status"], "INIT", "{clusters:?}");
    down(&api, "patient").await;
    assert!(refresh_status(&api).await.is_empty());
}

/// Polls `status --refresh` until `cluster` has `status` (None: is gone).
async fn wait_cluster(client: &Client, cluster: &str, status: Option<&str>) {
    let started = Instant::now();
    loop {
        let clusters = refresh_status(client).await;
        let now = clusters
            .iter()
            .find(|c| c["name"] == cluster)
            .map(|c| c["status"].as_str().unwrap_or_default().to_owned());
        if now.as_deref() == status {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{cluster} is {now:?}, not {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn autostop_stops_or_tears_down_an_idle_cluster() {
    let home = tempfile::tempdir().unwrap();
    // An autostop "minute" lasts a fifth of a second here.
    let server = TestServer::start(home.path(), &[("SKYDECK_AGENT_AUTOSTOP_UNIT_SECS", "0.2")]);
    let api = client(&server);
    let launch_idle = |cluster: &'static str, down: bool| {
        let api = api.clone();
        async move {
            let id = api
                .submit(
                    "/launch",
                    &json!({
                        "task": "run: echo working\n",
                        "cluster_name": cluster,
                        "idle_minutes_to_autostop": 1,
                        "down": down,
                    }),
                )
                .await
                .unwrap();
            job_of(&api, &id).await
        }
    };

    let job = launch_idle("napper", false).await;
    wait_job(&api, "napper", job, "SUCCEEDED").await;
    wait_cluster(&api, "napper", Some("STOPPED")).await;
    assert!(home.path().join("clusters/napper").exists());
    down(&api, "napper").await;

    let job = launch_idle("goner", true).await;
    wait_job(&api, "goner", job, "SUCCEEDED").await;
    wait_cluster(&api, "goner", None).await;

    // `--down` without idle minutes: torn down as soon as the job is done,
    // but not before it ran.
    let marker = home.path().join("the-job-ran");
    let id = api
        .submit(
            "/launch",
            &json!({
                "task": format!("run: touch {}\n", marker.display()),
                "cluster_name": "quick",
                "down": true,
            }),
        )
        .await
        .unwrap();
    job_of(&api, &id).await;
    wait_cluster(&api, "quick", None).await;
    assert!(marker.exists(), "the cluster went before its job ran");
    assert!(!home.path().join("clusters/goner").exists());
    assert_no_processes_left(home.path()).await;
}

/// A REST admin policy (a small HTTP service on loopback) that adds an
/// environment variable to every task, recording what it was sent.
async fn mutating_policy() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::extract::State;
    type Seen = std::sync::Arc<std::sync::Mutex<Vec<String>>>;
    async fn mutate(State(seen): State<Seen>, body: String) -> String {
        seen.lock().unwrap().push(body.clone());
        // SkyPilot sends the request JSON-encoded as a JSON string.
        let outer: Value = serde_json::from_str(&body).expect("JSON");
        let request: Value = match outer {
            Value::String(inner) => serde_json::from_str(&inner).expect("inner JSON"),
            other => other,
        };
        let mut task: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(request["task"].as_str().unwrap()).unwrap();
        task["envs"]["POLICY_SAYS"] = "mutated".into();
        let answer = json!({
            "task": serde_yaml_ng::to_string(&task).unwrap(),
            "skypilot_config": request["skypilot_config"],
        });
        serde_json::to_string(&answer.to_string()).unwrap()
    }
    let seen = Seen::default();
    let app = axum::Router::new()
        .route("/policy", axum::routing::post(mutate))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/policy", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rest_admin_policy_mutates_the_task_without_seeing_its_secrets() {
    let (policy, seen) = mutating_policy().await;
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("config.yaml"),
        format!("admin_policy: {policy}\n"),
    )
    .unwrap();
    let server = TestServer::start(home.path(), &[]);
    let api = client(&server);
    let secret = "sk_policy_must_not_see_this";
    let reversed: String = secret.chars().rev().collect();
    let task = format!(
        "run: |\n  echo \"policy=$POLICY_SAYS\"\n  \
         test \"$(printf %s \"$API_KEY\" | rev)\" = {reversed} && echo secret-restored\n\
         secrets:\n  API_KEY: {secret}\n"
    );
    let request = launch(&api, "policed", &task).await;
    let job = job_of(&api, &request).await;
    wait_job(&api, "policed", job, "SUCCEEDED").await;
    let log = job_log(&server, "policed", job).await;
    assert!(log.contains("policy=mutated"), "{log}");
    assert!(log.contains("secret-restored"), "{log}");

    let sent = seen.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "one launch, one policy call");
    assert!(sent[0].contains("launch"), "{}", sent[0]);
    assert!(sent[0].contains("<redacted>"), "{}", sent[0]);
    assert!(!sent[0].contains(secret), "the policy saw the secret");
    down(&api, "policed").await;
}
