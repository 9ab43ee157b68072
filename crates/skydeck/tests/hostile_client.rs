//! The hostile-client suite: a real server with basic auth on, an admin, a
//! victim (alice) and a non-admin attacker (mallory) who tries each kind of
//! attack a shared server meets. Every test states the attack in its name
//! and checks both the refusal and that nothing of the victim's or the
//! server's was touched. docs/security.md lists where each rule lives.
//!
//! Calls go over raw HTTP with basic auth so the attacker is not limited to
//! what our client would send.

mod support;

use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use support::TestServer;

const DEADLINE: Duration = Duration::from_secs(90);
const ADMIN_PASSWORD: &str = "Adm1n-Hostile-5e2b";

#[derive(Clone, Copy)]
struct Who {
    name: &'static str,
    password: &'static str,
}

const ADMIN: Who = Who {
    name: "admin",
    password: ADMIN_PASSWORD,
};
const ALICE: Who = Who {
    name: "alice",
    password: "alice-pw-93c1",
};
const MALLORY: Who = Who {
    name: "mallory",
    password: "mallory-pw-17ad",
};

struct Reply {
    status: u16,
    id: Option<String>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

struct Attack {
    server: TestServer,
    http: reqwest::Client,
}

impl Attack {
    /// A server with basic auth, and users alice and mallory (both plain
    /// users) made by the admin.
    async fn start(scratch: &Path) -> Self {
        Self::start_with(scratch, &[]).await
    }

    async fn start_with(scratch: &Path, envs: &[(&str, &str)]) -> Self {
        let initial_admin = format!("admin:{ADMIN_PASSWORD}");
        let mut all = vec![
            ("SKYDECK_ENABLE_BASIC_AUTH", "true"),
            ("SKYDECK_INITIAL_BASIC_AUTH", initial_admin.as_str()),
        ];
        all.extend_from_slice(envs);
        let server = TestServer::start(&scratch.join("server"), &all);
        let attack = Self {
            server,
            http: skydeck_client::http_client().expect("an HTTP client"),
        };
        for who in [ALICE, MALLORY] {
            let reply = attack
                .post(
                    ADMIN,
                    "/users/create",
                    json!({"name": who.name, "password": who.password, "role": "user"}),
                )
                .await;
            assert_eq!(reply.status, 200, "create {}: {}", who.name, reply.body);
        }
        attack
    }

    async fn call(
        &self,
        who: Who,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.server.url))
            .basic_auth(who.name, Some(who.password))
            .header("X-SkyPilot-API-Version", "62")
            .header("X-SkyPilot-Version", "0.14.1");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let id = response
            .headers()
            .get("x-skypilot-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.text().await.unwrap_or_default();
        Reply { status, id, body }
    }

    async fn post(&self, who: Who, path: &str, body: Value) -> Reply {
        self.call(who, reqwest::Method::POST, path, Some(body), &[])
            .await
    }

    async fn get(&self, who: Who, path: &str) -> Reply {
        self.call(who, reqwest::Method::GET, path, None, &[]).await
    }

    /// Submits a request that must be accepted; returns its id.
    async fn submit(&self, who: Who, path: &str, body: Value) -> String {
        let reply = self.post(who, path, body).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        reply.id.expect("a request id")
    }

    /// Waits for a request; `Ok(return value)` or `Err(error message)`.
    async fn outcome(&self, who: Who, id: &str) -> Result<Value, String> {
        let reply = self.get(who, &format!("/api/get?request_id={id}")).await;
        // A failed request answers 500 with the request in `detail`, as
        // SkyPilot's server does.
        let payload = match reply.status {
            200 => reply.json(),
            500 => reply.json()["detail"].clone(),
            other => panic!("api/get {id}: {other} {}", reply.body),
        };
        match payload["status"].as_str() {
            Some("SUCCEEDED") => Ok(serde_json::from_str(
                payload["return_value"].as_str().unwrap_or("null"),
            )
            .unwrap_or(Value::Null)),
            _ => Err(payload["error"].as_str().unwrap_or_default().to_owned()),
        }
    }

    async fn launch(&self, who: Who, cluster: &str, task: &str) -> Result<Value, String> {
        let id = self
            .submit(
                who,
                "/launch",
                json!({"task": task, "cluster_name": cluster}),
            )
            .await;
        self.outcome(who, &id).await
    }

    fn state_db(&self) -> std::path::PathBuf {
        self.server.home.join("state.db")
    }
}

fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().expect("a scratch directory")
}

/// Every name that could be a path, a flag or a glob, in each field that
/// names a cluster.
#[tokio::test(flavor = "multi_thread")]
async fn path_shaped_cluster_names_are_refused_and_the_state_survives() {
    let dir = scratch();
    let attack = Attack::start(dir.path()).await;
    let home = attack.server.home.display().to_string();
    let long = "a".repeat(64);
    let names = [
        "..",
        ".",
        "/",
        "../..",
        "a/b",
        "/tmp/x",
        &home,
        "x/../../..",
        "-rf",
        "a b",
        "a\nb",
        "a\u{0}b",
        "",
        &long,
        "*",
    ];
    for name in names {
        for (path, body) in [
            (
                "/launch",
                json!({"task": "run: echo hi", "cluster_name": name}),
            ),
            ("/down", json!({"cluster_name": name})),
            ("/stop", json!({"cluster_name": name})),
            ("/start", json!({"cluster_name": name})),
            (
                "/exec",
                json!({"task": "run: echo hi", "cluster_name": name}),
            ),
            ("/queue", json!({"cluster_name": name})),
            ("/logs", json!({"cluster_name": name, "follow": false})),
            (
                "/autostop",
                json!({"cluster_name": name, "idle_minutes": 1}),
            ),
        ] {
            let reply = attack.post(MALLORY, path, body).await;
            assert_eq!(
                reply.status, 400,
                "{path} with cluster name {name:?} was not refused: {}",
                reply.body
            );
            assert!(
                reply.body.contains("cluster name") && reply.body.contains("starts with a letter"),
                "{path} {name:?}: the refusal does not state the rule: {}",
                reply.body
            );
        }
    }
    assert!(attack.state_db().is_file(), "the server's database is gone");
    let health = attack.get(MALLORY, "/api/health").await;
    assert_eq!(health.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn another_users_cluster_and_its_logs_are_out_of_reach() {
    let dir = scratch();
    let attack = Attack::start(dir.path()).await;
    attack
        .launch(ALICE, "alice-c", "run: echo alice-private-output")
        .await
        .expect("alice's launch");

    for (path, body) in [
        (
            "/launch",
            json!({"task": "run: echo pwned", "cluster_name": "alice-c"}),
        ),
        (
            "/exec",
            json!({"task": "run: echo pwned", "cluster_name": "alice-c"}),
        ),
        (
            "/logs",
            json!({"cluster_name": "alice-c", "job_id": 1, "follow": false}),
        ),
        (
            "/queue",
            json!({"cluster_name": "alice-c", "all_users": true}),
        ),
        ("/cancel", json!({"cluster_name": "alice-c", "all": true})),
        ("/down", json!({"cluster_name": "alice-c"})),
        ("/stop", json!({"cluster_name": "alice-c"})),
        (
            "/autostop",
            json!({"cluster_name": "alice-c", "idle_minutes": 0, "down": true}),
        ),
        ("/download_logs", json!({"cluster_name": "alice-c"})),
    ] {
        let reply = attack.post(MALLORY, path, body).await;
        if reply.status == 200
            && let Some(id) = &reply.id
        {
            // Accepted (for example a streaming endpoint): the work itself
            // must still refuse.
            let outcome = attack.outcome(MALLORY, id).await;
            assert!(outcome.is_err(), "{path} on alice's cluster succeeded");
        } else {
            assert_eq!(reply.status, 403, "{path}: {}", reply.body);
        }
        assert!(
            !reply.body.contains("alice-private-output"),
            "{path} leaked alice's log"
        );
    }
    // Alice's cluster is untouched: still up, one job, hers.
    let id = attack
        .submit(
            ALICE,
            "/queue",
            json!({"cluster_name": "alice-c", "all_users": true}),
        )
        .await;
    let jobs = attack.outcome(ALICE, &id).await.expect("alice's queue");
    let jobs = jobs.as_array().expect("a job list");
    assert_eq!(
        jobs.len(),
        1,
        "a foreign job reached alice's cluster: {jobs:?}"
    );
    let id = attack
        .submit(ALICE, "/down", json!({"cluster_name": "alice-c"}))
        .await;
    attack.outcome(ALICE, &id).await.expect("alice's down");
}

#[tokio::test(flavor = "multi_thread")]
async fn another_users_request_ids_answer_as_if_they_did_not_exist() {
    let dir = scratch();
    let attack = Attack::start(dir.path()).await;
    let alices = attack
        .submit(ALICE, "/status", json!({"cluster_names": null}))
        .await;
    attack
        .outcome(ALICE, &alices)
        .await
        .expect("alice's status");
    let missing = "00000000-0000-4000-8000-000000000000";

    let probe = |id: String| {
        let attack = &attack;
        async move {
            let get = attack
                .get(MALLORY, &format!("/api/get?request_id={id}"))
                .await;
            let stream = attack
                .get(
                    MALLORY,
                    &format!("/api/stream?request_id={id}&follow=false"),
                )
                .await;
            (get.status, stream.status, get.body + &stream.body)
        }
    };
    let (get_missing, stream_missing, _) = probe(missing.to_owned()).await;
    for id in [
        alices.clone(),
        alices[..1].to_owned(),
        alices[..8].to_owned(),
    ] {
        let (get, stream, body) = probe(id.clone()).await;
        assert_eq!(
            (get, stream),
            (get_missing, stream_missing),
            "alice's id {id:?} answers differently from one that does not exist"
        );
        // The answer may echo what the attacker sent, never more of it.
        if id != alices {
            assert!(!body.contains(&alices), "alice's full id leaked: {body}");
        }
    }
    assert_eq!(get_missing, 404);

    // Cancelling by her id leaves her request alone, and the listing never
    // shows it.
    let reply = attack
        .post(
            MALLORY,
            "/api/cancel",
            json!({"request_ids": [alices.clone()]}),
        )
        .await;
    assert!(!reply.body.contains(&alices), "{}", reply.body);
    // Her own cancel request carries the id she typed; alice's request
    // itself is not listed.
    let listing = attack.get(MALLORY, "/api/status?all_status=true").await;
    let listed = listing.json();
    let rows = listed.as_array().expect("a request list");
    assert!(
        rows.iter().all(|row| row["request_id"] != alices.as_str()),
        "{}",
        listing.body
    );
    // Alice's request is still there and was not cancelled.
    let hers = attack
        .get(ALICE, &format!("/api/get?request_id={alices}"))
        .await;
    assert_eq!(hers.json()["status"], "SUCCEEDED", "{}", hers.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_cluster_and_a_pathological_glob_are_bounded() {
    let dir = scratch();
    let attack = Attack::start(dir.path()).await;
    let task = "num_nodes: 1000000\nrun: echo hi\n";
    let err = attack
        .launch(MALLORY, "huge", task)
        .await
        .expect_err("a million nodes on one machine");
    assert!(err.contains("num_nodes") || err.contains("nodes"), "{err}");
    let clusters = attack.server.home.join("clusters");
    let made = std::fs::read_dir(&clusters).map(|d| d.count()).unwrap_or(0);
    assert_eq!(made, 0, "nodes were created for a refused launch");

    // Exponential backtracking would take hours on this pattern; the
    // linear matcher answers at once. Several in parallel, then a health
    // check must still answer.
    let pattern = format!("{}b", "*a".repeat(30));
    let ids: Vec<String> = {
        let mut ids = Vec::new();
        for _ in 0..4 {
            ids.push(
                attack
                    .submit(
                        MALLORY,
                        "/status",
                        json!({"cluster_names": [pattern.clone(), "a".repeat(60)]}),
                    )
                    .await,
            );
        }
        ids
    };
    let started = Instant::now();
    for id in ids {
        let _ = attack.outcome(MALLORY, &id).await;
        assert!(started.elapsed() < DEADLINE, "glob status did not finish");
    }
    assert_eq!(attack.get(ADMIN, "/api/health").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn server_paths_never_reach_a_cluster() {
    let dir = scratch();
    let attack = Attack::start(dir.path()).await;
    let home = attack.server.home.display().to_string();
    for task in [
        format!("workdir: {home}\nrun: ls\n"),
        format!("file_mounts:\n  /tmp/loot: {home}/state.db\nrun: ls\n"),
        "file_mounts:\n  ~/loot: /etc\nrun: ls\n".to_owned(),
    ] {
        let err = attack
            .launch(MALLORY, "loot", &task)
            .await
            .expect_err("a server path as a source");
        assert!(
            err.contains("upload") || err.contains("not in"),
            "the error does not say the source was not uploaded: {err}"
        );
    }
    // Nothing of the server's state was copied anywhere under clusters/.
    let copied = find_file_named(&attack.server.home.join("clusters"), "state.db");
    assert!(copied.is_none(), "state.db copied to {copied:?}");
}

fn find_file_named(root: &Path, name: &str) -> Option<std::path::PathBuf> {
    let entries = std::fs::read_dir(root).ok()?;
    for entry in entries.flatten() {
        let path = entry.path();
        let kind = entry.file_type().ok()?;
        if kind.is_dir() {
            if let Some(found) = find_file_named(&path, name) {
                return Some(found);
            }
        } else if entry.file_name() == name {
            return Some(path);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crafted_upload_is_refused_and_leaves_nothing() {
    let dir = scratch();
    let attack = Attack::start(dir.path()).await;
    let id = "0".repeat(64);
    for body in [
        b"this is not a zip".to_vec(),
        // An empty but valid zip: its members do not hash to the id.
        vec![
            0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
    ] {
        let response = attack
            .http
            .post(format!(
                "{}/upload_v2?user_hash=x&upload_id={id}&chunk_index=0&total_chunks=1",
                attack.server.url
            ))
            .basic_auth(MALLORY.name, Some(MALLORY.password))
            .header("Content-Type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .expect("the server answers");
        let status = response.status().as_u16();
        assert!(
            (400..500).contains(&status),
            "a crafted upload got {status}: {}",
            response.text().await.unwrap_or_default()
        );
    }
    let left = count_files(&attack.server.home.join("uploads"));
    assert_eq!(left, 0, "a refused upload left {left} files behind");
    let exists = attack
        .get(
            MALLORY,
            &format!("/upload_v2/blob?user_hash=x&blob_id={id}"),
        )
        .await;
    assert_eq!(exists.json()["exists"], false, "{}", exists.body);
}

fn count_files(root: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(root) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => count_files(&entry.path()),
            _ => 1,
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn bytes_that_are_not_utf8_do_not_break_a_jobs_log() {
    let dir = scratch();
    let attack = Attack::start(dir.path()).await;
    let task = "run: |\n  printf 'before \\377\\376 after\\n'\n  echo done-marker\n";
    attack
        .launch(MALLORY, "bytes", task)
        .await
        .expect("a job with invalid UTF-8 output launches");
    // Following returns once the job has ended, so the whole output is in.
    let reply = attack
        .post(
            MALLORY,
            "/logs",
            json!({"cluster_name": "bytes", "job_id": 1, "follow": true}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("done-marker"), "{}", reply.body);
    assert!(reply.body.contains("before"), "{}", reply.body);
    let id = attack
        .submit(MALLORY, "/down", json!({"cluster_name": "bytes"}))
        .await;
    attack.outcome(MALLORY, &id).await.expect("down");
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_on_the_command_line_are_never_stored_or_shown() {
    let dir = scratch();
    let attack = Attack::start(dir.path()).await;
    let secret = "hunter2-7c0ffee";
    let task = "secrets:\n  HF_TOKEN: null\nrun: echo ok\n";
    let id = attack
        .submit(
            MALLORY,
            "/launch",
            json!({
                "task": task,
                "cluster_name": "sec",
                "dryrun": true,
                "entrypoint_command": format!("sky launch -c sec --secret HF_TOKEN={secret} --env HF_TOKEN={secret} task.yaml"),
            }),
        )
        .await;
    let _ = attack.outcome(MALLORY, &id).await;
    let listing = attack.get(MALLORY, "/api/status?all_status=true").await;
    assert!(!listing.body.contains(secret), "{}", listing.body);
    let get = attack
        .get(MALLORY, &format!("/api/get?request_id={id}"))
        .await;
    assert!(!get.body.contains(secret), "{}", get.body);
    for file in ["state.db", "state.db-wal"] {
        let path = attack.server.home.join(file);
        if let Ok(bytes) = std::fs::read(&path) {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{file} holds the secret in clear"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_passwords_from_a_shared_address_do_not_lock_the_admin_out() {
    let dir = scratch();
    // Every client reaches the server through one ingress at 127.0.0.1,
    // which says who the real client is in X-Forwarded-For.
    let attack =
        Attack::start_with(dir.path(), &[("SKYDECK_TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    let wrong = Who {
        name: "admin",
        password: "guess",
    };
    for _ in 0..20 {
        let reply = attack
            .call(
                wrong,
                reqwest::Method::GET,
                "/users/me",
                None,
                &[("X-Forwarded-For", "203.0.113.9")],
            )
            .await;
        assert!(matches!(reply.status, 401 | 429), "{}", reply.status);
    }
    let admin = attack
        .call(
            ADMIN,
            reqwest::Method::GET,
            "/users/me",
            None,
            &[("X-Forwarded-For", "198.51.100.4")],
        )
        .await;
    assert_eq!(
        admin.status, 200,
        "the admin was locked out: {}",
        admin.body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_cannot_change_a_password_without_the_current_one() {
    let dir = scratch();
    let attack = Attack::start(dir.path()).await;
    let reply = attack
        .post(
            MALLORY,
            "/users/update",
            json!({"user": "mallory", "password": "new-password-1"}),
        )
        .await;
    assert!(
        matches!(reply.status, 400 | 403),
        "a password change without the current one: {} {}",
        reply.status,
        reply.body
    );
    let reply = attack
        .post(
            MALLORY,
            "/users/update",
            json!({"user": "alice", "password": "new-password-1", "current_password": MALLORY.password}),
        )
        .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    // The old password still works.
    assert_eq!(attack.get(MALLORY, "/users/me").await.status, 200);
}
