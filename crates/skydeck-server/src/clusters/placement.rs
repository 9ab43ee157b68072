//! Placement as launch, start, stop and down use it: the hosts Skydeck
//! places work on itself (this machine as `local`, SSH node pools) are
//! shared by all their clusters, so a cluster holds CPUs, memory, GPUs by
//! index and ports there, recorded in the database, and one that does not
//! fit beside the others is refused saying what is free.
//!
//! A stopped cluster holds nothing (its processes are gone, and a shared
//! machine wants them back); it is placed again when it starts, which may
//! then fail with "does not fit". SkyPilot keeps a stopped cloud cluster's
//! resources reserved, but a cloud has room for everyone; one machine has
//! not.
//!
//! Ports are refused when another cluster holds them, rather than giving
//! each cluster a loopback address of its own: node addresses are the
//! nodes' identities (`SKYPILOT_NODE_IPS`), every cluster's head is
//! 127.0.0.1, and the port a user opens is the one the task names.

use crate::skypilot::exception;
use skydeck_infra::placement::{Allocation, NoFit, fit};
use skydeck_infra::{ClusterSpec, Handle, NodeRequest, PlacementPool, Provider};
use skydeck_store::Store;
use skydeck_types::RequestError;

fn internal(err: impl std::fmt::Display) -> RequestError {
    RequestError::new(exception::RUNTIME_ERROR, err.to_string())
}

/// What a launch or start that does not fit is told.
pub fn no_fit_message(no_fit: &NoFit) -> String {
    format!(
        "{no_fit} Free room (`sky down` or `sky stop` a cluster), ask for less, or wait for \
         room with --retry-until-up."
    )
}

/// The error a launch or start that does not fit fails with.
pub fn no_fit_error(no_fit: NoFit) -> RequestError {
    RequestError::new("ResourcesUnavailableError", no_fit_message(&no_fit))
}

/// Whether `spec` fits beside the clusters placed now, without placing it:
/// what `launch --dryrun` and the checks before a launch ask. `Ok(Ok)`
/// where the infrastructure places clusters itself; `Ok(Err)` says why it
/// does not fit now. A cluster's own allocations (a relaunch) do not count
/// against it.
pub async fn check_fit(
    store: &dyn Store,
    provider: &dyn Provider,
    spec: &ClusterSpec,
) -> Result<Result<(), NoFit>, RequestError> {
    let Some(mut pool) = provider.placement() else {
        return Ok(Ok(()));
    };
    pool.hosts = recorded_and_probed(store, &pool).await?;
    let held = store.list_allocations(&pool.pool).await.map_err(internal)?;
    Ok(fit_on(&pool, &held, spec.name.as_str(), &spec.node, spec.num_nodes).map(drop))
}

/// The pool's hosts as placing reads them: the store's records (an SSH
/// pool's, which `ssh up` makes), each replaced by the provider's probe of
/// it now where it has one (this machine's).
async fn recorded_and_probed(
    store: &dyn Store,
    pool: &PlacementPool,
) -> Result<Vec<skydeck_infra::placement::Host>, RequestError> {
    let mut hosts = store.list_hosts(&pool.pool).await.map_err(internal)?;
    hosts.retain(|recorded| !pool.hosts.iter().any(|probed| probed.id == recorded.id));
    hosts.extend(pool.hosts.iter().cloned());
    hosts.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(hosts)
}

/// [`fit`], with a request the hosts could not hold even empty told apart
/// (with the pool's hint), since no waiting helps it.
fn fit_on(
    pool: &PlacementPool,
    held: &[Allocation],
    cluster: &str,
    request: &NodeRequest,
    num_nodes: u32,
) -> Result<Vec<Allocation>, NoFit> {
    if let Err(NoFit(reason)) = fit(&pool.hosts, &[], cluster, request, num_nodes) {
        let reason = reason.replace(
            "does not fit beside the clusters running",
            &format!(
                "does not fit on {} even with nothing else running",
                pool.pool
            ),
        );
        let hint = if request.accelerators.is_empty() {
            String::new()
        } else {
            format!(" {}", pool.gpu_hint)
        };
        return Err(NoFit(format!("{reason}{hint}")));
    }
    fit(&pool.hosts, held, cluster, request, num_nodes)
}

/// Places the cluster (recorded in the store, which must hold its record)
/// and returns its allocations by node rank: empty where the
/// infrastructure places clusters itself, the ones it holds if placed
/// already, or why it does not fit now.
///
/// `pinned` names the host of each node by rank where the nodes cannot
/// move (a stopped cluster on an SSH pool keeps its files on its hosts);
/// empty where any host will do.
pub async fn allocate(
    store: &dyn Store,
    provider: &dyn Provider,
    cluster: &str,
    request: &NodeRequest,
    num_nodes: u32,
    pinned: &[String],
) -> Result<Result<Vec<Allocation>, NoFit>, RequestError> {
    let Some(pool) = provider.placement() else {
        return Ok(Ok(Vec::new()));
    };
    // The host's capacity as probed now: a machine given more memory, or
    // another SKYDECK_LOCAL_ACCELERATORS, counts from the next launch.
    for host in &pool.hosts {
        store.put_host(host).await.map_err(internal)?;
    }
    let decide = |hosts: &[skydeck_infra::placement::Host], held: &[Allocation]| {
        let pool = PlacementPool {
            hosts: hosts.to_vec(),
            ..pool.clone()
        };
        if pinned.is_empty() {
            fit_on(&pool, held, cluster, request, num_nodes)
        } else {
            fit_pinned(&pool.hosts, held, cluster, request, pinned)
        }
        .map_err(|no_fit| no_fit.0)
    };
    Ok(store
        .place_cluster(&pool.pool, cluster, &decide)
        .await
        .map_err(internal)?
        .map_err(NoFit))
}

/// Places node k of `cluster` on host `pinned[k]`, beside what the other
/// clusters hold there.
fn fit_pinned(
    hosts: &[skydeck_infra::placement::Host],
    held: &[Allocation],
    cluster: &str,
    request: &NodeRequest,
    pinned: &[String],
) -> Result<Vec<Allocation>, NoFit> {
    let mut placed: Vec<Allocation> = Vec::new();
    for (rank, id) in pinned.iter().enumerate() {
        let host = hosts.iter().find(|h| h.id == *id).ok_or_else(|| {
            NoFit(format!(
                "Node {rank} of cluster {cluster} lives on host {id}, which is no longer \
                 recorded in its pool; `sky down` the cluster and launch it again."
            ))
        })?;
        let mut node = request.clone();
        if rank > 0 {
            node.ports.clear();
        }
        // The cluster's nodes placed so far count as others on the host.
        let others: Vec<Allocation> = held
            .iter()
            .filter(|a| a.cluster != cluster)
            .cloned()
            .chain(placed.iter().map(|a| Allocation {
                cluster: format!("{cluster} (node {})", a.node_rank),
                ..a.clone()
            }))
            .collect();
        let mut one = fit(std::slice::from_ref(host), &others, cluster, &node, 1)?;
        let mut allocation = one.remove(0);
        allocation.node_rank = u32::try_from(rank).unwrap_or(u32::MAX);
        placed.push(allocation);
    }
    Ok(placed)
}

/// Places a cluster whose launch is about to provision it: `spec` with its
/// allocations.
pub async fn place_spec(
    store: &dyn Store,
    provider: &dyn Provider,
    spec: &ClusterSpec,
) -> Result<Result<ClusterSpec, NoFit>, RequestError> {
    Ok(allocate(
        store,
        provider,
        spec.name.as_str(),
        &spec.node,
        spec.num_nodes,
        &[],
    )
    .await?
    .map(|allocations| ClusterSpec {
        allocations,
        ..spec.clone()
    }))
}

/// Places a stopped cluster again as it starts, with what it asked for at
/// launch, and returns its handle with the GPUs it holds now (`None`: the
/// handle is unchanged), or why it does not fit now. A cluster from before
/// placement is left unplaced.
pub async fn place_for_start(
    store: &dyn Store,
    provider: &dyn Provider,
    handle: &Handle,
) -> Result<Result<Option<Handle>, NoFit>, RequestError> {
    let Some(request) = &handle.request else {
        return Ok(Ok(None));
    };
    let num_nodes = u32::try_from(handle.nodes.len()).map_err(internal)?;
    let allocations = match allocate(
        store,
        provider,
        handle.cluster_name.as_str(),
        request,
        num_nodes,
        &handle.hosts,
    )
    .await?
    {
        Ok(allocations) if allocations.is_empty() => return Ok(Ok(None)),
        Ok(allocations) => allocations,
        Err(no_fit) => return Ok(Err(no_fit)),
    };
    let mut handle = handle.clone();
    for node in &mut handle.nodes {
        node.gpus = allocations
            .iter()
            .find(|a| a.node_rank as usize == node.rank)
            .map(|a| a.gpus.clone());
    }
    Ok(Ok(Some(handle)))
}

/// Releases what a cluster holds: it stopped.
pub async fn release(store: &dyn Store, cluster: &str) -> Result<(), RequestError> {
    store.release_cluster(cluster).await.map_err(internal)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use skydeck_infra::placement::Host;

    fn host(id: &str, cpus: f64) -> Host {
        Host {
            id: id.to_owned(),
            pool: "ssh/p".to_owned(),
            cpus,
            memory_gb: 8.0,
            gpus: Vec::new(),
        }
    }

    #[test]
    fn pinned_nodes_stay_on_their_hosts_and_count_against_each_other() {
        let hosts = [host("ssh/p/a", 2.0), host("ssh/p/b", 2.0)];
        let request = NodeRequest {
            cpus: Some(1.0),
            ports: vec![8080],
            image: None,
            ..NodeRequest::default()
        };
        let pinned = ["ssh/p/b".to_owned(), "ssh/p/a".to_owned()];
        let placed = fit_pinned(&hosts, &[], "c", &request, &pinned).unwrap();
        let got: Vec<(u32, &str, &[u16])> = placed
            .iter()
            .map(|a| (a.node_rank, a.host.as_str(), a.ports.as_slice()))
            .collect();
        assert_eq!(got, [(0, "ssh/p/b", &[8080][..]), (1, "ssh/p/a", &[][..])]);

        // Two nodes of 2 CPUs do not both fit on one 2-CPU host, though
        // first fit would have moved one to the other host.
        let big = NodeRequest {
            cpus: Some(2.0),
            ..NodeRequest::default()
        };
        let same = ["ssh/p/a".to_owned(), "ssh/p/a".to_owned()];
        assert!(fit_pinned(&hosts, &[], "c", &big, &same).is_err());
        // A host no longer recorded is named.
        let gone = ["ssh/p/x".to_owned()];
        let err = fit_pinned(&hosts, &[], "c", &big, &gone).unwrap_err();
        assert!(err.0.contains("ssh/p/x"), "{err}");
    }
}
