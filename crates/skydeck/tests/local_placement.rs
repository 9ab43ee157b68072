//! The `local` infrastructure is one machine shared by all its clusters:
//! GPUs by index, CPUs and ports are held by one cluster at a time, a
//! cluster that does not fit is told what is free, and what clusters hold
//! survives a server restart. Through the real server and its agents.

mod support;

use serde_json::{Value, json};
use skydeck_client::{Client, ClientError};
use std::time::{Duration, Instant};
use support::{TestServer, http};

const DEADLINE: Duration = Duration::from_secs(60);

fn client(server: &TestServer) -> Client {
    Client::new(&server.url, None).expect("a client")
}

async fn submit(client: &Client, path: &str, body: Value) -> Result<Value, ClientError> {
    let id = client.submit(path, &body).await.expect("accepted");
    client.wait(&id).await
}

async fn launch(client: &Client, cluster: &str, task: &str) -> Result<Value, ClientError> {
    submit(
        client,
        "/launch",
        json!({"task": task, "cluster_name": cluster, "retry_until_up": false}),
    )
    .await
}

/// The message of a request that must fail as "does not fit".
fn unavailable(result: Result<Value, ClientError>) -> String {
    match result {
        Err(ClientError::Request(error)) => {
            assert_eq!(error.kind, "ResourcesUnavailableError", "{error:?}");
            error.message
        }
        other => panic!("expected ResourcesUnavailableError, got {other:?}"),
    }
}

async fn down(client: &Client, cluster: &str) {
    submit(client, "/down", json!({"cluster_name": cluster}))
        .await
        .expect("down succeeds");
}

/// The log of the launch's job once it has finished.
async fn job_log(server: &TestServer, api: &Client, cluster: &str, launched: &Value) -> String {
    let job = launched["job_id"].as_u64().expect("a job id");
    let started = Instant::now();
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
            !status.starts_with("FAILED") && started.elapsed() < DEADLINE,
            "job {job} on {cluster} is {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body = json!({"cluster_name": cluster, "job_id": job, "follow": false}).to_string();
    http("POST", &format!("{}/logs", server.url), Some(&body))
        .await
        .body
}

const ONE_GPU: &str =
    "resources:\n  accelerators: H100:1\nrun: echo \"cvd=[$CUDA_VISIBLE_DEVICES]\"\n";

#[tokio::test(flavor = "multi_thread")]
async fn clusters_get_their_own_gpus_and_a_third_is_told_who_holds_them_even_after_a_restart() {
    let home = tempfile::tempdir().unwrap();
    let gpus = [("SKYDECK_LOCAL_ACCELERATORS", "H100:2")];
    let server = TestServer::start(home.path(), &gpus);
    let api = client(&server);

    let a = launch(&api, "a", ONE_GPU).await.unwrap();
    let b = launch(&api, "b", ONE_GPU).await.unwrap();
    let logs = [
        job_log(&server, &api, "a", &a).await,
        job_log(&server, &api, "b", &b).await,
    ];
    assert!(logs[0].contains("cvd=[0]"), "{}", logs[0]);
    assert!(logs[1].contains("cvd=[1]"), "{}", logs[1]);

    let message = unavailable(launch(&api, "c", ONE_GPU).await);
    assert!(
        message.contains("needs 1 H100; 0 of 2 free: cluster a holds GPU 0, cluster b holds GPU 1"),
        "{message}"
    );
    assert!(message.contains("--retry-until-up"), "{message}");
    // More than the machine has at all: no waiting helps, and the message
    // says how the machine's GPUs are counted.
    let message = unavailable(launch(&api, "huge", "resources:\n  accelerators: H100:3\n").await);
    assert!(
        message.contains("even with nothing else running"),
        "{message}"
    );
    assert!(message.contains("SKYDECK_LOCAL_ACCELERATORS"), "{message}");

    // What clusters hold is in the database: a restarted server knows it.
    server.stop();
    let server = TestServer::start(home.path(), &gpus);
    let api = client(&server);
    let message = unavailable(launch(&api, "c", ONE_GPU).await);
    assert!(message.contains("0 of 2 free"), "{message}");

    // Down frees a's GPU for c; a cluster asking for no GPU sees none.
    down(&api, "a").await;
    let c = launch(&api, "c", ONE_GPU).await.unwrap();
    assert!(job_log(&server, &api, "c", &c).await.contains("cvd=[0]"));
    let d = launch(&api, "d", "run: echo \"cvd=[$CUDA_VISIBLE_DEVICES]\"\n")
        .await
        .unwrap();
    assert!(job_log(&server, &api, "d", &d).await.contains("cvd=[]"));

    // A stopped cluster's GPU goes to another; started again, it gets the
    // one that is free then, and its jobs see that one.
    submit(&api, "/stop", json!({"cluster_name": "b"}))
        .await
        .unwrap();
    let e = launch(&api, "e", ONE_GPU).await.unwrap();
    assert!(job_log(&server, &api, "e", &e).await.contains("cvd=[1]"));
    down(&api, "c").await;
    submit(&api, "/start", json!({"cluster_name": "b"}))
        .await
        .unwrap();
    let again = submit(
        &api,
        "/exec",
        json!({"cluster_name": "b", "task": "run: echo \"cvd=[$CUDA_VISIBLE_DEVICES]\"\n"}),
    )
    .await
    .unwrap();
    assert!(
        job_log(&server, &api, "b", &again)
            .await
            .contains("cvd=[0]")
    );
    for cluster in ["b", "d", "e"] {
        down(&api, cluster).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cpus_are_not_overcommitted_and_a_stopped_cluster_holds_none() {
    let home = tempfile::tempdir().unwrap();
    let server = TestServer::start(home.path(), &[]);
    let api = client(&server);
    let cpus = std::thread::available_parallelism().unwrap().get();

    let all = format!("resources:\n  cpus: {cpus}\nrun: echo all\n");
    launch(&api, "whole", &all).await.unwrap();
    let one = "resources:\n  cpus: 1\nrun: echo one\n";
    let message = unavailable(launch(&api, "small", one).await);
    assert!(
        message.contains(&format!(
            "needs 1 CPU; 0 of {cpus} free: cluster whole holds {cpus}"
        )),
        "{message}"
    );
    // Nothing of the refused launch is left.
    assert!(!home.path().join("clusters/small").exists());

    // Stopped, it runs nothing and holds nothing; started again, it must
    // fit beside what took its room.
    submit(&api, "/stop", json!({"cluster_name": "whole"}))
        .await
        .unwrap();
    launch(&api, "small", one).await.unwrap();
    let message = unavailable(submit(&api, "/start", json!({"cluster_name": "whole"})).await);
    assert!(message.contains("cluster small holds 1"), "{message}");
    // With --retry-until-up, start waits until it fits again.
    let starting = api
        .submit(
            "/start",
            &json!({"cluster_name": "whole", "retry_until_up": true}),
        )
        .await
        .unwrap();
    wait_for_log_line(&server, &starting, "cluster small holds 1").await;
    down(&api, "small").await;
    api.wait(&starting)
        .await
        .expect("whole starts once small is gone");
    down(&api, "whole").await;
}

/// A port nothing listens on now (the kernel's pick, released at once).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_port_is_held_by_one_cluster_and_never_advertised_when_taken() {
    let home = tempfile::tempdir().unwrap();
    let server = TestServer::start(home.path(), &[]);
    let api = client(&server);
    let port = free_port();
    let task = format!("resources:\n  ports: {port}\nrun: echo serving\n");

    launch(&api, "web", &task).await.unwrap();
    let message = unavailable(launch(&api, "web2", &task).await);
    assert!(
        message.contains(&format!("port {port} is held by cluster web")),
        "{message}"
    );
    let endpoints = submit(&api, "/endpoints", json!({"cluster": "web"}))
        .await
        .unwrap();
    assert_eq!(endpoints[port.to_string()], format!("127.0.0.1:{port}"));

    // A port another program listens on is refused at launch, not
    // advertised by `endpoints` for a job that could not bind it.
    let outsider = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = outsider.local_addr().unwrap().port();
    let task = format!("resources:\n  ports: {taken}\nrun: echo serving\n");
    let message = unavailable(launch(&api, "blocked", &task).await);
    assert!(
        message.contains(&format!("Port {taken} on 127.0.0.1 is in use")),
        "{message}"
    );
    let status = submit(
        &api,
        "/status",
        json!({"cluster_names": ["blocked"], "refresh": "NONE", "all_users": true}),
    )
    .await
    .unwrap();
    assert_eq!(status, json!([]), "the refused cluster is not kept");
    drop(outsider);

    // Once web is gone its port is anyone's.
    down(&api, "web").await;
    let task = format!("resources:\n  ports: {port}\nrun: echo serving\n");
    launch(&api, "web2", &task).await.unwrap();
    down(&api, "web2").await;
}

/// Follows a request's log until `needle` appears in it.
async fn wait_for_log_line(server: &TestServer, request_id: &str, needle: &str) {
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
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_until_up_waits_for_the_gpu_another_cluster_frees() {
    let home = tempfile::tempdir().unwrap();
    let server = TestServer::start(home.path(), &[("SKYDECK_LOCAL_ACCELERATORS", "H100:1")]);
    let api = client(&server);
    launch(&api, "first", ONE_GPU).await.unwrap();
    let waiting = api
        .submit(
            "/launch",
            &json!({"task": ONE_GPU, "cluster_name": "second", "retry_until_up": true}),
        )
        .await
        .unwrap();
    wait_for_log_line(&server, &waiting, "cluster first holds GPU 0").await;
    down(&api, "first").await;
    let second = api
        .wait(&waiting)
        .await
        .expect("second launches once first is gone");
    assert!(
        job_log(&server, &api, "second", &second)
            .await
            .contains("cvd=[0]")
    );
    down(&api, "second").await;
}
