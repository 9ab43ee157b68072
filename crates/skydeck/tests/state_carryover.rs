//! State that outlives the machine the server ran on ("Persisting API
//! Server State Across Kubernetes Clusters"): a second server started on a
//! copy of the first one's state directory, or on the same PostgreSQL
//! database, finds every user, token, cluster, job, request and config
//! value, and they work. And a database from a newer Skydeck is refused.

mod support;

use serde_json::{Value, json};
use skydeck_client::Client;
use skydeck_client::admin::{NewToken, NewUser};
use std::path::Path;
use std::time::{Duration, Instant};
use support::{TestServer, create_database, drop_database, stop_agents_and_wait};

const DEADLINE: Duration = Duration::from_secs(60);
const ADMIN: &str = "admin:admin-pw-77";

/// Auth on, so users, passwords and tokens are part of the state.
fn start(home: &Path, database: Option<&str>) -> TestServer {
    let mut envs = vec![
        ("SKYDECK_ENABLE_BASIC_AUTH", "1"),
        ("SKYDECK_ENABLE_SERVICE_ACCOUNTS", "1"),
        ("SKYDECK_INITIAL_BASIC_AUTH", ADMIN),
    ];
    if let Some(url) = database {
        envs.push(("SKYDECK_DB_CONNECTION_URI", url));
    }
    TestServer::start(home, &envs)
}

/// `http://user:password@host:port`.
fn as_user(server: &TestServer, credentials: &str) -> Client {
    let url = server
        .url
        .replacen("http://", &format!("http://{credentials}@"), 1);
    Client::new(&url, None).unwrap()
}

/// What the first server made, for the second to find.
struct Made {
    token: String,
    launch_request: String,
    job_id: u64,
}

async fn make_state(server: &TestServer) -> Made {
    let admin = as_user(server, ADMIN);
    admin
        .create_user(&NewUser {
            name: "alice".into(),
            password: Some("alice-pw".into()),
            role: None,
        })
        .await
        .unwrap();
    let config: serde_json::Map<String, Value> = serde_json::from_value(json!({
        "workspaces": {"default": {}, "team-a": {"private": true, "allowed_users": ["alice"]}}
    }))
    .unwrap();
    admin.set_config(&config).await.unwrap();

    let alice = as_user(server, "alice:alice-pw");
    let token = alice
        .create_token(&NewToken {
            name: "ci".into(),
            expires_in_days: None,
            user: None,
        })
        .await
        .unwrap()
        .token;
    let launch_request = alice
        .submit(
            "/launch",
            &json!({
                "task": "run: echo carried-over-output\n",
                "cluster_name": "kept",
                "retry_until_up": false,
            }),
        )
        .await
        .unwrap();
    let launched = alice.wait(&launch_request).await.expect("launch succeeds");
    let job_id = launched["job_id"].as_u64().expect("a job id");
    wait_job(&alice, job_id, "SUCCEEDED").await;
    Made {
        token,
        launch_request,
        job_id,
    }
}

async fn queue(client: &Client) -> Vec<Value> {
    let id = client
        .submit(
            "/queue",
            &json!({"cluster_name": "kept", "all_users": true}),
        )
        .await
        .unwrap();
    match client.wait(&id).await.expect("queue answers") {
        Value::Array(jobs) => jobs,
        other => panic!("queue answered {other}"),
    }
}

async fn wait_job(client: &Client, job: u64, want: &str) {
    let started = Instant::now();
    loop {
        let jobs = queue(client).await;
        let status = jobs
            .iter()
            .find(|j| j["job_id"] == job)
            .map(|j| j["status"].as_str().unwrap_or_default().to_owned());
        if status.as_deref() == Some(want) {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "job {job} is {status:?}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Everything `make_state` made is on `server`, and usable.
async fn check_state(server: &TestServer, made: &Made) {
    let admin = as_user(server, ADMIN);
    let users: Vec<String> = admin
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert!(users.contains(&"alice".to_owned()), "{users:?}");

    let alice = as_user(server, "alice:alice-pw");
    assert_eq!(alice.me().await.expect("alice's password").name, "alice");
    let by_token = Client::new(&server.url, Some(made.token.clone())).unwrap();
    assert_eq!(by_token.me().await.expect("alice's token").name, "alice");
    let wrong = as_user(server, "alice:not-it");
    assert!(wrong.me().await.is_err(), "passwords are still checked");

    let config = admin.get_config().await.unwrap();
    assert_eq!(
        config.config["workspaces"]["team-a"]["allowed_users"],
        json!(["alice"]),
        "{:?}",
        config.config
    );

    let launched = alice.get(&made.launch_request).await.unwrap();
    assert_eq!(launched.status, skydeck_types::RequestStatus::Succeeded);

    let status_id = alice
        .submit(
            "/status",
            &json!({"cluster_names": ["kept"], "refresh": "FORCE"}),
        )
        .await
        .unwrap();
    let clusters = alice.wait(&status_id).await.unwrap();
    assert_eq!(clusters[0]["name"], "kept", "{clusters}");

    let jobs = queue(&alice).await;
    let job = jobs
        .iter()
        .find(|j| j["job_id"] == made.job_id)
        .unwrap_or_else(|| panic!("job {} is gone: {jobs:?}", made.job_id));
    assert_eq!(job["status"], "SUCCEEDED");

    // The cluster still runs work.
    let exec = alice
        .submit(
            "/exec",
            &json!({"task": "run: echo after-the-move\n", "cluster_name": "kept"}),
        )
        .await
        .unwrap();
    let next = alice.wait(&exec).await.expect("exec succeeds")["job_id"]
        .as_u64()
        .unwrap();
    assert!(next > made.job_id, "job ids continue: {next}");
    wait_job(&alice, next, "SUCCEEDED").await;

    let down = alice
        .submit("/down", &json!({"cluster_name": "kept"}))
        .await
        .unwrap();
    alice.wait(&down).await.expect("down succeeds");
}

#[tokio::test]
async fn a_copy_of_the_state_directory_carries_everything_to_a_new_server() {
    let dir = tempfile::tempdir().unwrap();
    // The state directory lives at the same path before and after, as a
    // volume is mounted at the same place in the new cluster's pod.
    let home = dir.path().join("state");
    let backup = dir.path().join("volume-snapshot");
    let first = start(&home, None);
    let made = make_state(&first).await;
    assert_eq!(first.stop().code(), Some(0));
    // The old cluster is lost: its machines (the agents) go with it.
    stop_agents_and_wait(&home);
    copy_dir(&home, &backup);
    std::fs::remove_dir_all(&home).unwrap();
    copy_dir(&backup, &home);

    let second = start(&home, None);
    check_state(&second, &made).await;
}

#[tokio::test]
async fn a_new_server_on_the_same_postgres_database_finds_everything() {
    let Ok(admin_url) = std::env::var("SKYDECK_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run this on PostgreSQL: set SKYDECK_TEST_POSTGRES_URL"
        );
        eprintln!("SKYDECK_TEST_POSTGRES_URL unset: skipping");
        return;
    };
    let database = create_database(&admin_url).await;
    let dir = tempfile::tempdir().unwrap();
    let first = start(&dir.path().join("first"), Some(&database));
    let made = make_state(&first).await;
    assert_eq!(first.stop().code(), Some(0));

    // A fresh state directory: only the database is shared.
    let second = start(&dir.path().join("second"), Some(&database));
    check_state(&second, &made).await;
    assert_eq!(second.stop().code(), Some(0));
    drop_database(&admin_url, &database).await;
}

/// A pod with an external database and no state volume starts on a fresh
/// state directory each time: it must come back as the same server user,
/// not add another user named `skydeck` at every start.
#[tokio::test]
async fn servers_on_fresh_state_directories_and_one_database_are_one_user() {
    let Ok(admin_url) = std::env::var("SKYDECK_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run this on PostgreSQL: set SKYDECK_TEST_POSTGRES_URL"
        );
        eprintln!("SKYDECK_TEST_POSTGRES_URL unset: skipping");
        return;
    };
    let database = create_database(&admin_url).await;
    let dir = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    for start in ["first", "second", "third"] {
        let home = dir.path().join(start);
        let server = TestServer::start(
            &home,
            &[
                ("SKYDECK_DB_CONNECTION_URI", &database),
                ("USER", "skydeck"),
            ],
        );
        assert_eq!(server.stop().code(), Some(0));
        // The CLI on the machine reads the id from the state directory.
        ids.push(std::fs::read_to_string(home.join("user_hash")).unwrap());
    }
    assert!(ids.iter().all(|id| id == &ids[0]), "{ids:?}");
    let users = {
        use sqlx::{Connection, Row};
        let mut conn = sqlx::PgConnection::connect(&database).await.unwrap();
        let rows = sqlx::query("SELECT id FROM users WHERE name = 'skydeck'")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        rows.iter()
            .map(|row| row.get::<String, _>("id"))
            .collect::<Vec<_>>()
    };
    assert_eq!(users, vec![ids[0].clone()]);
    drop_database(&admin_url, &database).await;
}

#[tokio::test]
async fn a_database_from_a_newer_skydeck_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("state");
    let first = start(&home, None);
    assert_eq!(first.stop().code(), Some(0));
    let db = home.join("state.db");
    let status = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); \
             c.execute(\"INSERT INTO _sqlx_migrations (version, description, success, \
             checksum, execution_time) VALUES (9999, 'from the future', 1, X'00', 0)\"); \
             c.commit()",
        )
        .arg(&db)
        .status()
        .unwrap();
    assert!(status.success());
    let output = std::process::Command::new(support::BINARY)
        .args(["api", "start", "--foreground", "--port", "0"])
        .env("SKYDECK_HOME", &home)
        .env_remove("SKYDECK_DB_CONNECTION_URI")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("has schema version 9999, newer than the newest this Skydeck knows")
            && stderr.contains("upgrade Skydeck"),
        "{stderr}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}
