//! Which node to reach. Host and user names are parsed once (in
//! `skydeck-types`), so nothing that reaches `ssh`'s command line can be
//! read by it as an option.

use skydeck_types::ssh_node_pools::PoolHost;
pub use skydeck_types::ssh_node_pools::{SshHost, SshUser};
use std::fmt;
use std::path::{Path, PathBuf};

/// One node to reach. Anything left `None` comes from the SSH config (or
/// ssh's defaults), as it would for `ssh HOST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub host: SshHost,
    pub user: Option<SshUser>,
    pub port: Option<u16>,
    /// Used alone (IdentitiesOnly) when given; otherwise the config's keys
    /// and the agent's.
    pub identity_file: Option<PathBuf>,
    /// Hosts to go through, first one first (`ssh -J`).
    pub jump: Vec<SshHost>,
}

impl SshTarget {
    pub fn new(host: SshHost) -> Self {
        Self {
            host,
            user: None,
            port: None,
            identity_file: None,
            jump: Vec::new(),
        }
    }
}

impl SshTarget {
    /// A host of a pool file. `~/` in its key path is `home` (the server's
    /// user's), as SkyPilot expands it.
    pub fn from_pool_host(host: &PoolHost, home: &Path) -> Self {
        let identity_file =
            host.identity_file
                .as_deref()
                .map(|path| match path.strip_prefix("~/") {
                    Some(rest) => home.join(rest),
                    None if path == "~" => home.to_path_buf(),
                    None => PathBuf::from(path),
                });
        Self {
            host: host.host.clone(),
            user: host.user.clone(),
            port: None,
            identity_file,
            jump: Vec::new(),
        }
    }
}

impl fmt::Display for SshTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(user) = &self.user {
            write!(f, "{}@", user.as_str())?;
        }
        write!(f, "{}", self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skydeck_types::ssh_node_pools::NodePools;

    #[test]
    fn pool_hosts_become_targets_with_the_key_under_home() {
        let pools = NodePools::from_yaml(
            "p:\n  user: ubuntu\n  identity_file: ~/.ssh/k\n  hosts:\n    - 10.0.0.1\n    - {ip: h2, identity_file: /keys/k2}\n",
        )
        .unwrap();
        let (hosts, _) = pools.pools["p"].hosts();
        let targets: Vec<SshTarget> = hosts
            .iter()
            .map(|h| SshTarget::from_pool_host(h, Path::new("/home/srv")))
            .collect();
        assert_eq!(targets[0].to_string(), "ubuntu@10.0.0.1");
        assert_eq!(
            targets[0].identity_file.as_deref(),
            Some(Path::new("/home/srv/.ssh/k"))
        );
        assert_eq!(
            targets[1].identity_file.as_deref(),
            Some(Path::new("/keys/k2"))
        );
    }
}
