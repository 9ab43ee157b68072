//! The SSH test hosts that `scripts/ssh-hosts-up.sh` starts (real sshd
//! daemons in network, UTS, mount and PID namespaces), described by the
//! hosts.json that `SKYDECK_TEST_SSH_HOSTS` names. Without it a test
//! skips, except under CI, where it fails: CI must run them.

#![allow(dead_code)]

use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
pub struct TestHosts {
    /// The directory the script keeps its state in.
    pub dir: PathBuf,
    /// The private key every host accepts (root's authorized_keys).
    pub key: PathBuf,
    /// An SSH config with an alias per host (`h4` has ProxyJump h1).
    pub ssh_config: PathBuf,
    pub hosts: Vec<TestHost>,
}

#[derive(Debug, Deserialize)]
pub struct TestHost {
    /// The alias in `ssh_config`: h1 … h5.
    pub name: String,
    pub address: String,
    pub user: String,
    /// What `hostname` prints on the host.
    pub hostname: String,
    /// The alias of the host to jump through (only h4, behind h1).
    pub jump: Option<String>,
    /// The host's network namespace and its link in the root namespace
    /// (none for h4): `ip link set LINK down` cuts the host off.
    pub netns: String,
    pub link: Option<String>,
    /// The host's own /root and /tmp are `dir/root` and `dir/tmp`.
    pub dir: PathBuf,
}

impl TestHosts {
    pub fn host(&self, name: &str) -> &TestHost {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no test host {name}"))
    }

    /// Gives host `name` a new host key (scripts/ssh-hosts-rekey.sh).
    pub fn rekey(&self, name: &str) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/ssh-hosts-rekey.sh");
        let status = std::process::Command::new("bash")
            .arg(script)
            .arg(&self.dir)
            .arg(name)
            .status()
            .expect("run ssh-hosts-rekey.sh");
        assert!(status.success(), "ssh-hosts-rekey.sh {name} failed");
    }
}

/// The test hosts, or `None` to skip the test (never under CI).
pub fn test_hosts() -> Option<TestHosts> {
    match std::env::var_os("SKYDECK_TEST_SSH_HOSTS") {
        Some(path) if !path.is_empty() => {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!("SKYDECK_TEST_SSH_HOSTS={}: {e}", Path::new(&path).display())
            });
            Some(serde_json::from_str(&text).expect("hosts.json of scripts/ssh-hosts-up.sh"))
        }
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must set SKYDECK_TEST_SSH_HOSTS to the hosts.json of the SSH test hosts: \
                 SKYDECK_TEST_SSH_HOSTS=$(scripts/ssh-hosts-up.sh /var/tmp/skydeck-ssh-hosts)"
            );
            eprintln!(
                "skipping: SKYDECK_TEST_SSH_HOSTS is not set \
                 (SKYDECK_TEST_SSH_HOSTS=$(scripts/ssh-hosts-up.sh /var/tmp/skydeck-ssh-hosts) provides it, as root)"
            );
            None
        }
    }
}
