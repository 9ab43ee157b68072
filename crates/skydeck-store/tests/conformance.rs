//! One conformance suite for every [`Store`] backend.
//!
//! Each test runs the same assertions against SQLite and PostgreSQL. The
//! PostgreSQL run needs `SKYDECK_TEST_POSTGRES_URL` (an admin URL such as
//! `postgresql://postgres@127.0.0.1:5433/postgres`); `scripts/test.sh`
//! starts a real server and sets it. Each test gets a database of its own.

use skydeck_store::{
    ClusterRecord, ClusterStatus, NewRequest, Outcome, RequestFilter, Role, ServerInfo, SqlStore,
    Store, TokenRecord, User,
};
use skydeck_types::{RequestError, RequestStatus, ScheduleType};
use sqlx::Connection;
use std::collections::HashSet;
use std::sync::Arc;

mod history;
mod managed_jobs;
mod placement;
use history::torn_down_clusters_stay_in_the_history_with_their_end;
use managed_jobs::{
    managed_jobs_get_ids_in_order_and_keep_their_tasks, only_the_lease_holder_drives_a_job,
    pages_of_managed_jobs_count_the_whole_selection, racing_inserts_get_distinct_ids,
    released_leases_are_taken_at_once_and_claims_split_jobs,
};
use placement::{
    hosts_are_recorded_and_their_capacity_updated,
    placements_are_recorded_released_and_freed_with_their_cluster,
    racing_placements_never_double_book_the_last_gpu,
};

/// A store on a throw-away database, dropped with it.
struct TestDb {
    store: Arc<SqlStore>,
    url: String,
    _dir: Option<tempfile::TempDir>,
    cleanup: Option<(String, String)>,
}

impl TestDb {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/state.db", dir.path().display());
        let store = SqlStore::open(&url).await.unwrap();
        Self {
            store: Arc::new(store),
            url,
            _dir: Some(dir),
            cleanup: None,
        }
    }

    /// `None` when no PostgreSQL server was given; CI always gives one.
    async fn postgres() -> Option<Self> {
        let Ok(admin_url) = std::env::var("SKYDECK_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the PostgreSQL conformance suite: set SKYDECK_TEST_POSTGRES_URL"
            );
            eprintln!("SKYDECK_TEST_POSTGRES_URL unset: skipping the PostgreSQL run");
            return None;
        };
        let name = format!("skydeck_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let base = admin_url.rsplit_once('/').unwrap().0;
        let url = format!("{base}/{name}");
        let store = SqlStore::open(&url).await.unwrap();
        Some(Self {
            store: Arc::new(store),
            url,
            _dir: None,
            cleanup: Some((admin_url, name)),
        })
    }

    async fn drop_database(self) {
        self.store.close().await;
        if let Some((admin_url, name)) = self.cleanup {
            let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut admin)
                .await
                .unwrap();
        }
    }
}

/// Runs `suite` on SQLite, then on PostgreSQL when one is available.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = super::TestDb::sqlite().await;
                    super::$name(db.store.clone()).await;
                    db.drop_database().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(db) = super::TestDb::postgres().await {
                        super::$name(db.store.clone()).await;
                        db.drop_database().await;
                    }
                }
            )*
        }
    };
}

conformance!(
    users_are_created_renamed_and_listed,
    roles_and_passwords_are_set_and_deleting_a_user_revokes_their_tokens,
    tokens_are_found_by_hash_listed_touched_and_revoked,
    a_token_with_an_expiry_after_one_without_is_stored,
    the_servers_user_id_is_recorded_once_and_shared,
    the_servers_first_user_id_wins_a_race,
    requests_round_trip_every_field,
    prefixes_resolve_within_a_users_requests,
    listing_filters_and_orders_newest_first,
    pages_of_requests_are_counted_and_searched,
    claims_take_the_oldest_pending_request_of_a_pool,
    concurrent_claims_hand_each_request_to_one_server,
    finishing_records_the_outcome_only_while_running,
    requeued_requests_are_claimed_again,
    requests_inserted_running_belong_to_their_server,
    requests_inserted_finished_keep_their_outcome,
    cancel_stops_pending_and_running_but_not_finished_requests,
    statuses_are_reported_for_many_ids,
    active_requests_are_counted_per_pool_and_status,
    only_finished_requests_older_than_the_cutoff_are_deleted,
    servers_register_heartbeat_and_leave,
    clusters_are_stored_updated_listed_and_deleted,
    a_cluster_name_is_claimed_by_exactly_one_of_racing_users,
    the_server_config_is_replaced_whole_and_versioned,
    hosts_are_recorded_and_their_capacity_updated,
    placements_are_recorded_released_and_freed_with_their_cluster,
    racing_placements_never_double_book_the_last_gpu,
    torn_down_clusters_stay_in_the_history_with_their_end,
    ssh_pool_records_are_replaced_listed_and_deleted,
    managed_jobs_get_ids_in_order_and_keep_their_tasks,
    racing_inserts_get_distinct_ids,
    only_the_lease_holder_drives_a_job,
    released_leases_are_taken_at_once_and_claims_split_jobs,
    pages_of_managed_jobs_count_the_whole_selection,
);

async fn ssh_pool_records_are_replaced_listed_and_deleted(store: Arc<SqlStore>) {
    assert!(store.list_ssh_pool_records().await.unwrap().is_empty());
    store.put_ssh_pool_record("rack", "[1]", 1.0).await.unwrap();
    store.put_ssh_pool_record("a", "[]", 1.0).await.unwrap();
    store.put_ssh_pool_record("rack", "[2]", 2.0).await.unwrap();
    assert_eq!(
        store.list_ssh_pool_records().await.unwrap(),
        vec![
            ("a".to_owned(), "[]".to_owned()),
            ("rack".to_owned(), "[2]".to_owned())
        ]
    );
    assert!(store.delete_ssh_pool_record("rack").await.unwrap());
    assert!(!store.delete_ssh_pool_record("rack").await.unwrap());
    assert_eq!(store.list_ssh_pool_records().await.unwrap().len(), 1);
}

async fn the_server_config_is_replaced_whole_and_versioned(store: Arc<SqlStore>) {
    assert_eq!(store.server_config().await.unwrap(), None);
    assert_eq!(store.server_config_version().await.unwrap(), 0);
    let first = store
        .put_server_config("allowed_clouds: [local]\n", "admin", 10.0)
        .await
        .unwrap();
    let second = store
        .put_server_config("workspaces: {}\n", "root", 20.0)
        .await
        .unwrap();
    assert!(second > first, "{first} then {second}");
    assert_eq!(store.server_config_version().await.unwrap(), second);
    let stored = store.server_config().await.unwrap().unwrap();
    assert_eq!(stored.yaml, "workspaces: {}\n");
    assert_eq!(stored.version, second);
    assert_eq!(stored.updated_at, 20.0);
    assert_eq!(stored.updated_by.as_deref(), Some("root"));
}

fn new_request(id: &str, name: &str, schedule: ScheduleType, created_at: f64) -> NewRequest {
    NewRequest {
        id: id.to_owned(),
        name: name.to_owned(),
        entrypoint: "sky status".to_owned(),
        body: serde_json::json!({"cluster_names": ["c1"], "nested": {"k": [1, 2.5, null]}}),
        schedule_type: schedule,
        user_id: "u1".to_owned(),
        cluster_name: None,
        created_at,
        workspace: "team-a".to_owned(),
    }
}

async fn users_are_created_renamed_and_listed(store: Arc<SqlStore>) {
    assert_eq!(store.get_user("u1").await.unwrap(), None);
    let alice = User {
        id: "u1".into(),
        name: "alice".into(),
        created_at: 10.0,
        role: Role::Admin,
    };
    store.upsert_user(&alice).await.unwrap();
    store
        .upsert_user(&User {
            id: "u1".into(),
            name: "alice2".into(),
            created_at: 99.0,
            role: Role::User,
        })
        .await
        .unwrap();
    store
        .upsert_user(&User {
            id: "u0".into(),
            name: "bob".into(),
            created_at: 11.0,
            role: Role::User,
        })
        .await
        .unwrap();
    let user = store.get_user("u1").await.unwrap().unwrap();
    assert_eq!(user.name, "alice2");
    assert_eq!(
        user.created_at, 10.0,
        "renaming must keep the creation time"
    );
    assert_eq!(user.role, Role::Admin, "renaming must keep the role");
    let names: Vec<_> = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["alice2", "bob"]);
}

fn user(id: &str, name: &str, created_at: f64) -> User {
    User {
        id: id.into(),
        name: name.into(),
        created_at,
        role: Role::User,
    }
}

fn token(id: &str, user_id: &str, created_at: f64) -> TokenRecord {
    TokenRecord {
        id: id.into(),
        user_id: user_id.into(),
        name: format!("{id}-name"),
        hash: format!("hash-of-{id}"),
        created_at,
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
    }
}

async fn roles_and_passwords_are_set_and_deleting_a_user_revokes_their_tokens(
    store: Arc<SqlStore>,
) {
    // Two users may share a name (clients name themselves); the one that
    // can log in is the one found by name.
    store.upsert_user(&user("old", "carol", 1.0)).await.unwrap();
    store
        .upsert_user(&user("acct", "carol", 2.0))
        .await
        .unwrap();
    assert_eq!(
        store.get_user_by_name("carol").await.unwrap().unwrap().id,
        "old"
    );
    assert!(
        store
            .set_password_hash("acct", Some("$2b$12$abc"))
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_user_by_name("carol").await.unwrap().unwrap().id,
        "acct"
    );
    assert_eq!(
        store.password_hash("acct").await.unwrap().as_deref(),
        Some("$2b$12$abc")
    );
    assert_eq!(store.password_hash("old").await.unwrap(), None);
    assert!(!store.set_password_hash("nobody", Some("x")).await.unwrap());
    assert_eq!(store.get_user_by_name("nobody").await.unwrap(), None);

    assert!(store.set_user_role("acct", Role::Admin).await.unwrap());
    assert_eq!(
        store.get_user("acct").await.unwrap().unwrap().role,
        Role::Admin
    );
    assert!(!store.set_user_role("nobody", Role::Admin).await.unwrap());

    store.insert_token(&token("t1", "acct", 5.0)).await.unwrap();
    store.insert_token(&token("t2", "old", 6.0)).await.unwrap();
    assert!(store.delete_user("acct", 50.0).await.unwrap());
    assert_eq!(store.get_user("acct").await.unwrap(), None);
    let revoked = store.token_by_hash("hash-of-t1").await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(50.0));
    assert!(!revoked.is_valid_at(51.0));
    let kept = store.token_by_hash("hash-of-t2").await.unwrap().unwrap();
    assert_eq!(kept.revoked_at, None, "only the deleted user's tokens go");
    assert!(!store.delete_user("acct", 60.0).await.unwrap());
}

/// A token without an expiry first, then one with: PostgreSQL refused the
/// second ("incorrect binary data format") while the insert was a cached
/// statement, typed by the first's NULL.
async fn a_token_with_an_expiry_after_one_without_is_stored(store: Arc<SqlStore>) {
    store.insert_token(&token("t0", "u0", 5.0)).await.unwrap();
    let mut later = token("t9", "u0", 6.0);
    later.expires_at = Some(60.0);
    store.insert_token(&later).await.unwrap();
    assert_eq!(
        store.token_by_hash("hash-of-t9").await.unwrap(),
        Some(later)
    );
}

async fn tokens_are_found_by_hash_listed_touched_and_revoked(store: Arc<SqlStore>) {
    let mut expiring = token("t1", "u1", 10.0);
    expiring.expires_at = Some(100.0);
    store.insert_token(&expiring).await.unwrap();
    store.insert_token(&token("t2", "u1", 20.0)).await.unwrap();
    store.insert_token(&token("t3", "u2", 30.0)).await.unwrap();
    assert_eq!(
        store.token_by_hash("hash-of-t1").await.unwrap(),
        Some(expiring.clone())
    );
    assert_eq!(store.token_by_hash("nope").await.unwrap(), None);
    assert!(expiring.is_valid_at(99.0));
    assert!(!expiring.is_valid_at(100.0), "expired at its expiry time");

    let ids = |tokens: Vec<TokenRecord>| tokens.into_iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_tokens(None).await.unwrap()),
        ["t3", "t2", "t1"]
    );
    assert_eq!(
        ids(store.list_tokens(Some("u1")).await.unwrap()),
        ["t2", "t1"]
    );

    store.touch_token("t2", 25.0).await.unwrap();
    let touched = store.token_by_hash("hash-of-t2").await.unwrap().unwrap();
    assert_eq!(touched.last_used_at, Some(25.0));

    assert!(store.revoke_token("t2", 26.0).await.unwrap());
    assert!(
        !store.revoke_token("t2", 27.0).await.unwrap(),
        "already revoked"
    );
    assert!(!store.revoke_token("nope", 27.0).await.unwrap());
    let revoked = store.token_by_hash("hash-of-t2").await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(26.0));

    // The hash is unique: a second token with the same secret is refused.
    let mut clash = token("t9", "u1", 40.0);
    clash.hash = "hash-of-t1".into();
    assert!(store.insert_token(&clash).await.is_err());
}

async fn the_servers_user_id_is_recorded_once_and_shared(store: Arc<SqlStore>) {
    assert_eq!(store.server_user_id("aaaa1111").await.unwrap(), "aaaa1111");
    // A later server proposes its own id (a fresh state directory) and gets
    // the recorded one.
    assert_eq!(store.server_user_id("bbbb2222").await.unwrap(), "aaaa1111");
    // Servers starting at once all agree.
    let mut starts = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        starts.push(tokio::spawn(async move {
            store.server_user_id(&format!("cccc{i:04}")).await.unwrap()
        }));
    }
    for start in starts {
        assert_eq!(start.await.unwrap(), "aaaa1111");
    }
}

async fn the_servers_first_user_id_wins_a_race(store: Arc<SqlStore>) {
    let mut starts = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        starts.push(tokio::spawn(async move {
            store.server_user_id(&format!("dddd{i:04}")).await.unwrap()
        }));
    }
    let mut ids = HashSet::new();
    for start in starts {
        ids.insert(start.await.unwrap());
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert!(ids.iter().all(|id| id.starts_with("dddd")));
}

async fn requests_round_trip_every_field(store: Arc<SqlStore>) {
    let mut request = new_request("r-1", "sky.launch", ScheduleType::Long, 1_700_000_000.25);
    request.cluster_name = Some("c1".into());
    store.insert_request(&request).await.unwrap();
    let stored = store.get_request("r-1").await.unwrap().unwrap();
    assert_eq!(stored.id, "r-1");
    assert_eq!(stored.name, "sky.launch");
    assert_eq!(stored.entrypoint, "sky status");
    assert_eq!(stored.body, request.body);
    assert_eq!(stored.status, RequestStatus::Pending);
    assert_eq!(stored.schedule_type, ScheduleType::Long);
    assert_eq!(stored.user_id, "u1");
    assert_eq!(stored.cluster_name.as_deref(), Some("c1"));
    assert_eq!(stored.created_at, 1_700_000_000.25);
    assert_eq!(stored.workspace, "team-a");
    assert_eq!(stored.started_at, None);
    assert_eq!(stored.return_value, None);
    assert_eq!(stored.error, None);
    assert_eq!(stored.attempts, 0);
    assert!(store.get_request("r-2").await.unwrap().is_none());
    assert!(
        store.insert_request(&request).await.is_err(),
        "a duplicate id must be refused, not overwrite the first request"
    );
}

async fn prefixes_resolve_within_a_users_requests(store: Arc<SqlStore>) {
    for (i, (id, user)) in [
        ("abc1", "u1"),
        ("abc2", "u2"),
        ("abd3", "u1"),
        ("a_c4", "u1"),
    ]
    .iter()
    .enumerate()
    {
        let mut request = new_request(id, "sky.status", ScheduleType::Short, i as f64);
        request.user_id = (*user).into();
        store.insert_request(&request).await.unwrap();
    }
    let ids = |prefix: &'static str, user: Option<&'static str>| {
        let store = store.clone();
        async move {
            store
                .request_ids_with_prefix(prefix, user, 10)
                .await
                .unwrap()
        }
    };
    assert_eq!(ids("abc", None).await, ["abc2", "abc1"]);
    assert_eq!(ids("abc", Some("u1")).await, ["abc1"]);
    assert_eq!(ids("ab", Some("u2")).await, ["abc2"]);
    assert!(ids("zz", None).await.is_empty());
    assert_eq!(
        ids("a_", None).await,
        ["a_c4"],
        "'_' must match itself, not any character"
    );
    assert_eq!(ids("a%", None).await, Vec::<String>::new());
    assert_eq!(
        store
            .request_ids_with_prefix("a", None, 2)
            .await
            .unwrap()
            .len(),
        2
    );
}

async fn listing_filters_and_orders_newest_first(store: Arc<SqlStore>) {
    for (id, schedule, created, user, cluster) in [
        ("r1", ScheduleType::Short, 1.0, "u1", None),
        ("r2", ScheduleType::Long, 2.0, "u2", Some("c1")),
        ("r3", ScheduleType::Short, 3.0, "u1", Some("c1")),
    ] {
        let mut request = new_request(id, "sky.status", schedule, created);
        request.user_id = user.into();
        request.cluster_name = cluster.map(Into::into);
        store.insert_request(&request).await.unwrap();
    }
    store
        .claim_next(ScheduleType::Long, "s1", 5.0)
        .await
        .unwrap()
        .unwrap();
    let ids = |filter: RequestFilter| {
        let store = store.clone();
        async move {
            store
                .list_requests(&filter)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(ids(RequestFilter::default()).await, ["r3", "r2", "r1"]);
    assert_eq!(
        ids(RequestFilter {
            limit: Some(2),
            ..Default::default()
        })
        .await,
        ["r3", "r2"]
    );
    assert_eq!(
        ids(RequestFilter {
            user_id: Some("u1".into()),
            ..Default::default()
        })
        .await,
        ["r3", "r1"]
    );
    assert_eq!(
        ids(RequestFilter {
            cluster_name: Some("c1".into()),
            ..Default::default()
        })
        .await,
        ["r3", "r2"]
    );
    assert_eq!(
        ids(RequestFilter {
            statuses: Some(vec![RequestStatus::Running]),
            ..Default::default()
        })
        .await,
        ["r2"]
    );
    assert_eq!(
        ids(RequestFilter {
            statuses: Some(vec![RequestStatus::Pending, RequestStatus::Succeeded]),
            schedule_type: Some(ScheduleType::Short),
            ..Default::default()
        })
        .await,
        ["r3", "r1"]
    );
    assert!(
        ids(RequestFilter {
            statuses: Some(vec![]),
            ..Default::default()
        })
        .await
        .is_empty()
    );
}

async fn pages_of_requests_are_counted_and_searched(store: Arc<SqlStore>) {
    store.upsert_user(&user("u1", "alice", 0.0)).await.unwrap();
    store.upsert_user(&user("u2", "bob_b", 0.0)).await.unwrap();
    for i in 0..7 {
        let mut request = new_request(
            &format!("r{i}"),
            "sky.launch",
            ScheduleType::Short,
            f64::from(i),
        );
        request.user_id = if i % 2 == 0 { "u1" } else { "u2" }.into();
        request.entrypoint = format!("sky launch -c Train-{i}");
        request.cluster_name = (i == 3).then(|| "gpu_box".to_owned());
        store.insert_request(&request).await.unwrap();
    }
    let page = |filter: RequestFilter| {
        let store = store.clone();
        async move {
            let ids: Vec<String> = store
                .list_requests(&filter)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect();
            (store.count_requests(&filter).await.unwrap(), ids)
        }
    };
    let second = RequestFilter {
        limit: Some(3),
        offset: Some(3),
        ..Default::default()
    };
    assert_eq!(
        page(second).await,
        (7, vec!["r3".into(), "r2".into(), "r1".into()])
    );
    let past_the_end = RequestFilter {
        limit: Some(3),
        offset: Some(9),
        ..Default::default()
    };
    assert_eq!(page(past_the_end).await, (7, vec![]));
    let text = |text: &str| RequestFilter {
        text: Some(text.into()),
        ..Default::default()
    };
    // The command, case aside; the cluster; the user's name.
    assert_eq!(page(text("TRAIN-5")).await, (1, vec!["r5".into()]));
    assert_eq!(page(text("gpu_b")).await, (1, vec!["r3".into()]));
    assert_eq!(page(text("alice")).await.0, 4);
    // LIKE's wildcards match only themselves.
    assert_eq!(page(text("b_b")).await.0, 3, "bob_b's requests");
    assert_eq!(page(text("a_i")).await.0, 0, "'_' is not any character");
    assert_eq!(page(text("%")).await.0, 0, "'%' is not any text");
    let only_u1 = RequestFilter {
        user_id: Some("u1".into()),
        text: Some("train".into()),
        offset: Some(1),
        ..Default::default()
    };
    assert_eq!(
        page(only_u1).await,
        (4, vec!["r4".into(), "r2".into(), "r0".into()])
    );
}

async fn claims_take_the_oldest_pending_request_of_a_pool(store: Arc<SqlStore>) {
    store
        .insert_request(&new_request("late", "sky.status", ScheduleType::Short, 2.0))
        .await
        .unwrap();
    store
        .insert_request(&new_request(
            "early",
            "sky.status",
            ScheduleType::Short,
            1.0,
        ))
        .await
        .unwrap();
    store
        .insert_request(&new_request("long", "sky.launch", ScheduleType::Long, 0.5))
        .await
        .unwrap();
    let first = store
        .claim_next(ScheduleType::Short, "s1", 7.0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.id, "early");
    assert_eq!(first.status, RequestStatus::Running);
    assert_eq!(first.server_id.as_deref(), Some("s1"));
    assert_eq!(first.started_at, Some(7.0));
    assert_eq!(first.attempts, 1);
    let second = store
        .claim_next(ScheduleType::Short, "s1", 7.0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.id, "late");
    assert!(
        store
            .claim_next(ScheduleType::Short, "s1", 7.0)
            .await
            .unwrap()
            .is_none(),
        "the long request must not be handed to the short pool"
    );
}

async fn concurrent_claims_hand_each_request_to_one_server(store: Arc<SqlStore>) {
    const N: usize = 40;
    for i in 0..N {
        store
            .insert_request(&new_request(
                &format!("r{i:03}"),
                "sky.status",
                ScheduleType::Short,
                i as f64,
            ))
            .await
            .unwrap();
    }
    let mut workers = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        workers.push(tokio::spawn(async move {
            let mut claimed = Vec::new();
            while let Some(request) = store
                .claim_next(ScheduleType::Short, &format!("s{w}"), 1.0)
                .await
                .unwrap()
            {
                claimed.push(request.id);
            }
            claimed
        }));
    }
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), N, "every request is claimed exactly once");
    assert_eq!(unique.len(), N);
}

async fn finishing_records_the_outcome_only_while_running(store: Arc<SqlStore>) {
    for id in ["ok", "bad"] {
        store
            .insert_request(&new_request(id, "sky.status", ScheduleType::Short, 1.0))
            .await
            .unwrap();
    }
    let outcome = Outcome::Succeeded(serde_json::json!([{"name": "c1"}]));
    assert!(
        store
            .finish_request("ok", "s1", &outcome, 2.0)
            .await
            .unwrap()
            .is_none(),
        "a PENDING request cannot finish"
    );
    store
        .claim_next(ScheduleType::Short, "s1", 1.5)
        .await
        .unwrap();
    store
        .claim_next(ScheduleType::Short, "s1", 1.5)
        .await
        .unwrap();
    assert!(
        store
            .finish_request("ok", "s2", &outcome, 2.0)
            .await
            .unwrap()
            .is_none(),
        "only the owning server may finish a request"
    );
    let finished = store
        .finish_request("ok", "s1", &outcome, 2.0)
        .await
        .unwrap()
        .expect("the owner finishes its RUNNING request");
    let done = store.get_request("ok").await.unwrap().unwrap();
    assert_eq!(finished, done, "the returned record is the stored one");
    assert_eq!(done.status, RequestStatus::Succeeded);
    assert_eq!(done.return_value, Some(serde_json::json!([{"name": "c1"}])));
    assert_eq!(done.finished_at, Some(2.0));
    assert_eq!(done.server_id, None);
    assert!(
        store
            .finish_request("ok", "s1", &outcome, 3.0)
            .await
            .unwrap()
            .is_none(),
        "a finished request stays finished"
    );

    let error = RequestError::new("ClusterDoesNotExist", "Cluster 'c9' does not exist.");
    let finished = store
        .finish_request("bad", "s1", &Outcome::Failed(error.clone()), 2.0)
        .await
        .unwrap()
        .expect("the owner finishes its RUNNING request");
    let failed = store.get_request("bad").await.unwrap().unwrap();
    assert_eq!(finished, failed);
    assert_eq!(failed.status, RequestStatus::Failed);
    assert_eq!(failed.error, Some(error));
    assert_eq!(failed.return_value, None);
}

async fn requests_inserted_running_belong_to_their_server(store: Arc<SqlStore>) {
    let request = new_request("fast", "sky.status", ScheduleType::Short, 1.0);
    let running = store
        .insert_running_request(&request, "s1", 1.5)
        .await
        .unwrap();
    assert_eq!(running.status, RequestStatus::Running);
    assert_eq!(running.server_id.as_deref(), Some("s1"));
    assert_eq!(running.started_at, Some(1.5));
    assert_eq!(running.attempts, 1);
    assert_eq!(running.body, request.body);
    assert_eq!(store.get_request("fast").await.unwrap().unwrap(), running);
    assert!(
        store
            .claim_next(ScheduleType::Short, "s2", 2.0)
            .await
            .unwrap()
            .is_none(),
        "a request inserted RUNNING is not in the queue"
    );
    assert!(
        store
            .insert_running_request(&request, "s2", 2.0)
            .await
            .is_err(),
        "a duplicate id must be refused"
    );
    let finished = store
        .finish_request(
            "fast",
            "s1",
            &Outcome::Succeeded(serde_json::json!([])),
            3.0,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(finished.status, RequestStatus::Succeeded);
}

async fn requests_inserted_finished_keep_their_outcome(store: Arc<SqlStore>) {
    let ok = new_request("done-ok", "sky.status", ScheduleType::Short, 1.0);
    let value = serde_json::json!([{"name": "c1"}]);
    let stored = store
        .insert_finished_request(&ok, 1.25, &Outcome::Succeeded(value.clone()), 1.5)
        .await
        .unwrap();
    assert_eq!(stored.status, RequestStatus::Succeeded);
    assert_eq!(stored.return_value, Some(value));
    assert_eq!(
        (stored.started_at, stored.finished_at),
        (Some(1.25), Some(1.5))
    );
    assert_eq!((stored.server_id.as_deref(), stored.attempts), (None, 1));
    assert_eq!(store.get_request("done-ok").await.unwrap().unwrap(), stored);

    let bad = new_request("done-bad", "sky.status", ScheduleType::Short, 2.0);
    let error = RequestError::new("ValueError", "no such workspace");
    let stored = store
        .insert_finished_request(&bad, 2.0, &Outcome::Failed(error.clone()), 2.5)
        .await
        .unwrap();
    assert_eq!(stored.status, RequestStatus::Failed);
    assert_eq!(stored.error, Some(error));
    assert_eq!(stored.return_value, None);
    assert!(
        store
            .claim_next(ScheduleType::Short, "s1", 3.0)
            .await
            .unwrap()
            .is_none(),
        "a finished request is not queued"
    );
    assert_eq!(store.cancel_request("done-ok", 3.0).await.unwrap(), None);
}

async fn only_finished_requests_older_than_the_cutoff_are_deleted(store: Arc<SqlStore>) {
    for (id, finished_at) in [("old-1", 10.0), ("old-2", 20.0), ("new", 200.0)] {
        store
            .insert_finished_request(
                &new_request(id, "sky.status", ScheduleType::Short, finished_at - 1.0),
                finished_at,
                &Outcome::Succeeded(serde_json::Value::Null),
                finished_at,
            )
            .await
            .unwrap();
    }
    // Old but still waiting or running: never deleted.
    store
        .insert_request(&new_request(
            "old-pending",
            "sky.launch",
            ScheduleType::Long,
            1.0,
        ))
        .await
        .unwrap();
    store
        .insert_running_request(
            &new_request("old-running", "sky.launch", ScheduleType::Long, 1.0),
            "s1",
            2.0,
        )
        .await
        .unwrap();
    // Cancelled while pending, long ago.
    store
        .insert_request(&new_request(
            "old-cancelled",
            "sky.launch",
            ScheduleType::Long,
            3.0,
        ))
        .await
        .unwrap();
    store.cancel_request("old-cancelled", 5.0).await.unwrap();

    let first = store.delete_finished_requests(100.0, 2).await.unwrap();
    assert_eq!(
        first,
        ["old-cancelled", "old-1"],
        "oldest first, at most the limit"
    );
    let rest = store.delete_finished_requests(100.0, 10).await.unwrap();
    assert_eq!(rest, ["old-2"]);
    assert!(
        store
            .delete_finished_requests(100.0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    for gone in ["old-1", "old-2", "old-cancelled"] {
        assert!(store.get_request(gone).await.unwrap().is_none(), "{gone}");
    }
    for kept in ["new", "old-pending", "old-running"] {
        assert!(store.get_request(kept).await.unwrap().is_some(), "{kept}");
    }
}

async fn requeued_requests_are_claimed_again(store: Arc<SqlStore>) {
    store
        .insert_request(&new_request("r", "sky.launch", ScheduleType::Long, 1.0))
        .await
        .unwrap();
    store
        .claim_next(ScheduleType::Long, "old", 2.0)
        .await
        .unwrap()
        .unwrap();
    assert!(
        !store.requeue_request("r", "other", "x").await.unwrap(),
        "only the owner's requests are requeued"
    );
    assert!(
        store
            .requeue_request("r", "old", "server restarted")
            .await
            .unwrap()
    );
    let pending = store.get_request("r").await.unwrap().unwrap();
    assert_eq!(pending.status, RequestStatus::Pending);
    assert_eq!(pending.status_msg.as_deref(), Some("server restarted"));
    let again = store
        .claim_next(ScheduleType::Long, "new", 3.0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.attempts, 2);
    assert_eq!(again.server_id.as_deref(), Some("new"));
}

async fn cancel_stops_pending_and_running_but_not_finished_requests(store: Arc<SqlStore>) {
    for (id, created) in [("running", 1.0), ("pending", 2.0), ("done", 0.5)] {
        store
            .insert_request(&new_request(id, "sky.status", ScheduleType::Short, created))
            .await
            .unwrap();
    }
    let done = store
        .claim_next(ScheduleType::Short, "s", 1.0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.id, "done");
    store
        .finish_request(
            "done",
            "s",
            &Outcome::Succeeded(serde_json::Value::Null),
            1.0,
        )
        .await
        .unwrap();
    store
        .claim_next(ScheduleType::Short, "s", 1.0)
        .await
        .unwrap()
        .unwrap();

    assert_eq!(
        store.cancel_request("running", 5.0).await.unwrap(),
        Some(RequestStatus::Running)
    );
    assert_eq!(
        store.cancel_request("pending", 5.0).await.unwrap(),
        Some(RequestStatus::Pending)
    );
    assert_eq!(store.cancel_request("done", 5.0).await.unwrap(), None);
    assert_eq!(store.cancel_request("missing", 5.0).await.unwrap(), None);
    assert_eq!(
        store.cancel_request("pending", 6.0).await.unwrap(),
        None,
        "cancelling twice is a no-op"
    );
    let cancelled = store.get_request("running").await.unwrap().unwrap();
    assert_eq!(cancelled.status, RequestStatus::Cancelled);
    assert_eq!(cancelled.finished_at, Some(5.0));
    assert!(
        store
            .finish_request(
                "running",
                "s",
                &Outcome::Succeeded(serde_json::json!(1)),
                7.0
            )
            .await
            .unwrap()
            .is_none(),
        "a late result must not overwrite the cancellation"
    );
    assert_eq!(
        store.get_request("done").await.unwrap().unwrap().status,
        RequestStatus::Succeeded
    );
}

async fn statuses_are_reported_for_many_ids(store: Arc<SqlStore>) {
    let mut ids = Vec::new();
    for i in 0..250 {
        let id = format!("r{i:03}");
        store
            .insert_request(&new_request(
                &id,
                "sky.status",
                ScheduleType::Short,
                i as f64,
            ))
            .await
            .unwrap();
        ids.push(id);
    }
    store.cancel_request("r007", 1.0).await.unwrap();
    ids.push("missing".into());
    let statuses = store.request_statuses(&ids).await.unwrap();
    assert_eq!(statuses.len(), 250);
    let cancelled: Vec<_> = statuses
        .iter()
        .filter(|(_, s)| *s == RequestStatus::Cancelled)
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(cancelled, ["r007"]);
}

async fn active_requests_are_counted_per_pool_and_status(store: Arc<SqlStore>) {
    assert!(store.active_request_counts().await.unwrap().is_empty());
    for (id, pool) in [
        ("s1", ScheduleType::Short),
        ("s2", ScheduleType::Short),
        ("s3", ScheduleType::Short),
        ("l1", ScheduleType::Long),
        ("l2", ScheduleType::Long),
    ] {
        store
            .insert_request(&new_request(id, "sky.status", pool, 1.0))
            .await
            .unwrap();
    }
    store
        .claim_next(ScheduleType::Long, "srv", 2.0)
        .await
        .unwrap()
        .unwrap();
    store.cancel_request("s3", 3.0).await.unwrap();
    let mut counts = store.active_request_counts().await.unwrap();
    counts.sort_by_key(|(pool, status, _)| (pool.as_str(), status.as_str()));
    assert_eq!(
        counts,
        [
            (ScheduleType::Long, RequestStatus::Pending, 1),
            (ScheduleType::Long, RequestStatus::Running, 1),
            (ScheduleType::Short, RequestStatus::Pending, 2),
        ],
        "finished requests are not counted"
    );
}

async fn servers_register_heartbeat_and_leave(store: Arc<SqlStore>) {
    let server = ServerInfo {
        id: "s1".into(),
        hostname: "host-a".into(),
        pid: 4242,
        started_at: 1.0,
        heartbeat_at: 1.0,
    };
    store.register_server(&server).await.unwrap();
    store
        .register_server(&ServerInfo {
            id: "s2".into(),
            started_at: 2.0,
            heartbeat_at: 2.0,
            ..server.clone()
        })
        .await
        .unwrap();
    store.heartbeat_server("s1", 9.5).await.unwrap();
    let servers = store.list_servers().await.unwrap();
    assert_eq!(servers.len(), 2);
    assert_eq!(servers[0].id, "s1");
    assert_eq!(servers[0].heartbeat_at, 9.5);
    assert_eq!(servers[0].pid, 4242);
    store.remove_server("s1").await.unwrap();
    let ids: Vec<_> = store
        .list_servers()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, ["s2"]);
}

fn cluster(name: &str, user: &str) -> ClusterRecord {
    ClusterRecord {
        name: name.to_owned(),
        status: ClusterStatus::Init,
        user_id: user.to_owned(),
        workspace: "default".to_owned(),
        infra: "local".to_owned(),
        cluster_hash: format!("hash-{name}"),
        launched_at: Some(10.5),
        status_updated_at: 10.5,
        num_nodes: 2,
        resources: serde_json::json!({"cpus": 2.0, "accelerators": {"H100": 1}}),
        handle: serde_json::json!({"nodes": [{"rank": 0, "ip": "127.0.0.1"}]}),
        autostop_minutes: -1,
        autostop_down: false,
        ever_up: false,
        last_use: Some("sky launch -c c1".to_owned()),
    }
}

async fn clusters_are_stored_updated_listed_and_deleted(store: Arc<SqlStore>) {
    let c1 = cluster("c1", "u1");
    store.put_cluster(&c1).await.unwrap();
    store.put_cluster(&cluster("b2", "u2")).await.unwrap();
    assert_eq!(store.get_cluster("c1").await.unwrap().unwrap(), c1);
    assert!(store.get_cluster("nope").await.unwrap().is_none());

    let names = |clusters: Vec<ClusterRecord>| -> Vec<String> {
        clusters.into_iter().map(|c| c.name).collect()
    };
    assert_eq!(
        names(store.list_clusters(None).await.unwrap()),
        ["b2", "c1"]
    );
    assert_eq!(
        names(store.list_clusters(Some("u1")).await.unwrap()),
        ["c1"]
    );

    assert!(
        store
            .set_cluster_status("c1", ClusterStatus::Up, 20.0)
            .await
            .unwrap()
    );
    let up = store.get_cluster("c1").await.unwrap().unwrap();
    assert_eq!(up.status, ClusterStatus::Up);
    assert_eq!(up.status_updated_at, 20.0);
    assert!(up.ever_up, "reaching UP is remembered");
    assert!(
        store
            .set_cluster_status("c1", ClusterStatus::Stopped, 30.0)
            .await
            .unwrap()
    );
    let stopped = store.get_cluster("c1").await.unwrap().unwrap();
    assert_eq!(stopped.status, ClusterStatus::Stopped);
    assert!(stopped.ever_up, "stopping keeps ever_up");
    assert!(
        !store
            .set_cluster_status("nope", ClusterStatus::Up, 1.0)
            .await
            .unwrap()
    );

    assert!(store.set_cluster_autostop("c1", 10, true).await.unwrap());
    let auto = store.get_cluster("c1").await.unwrap().unwrap();
    assert_eq!((auto.autostop_minutes, auto.autostop_down), (10, true));

    let mut replaced = cluster("c1", "u1");
    replaced.cluster_hash = "new-incarnation".to_owned();
    replaced.handle = serde_json::json!({"nodes": []});
    store.put_cluster(&replaced).await.unwrap();
    assert_eq!(store.get_cluster("c1").await.unwrap().unwrap(), replaced);

    assert!(store.delete_cluster("c1", 900.0).await.unwrap());
    assert!(!store.delete_cluster("c1", 900.0).await.unwrap());
    assert_eq!(names(store.list_clusters(None).await.unwrap()), ["b2"]);
}

async fn a_cluster_name_is_claimed_by_exactly_one_of_racing_users(store: Arc<SqlStore>) {
    let claims = (0..20).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let user = if i % 2 == 0 { "u-a" } else { "u-b" };
            let mut mine = cluster("contested", user);
            mine.cluster_hash = format!("attempt-{i}");
            store.claim_cluster(&mine).await.unwrap()
        })
    });
    let mut seen = Vec::new();
    for claim in claims {
        seen.push(claim.await.unwrap());
    }
    let stored = store.get_cluster("contested").await.unwrap().unwrap();
    assert!(
        seen.iter().all(|row| *row == stored),
        "every claim answers with the one stored row: {seen:?}"
    );
    let winners = seen
        .iter()
        .filter(|row| row.cluster_hash == stored.cluster_hash)
        .count();
    assert_eq!(
        winners, 20,
        "the losers get the winner's row, not their own"
    );

    // A claim of a taken name changes nothing of the row.
    let mut late = cluster("contested", "u-late");
    late.status = ClusterStatus::Up;
    assert_eq!(store.claim_cluster(&late).await.unwrap(), stored);
    assert_eq!(
        store.get_cluster("contested").await.unwrap().unwrap(),
        stored
    );

    // A free name is the claimant's, exactly as given.
    let fresh = cluster("fresh", "u-late");
    assert_eq!(store.claim_cluster(&fresh).await.unwrap(), fresh);
    assert_eq!(store.get_cluster("fresh").await.unwrap().unwrap(), fresh);
}

/// Reopening a database (what a restarted or second server does) finds the
/// data, and a database migrated by a newer Skydeck is refused.
async fn reopen_keeps_data_and_refuses_newer_schemas(db: TestDb) {
    db.store
        .insert_request(&new_request("kept", "sky.status", ScheduleType::Short, 1.0))
        .await
        .unwrap();
    let reopened = SqlStore::open(&db.url).await.unwrap();
    assert_eq!(
        reopened.get_request("kept").await.unwrap().unwrap().name,
        "sky.status"
    );
    reopened.close().await;

    let newer = SqlStore::schema_version() + 1;
    let checksum = match db.store.dialect() {
        skydeck_store::Dialect::Sqlite => "X'00'",
        skydeck_store::Dialect::Postgres => "'\\x00'::bytea",
    };
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    sqlx::query(&format!(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ({newer}, 'from the future', TRUE, {checksum}, 0)"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    match SqlStore::open(&db.url).await {
        Err(skydeck_store::StoreError::SchemaTooNew { found, known, .. }) => {
            assert_eq!((found, known), (newer, newer - 1));
        }
        Err(other) => panic!("expected SchemaTooNew, got {other}"),
        Ok(_) => panic!("a newer schema must be refused"),
    }
    db.drop_database().await;
}

#[tokio::test]
async fn sqlite_reopen_keeps_data_and_refuses_newer_schemas() {
    reopen_keeps_data_and_refuses_newer_schemas(TestDb::sqlite().await).await;
}

#[tokio::test]
async fn postgres_reopen_keeps_data_and_refuses_newer_schemas() {
    if let Some(db) = TestDb::postgres().await {
        reopen_keeps_data_and_refuses_newer_schemas(db).await;
    }
}

/// Under steady load SQLite's own checkpoints never get to reset the log,
/// so the server relies on this one to keep `state.db-wal` from growing.
#[tokio::test]
async fn sqlite_checkpoint_empties_the_write_ahead_log() {
    let db = TestDb::sqlite().await;
    for i in 0..200 {
        let id = format!("wal-{i}");
        db.store
            .insert_request(&new_request(&id, "sky.status", ScheduleType::Short, 1.0))
            .await
            .unwrap();
    }
    let wal = std::path::PathBuf::from(format!("{}-wal", db.url.trim_start_matches("sqlite://")));
    let wal_size = || std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert!(wal_size() > 0, "inserts must have gone through the log");
    db.store.checkpoint().await.unwrap();
    assert_eq!(wal_size(), 0);
    assert!(db.store.get_request("wal-199").await.unwrap().is_some());
    db.drop_database().await;
}
