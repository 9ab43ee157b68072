//! The official SkyPilot CLI runs a two-node cluster on the real test
//! Kubernetes through a `skydeck` server, end to end: `sky check`, `sky
//! launch --infra k8s/<context>` (one pod per node, each seeing its rank and
//! both pod IPs), `sky status` (INFRA `Kubernetes (<context>)`), `sky
//! queue`, `sky logs`, `sky cancel`, a worker pod deleted mid-job (the job
//! ends FAILED_DRIVER and the cluster shows UNHEALTHY
//! naming the pod), `sky stop` refused as SkyPilot refuses it, and `sky
//! down` leaving no pod. Skipped without the cluster
//! (`SKYDECK_TEST_KUBECONFIG`) or the client (`SKYDECK_TEST_SKY`), except
//! under CI.

#[path = "support/kube.rs"]
mod kube_support;
mod support;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};
use std::time::{Duration, Instant};
use support::TestServer;
use support::sky::{Outcome, Report, Sky, official_sky, temp_dir};

/// How long a job may take to reach the state a step waits for.
const SETTLE: Duration = Duration::from_secs(180);

/// The line of `sky status` (or `sky queue`) output that names `what`.
fn line_with<'a>(outcome: &'a Outcome, what: &str) -> &'a str {
    outcome
        .stdout
        .lines()
        .find(|line| line.split_whitespace().any(|word| word == what))
        .unwrap_or_default()
}

/// The pods of `cluster`, by Skydeck's own label, with their IPs.
async fn pods_of(pods: &Api<Pod>, cluster: &str) -> Vec<(String, String)> {
    pods.list(&ListParams::default().labels(&format!("skydeck.io/cluster={cluster}")))
        .await
        .expect("list pods")
        .items
        .into_iter()
        .map(|pod| {
            let ip = pod.status.and_then(|s| s.pod_ip).unwrap_or_default();
            (pod.metadata.name.unwrap_or_default(), ip)
        })
        .collect()
}

/// Polls `sky queue` until job `job`'s row shows `want`.
async fn wait_job(sky: &Sky, cluster: &str, job: &str, want: &str) -> Outcome {
    let started = Instant::now();
    loop {
        let queue = sky.run(&["queue", cluster]).await;
        let row = queue
            .stdout
            .lines()
            .find(|line| line.split_whitespace().next() == Some(job))
            .unwrap_or_default()
            .to_owned();
        if row.contains(want) || started.elapsed() > SETTLE {
            return queue;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn official_client_runs_a_two_node_cluster_on_kubernetes() {
    let Some(executable) = official_sky() else {
        return;
    };
    let Some(kube) = kube_support::test_kube().await else {
        return;
    };
    let context = kube.context.clone();
    let cluster = format!("kpair-{}", std::process::id());
    let image = std::env::var("SKYDECK_TEST_KUBE_IMAGE")
        .unwrap_or_else(|_| "localhost/debian:bookworm".to_owned());
    let scratch = tempfile::tempdir().unwrap();
    let home = temp_dir(scratch.path(), "server");
    let kubeconfig = kube.kubeconfig.to_str().unwrap().to_owned();
    let server = TestServer::start(
        &home,
        &[
            ("KUBECONFIG", &kubeconfig),
            ("SKYDECK_KUBERNETES_IMAGE", &image),
        ],
    );
    let pods: Api<Pod> = Api::namespaced(kube.client.clone(), "default");
    let sky = Sky {
        executable,
        home: temp_dir(scratch.path(), "client-home"),
    };
    let mut report = Report {
        server: &server,
        failures: String::new(),
    };
    let login = sky.run(&["api", "login", "-e", &server.url]).await;
    report.expect(&login, &["Logged into SkyPilot API server"]);
    let check = sky.run(&["check", "kubernetes"]).await;
    report.expect(
        &check,
        &["Kubernetes: enabled", &format!("{context}: enabled")],
    );

    // Half a CPU each: the test node has two cores and other tests' pods.
    let task = scratch.path().join("task.yaml");
    std::fs::write(
        &task,
        "num_nodes: 2\n\
         resources:\n  cpus: 0.5\n  memory: 0.5\n\
         run: |\n  \
           echo \"node $SKYPILOT_NODE_RANK on $(hostname) of [$(echo $SKYPILOT_NODE_IPS)]\"\n",
    )
    .unwrap();
    let infra = format!("k8s/{context}");
    let launch = sky
        .run(&[
            "launch",
            "-y",
            "-c",
            &cluster,
            "--infra",
            &infra,
            task.to_str().unwrap(),
        ])
        .await;
    let made = pods_of(&pods, &cluster).await;
    report.check(&launch, made.len() == 2, &format!("two pods: {made:?}"));
    let head = made
        .iter()
        .find(|(name, _)| name.ends_with("-head"))
        .cloned();
    let worker = made
        .iter()
        .find(|(name, _)| name.ends_with("-worker1"))
        .cloned();
    let (Some(head), Some(worker)) = (head, worker) else {
        report.check(
            &launch,
            false,
            &format!("a head and a worker pod: {made:?}"),
        );
        report.finish();
        return;
    };
    let ips = format!("[{} {}]", head.1, worker.1);
    let node_lines = [
        format!("node 0 on {} of {ips}", head.0),
        format!("node 1 on {} of {ips}", worker.0),
    ];
    report.expect(&launch, &[&node_lines[0], &node_lines[1]]);

    let status = sky.run(&["status"]).await;
    let row = line_with(&status, &cluster);
    report.check(
        &status,
        row.contains(&format!("Kubernetes ({context})")) && row.contains("UP"),
        "the cluster's row must show INFRA `Kubernetes (<context>)` and UP",
    );
    let queue = sky.run(&["queue", &cluster]).await;
    report.expect(&queue, &["SUCCEEDED"]);
    let logs = sky.run(&["logs", &cluster, "1"]).await;
    report.expect(&logs, &[&node_lines[0], &node_lines[1]]);

    // Cancel ends a running two-node job.
    let sleeper = sky
        .run(&["exec", "-d", &cluster, "--num-nodes", "2", "sleep 600"])
        .await;
    report.expect(&sleeper, &[]);
    let running = wait_job(&sky, &cluster, "2", "RUNNING").await;
    report.expect(&running, &["RUNNING"]);
    let cancel = sky.run(&["cancel", "-y", &cluster, "2"]).await;
    report.expect(&cancel, &[]);
    let cancelled = wait_job(&sky, &cluster, "2", "CANCELLED").await;
    report.check(
        &cancelled,
        line_with(&cancelled, "2").contains("CANCELLED"),
        "job 2 must be CANCELLED",
    );

    // A worker pod deleted under a running job fails the job.
    let doomed = sky
        .run(&["exec", "-d", &cluster, "--num-nodes", "2", "sleep 600"])
        .await;
    report.expect(&doomed, &[]);
    let running = wait_job(&sky, &cluster, "3", "RUNNING").await;
    report.expect(&running, &["RUNNING"]);
    pods.delete(&worker.0, &DeleteParams::default().grace_period(0))
        .await
        .expect("delete the worker pod");
    let failed = wait_job(&sky, &cluster, "3", "FAILED_DRIVER").await;
    report.check(
        &failed,
        line_with(&failed, "3").contains("FAILED_DRIVER"),
        "job 3 must end FAILED_DRIVER once its worker pod is gone",
    );
    // The cluster's status says what happened.
    let status = sky.run(&["status", "-r", "-v", &cluster]).await;
    report.check(
        &status,
        status.output().contains("UNHEALTHY") && status.output().contains(&worker.0),
        "`sky status -r` must show the cluster UNHEALTHY, naming the deleted worker pod",
    );

    let stop = sky.run(&["stop", "-y", &cluster]).await;
    report.check(
        &stop,
        stop.output().contains("cannot be stopped"),
        "`sky stop` must be refused, saying clusters on Kubernetes cannot be stopped",
    );

    let down = sky.run(&["down", "-y", &cluster]).await;
    report.expect(&down, &[]);
    let left = pods_of(&pods, &cluster).await;
    report.check(
        &down,
        left.is_empty(),
        &format!("no pod of the cluster may be left: {left:?}"),
    );
    let gone = sky.run(&["status"]).await;
    report.check(
        &gone,
        !gone.stdout.contains(&cluster),
        "the cluster must be gone from `sky status`",
    );
    report.finish();
}
