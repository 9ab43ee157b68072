//! The real Kubernetes the test script brings up (`scripts/kube-up.sh`):
//! its admin kubeconfig comes in `SKYDECK_TEST_KUBECONFIG`. Tests skip
//! without it, except under CI, where they fail: CI must run them.
//!
//! The cluster is shared: a test changes a node only through [`NodePatch`],
//! and calls its `restore` before it reports (so also when it fails).

#![allow(dead_code)]

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A dev cluster to test against.
pub struct TestKube {
    pub kubeconfig: PathBuf,
    /// The kubeconfig's current context.
    pub context: String,
    pub client: kube::Client,
}

/// The cluster named by `SKYDECK_TEST_KUBECONFIG`, or `None` to skip.
pub async fn test_kube() -> Option<TestKube> {
    let Some(path) = std::env::var_os("SKYDECK_TEST_KUBECONFIG").filter(|p| !p.is_empty()) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must set SKYDECK_TEST_KUBECONFIG to the admin kubeconfig of the test \
             Kubernetes (scripts/kube-up.sh DIR writes DIR/admin.kubeconfig)"
        );
        eprintln!("skipping: SKYDECK_TEST_KUBECONFIG is not set (scripts/kube-up.sh provides it)");
        return None;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubeconfig = PathBuf::from(path);
    let config = Kubeconfig::read_from(&kubeconfig).expect("read SKYDECK_TEST_KUBECONFIG");
    let context = config
        .current_context
        .clone()
        .expect("the test kubeconfig has a current context");
    let client_config = kube::Config::from_custom_kubeconfig(
        config,
        &KubeConfigOptions {
            context: Some(context.clone()),
            ..KubeConfigOptions::default()
        },
    )
    .await
    .expect("a client config");
    let client = kube::Client::try_from(client_config).expect("a client");
    Some(TestKube {
        kubeconfig,
        context,
        client,
    })
}

impl TestKube {
    /// The name of the cluster's first node.
    pub async fn first_node(&self) -> String {
        Api::<Node>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .expect("list nodes")
            .items
            .into_iter()
            .find_map(|n| n.metadata.name)
            .expect("the test cluster has a node")
    }
}

/// Labels and extended resources put on a node for a test, taken off again
/// by `restore`.
pub struct NodePatch {
    nodes: Api<Node>,
    node: String,
    labels: Vec<String>,
    resources: Vec<String>,
}

impl NodePatch {
    /// Puts `labels` on `node` and advertises `resources` (name, count) in
    /// its status, as a device plugin would, waiting until the node's
    /// allocatable shows them.
    pub async fn apply(
        kube: &TestKube,
        node: &str,
        labels: &[(&str, &str)],
        resources: &[(&str, u32)],
    ) -> Self {
        let nodes: Api<Node> = Api::all(kube.client.clone());
        let patch = Self {
            nodes: nodes.clone(),
            node: node.to_owned(),
            labels: labels.iter().map(|(k, _)| (*k).to_owned()).collect(),
            resources: resources.iter().map(|(k, _)| (*k).to_owned()).collect(),
        };
        let label_map: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::json!(v)))
            .collect();
        nodes
            .patch(
                node,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"metadata": {"labels": label_map}})),
            )
            .await
            .expect("label the node");
        if !resources.is_empty() {
            let list: serde_json::Map<String, serde_json::Value> = resources
                .iter()
                .map(|(k, n)| ((*k).to_owned(), serde_json::json!(n.to_string())))
                .collect();
            nodes
                .patch_status(
                    node,
                    &PatchParams::default(),
                    &Patch::Merge(serde_json::json!({
                        "status": {"capacity": list, "allocatable": list}
                    })),
                )
                .await
                .expect("advertise the resources");
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let current = nodes.get(node).await.expect("read the node");
                let allocatable = current
                    .status
                    .and_then(|s| s.allocatable)
                    .unwrap_or_default();
                if resources
                    .iter()
                    .all(|(k, n)| allocatable.get(*k).is_some_and(|q| q.0 == n.to_string()))
                {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the node never showed {resources:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        patch
    }

    /// Takes the labels and resources off again.
    pub async fn restore(&self) {
        let labels: serde_json::Map<String, serde_json::Value> = self
            .labels
            .iter()
            .map(|k| (k.clone(), serde_json::Value::Null))
            .collect();
        let _ = self
            .nodes
            .patch(
                &self.node,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"metadata": {"labels": labels}})),
            )
            .await;
        if !self.resources.is_empty() {
            let removed: serde_json::Map<String, serde_json::Value> = self
                .resources
                .iter()
                .map(|k| (k.clone(), serde_json::Value::Null))
                .collect();
            let _ = self
                .nodes
                .patch_status(
                    &self.node,
                    &PatchParams::default(),
                    &Patch::Merge(serde_json::json!({
                        "status": {"capacity": removed, "allocatable": removed}
                    })),
                )
                .await;
        }
    }
}

/// A kubeconfig with one more context, `unreachable`, whose API server
/// does not exist (port 1 on loopback), beside the test cluster's.
pub fn with_unreachable_context(dir: &std::path::Path) -> PathBuf {
    let path = dir.join("unreachable.kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: nowhere\n  cluster: {server: \
         \"https://127.0.0.1:1\"}\nusers:\n- name: nobody\n  user: {token: none}\ncontexts:\n- \
         name: unreachable\n  context: {cluster: nowhere, user: nobody}\n",
    )
    .unwrap();
    path
}
