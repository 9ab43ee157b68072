//! Two servers on one PostgreSQL database drive managed jobs: each job is
//! driven by exactly one of them (the holder of its lease), and when that
//! server dies (SIGKILL, its clusters left running) the other takes its jobs
//! over and finishes them, without launching or running any of them again.
//! Real processes, a real PostgreSQL (from `scripts/test.sh`), `local`.

mod support;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::{TestServer, create_database, drop_database, http, postgres_admin_url, submit};

/// Long enough for a lease to run out (30 s) and be taken over.
const WAIT: Duration = Duration::from_secs(120);

fn start(home: &Path, database: &str) -> TestServer {
    TestServer::start(home, &[("SKYDECK_DB_CONNECTION_URI", database)])
}

async fn result(url: &str, id: &str) -> Value {
    let answer = http("GET", &format!("{url}/api/get?request_id={id}"), None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    match &answer.json()["return_value"] {
        Value::String(text) => serde_json::from_str(text).expect("a JSON result"),
        other => other.clone(),
    }
}

async fn rows(url: &str) -> Vec<Value> {
    let id = submit(url, "/jobs/queue/v2", r#"{"all_users": true}"#).await;
    result(url, &id).await["jobs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits until every job in `ids` is in `status` (as `url` answers).
async fn wait_all(url: &str, ids: &[u64], status: &str) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let rows = rows(url).await;
        let matching: Vec<Value> = rows
            .iter()
            .filter(|row| ids.iter().any(|id| row["job_id"] == *id) && row["status"] == status)
            .cloned()
            .collect();
        if matching.len() == ids.len() {
            return matching;
        }
        assert!(
            Instant::now() < deadline,
            "jobs {ids:?} never all reached {status}: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A gated job: counts its runs, waits for its gate, finishes.
struct Gated {
    gate: PathBuf,
    count: PathBuf,
    task: String,
}

fn gated(dir: &Path, name: &str) -> Gated {
    let gate = dir.join(format!("{name}.gate"));
    let count = dir.join(format!("{name}.count"));
    let task = format!(
        "name: {name}\nrun: |\n  echo ran >> '{}'\n  while [ ! -e '{}' ]; do sleep 0.1; done\n",
        count.display(),
        gate.display()
    );
    Gated { gate, count, task }
}

async fn launch(url: &str, job: &Gated) -> u64 {
    let id = submit(url, "/jobs/launch", &json!({"task": job.task}).to_string()).await;
    result(url, &id).await["job_id"].as_u64().expect("a job id")
}

/// Each job's lease holder, by job id.
async fn leases(database: &str) -> Vec<(i64, Option<String>)> {
    use sqlx::{Connection, Row};
    let mut conn = sqlx::PgConnection::connect(database).await.unwrap();
    let rows = sqlx::query("SELECT job_id, lease_owner FROM managed_jobs ORDER BY job_id")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    rows.iter()
        .map(|row| (row.get("job_id"), row.get("lease_owner")))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_servers_drive_each_job_once_and_the_survivor_takes_over() {
    let Some(admin_url) = postgres_admin_url() else {
        return;
    };
    let database = create_database(&admin_url).await;
    let dir = tempfile::tempdir().unwrap();
    let first = start(&dir.path().join("first"), &database);
    let jobs: Vec<Gated> = (0..3)
        .map(|i| gated(dir.path(), &format!("a{i}")))
        .collect();
    let mut ids = Vec::new();
    for job in &jobs {
        ids.push(launch(&first.url, job).await);
    }
    wait_all(&first.url, &ids, "RUNNING").await;
    let held_by_first = leases(&database).await;
    let first_id = held_by_first[0].1.clone().expect("a lease holder");
    assert!(
        held_by_first
            .iter()
            .all(|(_, owner)| owner.as_ref() == Some(&first_id)),
        "{held_by_first:?}"
    );

    // A second server on the same database: it takes none of the first's
    // jobs while the first renews them, and drives the job sent to it.
    let second = start(&dir.path().join("second"), &database);
    let own = gated(dir.path(), "b0");
    let own_id = launch(&second.url, &own).await;
    wait_all(&second.url, &[own_id], "RUNNING").await;
    let now_held = leases(&database).await;
    assert!(
        now_held
            .iter()
            .filter(|(id, _)| ids.contains(&(*id as u64)))
            .all(|(_, owner)| owner.as_ref() == Some(&first_id)),
        "{now_held:?}"
    );
    assert!(
        now_held.iter().all(|(_, owner)| owner.is_some()),
        "{now_held:?}"
    );

    // The first dies; its jobs' clusters keep running. Once its leases run
    // out, the second follows those jobs to their end.
    first.kill9_leaving_agents();
    for job in jobs.iter().chain([&own]) {
        std::fs::write(&job.gate, "").unwrap();
    }
    let mut all = ids.clone();
    all.push(own_id);
    let done = wait_all(&second.url, &all, "SUCCEEDED").await;
    assert!(
        done.iter().all(|row| row["recovery_count"] == 0),
        "{done:?}"
    );
    for job in jobs.iter().chain([&own]) {
        let runs = std::fs::read_to_string(&job.count).unwrap();
        assert_eq!(
            runs.lines().count(),
            1,
            "{}: ran {runs:?}",
            job.count.display()
        );
    }
    assert!(
        leases(&database)
            .await
            .iter()
            .all(|(_, owner)| owner.is_none()),
        "finished jobs hold no lease"
    );
    drop(second);
    drop_database(&admin_url, &database).await;
}
