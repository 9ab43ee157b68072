//! `kubernetes.ports` on the real test Kubernetes (`SKYDECK_TEST_KUBECONFIG`),
//! through the `skydeck` CLI: with `podip`, `skydeck endpoints` gives the head
//! pod's IP and the task's server answers there (this host routes to pod
//! IPs); with `loadbalancer` (the default), launch makes SkyPilot's
//! `<noc>--skypilot-lb` Service on the head pod, `endpoints` says it is
//! pending (the test cluster has no load-balancer controller), and `down`
//! removes it; with `ingress`, a launch without the controller's
//! IngressClass is refused, and with it launch makes a port Service (which
//! the real endpoints controller routes to the head pod) and an nginx
//! Ingress, `endpoints` gives the URL under the controller's node port,
//! and `down` removes both.

#[path = "support/kube.rs"]
mod kube_support;
mod support;

use k8s_openapi::api::core::v1::{Endpoints, Namespace, Pod, Service};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{Api, DeleteParams, ListParams, PostParams};

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
/// Where SkyPilot looks for the ingress-nginx controller.
const INGRESS_CLASS: &str = "nginx";
const CONTROLLER_NAMESPACE: &str = "ingress-nginx";
const CONTROLLER_SERVICE: &str = "ingress-nginx-controller";

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

/// The objects of the ingress-nginx controller the backend reads (the
/// test cluster cannot run the controller itself: no network to pull its
/// image). No traffic is sent to them.
struct IngressController {
    client: kube::Client,
}

impl IngressController {
    async fn remove(client: &kube::Client) {
        let classes: Api<IngressClass> = Api::all(client.clone());
        let _ = classes
            .delete(INGRESS_CLASS, &DeleteParams::default())
            .await;
        let services: Api<Service> = Api::namespaced(client.clone(), CONTROLLER_NAMESPACE);
        let _ = services
            .delete(CONTROLLER_SERVICE, &DeleteParams::default())
            .await;
    }

    /// Installs the class and a NodePort controller service; its `http`
    /// node port.
    async fn install(client: &kube::Client) -> (Self, i32) {
        Self::remove(client).await;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": CONTROLLER_NAMESPACE},
        }))
        .unwrap();
        match namespaces.create(&PostParams::default(), &namespace).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(err) => panic!("create namespace {CONTROLLER_NAMESPACE}: {err}"),
        }
        let class = serde_json::from_value(serde_json::json!({
            "metadata": {"name": INGRESS_CLASS},
            "spec": {"controller": "k8s.io/ingress-nginx"},
        }))
        .unwrap();
        Api::<IngressClass>::all(client.clone())
            .create(&PostParams::default(), &class)
            .await
            .expect("create the ingress class");
        let service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": CONTROLLER_SERVICE},
            "spec": {
                "type": "NodePort",
                "selector": {"app.kubernetes.io/name": "ingress-nginx"},
                "ports": [
                    {"name": "http", "port": 80, "targetPort": 80},
                    {"name": "https", "port": 443, "targetPort": 443},
                ],
            },
        }))
        .unwrap();
        let made = Api::<Service>::namespaced(client.clone(), CONTROLLER_NAMESPACE)
            .create(&PostParams::default(), &service)
            .await
            .expect("create the controller's service");
        let node_port = made
            .spec
            .and_then(|s| s.ports)
            .and_then(|ports| {
                ports
                    .into_iter()
                    .find(|p| p.name.as_deref() == Some("http"))
            })
            .and_then(|p| p.node_port)
            .expect("the http node port");
        (
            Self {
                client: client.clone(),
            },
            node_port,
        )
    }
}

impl Drop for IngressController {
    fn drop(&mut self) {
        let client = self.client.clone();
        let _ = std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(IngressController::remove(&client));
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ingress_makes_skypilots_services_and_ingress_and_down_removes_them() {
    let Some(kube) = kube_support::test_kube().await else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let (server, task) = start(&kube, scratch.path(), "ingress");
    let cluster = format!("kingress-{}", std::process::id());
    let selector = format!("skydeck.io/cluster={cluster}");
    let pods: Api<Pod> = Api::namespaced(kube.client.clone(), "default");
    let services: Api<Service> = Api::namespaced(kube.client.clone(), "default");
    let ingresses: Api<Ingress> = Api::namespaced(kube.client.clone(), "default");
    let labelled = ListParams::default().labels(&selector);

    // Without the controller's IngressClass the launch is refused, naming
    // it, before any pod is made.
    IngressController::remove(&kube.client).await;
    let infra = format!("k8s/{}", kube.context);
    let refused = skydeck(
        &server,
        scratch.path(),
        &[
            "launch", "-y", "-d", "-c", &cluster, "--infra", &infra, &task,
        ],
    )
    .await;
    let made = pods.list(&labelled).await.expect("list pods").items;
    if !made.is_empty() {
        skydeck(&server, scratch.path(), &["down", "-y", &cluster]).await;
    }
    assert_ne!(refused.code, Some(0), "{}", refused.describe());
    assert!(
        refused.stderr.contains("no IngressClass `nginx`")
            && refused.stderr.contains("kubernetes.ports"),
        "{}",
        refused.describe()
    );
    assert!(made.is_empty(), "a refused launch makes no pod: {made:?}");

    let (_controller, node_port) = IngressController::install(&kube.client).await;
    launch(&server, scratch.path(), &kube, &cluster, &task).await;
    let made_services = services.list(&labelled).await.expect("list services").items;
    let made_ingresses = ingresses
        .list(&labelled)
        .await
        .expect("list ingresses")
        .items;
    let head = pods
        .list(&labelled)
        .await
        .expect("list pods")
        .items
        .into_iter()
        .find(|p| {
            p.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.ends_with("-head"))
        })
        .expect("the head pod");
    let head_ip = head.status.and_then(|s| s.pod_ip).unwrap_or_default();
    let endpoints = skydeck(&server, scratch.path(), &["endpoints", &cluster]).await;

    let [service] = &made_services[..] else {
        panic!("one port service for the cluster: {made_services:?}");
    };
    let name = service.metadata.name.clone().unwrap_or_default();
    let on_cloud = name
        .strip_suffix(&format!("--skypilot-svc--{PORT}"))
        .unwrap_or_else(|| panic!("SkyPilot's port service name: {name}"))
        .to_owned();
    assert_eq!(
        service.spec.as_ref().and_then(|s| s.type_.as_deref()),
        Some("ClusterIP")
    );
    // The real endpoints controller puts the head pod behind the service.
    let routed = routed_ips(&kube.client, &name).await;
    assert_eq!(
        routed,
        vec![head_ip],
        "the port service selects the head pod"
    );

    let [ingress] = &made_ingresses[..] else {
        panic!("one ingress for the cluster: {made_ingresses:?}");
    };
    assert_eq!(
        ingress.metadata.name.as_deref(),
        Some(format!("{on_cloud}-skypilot-ingress").as_str())
    );
    let spec = ingress.spec.clone().unwrap_or_default();
    assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
    let paths = spec.rules.unwrap_or_default()[0]
        .http
        .clone()
        .unwrap_or_default()
        .paths;
    let path = format!("/skypilot/default/{on_cloud}/{PORT}");
    assert_eq!(paths.len(), 1);
    assert_eq!(
        paths[0].path.as_deref(),
        Some(format!("{path}(/|$)(.*)").as_str())
    );
    let backend = paths[0].backend.service.clone().expect("a service backend");
    assert_eq!(backend.name, name);

    // The address comes from the controller's service: its http node port.
    let url = format!("http://localhost:{node_port}{path}");
    assert_eq!(endpoints.code, Some(0), "{}", endpoints.describe());
    assert!(
        endpoints.stdout.contains(&url),
        "{url}: {}",
        endpoints.describe()
    );

    let down = skydeck(&server, scratch.path(), &["down", "-y", &cluster]).await;
    assert_eq!(down.code, Some(0), "{}", down.describe());
    let left_services = services.list(&labelled).await.expect("list services").items;
    let left_ingresses = ingresses
        .list(&labelled)
        .await
        .expect("list ingresses")
        .items;
    assert!(
        left_services.is_empty(),
        "down removes the port services: {left_services:?}"
    );
    assert!(
        left_ingresses.is_empty(),
        "down removes the ingress: {left_ingresses:?}"
    );
}

/// The pod IPs the endpoints controller put behind service `name`, once
/// it has put any (it follows the pods, so this polls).
async fn routed_ips(client: &kube::Client, name: &str) -> Vec<String> {
    let api: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let started = Instant::now();
    loop {
        let ips: Vec<String> = api
            .get_opt(name)
            .await
            .expect("read endpoints")
            .and_then(|e| e.subsets)
            .unwrap_or_default()
            .into_iter()
            .flat_map(|s| s.addresses.unwrap_or_default())
            .map(|a| a.ip)
            .collect();
        if !ips.is_empty() || started.elapsed() > SETTLE {
            return ips;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
