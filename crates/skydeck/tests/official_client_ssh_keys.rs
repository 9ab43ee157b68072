//! The official SkyPilot CLI's `sky ssh up -f FILE` against a `skydeck`
//! server: the client uploads each host's key (`POST /ssh_node_pools/keys`)
//! and the resolved pool (`POST /ssh_node_pools`), then deploys. The pool
//! logs in as h3's non-root `skytest` and sudoes with the pool file's
//! `password:` (a wrong one fails naming the host). The pool is then
//! deleted from the server's file (`DELETE /ssh_node_pools/{pool}`) and
//! `sky ssh down` still cleans its host from what `up` recorded. Real
//! sshd hosts from `scripts/ssh-hosts-up.sh`; skipped without them or
//! without the client (`SKYDECK_TEST_SKY`), except under CI.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use support::TestServer;
use support::sky::{Report, Sky, official_sky, temp_dir};
use support::ssh_hosts::{TestHosts, test_hosts};

/// h3's login that may sudo with a password only (`ssh-hosts-up.sh`).
const SUDO_USER: &str = "skytest";

fn sudo_home(hosts: &TestHosts) -> std::path::PathBuf {
    hosts.host("h3").dir.join("home").join(SUDO_USER)
}

fn pool_yaml(name: &str, hosts: &TestHosts, password: &str) -> String {
    format!(
        "{name}:\n  user: {SUDO_USER}\n  identity_file: {}\n  password: {password}\n  hosts:\n    - {}\n",
        hosts.key.display(),
        hosts.host("h3").address
    )
}

fn stored_keys(home: &Path) -> Vec<std::path::PathBuf> {
    let mut keys: Vec<_> = std::fs::read_dir(home.join("ssh_keys"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread")]
async fn sky_ssh_up_with_an_uploaded_key_sudoes_with_the_pools_password() {
    let Some(executable) = official_sky() else {
        return;
    };
    let Some(hosts) = test_hosts() else {
        return;
    };
    let password_file = hosts.host("h3").dir.join("sudo_password");
    let Ok(password) = std::fs::read_to_string(&password_file) else {
        panic!(
            "{} is missing: restart the test hosts with this tree's scripts/ssh-hosts-up.sh",
            password_file.display()
        );
    };
    let password = password.trim().to_owned();
    // What an earlier run that failed midway left on h3.
    let _ = std::fs::remove_dir_all(sudo_home(&hosts).join(".skydeck"));
    let scratch = tempfile::tempdir().unwrap();
    let home = temp_dir(scratch.path(), "server");
    // Ours, empty: a `~/.sky` pool file on this machine is never touched.
    std::fs::write(home.join("ssh_node_pools.yaml"), "").unwrap();
    let server = TestServer::start(&home, &[]);
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

    let file = scratch.path().join("pools.yaml");
    std::fs::write(&file, pool_yaml("sudoers", &hosts, &password)).unwrap();
    let up = sky
        .run(&[
            "ssh",
            "up",
            "-f",
            file.to_str().unwrap(),
            "--infra",
            "sudoers",
        ])
        .await;
    report.expect(
        &up,
        &[
            "Found 1 Node Pool: sudoers",
            "skydeck-test-h3",
            "sudo with the pool's password",
            "Completed deployment for cluster: sudoers",
            "SSH Node Pools set up successfully",
        ],
    );
    // The key came through the client: stored 0600 on the server, named
    // from the pool, and the server's pool file points at it.
    let keys = stored_keys(&home);
    report.check(&up, keys.len() == 1, &format!("one key stored: {keys:?}"));
    if let Some(key) = keys.first() {
        let name = key.file_name().unwrap().to_string_lossy().into_owned();
        report.check(
            &up,
            name.starts_with("sudoers-0-"),
            &format!("the key is named as the client names it: {name}"),
        );
        let mode = std::fs::metadata(key).unwrap().permissions().mode() & 0o777;
        report.check(
            &up,
            mode == 0o600,
            &format!("the key is 0600, not {mode:o}"),
        );
        report.check(
            &up,
            std::fs::read(key).unwrap() == std::fs::read(&hosts.key).unwrap(),
            "the stored key is the client's",
        );
        let pools = std::fs::read_to_string(home.join("ssh_node_pools.yaml")).unwrap();
        report.check(
            &up,
            pools.contains(&key.display().to_string()),
            &format!("the pool file names the stored key: {pools}"),
        );
    }
    report.check(
        &up,
        sudo_home(&hosts).join(".skydeck/bin").is_dir(),
        "the agent is installed in skytest's home on h3",
    );

    // A wrong sudo password: a clear error naming the host.
    let bad_file = scratch.path().join("bad.yaml");
    std::fs::write(&bad_file, pool_yaml("badsudo", &hosts, "not-the-password")).unwrap();
    let bad = sky
        .run(&[
            "ssh",
            "up",
            "-f",
            bad_file.to_str().unwrap(),
            "--infra",
            "badsudo",
        ])
        .await;
    report.check(&bad, !bad.success(), "a wrong sudo password must fail");
    let address = hosts.host("h3").address.clone();
    for fragment in [
        "sudo refused the pool's password",
        &address,
        "Failed to deploy",
    ] {
        report.check(
            &bad,
            bad.output().contains(fragment),
            &format!("the failure must say {fragment:?}"),
        );
    }

    // Deleted from the server's pool file, the pool still comes down.
    let deleted = support::http("DELETE", &format!("{url}/ssh_node_pools/sudoers"), None).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let pools = std::fs::read_to_string(home.join("ssh_node_pools.yaml")).unwrap();
    assert!(!pools.contains("sudoers"), "{pools}");
    let down = sky.run(&["ssh", "down", "--infra", "sudoers"]).await;
    report.expect(
        &down,
        &[
            "Cleaning up SSH Node Pool sudoers",
            "agent removed",
            "SSH Node Pools cleaned up successfully",
        ],
    );
    report.check(
        &down,
        !sudo_home(&hosts).join(".skydeck").exists(),
        "nothing of the pool is left in skytest's home on h3",
    );
    let again = sky.run(&["ssh", "down", "--infra", "sudoers"]).await;
    report.check(
        &again,
        !again.success() && again.output().contains("No SSH Node Pool \"sudoers\""),
        "once down and out of the file, the pool is unknown",
    );
    report.finish();
}
