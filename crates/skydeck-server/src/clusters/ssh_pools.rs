//! SSH node pools as the server's infrastructure `ssh/<pool>`: the pool
//! file says how to reach each host, the store's host records (made by
//! `ssh up`) what each has, and one provider per pool keeps its
//! connections while the pool's hosts stay as they are.

use crate::config::Paths;
use crate::skypilot::exception;
use skydeck_infra::ssh::SshProvider;
use skydeck_types::RequestError;
use skydeck_types::names::PoolName;
use skydeck_types::ssh_node_pools::PoolHost;
use skydeck_types::task::Resources;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The infrastructure a task's resources name: `ssh/<pool>` keeps its pool
/// and `kubernetes/<context>` (`k8s/…`) its context, every other kind is
/// its kind alone (`local` when none is named).
pub fn infra_of(resources: &Resources) -> String {
    match resources.infra_spec() {
        Some(infra) if matches!(infra.kind.as_deref(), Some("ssh" | "kubernetes")) => {
            let kind = infra.kind.unwrap_or_default();
            match infra.region {
                Some(place) => format!("{kind}/{place}"),
                None => kind,
            }
        }
        Some(infra) => infra.kind.unwrap_or_else(|| "local".to_owned()),
        None => "local".to_owned(),
    }
}

/// Whether a task asking for infra `asked` may run on a cluster on
/// `cluster`: a bare `ssh` is any pool, a bare `kubernetes` any context.
pub fn infra_fits(asked: &str, cluster: &str) -> bool {
    asked == cluster
        || (asked == "ssh" && cluster.starts_with("ssh/"))
        || (asked == "kubernetes" && cluster.starts_with("kubernetes/"))
}

/// A pool's provider, and the hosts it was made for.
type Made = (Vec<PoolHost>, Arc<SshProvider>);

/// The providers of the pools used so far.
pub struct SshPools {
    paths: Paths,
    program: PathBuf,
    providers: Mutex<HashMap<PoolName, Made>>,
}

fn refused(message: String) -> RequestError {
    RequestError::new(exception::VALUE_ERROR, message)
}

impl SshPools {
    pub fn new(paths: Paths, program: PathBuf) -> Self {
        Self {
            paths,
            program,
            providers: Mutex::new(HashMap::new()),
        }
    }

    /// The provider of pool `pool` as the pool file says it now: the same
    /// one (and its connections) while the pool's hosts are unchanged.
    pub fn provider(&self, pool: &str) -> Result<Arc<SshProvider>, RequestError> {
        let name = PoolName::new(pool).map_err(|err| refused(format!("ssh/{pool}: {err}")))?;
        let pools = crate::ssh_pools::load(&self.paths.home).map_err(refused)?;
        let file = crate::ssh_pools::pool_file(&self.paths.home)
            .unwrap_or_else(|| self.paths.home.join("ssh_node_pools.yaml"));
        if pools.pools.is_empty() {
            return Err(refused(format!(
                "Infrastructure ssh/{pool} is not set up: there is no pool in {} (nor in \
                 ~/.sky/ssh_node_pools.yaml). Describe the pool there, then run `sky ssh up`.",
                file.display()
            )));
        }
        let Some(config) = pools.pools.get(&name) else {
            let known: Vec<&str> = pools.pools.keys().map(PoolName::as_str).collect();
            return Err(refused(format!(
                "There is no SSH node pool {pool} in {}; its pools are: {}.",
                file.display(),
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            )));
        };
        let (hosts, _) = config.hosts();
        let mut providers = self.providers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((known, provider)) = providers.get(&name)
            && *known == hosts
        {
            return Ok(Arc::clone(provider));
        }
        // The same SSH state `ssh up` recorded the hosts' keys in.
        let ssh = crate::ssh_pools::pool_ssh(&self.paths.home, &name)
            .map_err(|err| refused(format!("SSH node pool {pool}: {err}")))?;
        let home = std::env::var_os("HOME").map_or_else(PathBuf::new, PathBuf::from);
        let provider = Arc::new(SshProvider::new(
            name.clone(),
            ssh,
            &hosts,
            &home,
            self.program.clone(),
        ));
        providers.insert(name, (hosts, Arc::clone(&provider)));
        Ok(provider)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_ssh_fits_a_cluster_on_any_pool_and_nothing_else() {
        assert!(infra_fits("ssh", "ssh/rack"));
        assert!(infra_fits("ssh/rack", "ssh/rack"));
        assert!(!infra_fits("ssh/other", "ssh/rack"));
        assert!(!infra_fits("ssh", "local"));
        assert!(!infra_fits("local", "ssh/rack"));
        assert!(infra_fits("kubernetes", "kubernetes/kind-a"));
        assert!(!infra_fits("kubernetes/other", "kubernetes/kind-a"));
        assert!(!infra_fits("kubernetes", "ssh/rack"));
    }

    fn infra(written: &str) -> String {
        infra_of(&Resources {
            infra: Some(written.to_owned()),
            ..Resources::default()
        })
    }

    #[test]
    fn an_ssh_infra_keeps_its_pool() {
        assert_eq!(infra("ssh/gpu-rack"), "ssh/gpu-rack");
        assert_eq!(infra("ssh"), "ssh");
        assert_eq!(infra("local"), "local");
        assert_eq!(infra("aws/us-east-1"), "aws");
        assert_eq!(infra_of(&Resources::default()), "local");
        assert_eq!(infra("k8s"), "kubernetes");
        assert_eq!(infra("k8s/kind-a"), "kubernetes/kind-a");
        assert_eq!(
            infra("Kubernetes/arn:aws:eks:r:1:cluster/x"),
            "kubernetes/arn:aws:eks:r:1:cluster/x"
        );
        assert_eq!(
            crate::skypilot::records::infra_display("kubernetes/kind-a"),
            "Kubernetes (kind-a)"
        );
        // `sky status` shows the pool as SkyPilot does.
        assert_eq!(
            crate::skypilot::records::infra_display("ssh/gpu-rack"),
            "SSH (gpu-rack)"
        );
    }

    #[test]
    fn a_pool_comes_from_the_pool_file_and_is_kept_while_it_is_unchanged() {
        let home = tempfile::tempdir().unwrap();
        let paths = Paths::new(home.path());
        let pools = SshPools::new(paths.clone(), PathBuf::from("/bin/true"));
        let err = pools.provider("rack").err().unwrap().to_string();
        assert!(err.contains("ssh_node_pools.yaml"), "{err}");

        let file = home.path().join("ssh_node_pools.yaml");
        std::fs::write(&file, "rack:\n  user: ubuntu\n  hosts: [10.0.0.1]\n").unwrap();
        let err = pools.provider("other").err().unwrap().to_string();
        assert!(err.contains("its pools are: rack"), "{err}");
        assert!(pools.provider("../x").is_err());

        let first = pools.provider("rack").unwrap();
        assert_eq!(first.infra(), "ssh/rack");
        assert!(Arc::ptr_eq(&first, &pools.provider("rack").unwrap()));
        std::fs::write(&file, "rack:\n  hosts: [10.0.0.1, 10.0.0.2]\n").unwrap();
        let changed = pools.provider("rack").unwrap();
        assert!(
            !Arc::ptr_eq(&first, &changed),
            "a changed pool gets a new provider"
        );
        assert!(home.path().join("ssh").join("pools").join("rack").is_dir());
    }
}
