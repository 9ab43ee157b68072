//! `skydeck ssh CLUSTER [-- CMD]` on a cluster of the real test Kubernetes:
//! the command runs in the head pod (through the API server's exec) in
//! the node's directory, its output and exit code come back, a login shell
//! works on a terminal, a user who does not own the cluster is refused, and
//! `down` leaves no pod. Skipped without the cluster
//! (`SKYDECK_TEST_KUBECONFIG`), except under CI.

#[path = "support/kube.rs"]
mod kube_support;
mod support;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::TestServer;

/// A shell's whole life, the pod being up already.
const DEADLINE: Duration = Duration::from_secs(60);
/// Pod deletion on the test kubelet is confirmed late.
const GONE: Duration = Duration::from_secs(180);
const ADMIN_PASSWORD: &str = "Adm1n-Kube-Ssh-5";

fn skydeck(home: &Path, endpoint: &str, args: &[&str]) -> Output {
    Command::new(support::BINARY)
        .args(args)
        .env("SKYDECK_HOME", home)
        .env("SKYDECK_API_SERVER_ENDPOINT", endpoint)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env_remove("SKYDECK_SERVICE_ACCOUNT_TOKEN")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn pods_of(pods: &Api<Pod>, cluster: &str) -> Vec<String> {
    pods.list(&ListParams::default().labels(&format!("skydeck.io/cluster={cluster}")))
        .await
        .expect("list pods")
        .items
        .into_iter()
        .filter_map(|pod| pod.metadata.name)
        .collect()
}

/// `skydeck ssh C` on a terminal of its own (`script`), fed `input`.
fn on_a_terminal(home: &Path, endpoint: &str, cluster: &str, input: &[u8]) -> (bool, String) {
    let mut shell = Command::new("script")
        .args([
            "-qec",
            &format!("{} ssh {cluster}", support::BINARY),
            "/dev/null",
        ])
        .env("SKYDECK_HOME", home)
        .env("SKYDECK_API_SERVER_ENDPOINT", endpoint)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("TERM", "vt100")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = shell.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    let mut stdout = shell.stdout.take().unwrap();
    let reading = std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = stdout.read_to_end(&mut all);
        all
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = shell.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > DEADLINE {
            let _ = shell.kill();
            let _ = shell.wait();
            panic!("the shell in the pod did not exit");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(stdin);
    (status.success(), text(&reading.join().unwrap()))
}

#[tokio::test(flavor = "multi_thread")]
async fn ssh_reaches_the_head_pod_of_a_kubernetes_cluster() {
    use skydeck_client::admin::{NewUser, Role};
    let Some(kube) = kube_support::test_kube().await else {
        return;
    };
    let image = std::env::var("SKYDECK_TEST_KUBE_IMAGE")
        .unwrap_or_else(|_| "localhost/debian:bookworm".to_owned());
    let scratch = tempfile::tempdir().unwrap();
    let kubeconfig = kube.kubeconfig.to_str().unwrap().to_owned();
    let server = TestServer::start(
        &scratch.path().join("server"),
        &[
            ("KUBECONFIG", &kubeconfig),
            ("SKYDECK_KUBERNETES_IMAGE", &image),
            ("SKYDECK_ENABLE_BASIC_AUTH", "true"),
            (
                "SKYDECK_INITIAL_BASIC_AUTH",
                &format!("admin:{ADMIN_PASSWORD}"),
            ),
        ],
    );
    let as_user = |user: &str, password: &str| {
        server
            .url
            .replace("http://", &format!("http://{user}:{password}@"))
    };
    let admin = skydeck_client::Client::new(&as_user("admin", ADMIN_PASSWORD), None).unwrap();
    for name in ["alice", "bob"] {
        admin
            .create_user(&NewUser {
                name: name.to_owned(),
                password: Some(format!("{name}-pw-1234")),
                role: Some(Role::User),
            })
            .await
            .unwrap();
    }
    let (alice, bob) = (
        as_user("alice", "alice-pw-1234"),
        as_user("bob", "bob-pw-1234"),
    );
    let home = scratch.path().join("client");
    std::fs::create_dir_all(&home).unwrap();
    let cluster = format!("kssh-{}", std::process::id());
    let infra = format!("k8s/{}", kube.context);
    let pods: Api<Pod> = Api::namespaced(kube.client.clone(), "default");

    let launch = skydeck(
        &home,
        &alice,
        &[
            "launch", "-c", &cluster, "-y", "--infra", &infra, "--cpus", "0.5", "--memory", "0.5",
            "--", "echo", "up",
        ],
    );
    let mut failures = String::new();
    if launch.status.success() {
        let names = pods_of(&pods, &cluster).await;
        assert_eq!(names.len(), 1, "one pod: {names:?}");

        let out = skydeck(&home, &alice, &["ssh", &cluster, "--", "hostname"]);
        if (out.status.code(), text(&out.stdout).trim()) != (Some(0), names[0].as_str()) {
            failures += &format!(
                "hostname: {:?} {:?} {}\n",
                out.status.code(),
                text(&out.stdout),
                text(&out.stderr)
            );
        }

        let out = skydeck(
            &home,
            &alice,
            &[
                "ssh",
                &cluster,
                "--",
                "sh",
                "-c",
                "pwd; echo $HOME $SKYPILOT_NODE_RANK; echo oops >&2; exit 7",
            ],
        );
        let stdout = text(&out.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        let node_dir = format!("/clusters/{cluster}/nodes/0");
        if out.status.code() != Some(7)
            || lines.len() != 2
            || !lines[0].ends_with(&node_dir)
            || lines[1] != format!("{} 0", lines[0])
            || text(&out.stderr) != "oops\n"
        {
            failures += &format!(
                "exit code, directory, variables: {:?} {stdout:?} {:?}\n",
                out.status.code(),
                text(&out.stderr)
            );
        }

        let (ok, out) = on_a_terminal(
            &home,
            &alice,
            &cluster,
            b"test -t 0 && echo tty-$((6*7)) $TERM; exit\n",
        );
        if !ok || !out.contains("tty-42 vt100") {
            failures += &format!("login shell on a terminal: {ok} {out:?}\n");
        }

        // The ownership check is the local test's (ssh_session.rs); here
        // only that it guards a pod cluster too.
        let out = skydeck(&home, &bob, &["ssh", &cluster, "--", "hostname"]);
        if out.status.success() || !text(&out.stderr).contains("belongs to another user") {
            failures += &format!(
                "another user: {:?} {:?} {}\n",
                out.status.code(),
                text(&out.stdout),
                text(&out.stderr)
            );
        }
    } else {
        failures += &format!("launch: {}\n", text(&launch.stderr));
    }

    let down = skydeck(&home, &alice, &["down", &cluster, "-y"]);
    if !down.status.success() {
        failures += &format!("down: {}\n", text(&down.stderr));
    }
    let start = Instant::now();
    while !pods_of(&pods, &cluster).await.is_empty() {
        if start.elapsed() > GONE {
            failures += "down left the pod\n";
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        failures.is_empty(),
        "{failures}\nserver:\n{}",
        server.stderr()
    );
}
