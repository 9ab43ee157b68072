//! The official SkyPilot 0.14.1 CLI on the commands beyond clusters: what
//! this server can answer works (`show-gpus`, `cost-report`, `storage ls`,
//! `volumes ls`, `serve status`, `jobs queue`), and what it cannot yet
//! (`serve up/down/logs`) fails with one plain line
//! and no Python traceback; `ssh up` without a pool file says where to
//! write one.
//!
//! Runs only with `SKYDECK_TEST_SKY` (see `official_client.rs`).

mod support;

use support::TestServer;
use support::sky::{Outcome, Report, Sky, official_sky, temp_dir};

/// A refusal: non-zero exit, the plain message, no traceback.
fn expect_refusal(report: &mut Report<'_>, outcome: &Outcome, fragment: &str) {
    let output = outcome.output();
    report.check(
        outcome,
        !outcome.success(),
        "an unsupported command must exit non-zero",
    );
    report.check(
        outcome,
        output.contains("NotSupportedError") && output.contains(fragment),
        &format!("the output must say plainly that {fragment:?} is not supported"),
    );
    report.check(
        outcome,
        !output.contains("Traceback"),
        "an unsupported command must not print a Python traceback",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn official_sky_client_lists_what_exists_and_refuses_what_does_not_yet() {
    let Some(executable) = official_sky() else {
        return;
    };
    let scratch = tempfile::tempdir().expect("a temporary directory");
    // Two GPUs claimed, whatever the test machine has.
    let server = TestServer::start(
        &temp_dir(scratch.path(), "server"),
        &[("SKYDECK_LOCAL_ACCELERATORS", "H100:2")],
    );
    let url = server.url.clone();
    let sky = Sky {
        executable,
        home: temp_dir(scratch.path(), "client-home"),
    };
    let mut report = Report {
        server: &server,
        failures: String::new(),
    };
    let login = sky.run(&["api", "login", "-e", &url]).await;
    report.expect(&login, &["Logged into SkyPilot API server"]);

    let gpus = sky.run(&["show-gpus"]).await;
    report.expect(&gpus, &["COMMON_GPU", "H100", "1, 2"]);
    let h100 = sky.run(&["show-gpus", "H100"]).await;
    report.expect(&h100, &["CLOUD", "Local", "$ 0.000"]);
    let elsewhere = sky.run(&["show-gpus", "H100", "--infra", "aws"]).await;
    report.expect(&elsewhere, &["not found"]);

    report.expect(
        &sky.run(&["storage", "ls"]).await,
        &["No existing storage."],
    );
    report.expect(
        &sky.run(&["volumes", "ls"]).await,
        &["No existing volumes."],
    );
    report.expect(
        &sky.run(&["serve", "status"]).await,
        &["No existing services."],
    );
    report.expect(
        &sky.run(&["jobs", "queue"]).await,
        &["No in-progress managed jobs."],
    );

    let launch = sky
        .run(&["launch", "-y", "-c", "c1", "--", "echo", "hi"])
        .await;
    report.expect(&launch, &[]);
    let costs = sky.run(&["cost-report"]).await;
    report.expect(
        &costs,
        &["c1", "1x Local(cpus=", "UP", "$ 0.00", "Total Cost: $0.00"],
    );
    let costs_json = sky.run(&["cost-report", "-o", "json"]).await;
    report.expect(&costs_json, &["\"name\": \"c1\"", "\"total_cost\": 0.0"]);

    let project = temp_dir(scratch.path(), "project");
    let service = project.join("service.yaml");
    std::fs::write(
        &service,
        "service:\n  readiness_probe: /\n  replicas: 1\nresources:\n  ports: 8080\nrun: python3 -m http.server 8080\n",
    )
    .unwrap();
    let service = service.to_str().unwrap();

    let refused: [(&[&str], &str); 3] = [
        (&["serve", "up", "-y", "-n", "svc", service], "SkyServe"),
        (&["serve", "down", "-y", "svc"], "SkyServe"),
        (&["serve", "logs", "svc", "1"], "SkyServe"),
    ];
    for (args, feature) in refused {
        let outcome = sky.run(args).await;
        expect_refusal(&mut report, &outcome, feature);
    }
    for args in [["ssh", "up"], ["ssh", "down"]] {
        let outcome = sky.run(&args).await;
        let output = outcome.output();
        report.check(
            &outcome,
            !outcome.success()
                && output.contains("No SSH Node Pools are defined")
                && output.contains("ssh_node_pools.yaml")
                && !output.contains("Traceback"),
            "without a pool file, one line saying where to write it",
        );
    }

    let down = sky.run(&["down", "-y", "c1"]).await;
    report.expect(&down, &[]);
    report.finish();
}
