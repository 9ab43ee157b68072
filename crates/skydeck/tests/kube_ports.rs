//! `kubernetes.ports` on the real test Kubernetes (`SKYDECK_TEST_KUBECONFIG`),
//! through the `skydeck` CLI: with `podip`, `skydeck endpoints` gives the head
//! pod's IP and the task's server answers there (this host routes to pod
//! IPs); with `loadbalancer` (the default), launch makes SkyPilot's
//! `<noc>--skypilot-lb` Service on the head pod, `endpoints` says it is
//! pending (the test cluster has no load-balancer controller), and `down`
//! removes it; `ingress` is refused at launch, naming the mode.

#[path = "support/kube.rs"]
mod kube_support;
mod support;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::TestServer;
use tokio::io::AsyncReadExt;

const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the task's server may take to answer once the job started.
const SETTLE: Duration = Duration::from_secs(120);
/// The task's port, inside the pod's own network namespace.
const PORT: u16 = 18080;
const GREETING: &str = "hello-from-pod";

struct Outcome {
    command: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn describe(&self) -> String {
        format!(
            "`skydeck {}` exited {:?}\n{}{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }
}

async fn skydeck(server: &TestServer, cwd: &Path, args: &[&str]) -> Outcome {
    let child = tokio::process::Command::new(support::BINARY)
        .args(args)
        .current_dir(cwd)
        .env("SKYDECK_HOME", &server.home)
        .env("SKYDECK_API_SERVER_ENDPOINT", &server.url)
        .env_remove("SKYDECK_SERVICE_ACCOUNT_TOKEN")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start skydeck");
    let output = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("`skydeck {}` ran too long", args.join(" ")))
        .expect("skydeck ran");
    Outcome {
        command: args.join(" "),
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A server on `home` with `ports` as `kubernetes.ports`, and a task
/// that serves [`GREETING`] on [`PORT`].
fn start(kube: &kube_support::TestKube, scratch: &Path, ports: &str) -> (TestServer, String) {
    let home = scratch.join("server");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join("config.yaml"),
        format!("kubernetes:\n  ports: {ports}\n"),
    )
    .unwrap();
    let image = std::env::var("SKYDECK_TEST_KUBE_IMAGE")
        .unwrap_or_else(|_| "localhost/debian:bookworm".to_owned());
    let server = TestServer::start(
        &home,
        &[
            ("KUBECONFIG", kube.kubeconfig.to_str().unwrap()),
            ("SKYDECK_KUBERNETES_IMAGE", &image),
        ],
    );
    let task = scratch.join("task.yaml");
    // The image has perl but no python.
    std::fs::write(
        &task,
        format!(
            "resources:\n  cpus: 0.5\n  memory: 0.5\n  ports: {PORT}\n\
             run: |\n  \
               perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalPort => {PORT}, \
             Listen => 5, ReuseAddr => 1) or die $!; while ($c = $s->accept) {{ print $c \
             \"{GREETING}\\n\"; close $c }}'\n"
        ),
    )
    .unwrap();
    (server, task.to_str().unwrap().to_owned())
}

async fn launch(
    server: &TestServer,
    cwd: &Path,
    kube: &kube_support::TestKube,
    cluster: &str,
    task: &str,
) {
    let infra = format!("k8s/{}", kube.context);
    let launched = skydeck(
        server,
        cwd,
        &["launch", "-y", "-d", "-c", cluster, "--infra", &infra, task],
    )
    .await;
    assert_eq!(launched.code, Some(0), "{}", launched.describe());
}

/// The first line `addr` answers, retried until [`SETTLE`].
async fn greeting_at(addr: &str) -> Result<String, String> {
    let started = Instant::now();
    loop {
        let attempt = async {
            let mut stream = tokio::net::TcpStream::connect(addr).await?;
            let mut text = String::new();
            stream.read_to_string(&mut text).await?;
            std::io::Result::Ok(text)
        };
        match tokio::time::timeout(Duration::from_secs(5), attempt).await {
            Ok(Ok(text)) if !text.is_empty() => return Ok(text),
            other if started.elapsed() > SETTLE => {
                return Err(format!(
                    "{addr} did not answer within {SETTLE:?}: {other:?}"
                ));
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn podip_endpoints_are_the_head_pods_ip_and_reach_the_task() {
    let Some(kube) = kube_support::test_kube().await else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let (server, task) = start(&kube, scratch.path(), "podip");
    let cluster = format!("kpodip-{}", std::process::id());
    launch(&server, scratch.path(), &kube, &cluster, &task).await;

    let endpoints = skydeck(&server, scratch.path(), &["endpoints", &cluster]).await;
    let services: Api<Service> = Api::namespaced(kube.client.clone(), "default");
    let made = services
        .list(&ListParams::default().labels(&format!("skydeck.io/cluster={cluster}")))
        .await
        .expect("list services");
    let answer = match endpoints
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{PORT}: ")))
    {
        Some(addr) => greeting_at(addr.trim()).await,
        None => Err(format!("no endpoint for {PORT}")),
    };
    let down = skydeck(&server, scratch.path(), &["down", "-y", &cluster]).await;
    assert_eq!(endpoints.code, Some(0), "{}", endpoints.describe());
    assert!(
        made.items.is_empty(),
        "podip makes no service: {:?}",
        made.items
    );
    let answer = answer.unwrap_or_else(|e| panic!("{e}\n{}", endpoints.describe()));
    assert_eq!(answer.trim(), GREETING);
    assert!(
        !endpoints.stdout.contains("127.0.0.1"),
        "{}",
        endpoints.describe()
    );
    assert_eq!(down.code, Some(0), "{}", down.describe());
}

#[tokio::test(flavor = "multi_thread")]
async fn loadbalancer_makes_skypilots_service_and_down_removes_it() {
    let Some(kube) = kube_support::test_kube().await else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let (server, task) = start(&kube, scratch.path(), "loadbalancer");
    let cluster = format!("klb-{}", std::process::id());
    launch(&server, scratch.path(), &kube, &cluster, &task).await;

    let services: Api<Service> = Api::namespaced(kube.client.clone(), "default");
    let selector = format!("skydeck.io/cluster={cluster}");
    let made = services
        .list(&ListParams::default().labels(&selector))
        .await
        .expect("list services")
        .items;
    let endpoints = skydeck(&server, scratch.path(), &["endpoints", &cluster]).await;
    let down = skydeck(&server, scratch.path(), &["down", "-y", &cluster]).await;
    let left = services
        .list(&ListParams::default().labels(&selector))
        .await
        .expect("list services")
        .items;

    let [service] = &made[..] else {
        panic!("one service for the cluster: {made:?}");
    };
    let name = service.metadata.name.clone().unwrap_or_default();
    assert!(name.ends_with("--skypilot-lb"), "{name}");
    let labels = service.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("parent").map(String::as_str), Some("skypilot"));
    let spec = service.spec.clone().unwrap_or_default();
    assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
    let component = spec
        .selector
        .unwrap_or_default()
        .get("component")
        .cloned()
        .unwrap_or_default();
    assert!(
        component.ends_with("-head"),
        "selects the head: {component}"
    );
    let ports = spec.ports.unwrap_or_default();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].port, i32::from(PORT));
    assert_eq!(ports[0].name.as_deref(), Some("port18080"));

    assert_ne!(endpoints.code, Some(0), "{}", endpoints.describe());
    assert!(
        endpoints.stderr.contains(&name) && endpoints.stderr.contains("pending"),
        "endpoints says the load balancer is pending: {}",
        endpoints.describe()
    );
    assert_eq!(down.code, Some(0), "{}", down.describe());
    assert!(left.is_empty(), "down removes the service: {left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ingress_is_refused_at_launch_naming_the_mode() {
    let Some(kube) = kube_support::test_kube().await else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let (server, task) = start(&kube, scratch.path(), "ingress");
    let cluster = format!("kingress-{}", std::process::id());
    let infra = format!("k8s/{}", kube.context);
    let launched = skydeck(
        &server,
        scratch.path(),
        &[
            "launch", "-y", "-d", "-c", &cluster, "--infra", &infra, &task,
        ],
    )
    .await;
    let pods: Api<k8s_openapi::api::core::v1::Pod> =
        Api::namespaced(kube.client.clone(), "default");
    let made = pods
        .list(&ListParams::default().labels(&format!("skydeck.io/cluster={cluster}")))
        .await
        .expect("list pods")
        .items;
    if !made.is_empty() {
        skydeck(&server, scratch.path(), &["down", "-y", &cluster]).await;
    }
    assert_ne!(launched.code, Some(0), "{}", launched.describe());
    assert!(
        launched.stderr.contains("kubernetes.ports is `ingress`")
            && launched.stderr.contains("not support"),
        "{}",
        launched.describe()
    );
    assert!(made.is_empty(), "a refused launch makes no pod: {made:?}");
}
