//! The test Kubernetes itself (scripts/kube-up.sh): a pod from the local
//! image runs, a command executed in it through the API server answers, the
//! pod reaches the API server where its in-cluster config says, and a
//! deleted pod goes. Every Kubernetes test stands on this.

mod support;

use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{Api, AttachParams, DeleteParams, PostParams};
use std::future::Future;
use std::time::{Duration, Instant};
use support::kube::test_kube;
use tokio::io::AsyncReadExt;

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
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs `script` with bash in the pod and returns its standard output.
async fn exec_stdout(pods: &Api<Pod>, pod: &str, script: &str) -> String {
    let mut process = pods
        .exec(
            pod,
            ["bash", "-c", script],
            &AttachParams::default().stdout(true).stderr(false),
        )
        .await
        .expect("exec in the pod");
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

fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .subsec_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

#[tokio::test]
async fn a_pod_runs_answers_exec_and_goes_when_deleted() {
    let Some(cluster) = test_kube() else { return };
    let client = cluster.client().await;

    // A namespace of its own; the controller manager gives it a default
    // service account and (1.20) that account a token secret: until both
    // are there, no pod that mounts the token is admitted.
    let ns = unique_name("kube-smoke");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace: Namespace =
        serde_json::from_value(serde_json::json!({ "metadata": { "name": ns } })).unwrap();
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create the namespace");
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    eventually(
        "the namespace's default service account",
        Duration::from_secs(60),
        || async {
            let account = accounts
                .get_opt("default")
                .await
                .expect("get service account")?;
            account.secrets.is_some_and(|s| !s.is_empty()).then_some(())
        },
    )
    .await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "box" },
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "main",
                "image": cluster.image,
                "imagePullPolicy": "Never",
                "command": ["sleep", "infinity"],
            }],
        },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create the pod");
    let ip = eventually("pod box Running", Duration::from_secs(120), || async {
        let pod = pods.get("box").await.expect("get the pod");
        let status = pod.status?;
        (status.phase.as_deref() == Some("Running")).then_some(status.pod_ip?)
    })
    .await;
    assert!(
        ip.starts_with("10.216."),
        "pod IP {ip} is on the node's bridge network"
    );

    let mut process = pods
        .exec(
            "box",
            [
                "sh",
                "-c",
                "echo out-$((6 * 7)); echo err >&2; cat /etc/debian_version",
            ],
            &AttachParams::default().stdout(true).stderr(true),
        )
        .await
        .expect("exec in the pod");
    let mut stdout = process.stdout().expect("stdout");
    let mut out = String::new();
    stdout.read_to_string(&mut out).await.expect("read stdout");
    let mut stderr = process.stderr().expect("stderr");
    let mut err = String::new();
    stderr.read_to_string(&mut err).await.expect("read stderr");
    let status = process
        .take_status()
        .expect("status")
        .await
        .expect("an exit status");
    process.join().await.expect("the exec session ends");
    assert_eq!(status.status.as_deref(), Some("Success"), "{status:?}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("out-42"), "stdout: {out:?}");
    assert!(
        lines.next().is_some_and(|v| v.starts_with("12.")),
        "Debian 12 in the image: {out:?}"
    );
    assert_eq!(err, "err\n");

    // What a pod's in-cluster config uses: the API server's service address.
    let reached = exec_stdout(
        &pods,
        "box",
        "exec 3<>/dev/tcp/$KUBERNETES_SERVICE_HOST/$KUBERNETES_SERVICE_PORT && echo reached",
    )
    .await;
    assert_eq!(
        reached, "reached\n",
        "the pod reaches the API server's service"
    );

    pods.delete("box", &DeleteParams::default())
        .await
        .expect("delete the pod");
    // kubelet 1.20 takes up to a minute to confirm a deletion.
    eventually("pod box gone", Duration::from_secs(180), || async {
        pods.get_opt("box")
            .await
            .expect("get the pod")
            .is_none()
            .then_some(())
    })
    .await;
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .expect("delete the namespace");
}
