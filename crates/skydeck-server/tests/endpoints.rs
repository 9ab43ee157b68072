//! Every endpoint the official 0.14.1 client can call answers: it works, or
//! it fails in a way the client prints as one line. None meets the router's
//! unknown-route 404, which the client turns into a Python traceback.
//!
//! The client's route list is read at test time from the installed client
//! (`SKYDECK_TEST_SKY`, the venv's `sky`), so it cannot go stale.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use skydeck_server::Server;
use skydeck_server::config::{Paths, ServerConfig};
use skydeck_store::{ClusterRecord, ClusterStatus};
use std::path::PathBuf;
use std::time::Duration;
use tower::ServiceExt;

struct App {
    router: axum::Router,
    server: Server,
    _home: tempfile::TempDir,
}

async fn app() -> App {
    let home = tempfile::tempdir().unwrap();
    let config = ServerConfig::for_tests(Paths::new(home.path()));
    let server = Server::open(config).await.unwrap();
    let router = skydeck_server::routes::router(server.state().clone());
    App {
        router,
        server,
        _home: home,
    }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: serde_json::Value,
}

impl App {
    async fn call(&self, request: Request<Body>) -> Answer {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Submits a request and returns what `/api/get` answers for it.
    async fn run(&self, request: Request<Body>) -> Answer {
        let accepted = self.call(request).await;
        assert_eq!(accepted.status, StatusCode::OK, "{:?}", accepted.body);
        let id = accepted.headers["x-skypilot-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        self.call(get(&format!("/api/get?request_id={id}"))).await
    }
}

fn request(method: Method, uri: &str, body: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("X-SkyPilot-API-Version", "62")
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

fn get(uri: &str) -> Request<Body> {
    request(Method::GET, uri, "")
}

fn post(uri: &str, body: &str) -> Request<Body> {
    request(Method::POST, uri, body)
}

/// The router's answer to a route it does not have.
fn is_unknown_route(status: StatusCode, body: &serde_json::Value) -> bool {
    (status == StatusCode::NOT_FOUND && *body == serde_json::json!({"detail": "Not Found"}))
        || status == StatusCode::METHOD_NOT_ALLOWED
}

/// The python of the venv the official `sky` was installed in, or `None`
/// to skip (never under CI).
fn client_python() -> Option<PathBuf> {
    let Some(sky) = std::env::var_os("SKYDECK_TEST_SKY").filter(|s| !s.is_empty()) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must set SKYDECK_TEST_SKY to the official `sky` executable"
        );
        eprintln!("skipping: SKYDECK_TEST_SKY is not set");
        return None;
    };
    let python = PathBuf::from(sky).with_file_name("python");
    assert!(python.is_file(), "{} is not a file", python.display());
    Some(python)
}

/// Method and path of every route of the client's own API server: the app
/// of `sky/server/server.py` with every router it includes (jobs, serve,
/// users, workspaces, volumes, SSH node pools, recipes).
fn client_routes(python: &PathBuf) -> Vec<(Method, String)> {
    let script = "import json, sys\n\
                  from sky.server import server\n\
                  spec = server.app.openapi()\n\
                  json.dump([[m.upper(), p] for p, ops in spec['paths'].items() for m in ops], \
                  sys.stdout)\n";
    let home = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(python)
        .args(["-c", script])
        .env("HOME", home.path())
        .env("SKYPILOT_DISABLE_USAGE_COLLECTION", "1")
        .output()
        .expect("run the client's python");
    assert!(
        output.status.success(),
        "listing the client's routes failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let pairs: Vec<(String, String)> = serde_json::from_slice(&output.stdout).unwrap();
    pairs
        .into_iter()
        .map(|(method, path)| (method.parse().unwrap(), path))
        .collect()
}

/// `/ssh_node_pools/{pool_name}/status` → `/ssh_node_pools/x/status`.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push('x');
            }
            '}' => in_param = false,
            _ if !in_param => out.push(c),
            _ => {}
        }
    }
    out
}

#[tokio::test]
async fn no_endpoint_of_the_official_client_meets_the_unknown_route_404() {
    let Some(python) = client_python() else {
        return;
    };
    let routes = client_routes(&python);
    assert!(
        routes.len() > 100,
        "the client's route list looks truncated: {routes:?}"
    );
    let app = app().await;
    let mut unknown = Vec::new();
    for (method, path) in &routes {
        let uri = concrete(path);
        let body = if *method == Method::GET { "" } else { "{}" };
        let call = app
            .router
            .clone()
            .oneshot(request(method.clone(), &uri, body));
        // A stream (`/api/stream`) may last: the status and headers are
        // what is checked, so read the body only of a 404 or 405.
        let response = tokio::time::timeout(Duration::from_secs(30), call)
            .await
            .unwrap_or_else(|_| panic!("{method} {uri} did not answer"))
            .unwrap();
        let status = response.status();
        if status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED {
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
            if is_unknown_route(status, &body) {
                unknown.push(format!("{method} {path}"));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "endpoints of the official client that this server does not know:\n{}",
        unknown.join("\n")
    );
}

#[tokio::test]
async fn a_refused_feature_fails_its_request_with_one_line_and_keeps_nothing_it_was_sent() {
    let app = app().await;
    let body = r#"{"task": "run: echo hi\nenvs:\n  TOKEN: hunter2-secret\n",
                   "env_vars": {"SKYPILOT_USER_ID": "abcd1234", "SKYPILOT_USER": "alice"},
                   "entrypoint_command": "sky serve up task.yaml"}"#;
    let accepted = app.call(post("/serve/up", body)).await;
    assert_eq!(accepted.status, StatusCode::OK);
    let id = accepted.headers["x-skypilot-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let result = app.call(get(&format!("/api/get?request_id={id}"))).await;
    // A failed request: 500 with the payload, as SkyPilot answers.
    assert_eq!(result.status, StatusCode::INTERNAL_SERVER_ERROR);
    let payload = &result.body["detail"];
    assert_eq!(payload["status"], "FAILED");
    assert_eq!(payload["name"], "sky.serve.up");
    let error: serde_json::Value =
        serde_json::from_str(payload["error"].as_str().unwrap()).unwrap();
    assert_eq!(error["type"], "NotSupportedError");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("SkyServe"), "{message}");
    assert!(!message.contains('\n'), "{message}");

    let stored = app
        .server
        .state()
        .store
        .get_request(&id)
        .await
        .unwrap()
        .unwrap();
    let stored = stored.body.to_string();
    assert!(!stored.contains("hunter2"), "{stored}");
    assert!(!stored.contains("echo hi"), "{stored}");
}

#[tokio::test]
async fn a_streamed_refusal_answers_with_the_log_then_fails() {
    let app = app().await;
    let answer = app.call(post("/jobs/pool_logs", "{}")).await;
    assert_eq!(answer.status, StatusCode::OK);
    let id = answer.headers["x-skypilot-request-id"].to_str().unwrap();
    let result = app.call(get(&format!("/api/get?request_id={id}"))).await;
    assert_eq!(result.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        result.body["detail"]["error"]
            .as_str()
            .unwrap()
            .contains("NotSupportedError")
    );
}

#[tokio::test]
async fn synchronous_refusals_carry_a_detail_the_client_shows() {
    let app = app().await;
    let validate = app.call(post("/volumes/validate", "{}")).await;
    assert_eq!(validate.status, StatusCode::BAD_REQUEST);
    assert_eq!(validate.body["detail"]["type"], "NotSupportedError");
    assert!(
        validate.body["detail"]["message"]
            .as_str()
            .unwrap()
            .contains("volumes")
    );

    let export = app.call(get("/users/export")).await;
    assert_eq!(export.status, StatusCode::NOT_IMPLEMENTED);
    assert!(
        export.body["detail"]
            .as_str()
            .unwrap()
            .contains("does not support")
    );
    // Served now, for SkyPilot's dashboard (`routes/skypilot_dashboard.rs`):
    // with auth off, an admin with no id, as SkyPilot answers.
    let role = app.call(get("/users/role")).await;
    assert_eq!(role.status, StatusCode::OK);
    assert_eq!(role.body["role"], "admin");
    let pool = app
        .call(request(Method::DELETE, "/ssh_node_pools/mypool", ""))
        .await;
    // Served now (`routes/ssh_pools.rs`): a pool the file lacks is a 404.
    assert_eq!(pool.status, StatusCode::NOT_FOUND);
    assert!(pool.body["detail"].as_str().unwrap().contains("not found"));
}

#[tokio::test]
async fn storage_volumes_and_v1_managed_jobs_list_empty() {
    let app = app().await;
    for (answer, what) in [
        (app.run(get("/storage/ls")).await, "storage"),
        (app.run(get("/volumes?refresh=False")).await, "volumes"),
        (app.run(post("/jobs/queue", "{}")).await, "jobs v1"),
        (app.run(post("/serve/status", "{}")).await, "services"),
    ] {
        assert_eq!(answer.status, StatusCode::OK, "{what}: {:?}", answer.body);
        assert_eq!(answer.body["return_value"], "[]", "{what}");
    }
}

#[tokio::test]
async fn gpus_on_a_cloud_this_server_does_not_have_are_none() {
    let app = app().await;
    let counts = app
        .run(post(
            "/list_accelerator_counts",
            r#"{"gpus_only": true, "clouds": "aws"}"#,
        ))
        .await;
    assert_eq!(counts.status, StatusCode::OK, "{:?}", counts.body);
    assert_eq!(counts.body["return_value"], "{}");
    let bad = app
        .call(post("/list_accelerators", r#"{"quantity_filter": -1}"#))
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
}

fn cluster(name: &str, status: ClusterStatus, launched_at: f64) -> ClusterRecord {
    ClusterRecord {
        name: name.to_owned(),
        status,
        user_id: "abcd1234".to_owned(),
        workspace: "default".to_owned(),
        infra: "local".to_owned(),
        cluster_hash: format!("hash-{name}"),
        launched_at: Some(launched_at),
        status_updated_at: launched_at + 600.0,
        num_nodes: 1,
        resources: serde_json::json!({}),
        handle: serde_json::json!({
            "cluster_name": name,
            "cluster_dir": "/tmp/skydeck-test",
            "nodes": [],
            "capacity": {"cpus": 4.0, "memory_gb": 8.0, "accelerators": {"H100": 1.0}},
        }),
        autostop_minutes: -1,
        autostop_down: false,
        ever_up: true,
        last_use: Some("sky launch".to_owned()),
    }
}

#[tokio::test]
async fn the_cost_report_lists_clusters_and_their_history_at_no_cost_within_the_days_asked() {
    let app = app().await;
    let store = &app.server.state().store;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    store
        .put_cluster(&cluster("fresh", ClusterStatus::Up, now - 3600.0))
        .await
        .unwrap();
    // Stopped ten days ago.
    store
        .put_cluster(&cluster(
            "old",
            ClusterStatus::Stopped,
            now - 10.0 * 86400.0 - 600.0,
        ))
        .await
        .unwrap();
    // Torn down a day ago after a day up, and ten days ago: the history.
    for (name, launched, ended) in [("gone", 2.0, 1.0), ("ancient", 20.0, 10.0)] {
        store
            .put_cluster(&cluster(name, ClusterStatus::Up, now - launched * 86400.0))
            .await
            .unwrap();
        store
            .set_cluster_status(name, ClusterStatus::Up, now - launched * 86400.0)
            .await
            .unwrap();
        store
            .delete_cluster(name, now - ended * 86400.0)
            .await
            .unwrap();
    }

    let report = |days: &str| post("/cost_report", &format!(r#"{{"days": {days}}}"#));
    let answer = app.run(report("30")).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let records: Vec<serde_json::Value> =
        serde_json::from_str(answer.body["return_value"].as_str().unwrap()).unwrap();
    assert_eq!(records.len(), 4, "{records:?}");
    // Torn down: no status (the client shows TERMINATED), up from launch
    // to teardown, at no cost.
    let gone = records.iter().find(|r| r["name"] == "gone").unwrap();
    assert_eq!(gone["status"], serde_json::Value::Null);
    assert_eq!(gone["duration"], 86400);
    assert_eq!(gone["total_cost"], 0.0);
    assert_eq!(gone["resources_str"], "Local(cpus=4, mem=8, H100:1)");
    assert_eq!(gone["usage_intervals"][0][1], (now - 86400.0) as i64);
    let fresh = records.iter().find(|r| r["name"] == "fresh").unwrap();
    assert_eq!(fresh["status"], "UP");
    assert_eq!(fresh["total_cost"], 0.0);
    assert_eq!(fresh["num_nodes"], 1);
    assert_eq!(fresh["resources_str"], "Local(cpus=4, mem=8, H100:1)");
    assert!(fresh["duration"].as_i64().unwrap() >= 3600);
    assert!(fresh["resources"].is_string(), "the pickled Resources");
    let old = records.iter().find(|r| r["name"] == "old").unwrap();
    assert_eq!(old["status"], "STOPPED");
    assert_eq!(old["duration"], 600);

    let recent = app.run(report("7")).await;
    let records: Vec<serde_json::Value> =
        serde_json::from_str(recent.body["return_value"].as_str().unwrap()).unwrap();
    let names: Vec<&str> = records
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    // As in SkyPilot: clusters that exist are always listed, torn-down ones
    // if they ended within the days asked; newest launch first.
    assert_eq!(names, vec!["fresh", "gone", "old"]);

    let all = app.run(report("null")).await;
    let records: Vec<serde_json::Value> =
        serde_json::from_str(all.body["return_value"].as_str().unwrap()).unwrap();
    assert_eq!(records.len(), 4);
}

#[tokio::test]
async fn shell_completion_offers_cluster_names_and_nothing_for_storage() {
    let app = app().await;
    let store = &app.server.state().store;
    for name in ["train-a", "train-b", "eval"] {
        store
            .put_cluster(&cluster(name, ClusterStatus::Up, 1.0))
            .await
            .unwrap();
    }
    let answer = app
        .call(get("/api/completion/cluster_name?incomplete=tr"))
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let mut names: Vec<String> = serde_json::from_value(answer.body).unwrap();
    names.sort();
    assert_eq!(names, vec!["train-a", "train-b"]);
    let storage = app
        .call(get("/api/completion/storage_name?incomplete=x"))
        .await;
    assert_eq!(storage.body, serde_json::json!([]));
    let requests = app
        .call(get("/api/completion/api_request?incomplete=zz"))
        .await;
    assert_eq!(requests.body, serde_json::json!([]));
}
