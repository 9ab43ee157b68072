//! `sky launch --dryrun` from the official client (0.14.1) against a real
//! `skydeck` server: the server's checks run, their plan (or the launch's
//! own error) reaches the client, and nothing is made.
//! Skipped without `SKYDECK_TEST_SKY` (see official_client.rs).

mod support;

use support::TestServer;
use support::sky::{Report, Sky, official_sky, temp_dir};

#[tokio::test(flavor = "multi_thread")]
async fn the_official_client_dryrun_shows_the_plan_or_the_launchs_error() {
    let Some(executable) = official_sky() else {
        return;
    };
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let server = TestServer::start(&temp_dir(scratch.path(), "server"), &[]);
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

    let good = scratch.path().join("good.yaml");
    std::fs::write(&good, "resources:\n  cpus: 1\nrun: echo never-runs\n").unwrap();
    let dryrun = sky
        .run(&[
            "launch",
            "--dryrun",
            "-y",
            "-c",
            "dry",
            good.to_str().unwrap(),
        ])
        .await;
    report.expect(
        &dryrun,
        &[
            "Dry run: every check passed",
            "Cluster:     dry (new)",
            "Resources:   1 CPUs per node",
            "nothing was launched",
        ],
    );
    report.check(
        &dryrun,
        !dryrun.output().contains("never-runs\n"),
        "a dry run runs nothing",
    );

    let big = scratch.path().join("big.yaml");
    std::fs::write(&big, "resources:\n  cpus: 100000\nrun: echo never\n").unwrap();
    let refused = sky
        .run(&[
            "launch",
            "--dryrun",
            "-y",
            "-c",
            "big",
            big.to_str().unwrap(),
        ])
        .await;
    report.check(
        &refused,
        !refused.success() && refused.output().contains("does not fit on local"),
        "a dry run that cannot fit fails with the launch's error",
    );
    report.check(
        &refused,
        !refused.output().contains("Traceback"),
        "the refusal is printed without a traceback",
    );

    let status = sky.run(&["status"]).await;
    report.check(
        &status,
        status.success() && !status.stdout.contains("dry") && !status.stdout.contains("big"),
        "a dry run leaves no cluster",
    );
    report.finish();
}
