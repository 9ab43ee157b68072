//! The cluster history: clusters torn down stay listed for the cost report.

use skydeck_store::{ClusterRecord, ClusterStatus, SqlStore, Store};
use std::sync::Arc;

fn cluster(name: &str, user: &str, hash: &str) -> ClusterRecord {
    ClusterRecord {
        name: name.to_owned(),
        status: ClusterStatus::Init,
        user_id: user.to_owned(),
        workspace: "default".to_owned(),
        infra: "local".to_owned(),
        cluster_hash: hash.to_owned(),
        launched_at: Some(10.0),
        status_updated_at: 10.0,
        num_nodes: 2,
        resources: serde_json::json!({"cpus": 2.0}),
        handle: serde_json::json!({"capacity": {"cpus": 2.0}}),
        autostop_minutes: -1,
        autostop_down: false,
        ever_up: false,
        last_use: Some(format!("sky launch -c {name}")),
    }
}

fn up(mut record: ClusterRecord, at: f64) -> ClusterRecord {
    record.status = ClusterStatus::Up;
    record.status_updated_at = at;
    record.ever_up = true;
    record
}

/// (name, hash, ended_at) of what the history lists.
async fn ended(
    store: &SqlStore,
    user: Option<&str>,
    since: Option<f64>,
) -> Vec<(String, String, f64)> {
    store
        .list_ended_clusters(user, since)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.cluster.name, e.cluster.cluster_hash, e.ended_at))
        .collect()
}

pub async fn torn_down_clusters_stay_in_the_history_with_their_end(store: Arc<SqlStore>) {
    // Launched (first UP through put_cluster), stopped, torn down.
    let a = cluster("a", "u1", "hash-a1");
    store.put_cluster(&a).await.unwrap();
    store.put_cluster(&up(a.clone(), 20.0)).await.unwrap();
    assert!(ended(&store, None, None).await.is_empty(), "a exists still");
    store
        .set_cluster_status("a", ClusterStatus::Stopped, 30.0)
        .await
        .unwrap();
    assert!(store.delete_cluster("a", 40.0).await.unwrap());
    let history = store.list_ended_clusters(None, None).await.unwrap();
    assert_eq!(history.len(), 1);
    let a_ended = &history[0];
    assert_eq!(a_ended.ended_at, 40.0);
    assert_eq!(a_ended.cluster.user_id, "u1");
    assert_eq!(a_ended.cluster.num_nodes, 2);
    assert_eq!(a_ended.cluster.launched_at, Some(10.0));
    assert_eq!(a_ended.cluster.handle["capacity"]["cpus"], 2.0);
    // Its fields as they last were: stopped at 30.
    assert_eq!(a_ended.cluster.status, ClusterStatus::Stopped);
    assert_eq!(a_ended.cluster.status_updated_at, 30.0);

    // The same name launched again is a second incarnation; UP reached
    // through set_cluster_status.
    store
        .put_cluster(&cluster("a", "u1", "hash-a2"))
        .await
        .unwrap();
    store
        .set_cluster_status("a", ClusterStatus::Up, 50.0)
        .await
        .unwrap();
    assert!(store.delete_cluster("a", 60.0).await.unwrap());

    // Never UP (a failed first launch): not history.
    store
        .put_cluster(&cluster("failed", "u1", "hash-f"))
        .await
        .unwrap();
    assert!(store.delete_cluster("failed", 65.0).await.unwrap());

    // Another user's.
    let b = up(cluster("b", "u2", "hash-b"), 20.0);
    store.put_cluster(&b).await.unwrap();
    assert!(store.delete_cluster("b", 70.0).await.unwrap());

    assert_eq!(
        ended(&store, None, None).await,
        [
            ("b".to_owned(), "hash-b".to_owned(), 70.0),
            ("a".to_owned(), "hash-a2".to_owned(), 60.0),
            ("a".to_owned(), "hash-a1".to_owned(), 40.0),
        ]
    );
    assert_eq!(
        ended(&store, Some("u1"), None).await,
        [
            ("a".to_owned(), "hash-a2".to_owned(), 60.0),
            ("a".to_owned(), "hash-a1".to_owned(), 40.0),
        ]
    );
    assert_eq!(
        ended(&store, Some("u1"), Some(50.0)).await,
        [("a".to_owned(), "hash-a2".to_owned(), 60.0)]
    );
    assert_eq!(ended(&store, None, Some(71.0)).await, []);
    assert!(store.list_clusters(None).await.unwrap().is_empty());
}
