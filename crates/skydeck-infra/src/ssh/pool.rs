//! A pool's SSH state: its own `known_hosts`, the config every connection
//! (and every jump through ProxyJump) reads, and where the masters' sockets
//! live.

use super::errors::connect_error;
use super::runner::SshRunner;
use super::target::SshTarget;
use crate::{InfraError, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct SshPoolOptions {
    /// The user's own SSH config (aliases, ProxyJump, keys), read after the
    /// pool's settings. `None`: `~/.ssh/config`.
    pub user_config: Option<PathBuf>,
    /// A key offered to every host of the pool, jump hosts included.
    pub identity_file: Option<PathBuf>,
    /// The SSH agent to ask for keys. `None`: the server's own
    /// `SSH_AUTH_SOCK`, if any.
    pub agent_socket: Option<PathBuf>,
    /// How long reaching a host (TCP and handshake) may take.
    pub connect_timeout: Duration,
    /// How often an idle connection asks the host whether it is there; a
    /// host that misses 4 in a row counts as lost (commands on it fail).
    pub keepalive: Duration,
    /// How long one `run` may take before it is killed on the host; `None`
    /// for no limit. Streams have none: they follow logs.
    pub command_timeout: Option<Duration>,
}

impl Default for SshPoolOptions {
    fn default() -> Self {
        Self {
            user_config: None,
            identity_file: None,
            agent_socket: None,
            connect_timeout: Duration::from_secs(10),
            keepalive: Duration::from_secs(15),
            command_timeout: None,
        }
    }
}

/// One pool's SSH state under a directory of its own.
#[derive(Debug, Clone)]
pub struct SshPool {
    dir: PathBuf,
    config_file: PathBuf,
    known_hosts: PathBuf,
    control_dir: PathBuf,
    pub(super) options: SshPoolOptions,
}

/// A Unix socket path may be at most 108 bytes; the master's socket is
/// `<control dir>/.ssh-connectionXXXXXX/master`.
const SOCKET_SUFFIX_LEN: usize = 32;
const SOCKET_PATH_MAX: usize = 104;

impl SshPool {
    /// Opens (making it if needed) the pool state in `dir`, and writes the
    /// SSH config its connections use.
    pub fn open(dir: &Path, options: SshPoolOptions) -> Result<Self> {
        make_private_dir(dir)?;
        let dir = dir
            .canonicalize()
            .map_err(InfraError::io(format!("cannot resolve {}", dir.display())))?;
        let known_hosts = dir.join("known_hosts");
        if !known_hosts.exists() {
            std::fs::write(&known_hosts, "").map_err(InfraError::io(format!(
                "cannot write {}",
                known_hosts.display()
            )))?;
        }
        let mut control_dir = dir.join("ctl");
        if control_dir.as_os_str().len() + SOCKET_SUFFIX_LEN > SOCKET_PATH_MAX {
            // Too long for a socket: a private directory in the temp dir.
            use std::hash::{Hash, Hasher};
            let mut hash = std::collections::hash_map::DefaultHasher::new();
            dir.hash(&mut hash);
            control_dir = std::env::temp_dir().join(format!("skydeck-ssh-{:016x}", hash.finish()));
        }
        make_private_dir(&control_dir)?;
        let config_file = dir.join("ssh_config");
        let config = pool_config(&known_hosts, &options)?;
        std::fs::write(&config_file, config).map_err(InfraError::io(format!(
            "cannot write {}",
            config_file.display()
        )))?;
        Ok(Self {
            dir,
            config_file,
            known_hosts,
            control_dir,
            options,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The host keys this pool has seen: one line per host, recorded on
    /// first contact.
    pub fn known_hosts(&self) -> &Path {
        &self.known_hosts
    }

    /// The SSH config every connection of the pool reads (`ssh -F`).
    pub fn config_file(&self) -> &Path {
        &self.config_file
    }

    /// Opens the master connection to `target`; every command of the
    /// returned runner goes over it (and over a new one, made the same way,
    /// if that one went away: it closes itself when idle).
    pub async fn connect(&self, target: &SshTarget) -> Result<SshRunner> {
        let connector = self.connector(target);
        let session = connector.open().await?;
        Ok(SshRunner::new(
            connector,
            session,
            self.options.command_timeout,
        ))
    }

    fn connector(&self, target: &SshTarget) -> Connector {
        let mut builder = openssh::SessionBuilder::default();
        builder
            .config_file(&self.config_file)
            .known_hosts_check(openssh::KnownHosts::Add)
            .user_known_hosts_file(&self.known_hosts)
            .control_directory(&self.control_dir)
            .control_persist(openssh::ControlPersist::IdleFor(MASTER_IDLE))
            .connect_timeout(self.options.connect_timeout)
            .server_alive_interval(self.options.keepalive);
        if let Some(socket) = &self.options.agent_socket {
            builder.ssh_auth_sock(socket);
        }
        if let Some(user) = &target.user {
            builder.user(user.as_str().to_owned());
        }
        if let Some(port) = target.port {
            builder.port(port);
        }
        if let Some(key) = &target.identity_file {
            builder.keyfile(key);
        }
        if !target.jump.is_empty() {
            builder.jump_hosts(target.jump.iter().map(|h| h.as_str()));
        }
        // Each jump hop has the connect timeout; a little on top for the
        // handshakes themselves.
        let hops = u32::try_from(target.jump.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        Connector {
            builder,
            target: target.clone(),
            known_hosts: self.known_hosts.clone(),
            limit: self.options.connect_timeout * hops + Duration::from_secs(10),
        }
    }
}

/// Keepalives a host may miss before its connection counts as lost.
const KEEPALIVE_COUNT: u32 = 4;

/// A master connection with no command for this long exits (so a server
/// that died leaves no connections behind for long); the runner opens a
/// new one when it next needs one.
const MASTER_IDLE: std::num::NonZeroUsize = std::num::NonZeroUsize::new(300).unwrap();

/// How to open (and reopen) the master connection to one target.
#[derive(Debug, Clone)]
pub(super) struct Connector {
    builder: openssh::SessionBuilder,
    pub(super) target: SshTarget,
    known_hosts: PathBuf,
    limit: Duration,
}

impl Connector {
    pub(super) async fn open(&self) -> Result<openssh::Session> {
        let target = &self.target;
        match tokio::time::timeout(self.limit, self.builder.connect_mux(target.host.as_str())).await
        {
            Ok(Ok(session)) => Ok(session),
            Ok(Err(error)) => Err(connect_error(target, &self.known_hosts, &error)),
            Err(_) => Err(InfraError::Command(format!(
                "cannot reach {target}: no answer within {}s",
                self.limit.as_secs()
            ))),
        }
    }
}

fn make_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(InfraError::io(format!("cannot make {}", dir.display())))
}

/// ssh takes the first value it reads for each option, so the pool's own
/// settings come before the user's config: host keys go to the pool's file
/// whatever the user's config says, and the user's aliases, jumps and keys
/// still apply. `ssh -F` passes this file on to ProxyJump hops, which `-o`
/// options would not reach.
fn pool_config(known_hosts: &Path, options: &SshPoolOptions) -> Result<String> {
    let path = |p: &Path| -> Result<String> {
        let text = p.to_str().filter(|t| !t.contains(['"', '\n', '\r']));
        text.map(|t| format!("\"{t}\"")).ok_or_else(|| {
            InfraError::Refused(format!(
                "{} cannot be named in an SSH config (quotes, line breaks or not UTF-8): \
                 move it to a plain path",
                p.display()
            ))
        })
    };
    let mut config = String::from(
        "# Written by skydeck for this pool: its own settings, then the user's SSH config.\n\
         Host *\n",
    );
    config.push_str(&format!("  UserKnownHostsFile {}\n", path(known_hosts)?));
    config.push_str("  GlobalKnownHostsFile /dev/null\n");
    config.push_str("  StrictHostKeyChecking accept-new\n");
    config.push_str("  BatchMode yes\n");
    config.push_str(&format!(
        "  ConnectTimeout {}\n",
        options.connect_timeout.as_secs().max(1)
    ));
    config.push_str(&format!(
        "  ServerAliveInterval {}\n  ServerAliveCountMax {KEEPALIVE_COUNT}\n",
        options.keepalive.as_secs().max(1)
    ));
    if let Some(key) = &options.identity_file {
        config.push_str(&format!("  IdentityFile {}\n", path(key)?));
    }
    let user_config = match &options.user_config {
        Some(p) => path(p)?,
        None => "~/.ssh/config".to_owned(),
    };
    config.push_str(&format!("Match all\nInclude {user_config}\n"));
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_config_comes_before_the_users() {
        let dir = tempfile::tempdir().unwrap();
        let pool = SshPool::open(
            &dir.path().join("pool"),
            SshPoolOptions {
                user_config: Some(dir.path().join("user config")),
                ..SshPoolOptions::default()
            },
        )
        .unwrap();
        let config = std::fs::read_to_string(pool.config_file()).unwrap();
        let known = config.find("UserKnownHostsFile").unwrap();
        let include = config.find("Include").unwrap();
        assert!(known < include, "{config}");
        assert!(config.contains("user config\"\n"), "{config}");
        assert!(pool.known_hosts().is_file());
    }

    #[test]
    fn a_path_ssh_cannot_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = SshPool::open(
            &dir.path().join("pool"),
            SshPoolOptions {
                identity_file: Some(dir.path().join("a\"b")),
                ..SshPoolOptions::default()
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("cannot be named"), "{err}");
    }
}
