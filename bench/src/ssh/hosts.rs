//! The SSH test hosts the benchmark runs against: the real sshd hosts that
//! `scripts/ssh-hosts-up.sh` starts in network namespaces, described by the
//! hosts.json it prints. The benchmark never reaches any other machine:
//! without that file it refuses to run.

use anyhow::{Context, bail};
use serde_json::Value;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The variable the project's tests read the hosts from, too.
pub const HOSTS_VAR: &str = "SKYDECK_TEST_SSH_HOSTS";

/// How many hosts the pool has: the issue's "ssh up of three hosts".
pub const POOL_SIZE: usize = 3;

/// The host the test script keeps for tests that break a host: never
/// part of the benchmark's pool.
const BREAKABLE_HOST: &str = "h5";

pub struct TestHosts {
    /// The hosts.json read.
    pub file: PathBuf,
    /// The private key every host accepts.
    pub key: PathBuf,
    /// The script's SSH config, with an alias per host.
    pub ssh_config: PathBuf,
    pub hosts: Vec<TestHost>,
}

#[derive(Debug, Clone)]
pub struct TestHost {
    /// The alias in `ssh_config` (h1 … h5).
    pub name: String,
    pub address: String,
    pub user: String,
    /// What `hostname` prints there.
    pub hostname: String,
    /// Set for a host reached through another (h4).
    pub jump: Option<String>,
    /// The host's directory on this machine; its own /root is `dir/root`.
    pub dir: PathBuf,
}

/// The hosts.json to use: `--hosts` first, else `$SKYDECK_TEST_SSH_HOSTS`;
/// neither is a clear refusal saying how to start the hosts.
pub fn locate(flag: Option<&Path>, env: Option<OsString>) -> anyhow::Result<PathBuf> {
    if let Some(path) = flag {
        return Ok(path.to_owned());
    }
    match env {
        Some(path) if !path.is_empty() => Ok(PathBuf::from(path)),
        _ => bail!(
            "no SSH test hosts to run against: pass --hosts DIR/hosts.json or set {HOSTS_VAR}. \
             Start a set of your own (as root; real sshd daemons in network namespaces, \
             nothing leaves the machine) with `{HOSTS_VAR}=$(scripts/ssh-hosts-up.sh \
             /var/tmp/skydeck-ssh-bench)`, and stop them afterwards with \
             `scripts/ssh-hosts-down.sh /var/tmp/skydeck-ssh-bench`"
        ),
    }
}

impl TestHosts {
    pub fn load(file: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(file).with_context(|| {
            format!(
                "cannot read the SSH test hosts' file {}: is it the path \
                 scripts/ssh-hosts-up.sh printed?",
                file.display()
            )
        })?;
        Self::parse(file, &text)
    }

    fn parse(file: &Path, text: &str) -> anyhow::Result<Self> {
        let doc: Value = serde_json::from_str(text).with_context(|| {
            format!(
                "{} is not the hosts.json of scripts/ssh-hosts-up.sh",
                file.display()
            )
        })?;
        let field = |value: &Value, name: &str| -> anyhow::Result<String> {
            value[name].as_str().map(str::to_owned).with_context(|| {
                format!(
                    "{}: no {name:?} in {value}; is it the hosts.json of \
                     scripts/ssh-hosts-up.sh?",
                    file.display()
                )
            })
        };
        let hosts = doc["hosts"]
            .as_array()
            .with_context(|| format!("{}: no \"hosts\" list", file.display()))?
            .iter()
            .map(|host| {
                // Only hosts the script made (each in its own network
                // namespace) are ever reached.
                field(host, "netns")?;
                Ok(TestHost {
                    name: field(host, "name")?,
                    address: field(host, "address")?,
                    user: field(host, "user")?,
                    hostname: field(host, "hostname")?,
                    jump: host["jump"].as_str().map(str::to_owned),
                    dir: PathBuf::from(field(host, "dir")?),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            file: file.to_owned(),
            key: PathBuf::from(field(&doc, "key")?),
            ssh_config: PathBuf::from(field(&doc, "ssh_config")?),
            hosts,
        })
    }

    /// The pool's hosts: the first [`POOL_SIZE`] the server reaches
    /// directly (no jump host: the pool file names them by address), never
    /// the one kept for breaking.
    pub fn pool_hosts(&self) -> anyhow::Result<Vec<TestHost>> {
        let hosts: Vec<TestHost> = self
            .hosts
            .iter()
            .filter(|h| h.jump.is_none() && h.name != BREAKABLE_HOST)
            .take(POOL_SIZE)
            .cloned()
            .collect();
        if hosts.len() < POOL_SIZE {
            bail!(
                "{} has {} hosts reachable without a jump host (besides {BREAKABLE_HOST}); the \
                 benchmark needs {POOL_SIZE}",
                self.file.display(),
                hosts.len()
            );
        }
        Ok(hosts)
    }

    /// The host with address `address`, among all.
    pub fn by_address(&self, address: &str) -> Option<&TestHost> {
        self.hosts.iter().find(|h| h.address == address)
    }
}

/// The pool file (SkyPilot's format) for pool `pool` of `hosts`, reached
/// by address with the test key.
pub fn pool_file(pool: &str, key: &Path, hosts: &[TestHost]) -> String {
    let user = hosts.first().map_or("root", |h| h.user.as_str());
    let mut yaml = format!(
        "{pool}:\n  user: {user}\n  identity_file: {}\n  hosts:\n",
        key.display()
    );
    for host in hosts {
        yaml.push_str(&format!("    - {}\n", host.address));
    }
    yaml
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTS_JSON: &str = r#"{
      "dir": "/var/tmp/x", "key": "/var/tmp/x/id_ed25519", "ssh_config": "/var/tmp/x/ssh_config",
      "hosts": [
        {"name": "h1", "address": "10.213.2.2", "user": "root", "hostname": "skydeck-test-h1", "jump": null, "netns": "sd2-h1", "link": "sd2h1", "dir": "/var/tmp/x/hosts/h1"},
        {"name": "h4", "address": "10.214.2.2", "user": "root", "hostname": "skydeck-test-h4", "jump": "h1", "netns": "sd2-h4", "link": null, "dir": "/var/tmp/x/hosts/h4"},
        {"name": "h5", "address": "10.213.2.6", "user": "root", "hostname": "skydeck-test-h5", "jump": null, "netns": "sd2-h5", "link": "sd2h5", "dir": "/var/tmp/x/hosts/h5"},
        {"name": "h2", "address": "10.213.2.3", "user": "root", "hostname": "skydeck-test-h2", "jump": null, "netns": "sd2-h2", "link": "sd2h2", "dir": "/var/tmp/x/hosts/h2"},
        {"name": "h3", "address": "10.213.2.4", "user": "root", "hostname": "skydeck-test-h3", "jump": null, "netns": "sd2-h3", "link": "sd2h3", "dir": "/var/tmp/x/hosts/h3"}
      ]
    }"#;

    #[test]
    fn without_hosts_it_refuses_saying_how_to_start_them() {
        for env in [None, Some(OsString::new())] {
            let err = locate(None, env).unwrap_err().to_string();
            assert!(err.contains("--hosts"), "{err}");
            assert!(err.contains(HOSTS_VAR), "{err}");
            assert!(err.contains("scripts/ssh-hosts-up.sh"), "{err}");
        }
        let flag = Path::new("/a/hosts.json");
        assert_eq!(
            locate(Some(flag), Some("/b/hosts.json".into())).unwrap(),
            flag
        );
        assert_eq!(
            locate(None, Some("/b/hosts.json".into())).unwrap(),
            Path::new("/b/hosts.json")
        );
    }

    #[test]
    fn the_pool_is_three_direct_hosts_never_the_breakable_one() {
        let hosts = TestHosts::parse(Path::new("hosts.json"), HOSTS_JSON).unwrap();
        let names: Vec<String> = hosts
            .pool_hosts()
            .unwrap()
            .into_iter()
            .map(|h| h.name)
            .collect();
        assert_eq!(names, ["h1", "h2", "h3"]);
        assert_eq!(hosts.by_address("10.213.2.3").unwrap().name, "h2");
        let yaml = pool_file("bench", &hosts.key, &hosts.pool_hosts().unwrap());
        assert_eq!(
            yaml,
            "bench:\n  user: root\n  identity_file: /var/tmp/x/id_ed25519\n  hosts:\n    \
             - 10.213.2.2\n    - 10.213.2.3\n    - 10.213.2.4\n"
        );
    }

    #[test]
    fn a_file_not_made_by_the_script_is_refused() {
        let no_netns = r#"{"key": "k", "ssh_config": "c", "hosts": [
            {"name": "x", "address": "192.0.2.1", "user": "root", "hostname": "x", "dir": "/d"}]}"#;
        let err = TestHosts::parse(Path::new("f.json"), no_netns)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("netns"), "{err}");
        let too_few = r#"{"key": "k", "ssh_config": "c", "hosts": []}"#;
        let hosts = TestHosts::parse(Path::new("f.json"), too_few).unwrap();
        assert!(
            hosts
                .pool_hosts()
                .unwrap_err()
                .to_string()
                .contains("needs 3")
        );
    }
}
