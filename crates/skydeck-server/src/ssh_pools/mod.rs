//! SkyPilot's SSH Node Pools on this server: the pool file, the state each
//! pool keeps here, and the names shared with the SSH provider.
//!
//! The file is `$SKYDECK_HOME/ssh_node_pools.yaml` (`~/.skydeck/…`), or
//! SkyPilot's `~/.sky/ssh_node_pools.yaml` when ours is absent. `ssh up`
//! (`deploy.rs`) checks every host of a pool, installs the agent there and
//! records each host's capacity as placement host
//! `ssh/<pool>/<host as written>` in pool `ssh/<pool>`; the SSH provider
//! places clusters on those records and reaches the hosts through the same
//! per-pool SSH state ([`pool_ssh`]), so a host key recorded at `up` is the
//! one every later connection checks.

pub mod check;
pub mod deploy;
pub mod edit;
pub mod records;

use skydeck_infra::ssh::{SshPool, SshPoolOptions, SshTarget};
use skydeck_types::names::PoolName;
use skydeck_types::ssh_node_pools::{NodePools, PoolHost};
use std::path::{Path, PathBuf};

/// The SSH config whose host aliases (and ProxyJump, keys) the pools'
/// hosts may name; default `~/.ssh/config` of the server's user, as for
/// SkyPilot. Set it where that file lives elsewhere (a mounted secret).
pub const ENV_SSH_CONFIG: &str = "SKYDECK_SSH_CONFIG";

/// The pool file in use, if there is one: ours first, then SkyPilot's.
pub fn pool_file(home: &Path) -> Option<PathBuf> {
    let ours = home.join("ssh_node_pools.yaml");
    if ours.exists() {
        return Some(ours);
    }
    let skypilot = user_home()?.join(".sky").join("ssh_node_pools.yaml");
    skypilot.exists().then_some(skypilot)
}

/// The pools of the file; none when there is no file.
pub fn load(home: &Path) -> Result<NodePools, String> {
    let Some(path) = pool_file(home) else {
        return Ok(NodePools::default());
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    NodePools::from_yaml(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Where the file is written when the official client sends pools
/// (`POST /ssh_node_pools`): the one in use, else ours.
pub fn writable_pool_file(home: &Path) -> PathBuf {
    pool_file(home).unwrap_or_else(|| home.join("ssh_node_pools.yaml"))
}

/// The placement pool of an SSH node pool.
pub fn placement_pool(pool: &PoolName) -> String {
    format!("ssh/{pool}")
}

/// A host's placement id: the host as the pool file writes it.
pub fn host_id(pool: &PoolName, host: &PoolHost) -> String {
    format!("ssh/{pool}/{}", host.host)
}

/// How long one command on a pool host may take (installing the agent
/// binary is the longest): a host that stops answering fails the request
/// rather than holding it.
const COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// The pool's SSH state: its own known_hosts (recorded on first contact
/// at `ssh up`) and its connections' sockets, under
/// `$SKYDECK_HOME/ssh/pools/<pool>`. `ssh up` and the provider both reach
/// the hosts through it, so a host key recorded at `up` is the one every
/// later connection checks.
pub fn pool_ssh(home: &Path, pool: &PoolName) -> skydeck_infra::Result<SshPool> {
    SshPool::open(
        &home.join("ssh").join("pools").join(pool.as_str()),
        SshPoolOptions {
            user_config: std::env::var_os(ENV_SSH_CONFIG)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            command_timeout: Some(COMMAND_TIMEOUT),
            ..SshPoolOptions::default()
        },
    )
}

/// How to reach a host of the pool file: `~` in its key is the server
/// user's home, as SkyPilot expands it.
pub fn target(host: &PoolHost) -> SshTarget {
    SshTarget::from_pool_host(host, &user_home().unwrap_or_else(|| PathBuf::from("/")))
}

fn user_home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}
