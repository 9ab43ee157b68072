//! The `local` provider only ever acts inside its clusters root: a stored
//! handle that points elsewhere, or a symbolic link planted where a
//! cluster directory should be, is refused and nothing is removed; a
//! cluster too large for one machine is refused before anything is made.

use skydeck_infra::local::{DEFAULT_MAX_NODES, ENV_MAX_NODES, LocalProvider};
use skydeck_infra::{
    Capacity, ClusterName, ClusterSpec, Handle, InfraError, NodeRequest, Provider,
};
use std::path::{Path, PathBuf};

struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    /// A directory outside the root that must survive every test.
    victim: PathBuf,
    provider: LocalProvider,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("clusters");
    let victim = tmp.path().join("state");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("state.db"), b"precious").unwrap();
    // The agent program is never started by these tests.
    let provider = LocalProvider::new(root.clone(), PathBuf::from("/nonexistent/skydeck"));
    Setup {
        _tmp: tmp,
        root,
        victim,
        provider,
    }
}

fn handle(name: &str, dir: &Path) -> Handle {
    Handle {
        cluster_name: ClusterName::new(name).unwrap(),
        cluster_dir: dir.display().to_string(),
        nodes: Vec::new(),
        capacity: Capacity::default(),
        ports: Vec::new(),
        request: None,
        hosts: Vec::new(),
    }
}

fn assert_refused(result: Result<(), InfraError>) {
    match result {
        Err(InfraError::Refused(message)) => assert!(message.contains("refusing"), "{message}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_handle_pointing_outside_its_cluster_directory_is_refused() {
    let s = setup();
    for dir in [
        s.victim.clone(),
        s.root.clone(),
        s.root.join("c1/../../state"),
    ] {
        assert_refused(s.provider.terminate(&handle("c1", &dir)).await);
        assert!(s.victim.join("state.db").exists(), "{dir:?}");
        assert!(s.root.exists());
    }
    // Another cluster's directory is not this one's either.
    std::fs::create_dir_all(s.root.join("other")).unwrap();
    assert_refused(
        s.provider
            .terminate(&handle("c1", &s.root.join("other")))
            .await,
    );
    assert!(s.root.join("other").exists());
}

#[tokio::test]
async fn a_symbolic_link_in_place_of_a_cluster_directory_is_not_followed() {
    let s = setup();
    let link = s.root.join("c1");
    std::os::unix::fs::symlink(&s.victim, &link).unwrap();
    assert_refused(s.provider.terminate(&handle("c1", &link)).await);
    let name = ClusterName::new("c1").unwrap();
    assert_refused(s.provider.terminate_unrecorded(&name).await);
    assert!(s.victim.join("state.db").exists());
}

#[tokio::test]
async fn down_removes_the_clusters_own_directory() {
    let s = setup();
    let dir = s.root.join("c1");
    std::fs::create_dir_all(dir.join("nodes/0")).unwrap();
    s.provider.terminate(&handle("c1", &dir)).await.unwrap();
    assert!(!dir.exists());
    assert!(s.victim.join("state.db").exists());
}

fn spec(num_nodes: u32) -> ClusterSpec {
    ClusterSpec {
        name: ClusterName::new("big").unwrap(),
        num_nodes,
        user_hash: "u1".to_owned(),
        node: NodeRequest::default(),
        allocations: Vec::new(),
    }
}

#[tokio::test]
async fn a_cluster_larger_than_one_machine_hosts_is_refused_before_anything_is_made() {
    let s = setup();
    for num_nodes in [DEFAULT_MAX_NODES + 1, 1_000_000] {
        match s.provider.provision(&spec(num_nodes)).await {
            Err(InfraError::Unsatisfiable(message)) => {
                assert!(message.contains(&num_nodes.to_string()), "{message}");
                assert!(
                    message.contains(&DEFAULT_MAX_NODES.to_string()),
                    "{message}"
                );
                assert!(message.contains(ENV_MAX_NODES), "{message}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(
        std::fs::read_dir(&s.root).unwrap().count(),
        0,
        "nothing made"
    );
    // The cap is the server's to set.
    let small = LocalProvider::new(s.root.clone(), PathBuf::from("skydeck")).with_max_nodes(2);
    assert!(small.admits(&spec(2)).is_ok());
    assert!(matches!(
        small.admits(&spec(3)),
        Err(InfraError::Unsatisfiable(_))
    ));
}

#[tokio::test]
async fn a_clusters_directory_under_another_state_directory_counts_only_if_it_is_that_cluster() {
    let s = setup();
    // Shaped like another server's cluster directory, but with no
    // description of the cluster in it: refused, left alone.
    let elsewhere = s.victim.join("clusters").join("c1");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("state.db"), b"precious").unwrap();
    assert_refused(s.provider.terminate(&handle("c1", &elsewhere)).await);
    assert!(elsewhere.join("state.db").exists());
    // A description naming another cluster does not make it this one's.
    std::fs::write(
        elsewhere.join("cluster.json"),
        br#"{"name": "c2", "num_nodes": 1, "nodes": [{"rank": 0, "ip": "127.0.0.1", "dir": "/x"}]}"#,
    )
    .unwrap();
    assert_refused(s.provider.terminate(&handle("c1", &elsewhere)).await);
    assert!(elsewhere.join("state.db").exists());
}
