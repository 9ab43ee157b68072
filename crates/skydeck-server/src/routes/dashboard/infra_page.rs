//! Infrastructure: where this server can launch and how full it is. This
//! machine and each SSH Node Pool's hosts from the placement records (what
//! clusters hold of each host), each Kubernetes context's nodes from its
//! API server; CPUs, memory and GPUs drawn as used/total bars, and the
//! GPUs of everything summed by model.
//!
//! Shown to every user, as `sky check` and `sky show-gpus` are: capacity
//! and counts only, never which cluster holds what (that would name other
//! users' clusters).

use super::layout;
use super::viewer::Viewer;
use crate::ops::Op;
use maud::{Markup, html};
use serde_json::{Value, json};
use skydeck_infra::placement::{Allocation, Host};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long one Kubernetes context may take to list its nodes before the
/// page says it did not answer (the page waits for every context).
const CONTEXT_TIMEOUT: Duration = Duration::from_secs(5);

/// How much of one resource is in use, of how much.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Meter {
    /// Unknown (`None`) where the source cannot say.
    pub used: Option<f64>,
    pub total: f64,
}

impl Meter {
    fn add(self, other: Meter) -> Meter {
        Meter {
            used: self.used.zip(other.used).map(|(a, b)| a + b),
            total: self.total + other.total,
        }
    }
}

/// One machine's capacity and what is in use, whatever its source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    pub name: String,
    pub cpus: Option<Meter>,
    pub memory_gb: Option<Meter>,
    /// Per GPU model.
    pub gpus: BTreeMap<String, Meter>,
    /// Why the machine cannot take work now, if it cannot.
    pub problem: Option<String>,
}

/// A placement host and what its allocations hold of it.
pub fn host_usage(host: &Host, allocations: &[Allocation]) -> Usage {
    let mine: Vec<&Allocation> = allocations.iter().filter(|a| a.host == host.id).collect();
    let cpus_used: f64 = mine.iter().map(|a| a.cpus).sum();
    let memory_used: f64 = mine.iter().map(|a| a.memory_gb).sum();
    let held: Vec<u32> = mine.iter().flat_map(|a| a.gpus.iter().copied()).collect();
    let mut gpus: BTreeMap<String, Meter> = BTreeMap::new();
    for gpu in &host.gpus {
        let one = Meter {
            used: Some(if held.contains(&gpu.index) { 1.0 } else { 0.0 }),
            total: 1.0,
        };
        let entry = gpus.entry(gpu.model.clone()).or_insert(Meter {
            used: Some(0.0),
            total: 0.0,
        });
        *entry = entry.add(one);
    }
    Usage {
        name: host.id.clone(),
        cpus: Some(Meter {
            used: Some(cpus_used),
            total: host.cpus,
        }),
        memory_gb: Some(Meter {
            used: Some(memory_used),
            total: host.memory_gb,
        }),
        gpus,
        problem: None,
    }
}

/// A Kubernetes node as `kubernetes_node_info` records it.
fn node_usage(name: &str, node: &Value) -> Usage {
    let mut gpus = BTreeMap::new();
    let total = node["total"]["accelerator_allocatable"]
        .as_u64()
        .unwrap_or(0);
    if total > 0 {
        let model = node["accelerator_type"]
            .as_str()
            .unwrap_or("unlabelled GPU")
            .to_owned();
        // -1 when the pods of the cluster may not be listed.
        let free = node["free"]["accelerators_available"]
            .as_i64()
            .and_then(|n| u64::try_from(n).ok());
        gpus.insert(
            model,
            Meter {
                used: free.map(|f| total.saturating_sub(f) as f64),
                total: total as f64,
            },
        );
    }
    let problem = if node["is_ready"] != true {
        Some("not ready".to_owned())
    } else if node["is_cordoned"] == true {
        Some("cordoned".to_owned())
    } else {
        None
    };
    // Kubernetes tells a node's totals, not what pods hold of its CPUs
    // and memory.
    let total = |n: Option<f64>| n.map(|total| Meter { used: None, total });
    Usage {
        name: name.to_owned(),
        cpus: total(node["cpu_count"].as_f64()),
        memory_gb: total(node["memory_gb"].as_f64()),
        gpus,
        problem,
    }
}

/// Every machine's GPUs, summed per model.
pub fn gpu_totals<'a>(machines: impl IntoIterator<Item = &'a Usage>) -> BTreeMap<String, Meter> {
    let mut sum: BTreeMap<String, Meter> = BTreeMap::new();
    for machine in machines {
        for (model, meter) in &machine.gpus {
            let entry = sum.entry(model.clone()).or_insert(Meter {
                used: Some(0.0),
                total: 0.0,
            });
            *entry = entry.add(*meter);
        }
    }
    sum
}

/// One group of machines on the page: this machine, a pool, a context.
struct Group {
    title: String,
    /// `ssh/<pool>` or `k8s/<context>`: what `--infra` takes.
    infra: String,
    /// Why nothing can be launched here, if nothing can.
    problem: Option<String>,
    machines: Vec<Usage>,
}

pub async fn page(viewer: Viewer) -> axum::response::Response {
    let mut groups = vec![local_group(&viewer).await];
    groups.extend(ssh_groups(&viewer).await);
    groups.extend(kube_groups(&viewer).await);
    let totals = gpu_totals(groups.iter().flat_map(|g| &g.machines));
    let body = html! {
        h1 { "Infrastructure" }
        p.muted {
            "Where clusters can be launched in workspace "
            code { (viewer.state.live_config.get().active_workspace()) }
            ", and how much of it clusters hold now."
        }
        h2 { "GPUs" }
        @if totals.is_empty() {
            p.muted { "No GPUs on any infrastructure this server reaches." }
        } @else {
            div.chart #gpu-chart {
                @for (model, meter) in &totals { (bar(model, *meter, "")) }
            }
        }
        @for group in &groups {
            section.infra data-infra=(group.infra) {
                h2 { (group.title) " " span.muted { code { "--infra " (group.infra) } } }
                @if let Some(problem) = &group.problem { p.error { (problem) } }
                @if group.machines.is_empty() && group.problem.is_none() {
                    p.muted { "No machines." }
                }
                div.machines {
                    @for machine in &group.machines { (machine_card(machine)) }
                }
            }
        }
    };
    layout::page(&viewer, 0, "infra", "Infrastructure", body)
}

fn machine_card(machine: &Usage) -> Markup {
    html! {
        div.machine {
            h3 {
                (machine.name)
                @if let Some(problem) = &machine.problem { " " span.status.bad { (problem) } }
            }
            div.chart {
                @if let Some(meter) = machine.cpus { (bar("CPUs", meter, "")) }
                @if let Some(meter) = machine.memory_gb { (bar("Memory", meter, " GiB")) }
                @for (model, meter) in &machine.gpus { (bar(model, *meter, "")) }
            }
        }
    }
}

/// A labelled bar: the used share filled, "used / total" beside it; when
/// what is used is unknown, only the total.
fn bar(label: &str, Meter { used, total }: Meter, unit: &str) -> Markup {
    let share = match used {
        Some(used) if total > 0.0 => (used / total).clamp(0.0, 1.0),
        _ => 0.0,
    };
    let number = |n: f64| {
        if n.fract() == 0.0 {
            format!("{n:.0}")
        } else {
            format!("{n:.1}")
        }
    };
    html! {
        div.bar data-label=(label) {
            span.label { (label) }
            span.track role="img" aria-label=(format!("{label}: {} of {} in use", used.map_or("?".to_owned(), number), number(total))) {
                span.fill style=(format!("width: {:.1}%", share * 100.0)) {}
            }
            span.value {
                @match used {
                    Some(used) => { (number(used)) " / " (number(total)) (unit) " in use" }
                    None => { (number(total)) (unit) }
                }
            }
        }
    }
}

async fn local_group(viewer: &Viewer) -> Group {
    let pool = skydeck_infra::placement::local_pool();
    let allocations = viewer
        .state
        .store
        .list_allocations(&pool.pool)
        .await
        .unwrap_or_default();
    let config = viewer.state.live_config.get();
    Group {
        title: "This machine".to_owned(),
        infra: "local".to_owned(),
        problem: config
            .infra_allowed(config.active_workspace(), "local")
            .err(),
        machines: pool
            .hosts
            .iter()
            .map(|host| host_usage(host, &allocations))
            .collect(),
    }
}

async fn ssh_groups(viewer: &Viewer) -> Vec<Group> {
    let state = &viewer.state;
    let config = state.live_config.get();
    let pools = match crate::ssh_pools::check::pool_states(
        state.infra.home(),
        state.store.as_ref(),
        &config,
        config.active_workspace(),
    )
    .await
    {
        Ok(pools) => pools,
        Err(reason) => {
            return vec![Group {
                title: "SSH Node Pools".to_owned(),
                infra: "ssh".to_owned(),
                problem: Some(reason),
                machines: Vec::new(),
            }];
        }
    };
    let mut groups = Vec::new();
    for pool in pools {
        let placement = crate::ssh_pools::placement_pool(&pool.name);
        let hosts = state.store.list_hosts(&placement).await.unwrap_or_default();
        let allocations = state
            .store
            .list_allocations(&placement)
            .await
            .unwrap_or_default();
        groups.push(Group {
            title: format!("SSH Node Pool {}", pool.name),
            infra: placement,
            problem: pool.enabled.err(),
            machines: hosts
                .iter()
                .map(|host| host_usage(host, &allocations))
                .collect(),
        });
    }
    groups
}

async fn kube_groups(viewer: &Viewer) -> Vec<Group> {
    let config = viewer.state.live_config.get();
    let contexts = viewer
        .state
        .infra
        .kube()
        .allowed(&config, config.active_workspace());
    let reads = contexts.into_iter().map(|context| async move {
        let read = viewer.read(Op::KubeNodeInfo, json!({ "context": context }));
        let (problem, machines) = match tokio::time::timeout(CONTEXT_TIMEOUT, read).await {
            Ok(Ok(info)) => {
                let nodes = info["node_info_dict"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                let hint = info["hint"].as_str().filter(|h| !h.is_empty());
                (
                    hint.map(str::to_owned),
                    nodes
                        .iter()
                        .map(|(name, node)| node_usage(name, node))
                        .collect(),
                )
            }
            Ok(Err(err)) => (Some(err.message), Vec::new()),
            Err(_) => (
                Some(format!(
                    "The API server did not answer within {} s.",
                    CONTEXT_TIMEOUT.as_secs()
                )),
                Vec::new(),
            ),
        };
        Group {
            title: format!("Kubernetes context {context}"),
            infra: format!("k8s/{context}"),
            problem,
            machines,
        }
    });
    futures_util::future::join_all(reads).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use skydeck_infra::placement::Gpu;

    fn host() -> Host {
        Host {
            id: "ssh/rack/10.0.0.1".to_owned(),
            pool: "ssh/rack".to_owned(),
            cpus: 8.0,
            memory_gb: 32.0,
            gpus: (0..4)
                .map(|index| Gpu {
                    index,
                    model: if index < 3 { "H100" } else { "L4" }.to_owned(),
                })
                .collect(),
        }
    }

    fn held(host: &str, cpus: f64, gpus: Vec<u32>) -> Allocation {
        Allocation {
            cluster: "c".to_owned(),
            node_rank: 0,
            host: host.to_owned(),
            cpus,
            memory_gb: 4.0,
            gpus,
            ports: Vec::new(),
        }
    }

    #[test]
    fn a_host_counts_only_its_own_allocations() {
        let allocations = [
            held("ssh/rack/10.0.0.1", 2.0, vec![0, 3]),
            held("ssh/rack/10.0.0.1", 1.5, vec![1]),
            held("ssh/rack/10.0.0.2", 4.0, vec![0, 1, 2]),
        ];
        let usage = host_usage(&host(), &allocations);
        let meter = |used, total| Meter {
            used: Some(used),
            total,
        };
        assert_eq!(usage.cpus, Some(meter(3.5, 8.0)));
        assert_eq!(usage.memory_gb, Some(meter(8.0, 32.0)));
        assert_eq!(usage.gpus["H100"], meter(2.0, 3.0));
        assert_eq!(usage.gpus["L4"], meter(1.0, 1.0));
    }

    #[test]
    fn gpu_totals_sum_models_and_stay_unknown_when_a_part_is() {
        let local = host_usage(&host(), &[held("ssh/rack/10.0.0.1", 1.0, vec![0])]);
        let node = node_usage(
            "n1",
            &json!({"accelerator_type": "H100", "total": {"accelerator_allocatable": 8},
                    "free": {"accelerators_available": 6}, "is_ready": true}),
        );
        let totals = gpu_totals([&local, &node]);
        assert_eq!(totals["H100"].used, Some(3.0));
        assert_eq!(totals["H100"].total, 11.0);
        let unknown = node_usage(
            "n2",
            &json!({"accelerator_type": "H100", "total": {"accelerator_allocatable": 8},
                    "free": {"accelerators_available": -1}, "is_ready": false}),
        );
        assert_eq!(unknown.problem.as_deref(), Some("not ready"));
        assert_eq!(gpu_totals([&local, &unknown])["H100"].used, None);
    }

    #[test]
    fn bars_fill_their_share_and_say_it() {
        let html = bar(
            "CPUs",
            Meter {
                used: Some(3.0),
                total: 4.0,
            },
            "",
        )
        .into_string();
        assert!(html.contains("width: 75.0%"), "{html}");
        assert!(html.contains("3 / 4 in use"), "{html}");
        let unknown = bar(
            "Memory",
            Meter {
                used: None,
                total: 15.5,
            },
            " GiB",
        )
        .into_string();
        assert!(
            unknown.contains("width: 0.0%") && unknown.contains("15.5 GiB"),
            "{unknown}"
        );
    }
}
