//! Replicas sharing PostgreSQL share one config: a change saved through one
//! reaches the other on its next upkeep tick, without a restart.

use skydeck_server::live_config::{ConfigSource, LiveConfig};
use skydeck_store::{SqlStore, Store};
use std::sync::Arc;

#[tokio::test]
async fn a_config_saved_through_one_replica_reaches_the_other() {
    let Ok(url) = std::env::var("SKYDECK_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the PostgreSQL tests: set SKYDECK_TEST_POSTGRES_URL"
        );
        eprintln!("SKYDECK_TEST_POSTGRES_URL unset: skipping");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Each replica has its own state directory; the file is only a seed.
    let open = |name: &str| {
        let path = dir.path().join(format!("{name}.yaml"));
        let url = url.clone();
        async move {
            let store: Arc<dyn Store> = Arc::new(SqlStore::open(&url).await.unwrap());
            LiveConfig::open(path, store).await.unwrap()
        }
    };
    let first = open("first").await;
    let second = open("second").await;
    assert_eq!(first.source(), ConfigSource::Database);

    let workspace = format!("team-{}", uuid::Uuid::new_v4().simple());
    let config = serde_json::json!({ "workspaces": { workspace.clone(): { "private": true } } });
    first.replace(config, "admin").await.unwrap();
    assert!(first.get().workspace(&workspace).is_some());
    assert!(
        second.get().workspace(&workspace).is_none(),
        "not before its tick"
    );
    second.refresh().await;
    assert!(second.get().workspace(&workspace).unwrap().private);
    assert_eq!(second.version(), first.version());
    assert!(
        !dir.path().join("first.yaml").exists(),
        "with a database the config is not written to a file"
    );
}
