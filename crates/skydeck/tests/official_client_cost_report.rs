//! The official SkyPilot 0.14.1 CLI's `sky cost-report` lists the cluster
//! history: a cluster torn down stays in the report as TERMINATED, beside
//! the ones that exist, at no cost on your own hardware.
//!
//! Runs only with `SKYDECK_TEST_SKY` (see `official_client.rs`).

mod support;

use support::TestServer;
use support::sky::{Report, Sky, official_sky, strip_ansi, temp_dir};

#[tokio::test(flavor = "multi_thread")]
async fn official_sky_cost_report_lists_torn_down_clusters() {
    let Some(executable) = official_sky() else {
        return;
    };
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let server = TestServer::start(&temp_dir(scratch.path(), "server"), &[]);
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

    for cluster in ["gone", "kept"] {
        let launch = sky
            .run(&["launch", "-y", "-c", cluster, "--", "echo", "hi"])
            .await;
        report.expect(&launch, &[]);
    }
    let down = sky.run(&["down", "-y", "gone"]).await;
    report.expect(&down, &[]);

    let costs = sky.run(&["cost-report"]).await;
    report.expect(&costs, &["Total Cost: $0.00"]);
    let table = strip_ansi(&costs.output());
    let row = |name: &str| {
        table
            .lines()
            .find(|line| line.split_whitespace().next() == Some(name))
            .unwrap_or_default()
            .to_owned()
    };
    let (gone, kept) = (row("gone"), row("kept"));
    report.check(
        &costs,
        gone.contains("TERMINATED") && gone.contains("1x Local(cpus=") && gone.contains("$ 0.00"),
        "the torn-down cluster is listed as TERMINATED, with its resources, at no cost",
    );
    report.check(&costs, kept.contains("UP"), "the cluster that exists is UP");

    let json = sky.run(&["cost-report", "-o", "json"]).await;
    report.expect(&json, &["\"name\": \"gone\"", "\"status\": \"TERMINATED\""]);

    let down = sky.run(&["down", "-y", "kept"]).await;
    report.expect(&down, &[]);
    report.finish();
}
