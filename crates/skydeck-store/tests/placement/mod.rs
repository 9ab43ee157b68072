//! Conformance cases for placement bookkeeping: hosts, allocations, and
//! placements that race for the last GPU. Run on both databases by the
//! `conformance!` list in `conformance.rs`.

use super::cluster;
use skydeck_store::{SqlStore, Store};
use skydeck_types::placement::{Allocation, Gpu, Host};
use std::sync::Arc;

fn host(id: &str, pool: &str, gpus: u32) -> Host {
    Host {
        id: id.to_owned(),
        pool: pool.to_owned(),
        cpus: 8.0,
        memory_gb: 32.5,
        gpus: (0..gpus)
            .map(|index| Gpu {
                index,
                model: "H100".to_owned(),
            })
            .collect(),
    }
}

/// A stand-in for the real fit: one node taking the lowest free GPU of
/// the pool's first host, or refusing when none is free.
fn one_gpu(cluster: &str) -> impl Fn(&[Host], &[Allocation]) -> Result<Vec<Allocation>, String> {
    let cluster = cluster.to_owned();
    move |hosts, held| {
        let host = hosts.first().ok_or("no hosts")?;
        let free = host
            .gpus
            .iter()
            .map(|g| g.index)
            .find(|i| !held.iter().any(|a| a.gpus.contains(i)))
            .ok_or_else(|| format!("no GPU free for {cluster}"))?;
        Ok(vec![Allocation {
            cluster: cluster.clone(),
            node_rank: 0,
            host: host.id.clone(),
            cpus: 1.5,
            memory_gb: 4.0,
            gpus: vec![free],
            ports: vec![8080],
        }])
    }
}

pub(super) async fn hosts_are_recorded_and_their_capacity_updated(store: Arc<SqlStore>) {
    store.put_host(&host("local", "local", 2)).await.unwrap();
    store.put_host(&host("ssh/p/b", "p", 0)).await.unwrap();
    store.put_host(&host("ssh/p/a", "p", 1)).await.unwrap();
    assert_eq!(
        store.list_hosts("local").await.unwrap(),
        vec![host("local", "local", 2)]
    );
    let ids: Vec<String> = store
        .list_hosts("p")
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.id)
        .collect();
    assert_eq!(ids, ["ssh/p/a", "ssh/p/b"]);

    let mut bigger = host("local", "local", 4);
    bigger.cpus = 16.0;
    store.put_host(&bigger).await.unwrap();
    assert_eq!(store.list_hosts("local").await.unwrap(), vec![bigger]);
    assert!(store.list_hosts("nope").await.unwrap().is_empty());
}

pub(super) async fn placements_are_recorded_released_and_freed_with_their_cluster(
    store: Arc<SqlStore>,
) {
    store.put_host(&host("local", "local", 2)).await.unwrap();
    for name in ["a", "b"] {
        store.put_cluster(&cluster(name, "u1")).await.unwrap();
    }
    let a = store
        .place_cluster("local", "a", &one_gpu("a"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a[0].gpus, vec![0]);
    let b = store
        .place_cluster("local", "b", &one_gpu("b"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b[0].gpus, vec![1], "b sees what a holds");
    assert_eq!(
        store.list_allocations("local").await.unwrap(),
        [a.clone(), b.clone()].concat(),
        "every field round-trips"
    );
    assert!(store.list_allocations("p").await.unwrap().is_empty());

    // Placing again hands back what the cluster holds; nothing is added.
    let refuse = |_: &[Host], _: &[Allocation]| Err("must not be asked".to_owned());
    assert_eq!(
        store.place_cluster("local", "a", &refuse).await.unwrap(),
        Ok(a.clone())
    );

    // A cluster that does not fit is told why and holds nothing.
    store.put_cluster(&cluster("c", "u1")).await.unwrap();
    assert_eq!(
        store
            .place_cluster("local", "c", &one_gpu("c"))
            .await
            .unwrap(),
        Err("no GPU free for c".to_owned())
    );
    assert_eq!(store.list_allocations("local").await.unwrap().len(), 2);

    // Released (a stopped cluster), and freed when the cluster goes.
    assert_eq!(store.release_cluster("a").await.unwrap(), 1);
    assert_eq!(store.release_cluster("a").await.unwrap(), 0);
    assert!(store.delete_cluster("b", 900.0).await.unwrap());
    assert!(store.list_allocations("local").await.unwrap().is_empty());
    let c = store
        .place_cluster("local", "c", &one_gpu("c"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c[0].gpus, vec![0]);
}

pub(super) async fn racing_placements_never_double_book_the_last_gpu(store: Arc<SqlStore>) {
    store.put_host(&host("local", "local", 2)).await.unwrap();
    store.put_cluster(&cluster("first", "u1")).await.unwrap();
    store
        .place_cluster("local", "first", &one_gpu("first"))
        .await
        .unwrap()
        .unwrap();
    let racers: Vec<String> = (0..12).map(|i| format!("racer-{i}")).collect();
    for name in &racers {
        store.put_cluster(&cluster(name, "u1")).await.unwrap();
    }
    // Each racer on a thread of its own, deciding slowly: without the
    // lock, every racer would read the GPU as free before any recorded it.
    let runtime = tokio::runtime::Handle::current();
    let tasks: Vec<_> = racers
        .iter()
        .map(|name| {
            let (store, name, runtime) = (store.clone(), name.clone(), runtime.clone());
            tokio::task::spawn_blocking(move || {
                let fit = one_gpu(&name);
                let slow = |hosts: &[Host], held: &[Allocation]| {
                    std::thread::sleep(std::time::Duration::from_millis(30));
                    fit(hosts, held)
                };
                runtime
                    .block_on(store.place_cluster("local", &name, &slow))
                    .unwrap()
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        if task.await.unwrap().is_ok() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1, "exactly one racer gets the last GPU");
    let held = store.list_allocations("local").await.unwrap();
    let mut gpus: Vec<u32> = held.iter().flat_map(|a| a.gpus.clone()).collect();
    gpus.sort_unstable();
    assert_eq!(gpus, vec![0, 1], "no GPU is held twice: {held:?}");
}
