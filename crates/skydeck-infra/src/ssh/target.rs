//! Which node to reach. Host and user names are parsed once (in
//! `skydeck-types`), so nothing that reaches `ssh`'s command line can be
//! read by it as an option.

pub use skydeck_types::ssh_node_pools::{SshHost, SshUser};
use std::fmt;
use std::path::PathBuf;

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
