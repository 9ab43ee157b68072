//! Kubernetes contexts as `skydeck` sees them, against the real test
//! Kubernetes (`SKYDECK_TEST_KUBECONFIG`): `skydeck check` lists the
//! kubeconfig's context as `kubernetes/<context>` with its state, and a
//! context whose API server is not there with the reason; a launch (dry
//! run) on a context `kubernetes.allowed_contexts` leaves out, or on one
//! a workspace's own list leaves out, is refused naming the allowed ones;
//! a context whose credentials may not list pods is disabled, saying so.

#[path = "support/kube.rs"]
mod kube_support;
mod support;

use kube_support::{test_kube, with_unreachable_context};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use support::TestServer;

const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

struct Outcome {
    command: String,
    code: Option<i32>,
    output: String,
}

impl Outcome {
    fn describe(&self) -> String {
        format!(
            "`skydeck {}` exited {:?}\n{}",
            self.command, self.code, self.output
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
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn check_lists_each_context_and_launch_keeps_to_the_allowed_ones() {
    let Some(kube) = test_kube().await else {
        return;
    };
    let ctx = &kube.context;
    let scratch = tempfile::tempdir().unwrap();
    let unreachable = with_unreachable_context(scratch.path());
    let home = scratch.path().join("server");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join("config.yaml"),
        format!(
            "kubernetes:\n  allowed_contexts: [\"{ctx}\", unreachable]\nworkspaces:\n  \
             narrow:\n    kubernetes:\n      allowed_contexts: [unreachable]\n"
        ),
    )
    .unwrap();
    let kubeconfig = format!("{}:{}", kube.kubeconfig.display(), unreachable.display());
    let server = TestServer::start(&home, &[("KUBECONFIG", &kubeconfig)]);

    let check = skydeck(&server, scratch.path(), &["check", "kubernetes"]).await;
    let out = &check.output;
    assert_eq!(check.code, Some(0), "{}", check.describe());
    for expected in [
        "Kubernetes: enabled [compute]",
        &format!("{ctx}: enabled."),
        "unreachable: disabled. Reason: Kubernetes API unreachable",
        &format!("kubernetes/{ctx}"),
    ] {
        assert!(
            out.contains(expected),
            "missing {expected:?}: {}",
            check.describe()
        );
    }
    assert!(
        !out.contains("kubernetes/unreachable"),
        "an unusable context is not enabled: {}",
        check.describe()
    );

    let task = scratch.path().join("task.yaml");
    std::fs::write(&task, "run: echo hi\n").unwrap();
    let task = task.to_str().unwrap();
    let refused = skydeck(
        &server,
        scratch.path(),
        &[
            "launch",
            "--dryrun",
            "-y",
            "-c",
            "kc",
            "--infra",
            "k8s/not-allowed",
            task,
        ],
    )
    .await;
    assert_ne!(refused.code, Some(0), "{}", refused.describe());
    for expected in [
        "Kubernetes context `not-allowed` is not allowed in workspace `default`",
        &format!("Allowed: kubernetes/{ctx}, kubernetes/unreachable"),
    ] {
        assert!(
            refused.output.contains(expected),
            "missing {expected:?}: {}",
            refused.describe()
        );
    }

    // The bare kind goes to the first allowed context: the plan (or, while
    // the backend cannot host clusters, its refusal) names it.
    let planned = skydeck(
        &server,
        scratch.path(),
        &[
            "launch", "--dryrun", "-y", "-c", "kc", "--infra", "k8s", task,
        ],
    )
    .await;
    assert!(
        planned.output.contains(ctx.as_str()) && !planned.output.contains("not allowed"),
        "{}",
        planned.describe()
    );

    // A workspace's own list wins over the global one.
    std::fs::write(
        home.join("config.yaml"),
        format!(
            "active_workspace: narrow\nkubernetes:\n  allowed_contexts: [\"{ctx}\"]\n\
             workspaces:\n  narrow:\n    kubernetes:\n      allowed_contexts: [unreachable]\n"
        ),
    )
    .unwrap();
    let narrow = skydeck(
        &server,
        scratch.path(),
        &[
            "launch",
            "--dryrun",
            "-y",
            "-c",
            "kc",
            "--infra",
            &format!("k8s/{ctx}"),
            task,
        ],
    )
    .await;
    assert!(
        narrow.output.contains(&format!(
            "Kubernetes context `{ctx}` is not allowed in workspace `narrow`: the server config's \
             workspaces.narrow.kubernetes.allowed_contexts does not list it. Allowed: \
             kubernetes/unreachable."
        )),
        "{}",
        narrow.describe()
    );
}

/// A kubeconfig for a service account with no role at all: the API server
/// answers, and refuses.
async fn powerless_kubeconfig(
    kube: &kube_support::TestKube,
    account: &str,
    dir: &Path,
) -> std::path::PathBuf {
    use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
    use kube::api::{Api, PostParams};
    let accounts: Api<ServiceAccount> = Api::namespaced(kube.client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(kube.client.clone(), "default");
    let body: ServiceAccount =
        serde_json::from_value(serde_json::json!({"metadata": {"name": account}})).unwrap();
    accounts
        .create(&PostParams::default(), &body)
        .await
        .expect("make the service account");
    // Kubernetes 1.20 makes the account's token secret itself.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let token = loop {
        let secret_name = accounts
            .get(account)
            .await
            .ok()
            .and_then(|a| a.secrets)
            .and_then(|s| s.into_iter().find_map(|r| r.name));
        if let Some(name) = secret_name
            && let Ok(secret) = secrets.get(&name).await
            && let Some(token) = secret.data.and_then(|d| d.get("token").cloned())
        {
            break String::from_utf8(token.0).unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no token for the service account"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let admin = kube::config::Kubeconfig::read_from(&kube.kubeconfig).unwrap();
    let cluster = admin.clusters[0].cluster.clone().unwrap();
    let path = dir.join("powerless.kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: powerless\nclusters:\n- name: c\n  \
             cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: u\n  \
             user: {{token: {token}}}\ncontexts:\n- name: powerless\n  context: {{cluster: c, \
             user: u}}\n",
            cluster.server.unwrap(),
            cluster.certificate_authority_data.unwrap()
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn a_context_whose_credentials_may_not_list_pods_is_disabled_saying_so() {
    let Some(kube) = test_kube().await else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let account = format!("skydeck-powerless-{}", std::process::id());
    let kubeconfig = powerless_kubeconfig(&kube, &account, scratch.path()).await;
    let home = scratch.path().join("server");
    let server = TestServer::start(&home, &[("KUBECONFIG", kubeconfig.to_str().unwrap())]);
    let check = skydeck(&server, scratch.path(), &["check", "kubernetes"]).await;
    let _ = kube::api::Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(
        kube.client.clone(),
        "default",
    )
    .delete(&account, &Default::default())
    .await;
    for expected in [
        "Kubernetes: disabled",
        "powerless: disabled. Reason: Forbidden: the credentials may not list pods in \
         namespace default",
    ] {
        assert!(
            check.output.contains(expected),
            "missing {expected:?}: {}",
            check.describe()
        );
    }
}
