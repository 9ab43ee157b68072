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

/// The pool a launch on `ssh` or `ssh/<pool>` goes to: the one named,
/// which must be in the file, allowed and set up; or, for `ssh` alone, the
/// first pool (by name) that is, as SkyPilot picks among enabled pools.
pub fn pick_pool(states: &[PoolState], named: Option<&str>) -> Result<PoolName, String> {
    let listed = || {
        states
            .iter()
            .map(|s| s.name.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match named {
        Some(name) => {
            let state = states
                .iter()
                .find(|s| s.name.as_str() == name)
                .ok_or_else(|| {
                    if states.is_empty() {
                        format!(
                            "No SSH Node Pool `{name}`: the server has no SSH Node Pools; an \
                             admin defines them in ~/.skydeck/ssh_node_pools.yaml and runs \
                             `sky ssh up`"
                        )
                    } else {
                        format!("No SSH Node Pool `{name}`; the pools are: {}", listed())
                    }
                })?;
            state
                .enabled
                .as_ref()
                .map(|()| state.name.clone())
                .map_err(|reason| format!("SSH Node Pool `{name}` cannot be used: {reason}"))
        }
        None => states
            .iter()
            .find(|s| s.enabled.is_ok())
            .map(|s| s.name.clone())
            .ok_or_else(|| {
                format!(
                    "No SSH Node Pool is up{}: an admin runs `sky ssh up` to set them up",
                    if states.is_empty() {
                        String::new()
                    } else {
                        format!(" (pools: {})", listed())
                    }
                )
            }),
    }
}

/// Settles a launch's pool before anything is provisioned: `ssh` alone
/// becomes `ssh/<pool>` of the pool the cluster goes to, and a named pool
/// must be in the file, allowed and set up.
pub async fn settle_pool(
    ctx: &crate::ops::RequestContext,
    plan: &mut crate::clusters::plan::Plan,
) -> Result<(), skydeck_types::RequestError> {
    let named = match plan.infra.as_str() {
        "ssh" => None,
        infra => match infra.strip_prefix("ssh/") {
            Some(pool) => Some(pool.to_owned()),
            None => return Ok(()),
        },
    };
    let error = |message: String| {
        skydeck_types::RequestError::new(crate::skypilot::exception::VALUE_ERROR, message)
    };
    let states = pool_states(
        ctx.infra.home(),
        ctx.store.as_ref(),
        &ctx.config,
        &ctx.workspace,
    )
    .await
    .map_err(error)?;
    let pool = pick_pool(&states, named.as_deref())
        .map_err(|reason| error(format!("Cannot launch: {reason}.")))?;
    plan.infra = placement_pool(&pool);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(name: &str, enabled: Result<(), &str>) -> PoolState {
        PoolState {
            name: PoolName::new(name).unwrap(),
            enabled: enabled.map_err(str::to_owned),
        }
    }

    #[test]
    fn ssh_alone_is_the_first_pool_that_is_up_and_a_named_one_must_be_up() {
        let states = [
            state("a", Err("Not set up.")),
            state("b", Ok(())),
            state("c", Ok(())),
        ];
        assert_eq!(pick_pool(&states, None).unwrap().as_str(), "b");
        assert_eq!(pick_pool(&states, Some("c")).unwrap().as_str(), "c");
        let err = pick_pool(&states, Some("a")).unwrap_err();
        assert!(err.contains("`a` cannot be used: Not set up."), "{err}");
        let err = pick_pool(&states, Some("z")).unwrap_err();
        assert!(err.contains("the pools are: a, b, c"), "{err}");
        let err = pick_pool(&states[..1], None).unwrap_err();
        assert!(err.contains("No SSH Node Pool is up (pools: a)"), "{err}");
        let err = pick_pool(&[], Some("z")).unwrap_err();
        assert!(err.contains("has no SSH Node Pools"), "{err}");
    }

    #[test]
    fn the_workspace_list_wins_over_the_global_one() {
        let config = skydeck_types::config::parse_config(
            "ssh:\n  allowed_node_pools: [a]\nworkspaces:\n  w:\n    ssh:\n      allowed_node_pools: [b]\n",
        )
        .unwrap();
        assert!(allowed(&config, "default", "a").is_ok());
        assert!(allowed(&config, "default", "b").is_err());
        assert!(allowed(&config, "w", "b").is_ok());
        let err = allowed(&config, "w", "a").unwrap_err();
        assert!(
            err.contains("workspaces.w.ssh.allowed_node_pools lists only b"),
            "{err}"
        );
        let open = skydeck_types::config::parse_config("").unwrap();
        assert!(allowed(&open, "default", "anything").is_ok());
    }
}
