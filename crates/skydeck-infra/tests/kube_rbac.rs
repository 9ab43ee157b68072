//! The Kubernetes backend with exactly the Helm chart's RBAC: a backend
//! authenticated as a ServiceAccount holding the chart's default
//! `rbac.namespaceRules` (a Role) and `rbac.clusterRules` (a ClusterRole),
//! read from charts/skydeck/values.yaml so the test follows the chart,
//! launches, runs and tears down a cluster; with a permission taken away
//! it fails naming it. On the real test Kubernetes
//! (`SKYDECK_TEST_KUBECONFIG`, `SKYDECK_TEST_KUBE_IMAGE`); skips without
//! it, except under CI.
//!
//! Copies the `skydeck` binary into the pods as the agent: `cargo build -p
//! skydeck` first.

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;
use skydeck_infra::kubernetes::{KubeProvider, KubeSettings, KubeTarget};
use skydeck_infra::{ClusterName, ClusterSpec, NodeRequest, Provider};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The ServiceAccount the backend runs as, in the test's namespace.
const ACCOUNT: &str = "skydeck-api-sa";

fn skydeck_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let binary = exe.parent().unwrap().parent().unwrap().join("skydeck");
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build -p skydeck` first",
        binary.display()
    );
    binary
}

fn image() -> String {
    std::env::var("SKYDECK_TEST_KUBE_IMAGE")
        .ok()
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| "localhost/debian:bookworm".to_owned())
}

/// The admin kubeconfig's client configuration, or `None` (skip).
async fn admin_config() -> Option<kube::Config> {
    let path = match std::env::var_os("SKYDECK_TEST_KUBECONFIG") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must set SKYDECK_TEST_KUBECONFIG to the admin kubeconfig of the test Kubernetes"
            );
            eprintln!("skipping: SKYDECK_TEST_KUBECONFIG is not set");
            return None;
        }
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubeconfig = kube::config::Kubeconfig::read_from(&path)
        .unwrap_or_else(|e| panic!("SKYDECK_TEST_KUBECONFIG={}: {e}", path.display()));
    Some(
        kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap(),
    )
}

/// The chart's default rules, `rbac.<key>` of its values.yaml.
fn chart_rules(key: &str) -> Vec<PolicyRule> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../charts/skydeck/values.yaml"
    );
    let values: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let rules = serde_json::to_value(&values["rbac"][key]).unwrap();
    let rules: Vec<PolicyRule> = serde_json::from_value(rules)
        .unwrap_or_else(|e| panic!("rbac.{key} of {path} are not RBAC rules: {e}"));
    assert!(!rules.is_empty(), "rbac.{key} of {path} is empty");
    rules
}

fn object<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).unwrap()
}

async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

/// A namespace with a ServiceAccount bound to the given rules, and a
/// ClusterRole of the chart's cluster rules bound to it; all deleted on
/// drop.
struct Granted {
    admin: kube::Config,
    namespace: String,
    cluster_role: String,
    /// The client authenticated as the ServiceAccount.
    client: kube::Client,
}

impl Granted {
    async fn new(admin: kube::Config, test: &str, namespace_rules: Vec<PolicyRule>) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let namespace = format!(
            "skydeck-rbac-{test}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let cluster_role = format!("{namespace}-api-role");
        let client = kube::Client::try_from(admin.clone()).unwrap();
        let pp = PostParams::default();
        // Cleanup is set up first: a failure below still removes all.
        let mut granted = Self {
            admin,
            namespace: namespace.clone(),
            cluster_role: cluster_role.clone(),
            client: client.clone(),
        };
        Api::<Namespace>::all(client.clone())
            .create(&pp, &object(json!({"metadata": {"name": namespace}})))
            .await
            .unwrap();
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &namespace);
        // Pods wait for the namespace's default service account.
        assert!(
            eventually(Duration::from_secs(60), || async {
                accounts.get_opt("default").await.ok().flatten().is_some()
            })
            .await,
            "namespace {namespace} got no default service account"
        );
        accounts
            .create(&pp, &object(json!({"metadata": {"name": ACCOUNT}})))
            .await
            .unwrap();
        let subject = json!([{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": namespace}]);
        Api::<Role>::namespaced(client.clone(), &namespace)
            .create(
                &pp,
                &object(json!({"metadata": {"name": "api-role"}, "rules": namespace_rules})),
            )
            .await
            .unwrap();
        Api::<RoleBinding>::namespaced(client.clone(), &namespace)
            .create(
                &pp,
                &object(json!({
                    "metadata": {"name": "api-role-binding"},
                    "subjects": subject,
                    "roleRef": {"kind": "Role", "name": "api-role",
                                "apiGroup": "rbac.authorization.k8s.io"},
                })),
            )
            .await
            .unwrap();
        Api::<ClusterRole>::all(client.clone())
            .create(
                &pp,
                &object(json!({
                    "metadata": {"name": cluster_role},
                    "rules": chart_rules("clusterRules"),
                })),
            )
            .await
            .unwrap();
        Api::<ClusterRoleBinding>::all(client.clone())
            .create(
                &pp,
                &object(json!({
                    "metadata": {"name": format!("{cluster_role}-binding")},
                    "subjects": subject,
                    "roleRef": {"kind": "ClusterRole", "name": cluster_role,
                                "apiGroup": "rbac.authorization.k8s.io"},
                })),
            )
            .await
            .unwrap();
        let token: TokenRequest = accounts
            .create_token_request(
                ACCOUNT,
                &pp,
                &object(json!({"spec": {"audiences": [], "expirationSeconds": 3600}})),
            )
            .await
            .unwrap();
        let token = token.status.expect("a token").token;
        let mut config = granted.admin.clone();
        config.auth_info = object(json!({"token": token}));
        config.default_namespace = namespace.clone();
        granted.client = kube::Client::try_from(config).unwrap();
        // The authorizer learns of the new bindings a moment later.
        let nodes = Api::<k8s_openapi::api::core::v1::Node>::all(granted.client.clone());
        let pods: Api<Pod> = Api::namespaced(granted.client.clone(), &namespace);
        assert!(
            eventually(Duration::from_secs(30), || async {
                pods.list(&ListParams::default()).await.is_ok()
                    && nodes.list(&ListParams::default()).await.is_ok()
            })
            .await,
            "the ServiceAccount never got its rules"
        );
        granted
    }

    fn provider(&self) -> KubeProvider {
        KubeProvider::new(KubeTarget {
            context: "rbac-test".to_owned(),
            client: self.client.clone(),
            namespace: self.namespace.clone(),
            settings: KubeSettings::default(),
        })
        .with_program(skydeck_binary())
    }
}

impl Drop for Granted {
    fn drop(&mut self) {
        let (admin, namespace, role) = (
            self.admin.clone(),
            self.namespace.clone(),
            self.cluster_role.clone(),
        );
        // A client lives on the runtime that made it, which this drop
        // blocks: a fresh one, on a runtime of its own.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(async move {
                    let client = kube::Client::try_from(admin).unwrap();
                    let dp = DeleteParams::default();
                    let _ = Api::<ClusterRoleBinding>::all(client.clone())
                        .delete(&format!("{role}-binding"), &dp)
                        .await;
                    let _ = Api::<ClusterRole>::all(client.clone())
                        .delete(&role, &dp)
                        .await;
                    let _ = Api::<Namespace>::all(client).delete(&namespace, &dp).await;
                });
        })
        .join();
    }
}

fn spec(name: &str) -> ClusterSpec {
    ClusterSpec {
        name: ClusterName::new(name).unwrap(),
        num_nodes: 1,
        user_hash: "abcd1234".to_owned(),
        node: NodeRequest {
            cpus: Some(0.5),
            memory_gb: Some(0.25),
            image: Some(format!("docker:{}", image())),
            ..NodeRequest::default()
        },
        allocations: Vec::new(),
    }
}

#[tokio::test]
async fn the_charts_rules_are_enough_to_launch_run_and_tear_down() {
    let Some(admin) = admin_config().await else {
        return;
    };
    let granted = Granted::new(admin, "exact", chart_rules("namespaceRules")).await;
    let provider = granted.provider();
    let handle = provider.provision(&spec("rbac")).await.unwrap();
    let out = provider
        .head_runner(&handle)
        .run(&["hostname".to_owned()], None)
        .await
        .unwrap();
    assert_eq!(
        (out.code, out.stdout.trim()),
        (0, "rbac-abcd1234-head"),
        "{out:?}"
    );
    provider.terminate(&handle).await.unwrap();
    let left = Api::<Pod>::namespaced(granted.client.clone(), &granted.namespace)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(left.items.is_empty(), "pods left: {:?}", left.items.len());
}

#[tokio::test]
async fn without_pods_exec_the_launch_fails_naming_the_missing_permission() {
    let Some(admin) = admin_config().await else {
        return;
    };
    let mut rules = chart_rules("namespaceRules");
    for rule in &mut rules {
        if let Some(resources) = rule.resources.as_mut() {
            resources.retain(|r| r != "pods/exec");
        }
    }
    let granted = Granted::new(admin, "noexec", rules).await;
    let provider = granted.provider();
    let err = provider
        .provision(&spec("noexec"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("pods/exec"), "{err}");
    assert!(err.to_lowercase().contains("forbidden"), "{err}");
    assert!(err.contains(ACCOUNT), "names the account: {err}");
    assert!(
        err.contains("rbac.namespaceRules"),
        "points at the chart: {err}"
    );
    provider
        .terminate_unrecorded(&ClusterName::new("noexec").unwrap())
        .await
        .unwrap();
}
