//! SSH Node Pools end to end on real sshd hosts (`scripts/ssh-hosts-up.sh`):
//! `skydeck ssh up` checks every host of a pool (one behind a jump host),
//! installs the agent there and records each host's capacity; `skydeck
//! check` lists each pool with its state; a wrong key fails with its
//! reason; `ssh.allowed_node_pools` refuses a launch on another pool;
//! `skydeck ssh down` takes it all away again.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use support::TestServer;
use support::ssh_hosts::{TestHosts, test_hosts};

const COMMAND_TIMEOUT: Duration = Duration::from_secs(180);

struct Outcome {
    command: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn describe(&self) -> String {
        format!(
            "`skydeck {}` exited {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }

    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    fn expect(&self, code: i32, needles: &[&str]) {
        assert_eq!(self.code, Some(code), "{}", self.describe());
        for needle in needles {
            assert!(
                self.all().contains(needle),
                "missing {needle:?}: {}",
                self.describe()
            );
        }
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
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A key no host accepts.
fn stranger_key(dir: &Path) -> PathBuf {
    let key = dir.join("stranger_ed25519");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .expect("run ssh-keygen");
    assert!(status.success());
    key
}

/// The agent builds `ssh up` installed under a host's own home.
fn installed_agents(hosts: &TestHosts, name: &str) -> Vec<PathBuf> {
    let bin = hosts.host(name).dir.join("root/.skydeck/bin");
    let Ok(entries) = std::fs::read_dir(&bin) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("skydeck"))
        .filter(|p| p.is_file())
        .collect()
}

async fn recorded_hosts(home: &Path, pool: &str) -> Vec<skydeck_types::placement::Host> {
    use skydeck_store::Store;
    let store =
        skydeck_store::SqlStore::open(&format!("sqlite://{}", home.join("state.db").display()))
            .await
            .expect("open the server's database");
    store.list_hosts(pool).await.expect("list hosts")
}

#[tokio::test(flavor = "multi_thread")]
async fn ssh_up_sets_up_a_pool_of_real_hosts_and_down_takes_it_away() {
    let Some(hosts) = test_hosts() else {
        return;
    };
    // What an earlier run that failed midway left on this test's hosts.
    for name in ["h1", "h2", "h4"] {
        let _ = std::fs::remove_dir_all(hosts.host(name).dir.join("root/.skydeck"));
    }
    let scratch = tempfile::tempdir().unwrap();
    let home = scratch.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let wrong_key = stranger_key(scratch.path());
    let h3 = &hosts.host("h3").address;
    // h4 is reached through h1, as the SSH config's alias says.
    std::fs::write(
        home.join("ssh_node_pools.yaml"),
        format!(
            "lab:\n  hosts: [h1, h2, h4]\n\
             broken:\n  user: root\n  identity_file: {}\n  hosts: [{h3}]\n\
             other:\n  hosts: [h5]\n",
            wrong_key.display()
        ),
    )
    .unwrap();
    std::fs::write(
        home.join("config.yaml"),
        "ssh:\n  allowed_node_pools: [lab, broken, ghost]\n",
    )
    .unwrap();
    let ssh_config = hosts.ssh_config.to_str().unwrap();
    let server = TestServer::start(&home, &[("SKYDECK_SSH_CONFIG", ssh_config)]);
    let cwd = scratch.path();

    let before = skydeck(&server, cwd, &["check"]).await;
    before.expect(
        0,
        &[
            "SSH: disabled",
            "lab: disabled. Reason: Not set up. Use `sky ssh up --infra lab` to set up.",
            "other: disabled. Reason: Not included in allowed_node_pools configuration.",
        ],
    );

    let up = skydeck(&server, cwd, &["ssh", "up", "--infra", "lab"]).await;
    up.expect(
        0,
        &[
            "Found 1 Node Pool: lab",
            "skydeck-test-h1",
            "skydeck-test-h2",
            "skydeck-test-h4",
            "Completed deployment for cluster: lab",
        ],
    );
    let recorded = recorded_hosts(&home, "ssh/lab").await;
    let ids: Vec<&str> = recorded.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(
        ids,
        ["ssh/lab/h1", "ssh/lab/h2", "ssh/lab/h4"],
        "{recorded:?}"
    );
    for host in &recorded {
        assert_eq!(host.pool, "ssh/lab");
        assert!(host.cpus >= 1.0 && host.memory_gb > 0.1, "{host:?}");
    }
    for name in ["h1", "h2", "h4"] {
        assert_eq!(installed_agents(&hosts, name).len(), 1, "agent on {name}");
    }
    let known = std::fs::read_to_string(home.join("ssh/pools/lab/known_hosts")).unwrap();
    assert!(known.lines().count() >= 3, "host keys recorded: {known}");

    // Again: nothing to copy, the same records.
    let again = skydeck(&server, cwd, &["ssh", "up", "--infra", "ssh/lab"]).await;
    again.expect(0, &["already at"]);
    assert_eq!(recorded_hosts(&home, "ssh/lab").await.len(), 3);

    // A host whose key changed is refused, saying how to accept the new
    // key; doing so lets `up` through again.
    hosts.rekey("h2");
    let changed = skydeck(&server, cwd, &["ssh", "up", "--infra", "lab"]).await;
    changed.expect(
        1,
        &[
            "h2",
            "changed since this pool first recorded it",
            "ssh-keygen -R",
        ],
    );
    let accept = changed
        .all()
        .lines()
        .find_map(|l| {
            l.split("run `")
                .nth(1)
                .and_then(|r| r.split('`').next())
                .map(str::to_owned)
        })
        .expect("the message names the command to accept the new key");
    let words: Vec<&str> = accept.split_whitespace().collect();
    let accepting = std::process::Command::new(words[0])
        .args(&words[1..])
        .output()
        .expect("run the accepting command");
    assert!(accepting.status.success(), "{accept}: {accepting:?}");
    let accepted = skydeck(&server, cwd, &["ssh", "up", "--infra", "lab"]).await;
    accepted.expect(0, &["Completed deployment for cluster: lab"]);

    let after = skydeck(&server, cwd, &["check"]).await;
    after.expect(
        0,
        &[
            "SSH: enabled [compute]",
            "lab: enabled.",
            "broken: disabled. Reason: Not set up.",
        ],
    );

    let broken = skydeck(&server, cwd, &["ssh", "up", "--infra", "broken"]).await;
    broken.expect(
        1,
        &[
            &format!("root@{h3}"),
            "refused the key",
            "authorized_keys",
            "Failed to deploy SkyPilot on some Node Pools: broken",
        ],
    );
    assert!(recorded_hosts(&home, "ssh/broken").await.is_empty());

    let unknown = skydeck(&server, cwd, &["ssh", "up", "--infra", "nope"]).await;
    unknown.expect(1, &["No SSH Node Pool \"nope\"", "lab"]);

    // A launch on a pool the config does not allow is refused at the
    // checks, before anything is provisioned.
    let refused = skydeck(
        &server,
        cwd,
        &[
            "launch",
            "--dryrun",
            "--infra",
            "ssh/other",
            "--",
            "echo hi",
        ],
    )
    .await;
    refused.expect(
        1,
        &[
            "SSH Node Pool `other` is not allowed",
            "ssh.allowed_node_pools",
        ],
    );

    // A pool not in the file, or not set up, is refused there too.
    for (infra, says) in [
        (
            "ssh/ghost",
            "No SSH Node Pool `ghost`; the pools are: broken, lab, other",
        ),
        (
            "ssh/broken",
            "SSH Node Pool `broken` cannot be used: Not set up.",
        ),
    ] {
        let refused = skydeck(
            &server,
            cwd,
            &["launch", "--dryrun", "--infra", infra, "--", "echo hi"],
        )
        .await;
        refused.expect(1, &[says]);
    }

    let down = skydeck(&server, cwd, &["ssh", "down", "--infra", "lab"]).await;
    down.expect(0, &["cleaned up successfully"]);
    assert!(recorded_hosts(&home, "ssh/lab").await.is_empty());
    for name in ["h1", "h2", "h4"] {
        assert!(
            installed_agents(&hosts, name).is_empty(),
            "agent left on {name}"
        );
        assert!(!hosts.host(name).dir.join("root/.skydeck").exists());
    }
    let gone = skydeck(&server, cwd, &["check"]).await;
    gone.expect(0, &["lab: disabled. Reason: Not set up."]);
}
