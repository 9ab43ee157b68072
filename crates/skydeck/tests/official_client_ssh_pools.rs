//! The official SkyPilot CLI sets up SSH Node Pools on a `skydeck` server:
//! `sky ssh up --infra POOL` (no body, as the client sends it), `sky
//! check` listing the pool beneath `SSH`, a pool with a wrong key failing
//! with the reason per host, and `sky ssh down`. Real sshd hosts from
//! `scripts/ssh-hosts-up.sh`; skipped without them or without the client
//! (`SKYDECK_TEST_SKY`), except under CI.

mod support;

use support::TestServer;
use support::sky::{Report, Sky, official_sky, temp_dir};
use support::ssh_hosts::test_hosts;

#[tokio::test(flavor = "multi_thread")]
async fn official_client_sets_up_and_checks_ssh_node_pools() {
    let Some(executable) = official_sky() else {
        return;
    };
    let Some(hosts) = test_hosts() else {
        return;
    };
    // What an earlier run that failed midway left on this test's hosts.
    for name in ["h3", "h5"] {
        let _ = std::fs::remove_dir_all(hosts.host(name).dir.join("root/.skydeck"));
    }
    let scratch = tempfile::tempdir().unwrap();
    let home = temp_dir(scratch.path(), "server");
    // Other tests use h1, h2 and h4 (and take them down): this one has
    // h3 and h5 to itself.
    let wrong_key = scratch.path().join("stranger_ed25519");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&wrong_key)
        .status()
        .expect("run ssh-keygen");
    assert!(status.success());
    std::fs::write(
        home.join("ssh_node_pools.yaml"),
        format!(
            "team:\n  hosts: [h3, h5]\nbad:\n  user: root\n  identity_file: {}\n  hosts: [{}]\n",
            wrong_key.display(),
            hosts.host("h5").address
        ),
    )
    .unwrap();
    let ssh_config = hosts.ssh_config.to_str().unwrap();
    let server = TestServer::start(&home, &[("SKYDECK_SSH_CONFIG", ssh_config)]);
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

    let before = sky.run(&["check", "ssh"]).await;
    report.expect(
        &before,
        &["team: disabled. Reason: Not set up. Use `sky ssh up --infra team` to set up."],
    );

    let up = sky.run(&["ssh", "up", "--infra", "team"]).await;
    report.expect(
        &up,
        &[
            "Found 1 Node Pool: team",
            "skydeck-test-h3",
            "skydeck-test-h5",
            "Completed deployment for cluster: team",
            "SSH Node Pools set up successfully",
        ],
    );

    let check = sky.run(&["check"]).await;
    report.expect(
        &check,
        &[
            "SSH: enabled [compute]",
            "SSH Node Pools:",
            "team: enabled.",
            "bad: disabled. Reason: Not set up.",
            "Local",
        ],
    );

    // `sky status` lists each pool that is up among the enabled infra.
    let status = sky.run(&["status"]).await;
    report.expect(&status, &["Enabled Infra: ssh/team"]);

    let bad = sky.run(&["ssh", "up", "--infra", "bad"]).await;
    report.check(&bad, !bad.success(), "a pool with a wrong key must fail");
    for fragment in ["refused the key", "authorized_keys", "Failed to deploy"] {
        report.check(
            &bad,
            bad.output().contains(fragment),
            &format!("the failure must say {fragment:?}"),
        );
    }

    let down = sky.run(&["ssh", "down", "--infra", "team"]).await;
    report.expect(&down, &["SSH Node Pools cleaned up successfully"]);
    for name in ["h3", "h5"] {
        let left = hosts.host(name).dir.join("root/.skydeck/bin");
        report.check(
            &down,
            !left.exists(),
            &format!("the agent must be gone from {name}"),
        );
    }

    let after = sky.run(&["check", "ssh"]).await;
    report.expect(&after, &["No SSH Node Pools are up."]);
    report.finish();
}
