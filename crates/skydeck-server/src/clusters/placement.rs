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
pub async fn allocate(
    store: &dyn Store,
    provider: &dyn Provider,
    cluster: &str,
    request: &NodeRequest,
    num_nodes: u32,
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
        fit_on(&pool, held, cluster, request, num_nodes).map_err(|no_fit| no_fit.0)
    };
    Ok(store
        .place_cluster(&pool.pool, cluster, &decide)
        .await
        .map_err(internal)?
        .map_err(NoFit))
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
