//! The API SkyPilot 0.14.1's own dashboard calls, as its JavaScript calls
//! it (`sky/dashboard/src/data/connectors/client.js`): every path under
//! `/internal/dashboard/`, the headers `X-SkyPilot-API-Version: 62` and
//! `X-SkyPilot-Version: dashboard;`, `env_vars` added to each POST body,
//! the request id read from `X-Skypilot-Request-ID` and the answer from
//! `/api/get`'s `return_value` (a JSON string). Basic auth, as a browser
//! sends it after the server's prompt. Real server, real cluster.

mod support;

use serde_json::{Value, json};
use support::TestServer;
use support::team::{self, ADMIN, client as as_client};

/// SkyPilot's dashboard, logged in as one user.
struct SkyDashboard {
    base: String,
    user: String,
    password: String,
    http: reqwest::Client,
}

/// What `/api/get` said: the parsed return value, or the error's type
/// and message.
type Answer = Result<Value, (String, String)>;

impl SkyDashboard {
    fn new(server: &TestServer, credentials: &str) -> Self {
        let (user, password) = credentials.split_once(':').unwrap();
        Self {
            base: format!("{}/internal/dashboard", server.url),
            user: user.to_owned(),
            password: password.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .basic_auth(&self.user, Some(&self.password))
            .header("X-SkyPilot-API-Version", "62")
            .header("X-SkyPilot-Version", "dashboard;")
    }

    /// A direct call: its status and JSON.
    async fn direct(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `apiClient.fetch`: POST (or GET) for a request id, then its answer.
    async fn fetch(&self, method: reqwest::Method, path: &str, mut body: Value) -> Answer {
        let mut request = self.request(method.clone(), path);
        if method == reqwest::Method::POST {
            body["env_vars"] = json!({
                "SKYPILOT_IS_FROM_DASHBOARD": "true",
                "SKYPILOT_USER_ID": "local",
                "SKYPILOT_USER": "local",
            });
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let Some(id) = response.headers().get("X-Skypilot-Request-ID") else {
            panic!(
                "{path}: {status} without a request id: {}",
                response.text().await.unwrap()
            );
        };
        let id = id.to_str().unwrap().to_owned();
        assert_eq!(status, 200, "{path}: {}", response.text().await.unwrap());
        let got = self
            .request(reqwest::Method::GET, &format!("/api/get?request_id={id}"))
            .send()
            .await
            .unwrap();
        let ok = got.status().is_success();
        let answer: Value = got.json().await.unwrap();
        if ok {
            let text = answer["return_value"].as_str().unwrap_or("null");
            Ok(serde_json::from_str(text).unwrap())
        } else {
            let error: Value =
                serde_json::from_str(answer["detail"]["error"].as_str().unwrap()).unwrap();
            Err((
                error["type"].as_str().unwrap_or_default().to_owned(),
                error["message"].as_str().unwrap_or_default().to_owned(),
            ))
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn skypilots_dashboard_reads_and_acts_through_the_internal_prefix_as_its_user() {
    let scratch = tempfile::tempdir().unwrap();
    let server = team::start(
        &scratch.path().join("server"),
        &[("SKYDECK_ENABLE_SERVICE_ACCOUNTS", "1")],
        &["alice", "mallory"],
    )
    .await;
    let alice_api = as_client(&server, "alice:alice-pw");
    let alice = SkyDashboard::new(&server, "alice:alice-pw");
    let mallory = SkyDashboard::new(&server, "mallory:mallory-pw");
    let admin = SkyDashboard::new(&server, ADMIN);
    use reqwest::Method;

    // Who am I, the auth flags, the admin's links, no plugins.
    let (status, health) = alice.direct(Method::GET, "/api/health", None).await;
    assert_eq!((status, &health["basic_auth_enabled"]), (200, &json!(true)));
    let (_, me) = alice.direct(Method::GET, "/users/role", None).await;
    assert_eq!(
        (&me["name"], &me["role"]),
        (&json!("alice"), &json!("user"))
    );
    assert!(me["id"].as_str().is_some_and(|id| !id.is_empty()));
    let (_, plugins) = alice.direct(Method::GET, "/api/plugins", None).await;
    assert_eq!(plugins, json!({"plugins": []}));
    let (_, nodes) = alice
        .direct(
            Method::GET,
            "/kubernetes/allowed_nodes?k8s_context=any",
            None,
        )
        .await;
    assert_eq!(nodes, json!({"configured": false}));
    // Without credentials, the browser is asked for them.
    let anonymous = reqwest::get(format!("{}/internal/dashboard/users/role", server.url))
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);

    // The admin saves a config through the editor's calls: a bad one is
    // refused with its reason, a good one is used (links and workspaces).
    let (status, _) = mallory
        .direct(Method::GET, "/workspaces/config", None)
        .await;
    assert_eq!(status, 403);
    let bad = admin
        .fetch(
            Method::POST,
            "/workspaces/config",
            json!({"config": {"workspaces": {"default": {}, "team": {"private": "maybe"}}}}),
        )
        .await;
    let (kind, message) = bad.unwrap_err();
    assert_eq!(kind, "ValueError");
    assert!(message.contains("workspaces.team.private"), "{message}");
    let config = json!({
        "workspaces": {"default": {}, "team": {"private": true, "allowed_users": ["alice"]}},
        "dashboard": {"external_links": [
            {"label": "Grafana", "url": "https://grafana.internal/{cluster}", "scope": ["cluster"]},
        ]},
    });
    let saved = admin
        .fetch(
            Method::POST,
            "/workspaces/config",
            json!({ "config": config }),
        )
        .await
        .unwrap();
    assert_eq!(saved["workspaces"]["team"]["private"], true);
    let read = admin
        .fetch(Method::GET, "/workspaces/config", Value::Null)
        .await
        .unwrap();
    assert_eq!(read["workspaces"], config["workspaces"]);
    let (_, links) = alice.direct(Method::GET, "/dashboard_config", None).await;
    assert_eq!(
        links["external_links"],
        json!([{"label": "Grafana", "url": "https://grafana.internal/{cluster}", "scope": ["cluster"]}])
    );
    let batch = mallory
        .fetch(
            Method::GET,
            "/enabled_clouds/batch?workspaces=default,team&expand=true",
            Value::Null,
        )
        .await
        .unwrap();
    let listed: Vec<&String> = batch.as_object().unwrap().keys().collect();
    assert_eq!(listed, ["default"], "mallory may not use team: {batch}");
    assert!(
        batch["default"]
            .as_array()
            .unwrap()
            .contains(&json!("Local"))
    );

    // Clusters and their jobs, as the clusters page asks; mallory's page
    // does not list alice's cluster.
    let id = alice_api
        .submit(
            "/launch",
            &json!({ "task": "run: echo from-skypilot-dashboard\n", "cluster_name": "alice-web" }),
        )
        .await
        .unwrap();
    alice_api.wait(&id).await.unwrap();
    let status_body = json!({
        "cluster_names": null, "all_users": true, "include_credentials": false,
        "include_handle": false, "summary_response": true,
    });
    let clusters = alice
        .fetch(Method::POST, "/status", status_body.clone())
        .await
        .unwrap();
    let row = clusters
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["name"] == "alice-web")
        .unwrap_or_else(|| panic!("{clusters}"));
    assert_eq!(
        (&row["status"], &row["user_name"]),
        (&json!("UP"), &json!("alice"))
    );
    let theirs = mallory
        .fetch(Method::POST, "/status", status_body)
        .await
        .unwrap();
    assert!(!theirs.to_string().contains("alice-web"), "{theirs}");
    let jobs = alice
        .fetch(
            Method::POST,
            "/queue",
            json!({"cluster_name": "alice-web", "all_users": true}),
        )
        .await
        .unwrap();
    assert_eq!(jobs.as_array().map(Vec::len), Some(1), "{jobs}");
    // The job page reads the log from the POST's own body.
    let log = alice
        .request(Method::POST, "/logs")
        .json(&json!({"cluster_name": "alice-web", "job_id": 1, "follow": false, "tail": 1000}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(log.contains("from-skypilot-dashboard"), "{log}");
    let (status, refused) = mallory
        .direct(
            Method::POST,
            "/queue",
            Some(json!({"cluster_name": "alice-web", "all_users": true})),
        )
        .await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(
        refused["detail"],
        "Cluster \"alice-web\" belongs to another user; only they or an admin can use it."
    );

    // Managed jobs, as the jobs page pages them.
    let queue = alice
        .fetch(
            Method::POST,
            "/jobs/queue/v2",
            json!({"all_users": true, "verbose": true, "skip_finished": false, "page": 1, "limit": 10}),
        )
        .await
        .unwrap();
    assert_eq!(queue["total"], 0, "{queue}");

    // Service-account tokens: made (shown once), listed to their owner
    // only, deleted.
    let (status, made) = alice
        .direct(
            Method::POST,
            "/users/service-account-tokens",
            Some(json!({"token_name": "ci-bot", "expires_in_days": 0})),
        )
        .await;
    assert_eq!(status, 200, "{made}");
    let secret = made["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("sky_"));
    assert_eq!(made["expires_at"], Value::Null);
    let (status, refused) = alice
        .direct(
            Method::POST,
            "/users/service-account-tokens",
            Some(json!({"token_name": "root-bot", "role": "admin"})),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    let (_, listed) = alice
        .direct(Method::GET, "/users/service-account-tokens", None)
        .await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["token_name"], "ci-bot");
    assert_eq!(listed[0]["service_account_roles"], json!(["user"]));
    let (_, hidden) = mallory
        .direct(Method::GET, "/users/service-account-tokens", None)
        .await;
    assert_eq!(hidden, json!([]));
    let (status, _) = mallory
        .direct(
            Method::POST,
            "/users/service-account-tokens/delete",
            Some(json!({"token_id": made["token_id"]})),
        )
        .await;
    assert_eq!(status, 404);
    let with_token = skydeck_client::Client::new(&server.url, Some(secret)).unwrap();
    assert_eq!(with_token.me().await.unwrap().name, "alice");
    let (status, _) = alice
        .direct(
            Method::POST,
            "/users/service-account-tokens/delete",
            Some(json!({"token_id": made["token_id"]})),
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        with_token.me().await.is_err(),
        "a deleted token still works"
    );
}
