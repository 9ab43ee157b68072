//! Cluster names as a hostile user tries them, against the real binary
//! with basic auth on and two non-admin users: a name that is a path is a
//! 400 stating the rule; a name launched by both at once has one owner,
//! and the other can neither run on it nor read it; a cluster larger than
//! the machine is refused with nothing made.

mod support;

use serde_json::{Value, json};
use skydeck_client::admin::{NewUser, Role};
use skydeck_client::{Client, ClientError};
use std::path::Path;
use std::time::{Duration, Instant};
use support::{TestServer, gated_agent};

const ADMIN_PASSWORD: &str = "Adm1n-Owner-Race-9";
const DEADLINE: Duration = Duration::from_secs(120);
const LAUNCHES_EACH: usize = 10;
/// Printed by the owner's jobs: the other user must never see it.
const OWNER_SECRET: &str = "only-the-owner-reads-this";

fn start(scratch: &Path) -> TestServer {
    TestServer::start(
        &scratch.join("server"),
        &[
            ("SKYDECK_ENABLE_BASIC_AUTH", "true"),
            (
                "SKYDECK_INITIAL_BASIC_AUTH",
                &format!("admin:{ADMIN_PASSWORD}"),
            ),
        ],
    )
}

fn client_as(server: &TestServer, user: &str, password: &str) -> Client {
    let endpoint = server
        .url
        .replace("http://", &format!("http://{user}:{password}@"));
    Client::new(&endpoint, None).unwrap()
}

async fn add_user(server: &TestServer, admin: &Client, name: &str) -> Client {
    let password = format!("{name}-pw-1234");
    admin
        .create_user(&NewUser {
            name: name.to_owned(),
            password: Some(password.clone()),
            role: Some(Role::User),
        })
        .await
        .unwrap();
    client_as(server, name, &password)
}

/// Submits and waits; the request's error text (or the HTTP refusal's)
/// when it fails.
async fn run(client: &Client, path: &str, body: &Value) -> Result<Value, String> {
    let id = client
        .submit(path, body)
        .await
        .map_err(|err| err.to_string())?;
    tokio::time::timeout(DEADLINE, client.wait(&id))
        .await
        .unwrap_or_else(|_| panic!("{path} did not finish"))
        .map_err(|err| err.to_string())
}

async fn run_to_end(client: &Client, id: &str) -> Result<Value, String> {
    tokio::time::timeout(DEADLINE, client.wait(id))
        .await
        .unwrap_or_else(|_| panic!("request {id} did not finish"))
        .map_err(|err| err.to_string())
}

fn assert_foreign(result: &Result<Value, String>, what: &str) {
    match result {
        Err(message) => assert!(
            message.contains("belongs to another user"),
            "{what}: {message}"
        ),
        Ok(value) => panic!("{what} on another user's cluster succeeded: {value}"),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_launches_of_one_name_give_one_owner_and_nothing_to_the_other() {
    let scratch = tempfile::tempdir().unwrap();
    // One long worker, held by a launch stuck in provisioning: every racing
    // launch is accepted (the name is free at accept time) before any of
    // them runs, so the accept-time check cannot settle the race and the
    // operations must.
    let (agent, arrived, gate) = gated_agent(scratch.path());
    let server = TestServer::start(
        &scratch.path().join("server"),
        &[
            ("SKYDECK_ENABLE_BASIC_AUTH", "true"),
            (
                "SKYDECK_INITIAL_BASIC_AUTH",
                &format!("admin:{ADMIN_PASSWORD}"),
            ),
            ("SKYDECK_LONG_WORKERS", "1"),
            ("SKYDECK_AGENT_PROGRAM", agent.to_str().unwrap()),
        ],
    );
    let admin = client_as(&server, "admin", ADMIN_PASSWORD);
    let alice = add_user(&server, &admin, "alice").await;
    let bob = add_user(&server, &admin, "bob").await;
    let blocker = admin
        .submit(
            "/launch",
            &json!({"task": "run: echo held\n", "cluster_name": "blocker"}),
        )
        .await
        .unwrap();
    wait_for_file(&arrived).await;

    let mut accepted = Vec::new();
    for i in 0..LAUNCHES_EACH * 2 {
        let (who, client) = if i % 2 == 0 {
            ("alice", &alice)
        } else {
            ("bob", &bob)
        };
        let task = format!("run: echo {OWNER_SECRET}-{who}\n");
        let body = json!({"task": task, "cluster_name": "contested"});
        let id = client.submit("/launch", &body).await.unwrap();
        accepted.push((who, client.clone(), id));
    }
    std::fs::write(&gate, b"").unwrap();
    run_to_end(&admin, &blocker).await.unwrap();
    let mut outcomes = Vec::new();
    for (who, client, id) in accepted {
        outcomes.push((who, run_to_end(&client, &id).await));
    }
    let succeeded = |who: &str| {
        outcomes
            .iter()
            .filter(|(w, r)| *w == who && r.is_ok())
            .count()
    };
    let (owner, owner_client, other, other_client) = if succeeded("alice") > 0 {
        ("alice", &alice, "bob", &bob)
    } else {
        ("bob", &bob, "alice", &alice)
    };
    assert_eq!(
        succeeded(owner),
        LAUNCHES_EACH,
        "every launch of the owner runs: {outcomes:?}"
    );
    for (who, result) in &outcomes {
        if *who == other {
            assert_foreign(result, "a racing launch");
        }
    }

    // One owner, and only the owner's jobs on the cluster.
    let clusters = run(&admin, "/status", &json!({"all_users": true}))
        .await
        .unwrap();
    let contested: Vec<&Value> = clusters
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == "contested")
        .collect();
    assert_eq!(contested.len(), 1, "{clusters}");
    assert_eq!(contested[0]["user_name"], owner, "{clusters}");
    let jobs = run(
        owner_client,
        "/queue",
        &json!({"cluster_name": "contested", "all_users": true}),
    )
    .await
    .unwrap();
    let jobs = jobs.as_array().unwrap();
    assert_eq!(jobs.len(), LAUNCHES_EACH, "{jobs:?}");
    for job in jobs {
        assert_eq!(job["username"], owner, "a foreign job: {job}");
    }

    // The other user can do nothing with it, and reads none of it.
    let name = json!("contested");
    for (path, body) in [
        (
            "/exec",
            json!({"cluster_name": name, "task": "run: echo intruder\n"}),
        ),
        ("/queue", json!({"cluster_name": name, "all_users": true})),
        ("/job_status", json!({"cluster_name": name})),
        ("/cancel", json!({"cluster_name": name, "all": true})),
        ("/download_logs", json!({"cluster_name": name})),
        ("/endpoints", json!({"cluster": name})),
        (
            "/autostop",
            json!({"cluster_name": name, "idle_minutes": 0, "down": true}),
        ),
        ("/stop", json!({"cluster_name": name})),
        ("/down", json!({"cluster_name": name})),
    ] {
        assert_foreign(&run(other_client, path, &body).await, path);
    }
    match other_client
        .submit_streaming("/logs", &json!({"cluster_name": name, "follow": false}))
        .await
    {
        Err(ClientError::Http { status, detail }) => {
            assert_eq!(status, 403, "{detail}");
            assert!(detail.contains("belongs to another user"), "{detail}");
            assert!(!detail.contains(OWNER_SECRET), "{detail}");
        }
        Err(other) => panic!("logs refused unclearly: {other}"),
        Ok(_) => panic!("the other user could open the owner's log"),
    }
    // Still there, still the owner's.
    let jobs = run(owner_client, "/queue", &json!({"cluster_name": name}))
        .await
        .unwrap();
    assert_eq!(jobs.as_array().unwrap().len(), LAUNCHES_EACH);
    run(owner_client, "/down", &json!({"cluster_name": name}))
        .await
        .unwrap();
    run(&admin, "/down", &json!({"cluster_name": "blocker"}))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_are_paths_and_oversized_clusters_are_refused_with_nothing_made() {
    let scratch = tempfile::tempdir().unwrap();
    let server = start(scratch.path());
    let admin = client_as(&server, "admin", ADMIN_PASSWORD);
    let mallory = add_user(&server, &admin, "mallory").await;
    let clusters_dir = server.home.join("clusters");
    let outside = scratch.path().join("outside");

    for bad in ["..", "../outside", "/tmp/x", "a/b", ".", "", "-x", "x\n"] {
        for (path, field) in [
            ("/launch", "cluster_name"),
            ("/down", "cluster_name"),
            ("/logs", "cluster_name"),
            ("/endpoints", "cluster"),
        ] {
            let body = json!({field: bad, "task": "run: echo hi\n"});
            match mallory.submit(path, &body).await {
                Err(ClientError::Http { status, detail }) => {
                    assert_eq!(status, 400, "{path} {bad:?}: {detail}");
                    assert!(detail.contains("starts with a letter"), "{detail}");
                    assert!(detail.contains(field), "{detail}");
                }
                other => panic!("{path} with {bad:?} was not a 400: {other:?}"),
            }
        }
    }
    assert!(!outside.exists());
    assert!(server.home.join("state.db").exists());

    let started = Instant::now();
    let huge = run(
        &mallory,
        "/launch",
        &json!({"task": "num_nodes: 1000000\nrun: echo hi\n", "cluster_name": "huge"}),
    )
    .await
    .unwrap_err();
    assert!(huge.contains("num_nodes"), "{huge}");
    assert!(huge.contains("1 to 1000"), "{huge}");
    let big = run(
        &mallory,
        "/launch",
        &json!({"task": "num_nodes: 65\nrun: echo hi\n", "cluster_name": "big"}),
    )
    .await
    .unwrap_err();
    assert!(big.contains("SKYDECK_LOCAL_MAX_NODES"), "{big}");
    assert!(big.contains("at most 64"), "{big}");
    assert!(started.elapsed() < DEADLINE);
    let made: Vec<_> = std::fs::read_dir(&clusters_dir)
        .map(|dir| dir.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(made.is_empty(), "cluster directories made: {made:?}");
    let clusters = run(&admin, "/status", &json!({"all_users": true}))
        .await
        .unwrap();
    assert_eq!(clusters, json!([]), "no cluster recorded");
}

/// A cluster row an older version stored under a name that is a path, with
/// a handle whose agent asked for the cluster to be torn down: the server
/// says so at start and leaves it alone instead of removing the directory
/// the handle names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_cluster_with_an_invalid_name_is_never_acted_on() {
    let scratch = tempfile::tempdir().unwrap();
    let home = scratch.path().join("server");
    TestServer::start(&home, &[]).stop();

    let victim = home.join("outside");
    std::fs::create_dir_all(victim.join("agent")).unwrap();
    std::fs::write(victim.join("cluster.json"), b"{}").unwrap();
    std::fs::write(
        victim.join("agent").join("autostop.json"),
        br#"{"action": "down", "at": 1.0}"#,
    )
    .unwrap();
    let store =
        skydeck_store::SqlStore::open(&format!("sqlite://{}", home.join("state.db").display()))
            .await
            .unwrap();
    use skydeck_store::Store;
    store
        .put_cluster(&skydeck_store::ClusterRecord {
            name: "../outside".to_owned(),
            status: skydeck_store::ClusterStatus::Up,
            user_id: "someone".to_owned(),
            workspace: "default".to_owned(),
            infra: "local".to_owned(),
            cluster_hash: "old".to_owned(),
            launched_at: Some(1.0),
            status_updated_at: 1.0,
            num_nodes: 1,
            resources: json!({}),
            handle: json!({
                "cluster_name": "../outside",
                "cluster_dir": victim.display().to_string(),
                "nodes": [],
                "capacity": {},
            }),
            autostop_minutes: 0,
            autostop_down: true,
            ever_up: true,
            last_use: None,
        })
        .await
        .unwrap();
    store.close().await;

    let server = TestServer::start(&home, &[]);
    let api = Client::new(&server.url, None).unwrap();
    let clusters = run(
        &api,
        "/status",
        &json!({"refresh": "FORCE", "all_users": true}),
    )
    .await
    .unwrap();
    assert_eq!(clusters[0]["name"], "../outside", "{clusters}");
    assert!(
        victim.join("cluster.json").exists(),
        "the victim was removed"
    );
    let log = server.stderr();
    assert!(
        log.contains("skipping a stored cluster whose name is invalid"),
        "{log}"
    );
}

/// `SKYDECK_LOCAL_MAX_NODES` sets the cap; a value that is not a number
/// of nodes stops the server at start, naming the setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_node_cap_is_configurable() {
    let scratch = tempfile::tempdir().unwrap();
    let server = TestServer::start(
        &scratch.path().join("server"),
        &[("SKYDECK_LOCAL_MAX_NODES", "2")],
    );
    let api = Client::new(&server.url, None).unwrap();
    let refused = run(
        &api,
        "/launch",
        &json!({"task": "num_nodes: 3\nrun: echo hi\n", "cluster_name": "three"}),
    )
    .await
    .unwrap_err();
    assert!(refused.contains("at most 2"), "{refused}");
    assert!(!server.home.join("clusters").join("three").exists());
    drop(server);

    let output = std::process::Command::new(support::BINARY)
        .args([
            "api",
            "start",
            "--foreground",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ])
        .env("SKYDECK_HOME", scratch.path().join("bad"))
        .env("SKYDECK_LOCAL_MAX_NODES", "lots")
        .env_remove("SKYDECK_DB_CONNECTION_URI")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SKYDECK_LOCAL_MAX_NODES"), "{stderr}");
}
