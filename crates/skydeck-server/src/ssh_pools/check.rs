//! Which pools a workspace may use, and `check`'s view of each pool.

use super::placement_pool;
use skydeck_store::Store;
use skydeck_types::config::SkyConfig;
use skydeck_types::names::PoolName;

/// `ssh.allowed_node_pools`: the workspace's list wins over the global
/// one, as SkyPilot reads it; no list allows every pool.
pub fn allowed(config: &SkyConfig, workspace: &str, pool: &str) -> Result<(), String> {
    let workspace_list = config.get(&["workspaces", workspace, "ssh", "allowed_node_pools"]);
    let (list, setting) = match workspace_list {
        Some(list) => (
            list,
            format!("workspaces.{workspace}.ssh.allowed_node_pools"),
        ),
        None => match config.get(&["ssh", "allowed_node_pools"]) {
            Some(list) => (list, "ssh.allowed_node_pools".to_owned()),
            None => return Ok(()),
        },
    };
    let names: Vec<&str> = list
        .as_array()
        .map(|l| l.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    if names.contains(&pool) {
        return Ok(());
    }
    Err(format!(
        "SSH Node Pool `{pool}` is not allowed in workspace `{workspace}`: the server \
         config's {setting} lists only {}; use one of those, or ask an admin to add {pool}",
        if names.is_empty() {
            "no pools".to_owned()
        } else {
            names.join(", ")
        }
    ))
}

/// One pool of the file as `check` sees it.
pub struct PoolState {
    pub name: PoolName,
    /// `Err(reason)` with what to do.
    pub enabled: Result<(), String>,
}

/// Every pool of the file, or why the file cannot be read.
pub async fn pool_states(
    home: &std::path::Path,
    store: &dyn Store,
    config: &SkyConfig,
    workspace: &str,
) -> Result<Vec<PoolState>, String> {
    let pools = super::load(home)?;
    let mut states = Vec::new();
    for name in pools.pools.keys() {
        let enabled = if allowed(config, workspace, name.as_str()).is_err() {
            Err("Not included in allowed_node_pools configuration.".to_owned())
        } else {
            match store.list_hosts(&placement_pool(name)).await {
                Ok(hosts) if !hosts.is_empty() => Ok(()),
                Ok(_) => Err(format!(
                    "Not set up. Use `sky ssh up --infra {name}` to set up."
                )),
                Err(e) => Err(format!("cannot read the pool's hosts: {e}")),
            }
        };
        states.push(PoolState {
            name: name.clone(),
            enabled,
        });
    }
    Ok(states)
}
