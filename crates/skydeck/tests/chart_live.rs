//! The chart, live: charts/skydeck installed with helm on the real test
//! Kubernetes (scripts/kube-up.sh), the server's own image imported into
//! its node (scripts/kube-skydeck-image.sh). The server pod becomes Ready,
//! answers its health endpoint through a port-forward, and runs as the
//! chart's service account, with that account's token mounted; with
//! nothing but the chart's defaults (that token, exactly the chart's Role)
//! it launches a cluster onto the Kubernetes it runs in, runs its job and
//! tears it down.
//!
//! Needs SKYDECK_TEST_KUBECONFIG, SKYDECK_TEST_HELM (a helm binary) and
//! SKYDECK_TEST_SKYDECK_IMAGE (the image's name in the node), which
//! scripts/test.sh sets; skips without them, fails under CI.

#[path = "../../skydeck-infra/tests/support/kube.rs"]
mod test_kube;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, AttachParams, DeleteParams, ListParams, PostParams};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const RELEASE: &str = "live";

struct ChartLive {
    cluster: test_kube::TestKube,
    helm: PathBuf,
    image: String,
    /// The image the pods of clusters run (what the node has).
    pods_image: String,
}

fn chart_live() -> Option<ChartLive> {
    let cluster = test_kube::test_kube()?;
    let helm = std::env::var_os("SKYDECK_TEST_HELM").filter(|v| !v.is_empty());
    let image = std::env::var("SKYDECK_TEST_SKYDECK_IMAGE")
        .ok()
        .filter(|v| !v.is_empty());
    match (helm, image) {
        (Some(helm), Some(image)) => Some(ChartLive {
            cluster,
            helm: PathBuf::from(helm),
            image,
            pods_image: std::env::var("SKYDECK_TEST_KUBE_IMAGE")
                .unwrap_or_else(|_| "localhost/debian:bookworm".to_owned()),
        }),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must set SKYDECK_TEST_HELM and SKYDECK_TEST_SKYDECK_IMAGE \
                 (scripts/test.sh does: scripts/kube-skydeck-image.sh STATE)"
            );
            eprintln!("skipping: SKYDECK_TEST_HELM or SKYDECK_TEST_SKYDECK_IMAGE is not set");
            None
        }
    }
}

/// Polls `check` until it returns `Some`, or panics naming `what` after `limit`.
async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn helm(live: &ChartLive, args: &[&str]) -> String {
    let out = Command::new(&live.helm)
        .arg("--kubeconfig")
        .arg(&live.cluster.kubeconfig)
        .args(args)
        .output()
        .expect("run helm");
    assert!(
        out.status.success(),
        "helm {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charts/skydeck")
}

#[tokio::test]
async fn the_chart_runs_the_server_ready_and_healthy_as_its_service_account() {
    let Some(live) = chart_live() else { return };
    let client = live.cluster.client().await;

    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .subsec_nanos();
    let ns = format!("chart-live-{}-{nanos}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace: Namespace =
        serde_json::from_value(serde_json::json!({ "metadata": { "name": ns } })).unwrap();
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create the namespace");

    // What this cluster lacks: an ingress controller and its images, a
    // volume provisioner, a registry. Everything else is the chart's default.
    let image = format!("apiService.image={}", live.image);
    let pods_image = format!("apiService.extraEnvs[0].value={}", live.pods_image);
    let chart = chart_dir();
    helm(
        &live,
        &[
            "install",
            RELEASE,
            chart.to_str().expect("a UTF-8 path"),
            "--namespace",
            &ns,
            "--set",
            &image,
            "--set",
            "apiService.imagePullPolicy=Never",
            "--set",
            "ingress.enabled=false",
            "--set",
            "ingress-nginx.enabled=false",
            "--set",
            "storage.enabled=false",
            // The image this cluster's node has for the pods of clusters.
            "--set",
            "apiService.extraEnvs[0].name=SKYDECK_KUBERNETES_IMAGE",
            "--set",
            &pods_image,
            // Passwords, with the chart's first admin (skydeck / skydeck),
            // for the CLI below.
            "--set",
            "apiService.enableUserManagement=true",
            // The in-cluster defaults (token, Role, namespace) are not set here:
            // they are the chart's.
        ],
    );

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pod = ready_server_pod(&pods, RELEASE).await;
    let name = pod.metadata.name.clone().expect("a pod name");
    let spec = pod.spec.expect("a pod spec");
    assert_eq!(
        spec.service_account_name.as_deref(),
        Some(format!("{RELEASE}-api-sa").as_str()),
        "the server runs as the chart's service account"
    );

    // The health endpoint, through the API server's port-forward.
    let mut forwarder = pods
        .portforward(&name, &[46580])
        .await
        .expect("port-forward to the server pod");
    let mut stream = forwarder.take_stream(46580).expect("the forwarded port");
    stream
        .write_all(b"GET /api/health HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .expect("send the request");
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .await
        .expect("read the answer");
    drop(stream);
    // The API server (1.20) closes the WebSocket once the connection ends,
    // so a clean join would race it; the answer is all this needed.
    forwarder.abort();
    assert!(
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
        "{answer}"
    );
    assert!(answer.contains("healthy"), "{answer}");

    // By default the account's token is there for the in-cluster config,
    // the server is told where the pods of clusters go, and it runs as the
    // image's non-root user.
    let out = exec_in(
        &pods,
        &name,
        "id -u; cat /var/run/secrets/kubernetes.io/serviceaccount/namespace; \
         echo; echo \"$SKYDECK_IN_CLUSTER_NAMESPACE\"",
    )
    .await;
    assert_eq!(out, format!("1000\n{ns}\n{ns}\n"));

    // The server launches onto the cluster it runs in, with nothing but
    // the chart's defaults: its token and exactly the chart's Role. The
    // CLI in the server's own pod drives it as the chart's first admin.
    let launch = exec_in(
        &pods,
        &name,
        "export SKYDECK_API_SERVER_ENDPOINT=http://skydeck:skydeck@127.0.0.1:46580 HOME=/tmp; \
         printf 'resources:\n  cpus: 0.1\n  memory: 0.1\nrun: echo hello-in-cluster-$((6*7))\n' \
           > /tmp/task.yaml; \
         skydeck launch -y -c incluster --infra k8s /tmp/task.yaml 2>&1; echo \"exit=$?\"; \
         skydeck status 2>&1",
    )
    .await;
    assert!(
        launch.contains("hello-in-cluster-42") && launch.contains("exit=0"),
        "{launch}"
    );
    assert!(launch.contains("Kubernetes (in-cluster)"), "{launch}");
    let cluster_pods = ListParams::default().labels("skydeck.io/cluster=incluster");
    let made = pods.list(&cluster_pods).await.expect("list pods").items;
    assert_eq!(made.len(), 1, "one pod for the one-node cluster: {made:?}");
    let down = exec_in(
        &pods,
        &name,
        "HOME=/tmp SKYDECK_API_SERVER_ENDPOINT=http://skydeck:skydeck@127.0.0.1:46580 \
         skydeck down -y incluster 2>&1; echo \"exit=$?\"",
    )
    .await;
    assert!(down.contains("exit=0"), "{down}");
    let left = pods.list(&cluster_pods).await.expect("list pods").items;
    assert!(left.is_empty(), "down leaves no pod: {left:?}");

    helm(&live, &["uninstall", RELEASE, "--namespace", &ns, "--wait"]);
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .expect("delete the namespace");
}

/// What `script` prints on stdout, run with `sh -c` in pod `name`.
async fn exec_in(pods: &Api<Pod>, name: &str, script: &str) -> String {
    let mut process = pods
        .exec(
            name,
            ["sh", "-c", script],
            &AttachParams::default().stdout(true).stderr(false),
        )
        .await
        .expect("exec in the server pod");
    let mut out = String::new();
    process
        .stdout()
        .expect("stdout")
        .read_to_string(&mut out)
        .await
        .expect("read stdout");
    process.join().await.expect("the exec session ends");
    out
}

/// The server's pod of `release` once it is Ready.
async fn ready_server_pod(pods: &Api<Pod>, release: &str) -> Pod {
    let selector = ListParams::default().labels(&format!(
        "app.kubernetes.io/component=api-server,app.kubernetes.io/instance={release}"
    ));
    eventually("the server pod Ready", Duration::from_secs(240), || async {
        let list = pods.list(&selector).await.expect("list pods");
        list.items.into_iter().find(|pod| {
            pod.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
    })
    .await
}

/// The test kubeconfig as a pod reaches the same API server: at its
/// service address (10.96.N.1:443, in the serving certificate), with the
/// one context renamed `context` and set to `namespace`.
async fn kubeconfig_for_pods(
    live: &ChartLive,
    client: &kube::Client,
    context: &str,
    namespace: &str,
) -> String {
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(client.clone(), "default");
    let address = services
        .get("kubernetes")
        .await
        .expect("the API server's service")
        .spec
        .and_then(|s| s.cluster_ip)
        .expect("its cluster IP");
    let mut config =
        kube::config::Kubeconfig::read_from(&live.cluster.kubeconfig).expect("read kubeconfig");
    for cluster in &mut config.clusters {
        if let Some(cluster) = cluster.cluster.as_mut() {
            cluster.server = Some(format!("https://{address}:443"));
        }
    }
    let [named] = &mut config.contexts[..] else {
        panic!("the test kubeconfig has one context");
    };
    named.name = context.to_owned();
    if let Some(inner) = named.context.as_mut() {
        inner.namespace = Some(namespace.to_owned());
    }
    config.current_context = Some(context.to_owned());
    // JSON is YAML, which is what kubeconfig readers take.
    serde_json::to_string(&config).expect("serialize kubeconfig")
}

#[tokio::test]
async fn with_a_kubeconfig_secret_and_no_in_cluster_rights_the_server_launches_on_its_context() {
    let Some(live) = chart_live() else { return };
    let client = live.cluster.client().await;
    const RELEASE_KC: &str = "kc";
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .subsec_nanos();
    let ns = format!("chart-kc-{}-{nanos}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace: Namespace =
        serde_json::from_value(serde_json::json!({ "metadata": { "name": ns } })).unwrap();
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create the namespace");

    // SkyPilot's guide: a secret with the kubeconfig under key `config`.
    let kubeconfig = kubeconfig_for_pods(&live, &client, "outside", &ns).await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
    let secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "kube-credentials"},
        "stringData": {"config": kubeconfig},
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create the kubeconfig secret");

    let image = format!("apiService.image={}", live.image);
    let pods_image = format!("apiService.extraEnvs[0].value={}", live.pods_image);
    let chart = chart_dir();
    helm(
        &live,
        &[
            "install",
            RELEASE_KC,
            chart.to_str().expect("a UTF-8 path"),
            "--namespace",
            &ns,
            "--set",
            &image,
            "--set",
            "apiService.imagePullPolicy=Never",
            "--set",
            "ingress.enabled=false",
            "--set",
            "ingress-nginx.enabled=false",
            "--set",
            "storage.enabled=false",
            "--set",
            "apiService.extraEnvs[0].name=SKYDECK_KUBERNETES_IMAGE",
            "--set",
            &pods_image,
            "--set",
            "apiService.enableUserManagement=true",
            "--set",
            "kubernetesCredentials.useApiServerCluster=false",
            "--set",
            "kubernetesCredentials.useKubeconfig=true",
        ],
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let name = ready_server_pod(&pods, RELEASE_KC)
        .await
        .metadata
        .name
        .expect("a pod name");

    // No token is mounted, so the only context is the kubeconfig's.
    let token = exec_in(
        &pods,
        &name,
        "test -e /var/run/secrets/kubernetes.io/serviceaccount/token && echo mounted || echo none",
    )
    .await;
    assert_eq!(token.trim(), "none");
    let cli =
        "export HOME=/tmp SKYDECK_API_SERVER_ENDPOINT=http://skydeck:skydeck@127.0.0.1:46580;";
    let check = exec_in(&pods, &name, &format!("{cli} skydeck check 2>&1")).await;
    assert!(check.contains("kubernetes/outside"), "{check}");
    assert!(!check.contains("in-cluster"), "{check}");

    let launch = exec_in(
        &pods,
        &name,
        &format!(
            "{cli} printf 'resources:\\n  cpus: 0.1\\n  memory: 0.1\\nrun: echo via-kubeconfig-$((6*7))\\n' \
               > /tmp/task.yaml; \
             skydeck launch -y -c viakc --infra k8s/outside /tmp/task.yaml 2>&1; echo \"exit=$?\""
        ),
    )
    .await;
    assert!(
        launch.contains("via-kubeconfig-42") && launch.contains("exit=0"),
        "{launch}"
    );
    // The context's namespace holds the cluster's pod.
    let cluster_pods = ListParams::default().labels("skydeck.io/cluster=viakc");
    let made = pods.list(&cluster_pods).await.expect("list pods").items;
    assert_eq!(
        made.len(),
        1,
        "one pod in the context's namespace: {made:?}"
    );
    let down = exec_in(
        &pods,
        &name,
        &format!("{cli} skydeck down -y viakc 2>&1; echo \"exit=$?\""),
    )
    .await;
    assert!(down.contains("exit=0"), "{down}");
    let left = pods.list(&cluster_pods).await.expect("list pods").items;
    assert!(left.is_empty(), "down leaves no pod: {left:?}");

    helm(
        &live,
        &["uninstall", RELEASE_KC, "--namespace", &ns, "--wait"],
    );
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .expect("delete the namespace");
}
