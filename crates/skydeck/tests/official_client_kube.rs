//! The official SkyPilot CLI against a `skydeck` server whose kubeconfig
//! is the real test Kubernetes (`SKYDECK_TEST_KUBECONFIG`): `sky check`
//! lists the context, `sky show-gpus --infra k8s` counts the GPUs a node's
//! labels and allocatable say it has (the test cluster has none: the test
//! labels a node with a GPU product and advertises `nvidia.com/gpu` in its
//! status, then puts it back), and `sky launch --infra k8s/<other>` is
//! refused with the allowed contexts. Skipped without the cluster or the
//! client (`SKYDECK_TEST_SKY`), except under CI.

#[path = "support/kube.rs"]
mod kube_support;
mod support;

use kube_support::{NodePatch, test_kube};
use support::TestServer;
use support::sky::{Report, Sky, official_sky, temp_dir};

#[tokio::test(flavor = "multi_thread")]
async fn official_client_sees_the_context_and_its_gpus() {
    let Some(executable) = official_sky() else {
        return;
    };
    let Some(kube) = test_kube().await else {
        return;
    };
    let ctx = kube.context.clone();
    let scratch = tempfile::tempdir().unwrap();
    let home = temp_dir(scratch.path(), "server");
    std::fs::write(
        home.join("config.yaml"),
        format!("kubernetes:\n  allowed_contexts: [\"{ctx}\"]\n"),
    )
    .unwrap();
    let kubeconfig = kube.kubeconfig.to_str().unwrap().to_owned();
    let server = TestServer::start(&home, &[("KUBECONFIG", &kubeconfig)]);
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
        &[
            "Kubernetes: enabled [compute]",
            &format!("{ctx}: enabled."),
            &format!("kubernetes/{ctx}"),
        ],
    );

    let node = kube.first_node().await;
    let patch = NodePatch::apply(
        &kube,
        &node,
        &[("nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3")],
        &[("nvidia.com/gpu", 2)],
    )
    .await;
    let gpus = sky.run(&["show-gpus", "--infra", "k8s"]).await;
    let unlabelled = sky.run(&["show-gpus", "--infra", "k8s", "L4"]).await;
    patch.restore().await;
    report.expect(
        &gpus,
        &[
            "Kubernetes GPUs",
            &format!("Context: {ctx}"),
            "H100-80GB",
            "1, 2",
            "2 of 2 free",
            &node,
        ],
    );
    report.check(
        &unlabelled,
        unlabelled
            .output()
            .contains("Resources 'L4' not found in any allowed Kubernetes cluster"),
        "a GPU no node has is not found",
    );

    let task = scratch.path().join("task.yaml");
    std::fs::write(&task, "run: echo hi\n").unwrap();
    let refused = sky
        .run(&[
            "launch",
            "-y",
            "--dryrun",
            "-c",
            "kube-refused",
            "--infra",
            "k8s/not-allowed",
            task.to_str().unwrap(),
        ])
        .await;
    report.check(
        &refused,
        !refused.success()
            && refused.output().contains("`not-allowed` is not allowed")
            && refused
                .output()
                .contains(&format!("Allowed: kubernetes/{ctx}")),
        "a launch on a context allowed_contexts leaves out is refused, naming the allowed ones",
    );
    report.finish();
}
