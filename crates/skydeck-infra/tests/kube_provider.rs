//! The Kubernetes provider against a real Kubernetes (1.20, single node,
//! real pods; `SKYDECK_TEST_KUBECONFIG` names its admin kubeconfig and
//! `SKYDECK_TEST_KUBE_IMAGE` an image its nodes hold, default
//! `localhost/debian:bookworm`). Without the kubeconfig a test skips,
//! except under CI, where it fails. Each test works in a namespace of its
//! own, made and deleted by the test.
//!
//! Copies the `skydeck` binary into the pods as the agent: `cargo build -p
//! skydeck` first.

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use skydeck_agent::protocol::{JobSpec, JobStatus};
use skydeck_infra::kubernetes::provider::exec::PodRunner;
use skydeck_infra::kubernetes::{KubeProvider, KubeSettings, KubeTarget};
use skydeck_infra::{
    ClusterName, ClusterSpec, ClusterState, CommandRunner, Handle, NodeRequest, Provider,
};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The `skydeck` binary of this build (beside the test's `deps/`).
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

/// A client on the test cluster, or `None` (skip) without one.
async fn client() -> Option<kube::Client> {
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
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    Some(kube::Client::try_from(config).unwrap())
}

/// A namespace of the test's own, deleted when it drops.
struct TestNamespace {
    client: kube::Client,
    name: String,
}

impl TestNamespace {
    async fn new(client: &kube::Client, test: &str) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "skydeck-{test}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
        // Pods wait for the namespace's default service account.
        let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
            Api::namespaced(client.clone(), &name);
        let made = eventually(Duration::from_secs(60), || async {
            accounts.get_opt("default").await.ok().flatten().is_some()
        })
        .await;
        assert!(made, "namespace {name} got no default service account");
        Self {
            client: client.clone(),
            name,
        }
    }

    fn provider(&self, settings: KubeSettings) -> KubeProvider {
        KubeProvider::new(KubeTarget {
            context: "test".to_owned(),
            client: self.client.clone(),
            namespace: self.name.clone(),
            settings,
        })
        .with_program(skydeck_binary())
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.name)
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let name = self.name.clone();
        // A client lives on the runtime that made it, which this drop
        // blocks: a fresh one, on a runtime of its own.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(async move {
                    if let Some(client) = client().await {
                        let namespaces: Api<Namespace> = Api::all(client);
                        let _ = namespaces.delete(&name, &DeleteParams::default()).await;
                    }
                });
        })
        .join();
    }
}

fn spec(name: &str, nodes: u32, node: NodeRequest) -> ClusterSpec {
    ClusterSpec {
        name: ClusterName::new(name).unwrap(),
        num_nodes: nodes,
        user_hash: "abcd1234".to_owned(),
        node,
        allocations: Vec::new(),
    }
}

/// Small pods of the test image: the test node has 2 CPUs.
fn small() -> NodeRequest {
    NodeRequest {
        cpus: Some(0.1),
        memory_gb: Some(0.25),
        image: Some(format!("docker:{}", image())),
        ..NodeRequest::default()
    }
}

fn job(run: &str, nodes: usize) -> JobSpec {
    serde_json::from_value(serde_json::json!({
        "idempotency_key": format!("job-{}", std::process::id()),
        "username": "alice",
        "user_hash": "abcd1234",
        "run": run,
        "num_nodes": nodes,
    }))
    .unwrap()
}

async fn sh(runner: &dyn CommandRunner, line: &str) -> String {
    let out = runner
        .run(&["sh".to_owned(), "-c".to_owned(), line.to_owned()], None)
        .await
        .unwrap();
    assert!(out.success(), "{line}: {out:?}");
    out.stdout
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

async fn wait_for_status(provider: &KubeProvider, handle: &Handle, job: u64, want: JobStatus) {
    let agent = provider.agent(handle);
    let last = std::cell::Cell::new(None);
    // Until it is `want`, or finished as something else.
    eventually(Duration::from_secs(90), || {
        let (agent, last) = (&agent, &last);
        async move {
            let status = agent.job_status(&[job]).await.unwrap();
            last.set(status.get(&job.to_string()).copied().flatten());
            last.get() == Some(want) || last.get().is_some_and(|s| s.is_finished())
        }
    })
    .await;
    if last.get() != Some(want) {
        let log = log_of(provider, handle, job).await;
        panic!(
            "job {job} never became {want:?} (last {:?}); its log:\n{log}",
            last.get()
        );
    }
}

async fn log_of(provider: &KubeProvider, handle: &Handle, job: u64) -> String {
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let agent = provider.agent(handle);
    let reading = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Some(chunk) = rx.recv().await {
            all.extend(chunk);
        }
        String::from_utf8_lossy(&all).into_owned()
    });
    let how = skydeck_infra::LogFollow {
        follow: false,
        tail: 0,
    };
    agent.logs(Some(job), how, tx).await.unwrap();
    reading.await.unwrap()
}

async fn labelled(ns: &TestNamespace, name: &str) -> Vec<String> {
    ns.pods()
        .list(&ListParams::default().labels(&format!("skypilot-cluster-name={name}-abcd1234")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect()
}

#[tokio::test]
async fn a_two_node_cluster_runs_on_both_pods_syncs_and_leaves_nothing() {
    let Some(client) = client().await else { return };
    let ns = TestNamespace::new(&client, "two").await;
    let provider = ns.provider(KubeSettings::default());
    let spec = spec("two", 2, small());
    let handle = provider.provision(&spec).await.unwrap();
    assert_eq!(handle.hosts, ["two-abcd1234-head", "two-abcd1234-worker1"]);
    assert!(
        handle.nodes[1].tcp.is_some(),
        "the head reaches the worker over TCP"
    );
    // A second provision continues: same pods, nothing copied again.
    let again = provider.provision(&spec).await.unwrap();
    assert_eq!(again.nodes, handle.nodes);

    let head = provider.head_runner(&handle);
    assert_eq!(sh(&*head, "hostname").await.trim(), "two-abcd1234-head");
    let out = head
        .run(&["cat".to_owned()], Some(b"through stdin".to_vec()))
        .await
        .unwrap();
    assert_eq!((out.code, out.stdout.as_str()), (0, "through stdin"));
    let failed = head
        .run(
            &[
                "sh".to_owned(),
                "-c".to_owned(),
                "echo no >&2; exit 7".to_owned(),
            ],
            None,
        )
        .await
        .unwrap();
    assert_eq!((failed.code, failed.stderr.trim()), (7, "no"));

    // Files reach every node's home.
    let local = tempfile::tempdir().unwrap();
    std::fs::create_dir(local.path().join("sub")).unwrap();
    std::fs::write(local.path().join("sub/data.txt"), "synced").unwrap();
    provider
        .sync_up(&handle, local.path(), "~/sky_workdir")
        .await
        .unwrap();
    let worker = PodRunner::new(ns.pods(), handle.hosts[1].clone());
    let there = format!("{}/sky_workdir/sub/data.txt", handle.nodes[1].dir.display());
    assert_eq!(sh(&worker, &format!("cat {there}")).await, "synced");

    // The head's agent runs the job on both pods.
    let agent = provider.agent(&handle);
    let id = agent
        .submit(&job("echo rank=$SKYPILOT_NODE_RANK on $(hostname)", 2))
        .await
        .unwrap();
    wait_for_status(&provider, &handle, id, JobStatus::Succeeded).await;
    let log = log_of(&provider, &handle, id).await;
    assert!(log.contains("rank=0 on two-abcd1234-head"), "{log}");
    assert!(log.contains("rank=1 on two-abcd1234-worker1"), "{log}");
    assert_eq!(
        provider.query(&handle).await.unwrap(),
        ClusterState::Running
    );
    assert!(
        provider.stop(&handle).await.is_err(),
        "Kubernetes has no stop"
    );

    provider.terminate(&handle).await.unwrap();
    assert!(labelled(&ns, "two").await.is_empty());
    assert_eq!(provider.query(&handle).await.unwrap(), ClusterState::Gone);
    provider.terminate(&handle).await.unwrap();
}

#[tokio::test]
async fn a_worker_pod_deleted_mid_job_fails_it_as_failed_driver() {
    let Some(client) = client().await else { return };
    let ns = TestNamespace::new(&client, "lost").await;
    let provider = ns.provider(KubeSettings::default());
    let handle = provider.provision(&spec("lost", 2, small())).await.unwrap();
    let agent = provider.agent(&handle);
    let id = agent.submit(&job("sleep 600", 2)).await.unwrap();
    wait_for_status(&provider, &handle, id, JobStatus::Running).await;
    ns.pods()
        .delete(&handle.hosts[1], &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    wait_for_status(&provider, &handle, id, JobStatus::FailedDriver).await;
    let log = log_of(&provider, &handle, id).await;
    assert!(log.contains("lost the worker 1"), "{log}");
    let problem = provider.problem(&handle).await.unwrap().unwrap_or_default();
    assert!(
        problem.contains("lost-abcd1234-worker1 was deleted"),
        "{problem}"
    );
    // The cluster's state says what happened, and stays until `down`.
    let seen = provider.query(&handle).await.unwrap_err().to_string();
    assert!(seen.contains("lost-abcd1234-worker1"), "{seen}");
    assert!(seen.contains("ended FAILED_DRIVER"), "{seen}");
    assert!(seen.contains("sky down lost"), "{seen}");
    // Without its head the cluster is not gone while a pod is left: the
    // record must stay, or that pod would be leaked.
    ns.pods()
        .delete(&handle.hosts[0], &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    let seen = provider.query(&handle).await;
    if !labelled(&ns, "lost").await.is_empty() {
        let seen = seen.unwrap_err().to_string();
        assert!(seen.contains("lost-abcd1234-head"), "{seen}");
        assert!(
            seen.contains("job records went with the head pod"),
            "{seen}"
        );
    }
    provider.terminate(&handle).await.unwrap();
    assert!(labelled(&ns, "lost").await.is_empty());
}

#[tokio::test]
async fn an_unschedulable_request_fails_with_the_schedulers_reason() {
    let Some(client) = client().await else { return };
    let ns = TestNamespace::new(&client, "big").await;
    let provider = ns.provider(KubeSettings {
        provision_timeout: Some(Duration::from_secs(3)),
        ..KubeSettings::default()
    });
    let request = NodeRequest {
        cpus: Some(512.0),
        ..small()
    };
    let err = provider
        .provision(&spec("big", 1, request))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("Insufficient cpu"), "{err}");
    assert!(err.contains("big-abcd1234-head"), "{err}");
    provider
        .terminate_unrecorded(&ClusterName::new("big").unwrap())
        .await
        .unwrap();
    assert!(labelled(&ns, "big").await.is_empty());
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_fails_at_once_naming_it() {
    let Some(client) = client().await else { return };
    let ns = TestNamespace::new(&client, "image").await;
    let provider = ns.provider(KubeSettings::default());
    let request = NodeRequest {
        image: Some("docker:localhost/skydeck-no-such-image:1".to_owned()),
        ..small()
    };
    let err = provider
        .provision(&spec("image", 1, request))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("localhost/skydeck-no-such-image:1"), "{err}");
    // Not the scheduler's timeout, nor the start timeout: the pull's error.
    assert!(
        err.contains("ErrImage") || err.contains("ImagePull"),
        "{err}"
    );
    provider
        .terminate_unrecorded(&ClusterName::new("image").unwrap())
        .await
        .unwrap();
    assert!(labelled(&ns, "image").await.is_empty());
}
