//! Upgrades: a database left by every schema Skydeck has shipped migrates
//! forward to this binary's schema with nothing lost.
//!
//! `tests/fixtures/` holds, for each schema version N, `schema-vN.sqlite` (a
//! SQLite state file) and `schema-vN.pg.sql` (a PostgreSQL dump), made by the
//! migrations of that version and filled with [`SEED`]. Fixtures are frozen:
//! once a schema ships its files never change. After adding a migration,
//! write the new version's files with
//!
//! ```text
//! SKYDECK_TEST_POSTGRES_URL=$(scripts/pg-up.sh /tmp/pg | tail -1) \
//!   cargo test -p skydeck-store --test upgrades -- --ignored write_missing_fixtures
//! ```
//!
//! and extend [`SEED`] and [`check_upgraded`] with what the new schema adds.

use skydeck_store::{ClusterStatus, Role, SqlStore, Store};
use skydeck_types::{RequestStatus, ScheduleType};
use sqlx::{Connection, Row};
use std::path::{Path, PathBuf};

/// Rows written into each fixture: `(first schema version, statement)`. A
/// statement is valid on its version and every later one, so a fixture of
/// version N holds every statement up to N.
const SEED: &[(i64, &str)] = &[
    (
        1,
        "INSERT INTO users (id, name, created_at) VALUES ('u-alice', 'alice', 100.5)",
    ),
    (
        1,
        "INSERT INTO users (id, name, created_at) VALUES ('u-bob', 'bob', 101.0)",
    ),
    (
        1,
        "INSERT INTO requests (id, name, entrypoint, body, status, schedule_type, user_id, \
         cluster_name, created_at, started_at, finished_at, return_value, error, status_msg, \
         server_id, attempts) VALUES ('req-done', 'sky.launch', 'sky.launch', \
         '{\"cluster_name\": \"c1\", \"task\": \"run: echo hi\"}', 'SUCCEEDED', 'long', \
         'u-alice', 'c1', 200.0, 201.0, 230.25, '{\"job_id\": 1}', NULL, NULL, 's-old', 1)",
    ),
    (
        1,
        "INSERT INTO requests (id, name, entrypoint, body, status, schedule_type, user_id, \
         cluster_name, created_at, started_at, finished_at, return_value, error, status_msg, \
         server_id, attempts) VALUES ('req-failed', 'sky.exec', 'sky.exec', '{}', 'FAILED', \
         'long', 'u-bob', NULL, 300.0, 300.5, 301.0, NULL, \
         '{\"type\": \"sky.exceptions.ClusterNotUpError\", \"message\": \"no cluster\"}', \
         'failed fast', 's-old', 2)",
    ),
    (
        1,
        "INSERT INTO requests (id, name, entrypoint, body, status, schedule_type, user_id, \
         cluster_name, created_at, started_at, finished_at, return_value, error, status_msg, \
         server_id, attempts) VALUES ('req-pending', 'sky.status', 'sky.status', '{}', \
         'PENDING', 'short', 'u-alice', NULL, 400.0, NULL, NULL, NULL, NULL, NULL, NULL, 0)",
    ),
    (
        2,
        "INSERT INTO clusters (name, status, user_id, workspace, infra, cluster_hash, \
         launched_at, status_updated_at, num_nodes, resources, handle, autostop_minutes, \
         autostop_down, ever_up, last_use) VALUES ('c1', 'UP', 'u-alice', 'default', 'local', \
         'hash-1', 199.0, 230.0, 2, '{\"cpus\": \"2\"}', \
         '{\"nodes\": [{\"rank\": 0}, {\"rank\": 1}]}', 30, 1, 1, 'sky launch -c c1')",
    ),
    (
        2,
        "INSERT INTO clusters (name, status, user_id, workspace, infra, cluster_hash, \
         launched_at, status_updated_at, num_nodes, resources, handle, autostop_minutes, \
         autostop_down, ever_up, last_use) VALUES ('c2', 'STOPPED', 'u-bob', 'default', \
         'local', 'hash-2', NULL, 250.0, 1, '{}', '{}', -1, 0, 0, NULL)",
    ),
    (
        3,
        "UPDATE users SET role = 'admin', password_hash = \
         '$apr1$c1h4rNxt$3tSOaYWcrHVOof67K0IUg0' WHERE id = 'u-alice'",
    ),
    (
        3,
        "INSERT INTO tokens (id, user_id, name, hash, created_at, expires_at, last_used_at, \
         revoked_at) VALUES ('t-ci', 'u-bob', 'ci', \
         'b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c', 500.0, 9.9e9, \
         510.0, NULL)",
    ),
    (
        4,
        "UPDATE requests SET workspace = 'team-a' WHERE id = 'req-failed'",
    ),
    (
        4,
        "INSERT INTO server_config (id, yaml, version, updated_at, updated_by) VALUES \
         (1, 'workspaces:\n  team-a: {}\n', 3, 600.0, 'u-alice')",
    ),
    (
        5,
        "INSERT INTO server_identity (id, user_id) VALUES (1, 'u-bob')",
    ),
    (
        6,
        "INSERT INTO placement_hosts (id, pool, cpus, memory_gb, gpus) VALUES \
         ('local', 'local', 8.0, 31.5, '[{\"index\": 0, \"model\": \"H100\"}]')",
    ),
    (
        6,
        "INSERT INTO placement_allocations (cluster_name, node_rank, host_id, cpus, \
         memory_gb, gpus, ports) VALUES ('c1', 0, 'local', 2.0, 4.0, '[0]', '[8080]')",
    ),
    (
        7,
        "INSERT INTO cluster_history (cluster_hash, name, status, user_id, workspace, infra, \
         launched_at, status_updated_at, num_nodes, resources, handle, autostop_minutes, \
         autostop_down, ever_up, last_use, ended_at) SELECT cluster_hash, name, status, \
         user_id, workspace, infra, launched_at, status_updated_at, num_nodes, resources, \
         handle, autostop_minutes, autostop_down, ever_up, last_use, NULL FROM clusters \
         WHERE ever_up = 1",
    ),
    (
        7,
        "INSERT INTO cluster_history (cluster_hash, name, status, user_id, workspace, infra, \
         launched_at, status_updated_at, num_nodes, resources, handle, autostop_minutes, \
         autostop_down, ever_up, last_use, ended_at) VALUES ('hash-gone', 'gone', 'UP', \
         'u-bob', 'default', 'local', 150.0, 160.0, 1, '{}', '{}', -1, 0, 1, \
         'sky launch -c gone', 700.0)",
    ),
    (
        8,
        "INSERT INTO ssh_pool_records (pool, hosts, updated_at) VALUES \
         ('rack', '[{\"host\": \"10.0.0.1\", \"user\": \"ubuntu\"}]', 800.0)",
    ),
    (
        9,
        "INSERT INTO managed_jobs (job_id, request_id, name, user_id, workspace, dag_yaml, \
         file_mounts_blob, entrypoint, submitted_at, cancel_requested, done, lease_owner, \
         lease_until) VALUES (4, 'req-jobs', 'train', 'u-alice', 'default', 'run: echo hi', NULL, \
         'sky jobs launch', 900.0, 0, 0, 's-old', 950.0)",
    ),
    (
        9,
        "INSERT INTO managed_job_tasks (job_id, task_id, task_name, resources, status, \
         schedule_state, start_at, end_at, run_seconds, last_started_at, recovery_count, \
         restarts, attempt, cluster_name, cluster_job_id, infra, failure_reason) VALUES \
         (4, 0, 'train', '1x[CPU:1]', 'RUNNING', 'ALIVE', 910.0, NULL, 5.0, 912.0, 1, 0, 2, \
         'train-4', 1, 'local', NULL)",
    ),
    (
        10,
        "INSERT INTO server_secrets (name, value) VALUES ('dashboard-forms', 'ab12')",
    ),
];

/// Tables whose rows must all survive, with the version that created them.
const TABLES: &[(i64, &str)] = &[
    (1, "users"),
    (1, "requests"),
    (1, "servers"),
    (2, "clusters"),
    (3, "tokens"),
    (4, "server_config"),
    (5, "server_identity"),
    (6, "placement_hosts"),
    (6, "placement_allocations"),
    (7, "cluster_history"),
    (8, "ssh_pool_records"),
    (9, "managed_jobs"),
    (9, "managed_job_tasks"),
    (10, "server_secrets"),
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn sqlite_fixture(version: i64) -> PathBuf {
    fixtures().join(format!("schema-v{version}.sqlite"))
}

fn postgres_fixture(version: i64) -> PathBuf {
    fixtures().join(format!("schema-v{version}.pg.sql"))
}

/// Row counts of every table the fixture's schema has.
async fn row_counts(url: &str, version: i64) -> Vec<(&'static str, i64)> {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    let mut counts = Vec::new();
    for (since, table) in TABLES {
        if *since <= version {
            let row = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
                .fetch_one(&mut conn)
                .await
                .unwrap();
            counts.push((*table, row.try_get::<i64, _>("n").unwrap()));
        }
    }
    conn.close().await.unwrap();
    counts
}

/// Opens the fixture of `version` at `url` with this binary (which migrates
/// it) and checks every seeded value is there and usable.
async fn upgrade_and_check(url: &str, version: i64) {
    let before = row_counts(url, version).await;
    assert!(
        before.iter().any(|(_, n)| *n > 0),
        "fixture v{version} holds no rows"
    );
    let store = SqlStore::open(url)
        .await
        .unwrap_or_else(|e| panic!("schema v{version} does not migrate: {e}"));
    check_upgraded(&store, version).await;
    store.close().await;
    let after = row_counts(url, version).await;
    assert_eq!(before, after, "rows lost migrating v{version}");
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    // A cluster that was up before the history existed is in it now (v7
    // added it to what was there).
    let c1_history: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM cluster_history WHERE cluster_hash = 'hash-1' \
         AND ended_at IS NULL",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap()
    .try_get("n")
    .unwrap();
    assert_eq!(
        c1_history,
        i64::from(version >= 2),
        "c1's history, from v{version}"
    );
    let applied: i64 = sqlx::query("SELECT MAX(version) AS v FROM _sqlx_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .try_get("v")
        .unwrap();
    conn.close().await.unwrap();
    assert_eq!(
        applied,
        SqlStore::schema_version(),
        "v{version} was not migrated"
    );
}

async fn check_upgraded(store: &SqlStore, version: i64) {
    let alice = store.get_user("u-alice").await.unwrap().expect("alice");
    assert_eq!((alice.name.as_str(), alice.created_at), ("alice", 100.5));
    let bob = store.get_user("u-bob").await.unwrap().expect("bob");
    assert_eq!(bob.role, Role::User, "users from before roles are users");

    let done = store
        .get_request("req-done")
        .await
        .unwrap()
        .expect("req-done");
    assert_eq!(done.status, RequestStatus::Succeeded);
    assert_eq!(done.schedule_type, ScheduleType::Long);
    assert_eq!(done.body["task"], "run: echo hi");
    assert_eq!(done.return_value, Some(serde_json::json!({"job_id": 1})));
    assert_eq!(
        (done.created_at, done.started_at, done.finished_at),
        (200.0, Some(201.0), Some(230.25))
    );
    assert_eq!(done.cluster_name.as_deref(), Some("c1"));
    let failed = store.get_request("req-failed").await.unwrap().unwrap();
    let error = failed.error.expect("the error survives");
    assert_eq!(
        (error.kind.as_str(), error.message.as_str()),
        ("sky.exceptions.ClusterNotUpError", "no cluster")
    );
    assert_eq!(
        (failed.status_msg.as_deref(), failed.attempts),
        (Some("failed fast"), 2)
    );
    // A request queued by the old server is still runnable by this one.
    let claimed = store
        .claim_next(ScheduleType::Short, "s-new", 1000.0)
        .await
        .unwrap()
        .expect("the pending request is claimable");
    assert_eq!(claimed.id, "req-pending");

    if version >= 2 {
        let c1 = store.get_cluster("c1").await.unwrap().expect("c1");
        assert_eq!(c1.status, ClusterStatus::Up);
        assert_eq!(c1.handle["nodes"][1]["rank"], 1);
        assert_eq!((c1.autostop_minutes, c1.autostop_down), (30, true));
        assert_eq!(store.list_clusters(Some("u-bob")).await.unwrap().len(), 1);
    }
    if version >= 3 {
        assert_eq!(alice.role, Role::Admin);
        assert_eq!(
            store.password_hash("u-alice").await.unwrap().as_deref(),
            Some("$apr1$c1h4rNxt$3tSOaYWcrHVOof67K0IUg0")
        );
        let token = store
            .token_by_hash("b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c")
            .await
            .unwrap()
            .expect("the token");
        assert_eq!((token.user_id.as_str(), token.revoked_at), ("u-bob", None));
    } else {
        assert_eq!(alice.role, Role::User);
    }
    let expected_workspace = if version >= 4 { "team-a" } else { "default" };
    let failed = store.get_request("req-failed").await.unwrap().unwrap();
    assert_eq!(failed.workspace, expected_workspace);
    if version >= 4 {
        let config = store.server_config().await.unwrap().expect("the config");
        assert_eq!(
            (config.yaml.as_str(), config.version),
            ("workspaces:\n  team-a: {}\n", 3)
        );
    } else {
        assert_eq!(store.server_config().await.unwrap(), None);
    }
    // Before v5 no server's user was recorded: the first to start records
    // its own.
    let expected_server_user = if version >= 5 { "u-bob" } else { "s-local" };
    assert_eq!(
        store.server_user_id("s-local").await.unwrap(),
        expected_server_user
    );
    // Before v6 nothing was placed: every cluster shared the machine.
    let held = store.list_allocations("local").await.unwrap();
    if version >= 6 {
        assert_eq!(held.len(), 1);
        assert_eq!(
            (held[0].cluster.as_str(), &held[0].gpus, &held[0].ports),
            ("c1", &vec![0], &vec![8080])
        );
        assert_eq!(store.list_hosts("local").await.unwrap()[0].gpus.len(), 1);
    } else {
        assert!(held.is_empty());
    }
    let ended = store.list_ended_clusters(None, None).await.unwrap();
    if version >= 7 {
        assert_eq!(ended.len(), 1);
        assert_eq!(
            (ended[0].cluster.name.as_str(), ended[0].ended_at),
            ("gone", 700.0)
        );
        assert_eq!(ended[0].cluster.user_id, "u-bob");
    } else {
        assert!(ended.is_empty(), "nothing ended before the history existed");
    }
    let pools = store.list_ssh_pool_records().await.unwrap();
    if version >= 8 {
        assert_eq!(
            pools,
            vec![(
                "rack".to_owned(),
                r#"[{"host": "10.0.0.1", "user": "ubuntu"}]"#.to_owned()
            )]
        );
    } else {
        assert!(pools.is_empty(), "no pool was recorded before v8");
    }
    let jobs = store.list_managed_jobs(None).await.unwrap();
    if version >= 9 {
        let [job] = &jobs[..] else {
            panic!("one managed job: {jobs:?}")
        };
        assert_eq!((job.job_id, job.name.as_str()), (4, "train"));
        assert_eq!(job.lease_owner.as_deref(), Some("s-old"));
        let [task] = &job.tasks[..] else {
            panic!("one task: {job:?}")
        };
        assert_eq!(
            task.status,
            skydeck_types::managed_jobs::ManagedJobStatus::Running
        );
        assert_eq!((task.attempt, task.recovery_count), (2, 1));
        assert_eq!(task.cluster_name.as_deref(), Some("train-4"));
    } else {
        assert!(jobs.is_empty(), "no managed job before v9");
    }
    // A secret recorded before is kept; a database from before secrets
    // records the one proposed.
    let secret = store
        .shared_secret("dashboard-forms", "cd34")
        .await
        .unwrap();
    assert_eq!(secret, if version >= 10 { "ab12" } else { "cd34" });
}

#[test]
fn every_schema_version_has_fixtures() {
    for version in 1..=SqlStore::schema_version() {
        for path in [sqlite_fixture(version), postgres_fixture(version)] {
            assert!(
                path.exists(),
                "{} is missing: see the top of tests/upgrades.rs for how to write it",
                path.display()
            );
        }
    }
}

#[tokio::test]
async fn sqlite_states_of_every_schema_migrate_forward_with_nothing_lost() {
    for version in 1..=SqlStore::schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("state.db");
        std::fs::copy(sqlite_fixture(version), &copy).unwrap();
        upgrade_and_check(&format!("sqlite://{}", copy.display()), version).await;
    }
}

#[tokio::test]
async fn postgres_dumps_of_every_schema_migrate_forward_with_nothing_lost() {
    let Some(admin_url) = postgres_admin_url() else {
        return;
    };
    for version in 1..=SqlStore::schema_version() {
        let (url, name) = create_database(&admin_url).await;
        let dump = std::fs::read_to_string(postgres_fixture(version)).unwrap();
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(&dump)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("cannot load schema-v{version}.pg.sql: {e}"));
        conn.close().await.unwrap();
        upgrade_and_check(&url, version).await;
        drop_database(&admin_url, &name).await;
    }
}

fn postgres_admin_url() -> Option<String> {
    match std::env::var("SKYDECK_TEST_POSTGRES_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must test PostgreSQL upgrades: set SKYDECK_TEST_POSTGRES_URL"
            );
            eprintln!("SKYDECK_TEST_POSTGRES_URL unset: skipping the PostgreSQL upgrades");
            None
        }
    }
}

async fn create_database(admin_url: &str) -> (String, String) {
    let name = format!("skydeck_upgrade_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(admin_url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let base = admin_url.rsplit_once('/').unwrap().0;
    (format!("{base}/{name}"), name)
}

async fn drop_database(admin_url: &str, name: &str) {
    let mut admin = sqlx::PgConnection::connect(admin_url).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
}

/// Writes the fixtures of schema versions that have none; never rewrites
/// one (a shipped schema's fixture is a record of what users have).
#[tokio::test]
#[ignore = "writes fixtures; run by hand after adding a migration"]
async fn write_missing_fixtures() {
    let admin_url = std::env::var("SKYDECK_TEST_POSTGRES_URL")
        .expect("SKYDECK_TEST_POSTGRES_URL: the PostgreSQL dump needs a server");
    for version in 1..=SqlStore::schema_version() {
        let sqlite = sqlite_fixture(version);
        if !sqlite.exists() {
            let url = format!("sqlite://{}", sqlite.display());
            SqlStore::create_at_schema(&url, version).await.unwrap();
            seed(&url, version).await;
            let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
            sqlx::query("VACUUM").execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
            eprintln!("wrote {}", sqlite.display());
        }
        let dump_path = postgres_fixture(version);
        if !dump_path.exists() {
            let (url, name) = create_database(&admin_url).await;
            SqlStore::create_at_schema(&url, version).await.unwrap();
            seed(&url, version).await;
            let output = std::process::Command::new(pg_dump())
                .args(["--no-owner", "--no-privileges", "--inserts", &url])
                .output()
                .expect("pg_dump runs");
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            // psql meta-commands (`\restrict` in newer dumps) are not SQL;
            // without them the dump loads through any SQL connection.
            let dump: String = String::from_utf8(output.stdout)
                .unwrap()
                .lines()
                .filter(|line| !line.starts_with('\\'))
                .map(|line| format!("{line}\n"))
                .collect();
            std::fs::write(&dump_path, dump).unwrap();
            drop_database(&admin_url, &name).await;
            eprintln!("wrote {}", dump_path.display());
        }
    }
}

async fn seed(url: &str, version: i64) {
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    for (since, statement) in SEED {
        if *since <= version {
            sqlx::query(statement)
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("seed v{version}: {statement}: {e}"));
        }
    }
    conn.close().await.unwrap();
}

/// The newest installed `pg_dump` (Debian keeps it out of PATH).
fn pg_dump() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin/pg_dump"))
        .filter(|path| path.exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| PathBuf::from("pg_dump"))
}
