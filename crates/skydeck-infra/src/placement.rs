//! Placement on machines Skydeck places work on itself — this machine
//! (`local`) and the hosts of SSH node pools: which host each node of a
//! cluster goes to and what it holds there (CPUs, memory, GPUs by index,
//! ports), given what the other clusters already hold.
//!
//! Pure: the store runs [`fit`] inside the transaction that records the
//! result, so two launches never both take the last GPU.
//!
//! What a node holds is what its task asked for: a node that names no CPUs
//! (or memory) holds none and shares the machine with everyone, as
//! processes on one machine do; GPUs are held whole (a fractional request
//! takes a whole GPU, as SkyPilot rounds them up in
//! `SKYPILOT_NUM_GPUS_PER_NODE`), so two clusters never share one.

use crate::machine::{ENV_FAKE_ACCELERATORS, Machine, NodeRequest};
use std::collections::BTreeMap;
use std::fmt::Write as _;

pub use skydeck_types::placement::{Allocation, Gpu, Host};

/// The pool and host id of this machine.
pub const LOCAL: &str = "local";

/// Room left for float sums (0.1 + 0.2 CPUs) to compare as written.
const EPSILON: f64 = 1e-9;

/// Why a cluster does not fit beside the ones placed already: every
/// shortfall and who holds what, for the user to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoFit(pub String);

impl std::fmt::Display for NoFit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Places every node of `cluster` (`num_nodes` nodes, each asking for
/// `request`) on `hosts`, first fit in the order given, beside `held` (the
/// other clusters' allocations). The head node (rank 0) holds the ports.
/// GPUs are the lowest free indices of the requested model.
pub fn fit(
    hosts: &[Host],
    held: &[Allocation],
    cluster: &str,
    request: &NodeRequest,
    num_nodes: u32,
) -> Result<Vec<Allocation>, NoFit> {
    let mut placed: Vec<Allocation> = Vec::new();
    for rank in 0..num_nodes {
        let ports: &[u16] = if rank == 0 { &request.ports } else { &[] };
        let mut reasons = Vec::new();
        let mut chosen = None;
        // Spread: the hosts without a node of this cluster come first, so
        // a multi-node task gets distinct machines where the pool has them.
        let mut order: Vec<&Host> = hosts.iter().collect();
        order.sort_by_key(|host| placed.iter().filter(|a| a.host == host.id).count());
        for host in order {
            // The cluster's own earlier nodes count; a stale allocation of
            // its own (a previous placement) does not.
            let on_host: Vec<&Allocation> = held
                .iter()
                .filter(|a| a.cluster != cluster)
                .chain(&placed)
                .filter(|a| a.host == host.id)
                .collect();
            match fit_node(host, &on_host, request, ports) {
                Ok((gpus, ports)) => {
                    chosen = Some(Allocation {
                        cluster: cluster.to_owned(),
                        node_rank: rank,
                        host: host.id.clone(),
                        cpus: request.cpus.unwrap_or(0.0),
                        memory_gb: request.memory_gb.unwrap_or(0.0),
                        gpus,
                        ports,
                    });
                    break;
                }
                Err(why) => reasons.push(format!("{}: {why}", host.id)),
            }
        }
        match chosen {
            Some(allocation) => placed.push(allocation),
            None => {
                let node = if num_nodes == 1 {
                    String::new()
                } else {
                    format!(" (node {} of {num_nodes})", rank + 1)
                };
                let reasons = if hosts.is_empty() {
                    "no hosts are recorded".to_owned()
                } else {
                    reasons.join("; ")
                };
                return Err(NoFit(format!(
                    "Cluster {cluster} does not fit beside the clusters running{node}: {reasons}."
                )));
            }
        }
    }
    Ok(placed)
}

/// The GPU indices and ports one node would hold on `host`, or every
/// shortfall there, each with what is free and who holds the rest.
fn fit_node(
    host: &Host,
    on_host: &[&Allocation],
    request: &NodeRequest,
    ports: &[u16],
) -> Result<(Vec<u32>, Vec<u16>), String> {
    let mut problems = Vec::new();
    let holders = |amount: fn(&Allocation) -> f64, unit: &str| -> String {
        let mut by_cluster: BTreeMap<&str, f64> = BTreeMap::new();
        for a in on_host {
            *by_cluster.entry(a.cluster.as_str()).or_default() += amount(a);
        }
        let list: Vec<String> = by_cluster
            .into_iter()
            .filter(|(_, n)| *n > 0.0)
            .map(|(c, n)| format!("cluster {c} holds {}{unit}", number(n)))
            .collect();
        if list.is_empty() {
            String::new()
        } else {
            format!(": {}", list.join(", "))
        }
    };
    if let Some(cpus) = request.cpus {
        let used: f64 = on_host.iter().map(|a| a.cpus).sum();
        let free = (host.cpus - used).max(0.0);
        if cpus > free + EPSILON {
            problems.push(format!(
                "needs {} CPU{}; {} of {} free{}",
                number(cpus),
                if cpus == 1.0 { "" } else { "s" },
                number(free),
                number(host.cpus),
                holders(|a| a.cpus, "")
            ));
        }
    }
    if let Some(memory) = request.memory_gb {
        let used: f64 = on_host.iter().map(|a| a.memory_gb).sum();
        let free = (host.memory_gb - used).max(0.0);
        if memory > free + EPSILON {
            problems.push(format!(
                "needs {} GB of memory; {free:.1} of {:.1} GB free{}",
                number(memory),
                host.memory_gb,
                holders(|a| a.memory_gb, " GB")
            ));
        }
    }
    let taken: BTreeMap<u32, &str> = on_host
        .iter()
        .flat_map(|a| a.gpus.iter().map(|i| (*i, a.cluster.as_str())))
        .collect();
    let mut gpus = Vec::new();
    for (model, count) in &request.accelerators {
        let wanted = count.ceil().max(0.0) as usize;
        let of_model: Vec<&Gpu> = host.gpus.iter().filter(|g| &g.model == model).collect();
        let free: Vec<u32> = of_model
            .iter()
            .map(|g| g.index)
            .filter(|i| !taken.contains_key(i))
            .collect();
        if free.len() < wanted {
            let held: Vec<String> = of_model
                .iter()
                .filter_map(|g| {
                    taken
                        .get(&g.index)
                        .map(|c| format!("cluster {c} holds GPU {}", g.index))
                })
                .collect();
            problems.push(format!(
                "needs {wanted} {model}; {} of {} free{}{}",
                free.len(),
                of_model.len(),
                if held.is_empty() { "" } else { ": " },
                held.join(", ")
            ));
        } else {
            gpus.extend_from_slice(&free[..wanted]);
        }
    }
    for port in ports {
        if let Some(holder) = on_host.iter().find(|a| a.ports.contains(port)) {
            problems.push(format!("port {port} is held by cluster {}", holder.cluster));
        }
    }
    if problems.is_empty() {
        gpus.sort_unstable();
        Ok((gpus, ports.to_vec()))
    } else {
        Err(problems.join("; "))
    }
}

/// What is free on `host` beside `held`, in one line (for `check`, `show-gpus`
/// and messages).
pub fn free_summary(host: &Host, held: &[Allocation]) -> String {
    let on_host: Vec<&Allocation> = held.iter().filter(|a| a.host == host.id).collect();
    let cpus: f64 = on_host.iter().map(|a| a.cpus).sum();
    let memory: f64 = on_host.iter().map(|a| a.memory_gb).sum();
    let mut out = format!(
        "{}: {} of {} CPUs, {:.1} of {:.1} GB memory free",
        host.id,
        number((host.cpus - cpus).max(0.0)),
        number(host.cpus),
        (host.memory_gb - memory).max(0.0),
        host.memory_gb
    );
    if !host.gpus.is_empty() {
        let free: Vec<String> = host
            .gpus
            .iter()
            .filter(|g| !on_host.iter().any(|a| a.gpus.contains(&g.index)))
            .map(|g| format!("{} ({})", g.index, g.model))
            .collect();
        let _ = write!(
            out,
            ", GPUs free: {}",
            if free.is_empty() {
                "none".to_owned()
            } else {
                free.join(", ")
            }
        );
    }
    out
}

/// `4`, not `4.0`; `0.5` stays.
fn number(n: f64) -> String {
    if n.fract() == 0.0 {
        format!("{n:.0}")
    } else {
        format!("{}", (n * 100.0).round() / 100.0)
    }
}

/// This machine as a pool of one host, as `local` places clusters on it.
pub fn local_pool() -> crate::PlacementPool {
    crate::PlacementPool {
        pool: LOCAL.to_owned(),
        hosts: vec![local_host(&Machine::probe())],
        gpu_hint: crate::machine::ACCELERATORS_HINT.trim().to_owned(),
    }
}

/// This machine as a placement host: its CPUs and memory, and its GPUs by
/// the index CUDA gives them (nvidia-smi's order), or numbered from 0 in
/// the order of [`ENV_FAKE_ACCELERATORS`] when that is set.
pub fn local_host(machine: &Machine) -> Host {
    let gpus = if std::env::var_os(ENV_FAKE_ACCELERATORS).is_some() {
        numbered(&machine.accelerators)
    } else {
        crate::machine::nvidia_gpus_by_index().unwrap_or_else(|| numbered(&machine.accelerators))
    };
    Host {
        id: LOCAL.to_owned(),
        pool: LOCAL.to_owned(),
        cpus: machine.cpus,
        memory_gb: machine.memory_gb,
        gpus,
    }
}

fn numbered(accelerators: &BTreeMap<String, f64>) -> Vec<Gpu> {
    accelerators
        .iter()
        .flat_map(|(model, count)| std::iter::repeat_n(model, count.floor().max(0.0) as usize))
        .enumerate()
        .map(|(index, model)| Gpu {
            index: index as u32,
            model: model.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(cpus: f64, gpus: usize) -> Host {
        Host {
            id: LOCAL.to_owned(),
            pool: LOCAL.to_owned(),
            cpus,
            memory_gb: 16.0,
            gpus: (0..gpus)
                .map(|i| Gpu {
                    index: i as u32,
                    model: "H100".to_owned(),
                })
                .collect(),
        }
    }

    fn request(cpus: Option<f64>, gpus: f64, ports: &[u16]) -> NodeRequest {
        NodeRequest {
            cpus,
            memory_gb: None,
            accelerators: if gpus > 0.0 {
                BTreeMap::from([("H100".to_owned(), gpus)])
            } else {
                BTreeMap::new()
            },
            ports: ports.to_vec(),
            image: None,
        }
    }

    fn place(held: &[Allocation], cluster: &str, req: &NodeRequest) -> Vec<Allocation> {
        fit(&[host(8.0, 2)], held, cluster, req, 1).unwrap()
    }

    #[test]
    fn clusters_get_distinct_gpus_and_a_third_is_told_who_holds_them() {
        let a = place(&[], "a", &request(None, 1.0, &[]));
        let b = place(&a, "b", &request(None, 1.0, &[]));
        assert_eq!(a[0].gpus, vec![0]);
        assert_eq!(b[0].gpus, vec![1]);
        let held: Vec<Allocation> = a.into_iter().chain(b).collect();
        let err = fit(&[host(8.0, 2)], &held, "c", &request(None, 1.0, &[]), 1).unwrap_err();
        assert!(
            err.0.contains(
                "needs 1 H100; 0 of 2 free: cluster a holds GPU 0, cluster b holds GPU 1"
            ),
            "{err}"
        );
    }

    #[test]
    fn cpus_are_counted_across_clusters_and_the_holders_named() {
        let a = place(&[], "a", &request(Some(4.0), 0.0, &[]));
        let b = place(&a, "b", &request(Some(2.0), 0.0, &[]));
        let held: Vec<Allocation> = a.into_iter().chain(b).collect();
        let err = fit(
            &[host(8.0, 0)],
            &held,
            "c",
            &request(Some(4.0), 0.0, &[]),
            1,
        )
        .unwrap_err();
        assert!(
            err.0
                .contains("needs 4 CPUs; 2 of 8 free: cluster a holds 4, cluster b holds 2"),
            "{err}"
        );
        assert!(
            fit(
                &[host(8.0, 0)],
                &held,
                "c",
                &request(Some(2.0), 0.0, &[]),
                1
            )
            .is_ok()
        );
    }

    #[test]
    fn a_node_without_a_cpu_request_holds_none() {
        let a = place(&[], "a", &request(None, 0.0, &[]));
        assert_eq!(a[0].cpus, 0.0);
        assert!(fit(&[host(8.0, 0)], &a, "b", &request(Some(8.0), 0.0, &[]), 1).is_ok());
    }

    #[test]
    fn every_node_of_a_cluster_counts_on_one_host() {
        let err = fit(&[host(8.0, 2)], &[], "a", &request(Some(3.0), 1.0, &[]), 3).unwrap_err();
        assert!(err.0.contains("(node 3 of 3)"), "{err}");
        let two = fit(&[host(8.0, 2)], &[], "a", &request(Some(3.0), 1.0, &[]), 2).unwrap();
        assert_eq!(two[0].gpus, vec![0]);
        assert_eq!(two[1].gpus, vec![1]);
    }

    #[test]
    fn ports_are_held_by_the_head_and_refused_to_others() {
        let a = fit(&[host(8.0, 0)], &[], "a", &request(None, 0.0, &[8080]), 2).unwrap();
        assert_eq!(a[0].ports, vec![8080]);
        assert!(a[1].ports.is_empty());
        let err = fit(
            &[host(8.0, 0)],
            &a,
            "b",
            &request(None, 0.0, &[9000, 8080]),
            1,
        )
        .unwrap_err();
        assert!(err.0.contains("port 8080 is held by cluster a"), "{err}");
        assert!(!err.0.contains("9000"), "{err}");
    }

    #[test]
    fn fractional_gpus_take_a_whole_one() {
        let a = place(&[], "a", &request(None, 0.5, &[]));
        assert_eq!(a[0].gpus, vec![0]);
    }

    #[test]
    fn the_next_host_takes_what_the_first_cannot() {
        let mut second = host(8.0, 1);
        second.id = "ssh/pool/b".to_owned();
        let first = host(2.0, 0);
        let placed = fit(&[first, second], &[], "a", &request(Some(4.0), 1.0, &[]), 1).unwrap();
        assert_eq!(placed[0].host, "ssh/pool/b");
    }

    #[test]
    fn the_nodes_of_a_cluster_spread_over_the_hosts() {
        let mut second = host(8.0, 0);
        second.id = "ssh/pool/b".to_owned();
        let placed = fit(
            &[host(8.0, 0), second],
            &[],
            "a",
            &request(Some(1.0), 0.0, &[]),
            3,
        )
        .unwrap();
        let on: Vec<&str> = placed.iter().map(|a| a.host.as_str()).collect();
        assert_eq!(on[1], "ssh/pool/b", "{on:?}");
        assert_ne!(on[0], on[1], "{on:?}");
    }

    #[test]
    fn the_summary_says_what_is_free() {
        let a = place(&[], "a", &request(Some(2.5), 1.0, &[]));
        assert_eq!(
            free_summary(&host(8.0, 2), &a),
            "local: 5.5 of 8 CPUs, 16.0 of 16.0 GB memory free, GPUs free: 1 (H100)"
        );
    }

    #[test]
    fn fake_accelerators_are_numbered_from_zero() {
        let gpus = numbered(&BTreeMap::from([
            ("A100".to_owned(), 1.0),
            ("H100".to_owned(), 2.0),
        ]));
        let indices: Vec<(u32, &str)> = gpus.iter().map(|g| (g.index, g.model.as_str())).collect();
        assert_eq!(indices, vec![(0, "A100"), (1, "H100"), (2, "H100")]);
    }
}
