//! `sky show-gpus --infra k8s`: the GPUs of each allowed Kubernetes
//! context, from its nodes' labels (`skypilot.co/accelerator`,
//! `nvidia.com/gpu.product`, GKE's…) and their allocatable `nvidia.com/gpu`,
//! in the shapes the client decodes (`RealtimeGpuAvailability`,
//! `KubernetesNodesInfo`).

use super::{OpResult, RequestContext};
use crate::skypilot::exception;
use skydeck_infra::kubernetes::nodes::{NodeInfo, list_nodes};
use skydeck_types::RequestError;
use skydeck_types::listing_bodies::{KubernetesNodeInfoBody, RealtimeGpuAvailabilityBody};
use std::collections::BTreeMap;

/// `[[context, [[gpu, [requestable quantities], capacity, available], …]], …]`;
/// `available` is -1 when the pods of the cluster may not be listed.
pub async fn realtime_gpu_availability(
    ctx: &RequestContext,
    body: RealtimeGpuAvailabilityBody,
) -> OpResult {
    // SSH node pools are not Kubernetes contexts here.
    if body.is_ssh == Some(true) {
        return Ok(serde_json::json!([]));
    }
    let contexts = match &body.context {
        Some(context) => vec![allowed(ctx, context)?],
        None => ctx.infra.kube().allowed(&ctx.config, &ctx.workspace),
    };
    let mut out = Vec::new();
    for context in contexts {
        let nodes = nodes_of(ctx, &context).await?;
        let rows = availability(&nodes, body.name_filter.as_deref(), body.quantity_filter);
        if !rows.is_empty() {
            out.push(serde_json::json!([context, rows]));
        }
    }
    Ok(serde_json::Value::Array(out))
}

/// `{node_info_dict: {node: KubernetesNodeInfo}, hint}`.
pub async fn node_info(ctx: &RequestContext, body: KubernetesNodeInfoBody) -> OpResult {
    let context = match &body.context {
        Some(context) => allowed(ctx, context)?,
        None => ctx
            .infra
            .kube()
            .allowed(&ctx.config, &ctx.workspace)
            .into_iter()
            .next()
            .ok_or_else(|| {
                RequestError::new(exception::VALUE_ERROR, ctx.infra.kube().none_reason())
            })?,
    };
    let nodes = nodes_of(ctx, &context).await?;
    let dict: serde_json::Map<String, serde_json::Value> = nodes
        .iter()
        .map(|node| (node.name.clone(), node_record(node)))
        .collect();
    let unlabelled = nodes
        .iter()
        .any(|n| n.accelerator.is_none() && n.gpu_capacity > 0);
    let hint = if unlabelled {
        "Some nodes have GPUs but no GPU label SkyPilot recognises; label them, for example \
         `kubectl label node <node> skypilot.co/accelerator=<gpu, lower case>`."
    } else {
        ""
    };
    Ok(serde_json::json!({"node_info_dict": dict, "hint": hint}))
}

fn allowed(ctx: &RequestContext, context: &str) -> Result<String, RequestError> {
    ctx.infra
        .kube()
        .check_allowed(&ctx.config, &ctx.workspace, context)
        .map_err(|reason| RequestError::new(exception::VALUE_ERROR, reason))?;
    Ok(context.to_owned())
}

async fn nodes_of(ctx: &RequestContext, context: &str) -> Result<Vec<NodeInfo>, RequestError> {
    let provider = ctx
        .infra
        .kube()
        .provider_for(&ctx.config, &ctx.workspace, context)?;
    list_nodes(&provider.target().client).await.map_err(|err| {
        RequestError::new(
            exception::VALUE_ERROR,
            format!(
                "Kubernetes context {context}: {}",
                skydeck_infra::kubernetes::check::reason(&err, "list nodes")
            ),
        )
    })
}

/// One row per GPU kind: the quantities one pod can ask for (powers of
/// two up to the most on one node, as SkyPilot offers them, and that
/// most), the allocatable total and the free total.
fn availability(
    nodes: &[NodeInfo],
    name_filter: Option<&str>,
    quantity: Option<u32>,
) -> Vec<serde_json::Value> {
    #[derive(Default)]
    struct Gpu {
        most_on_a_node: u64,
        capacity: u64,
        free: Option<u64>,
    }
    let mut gpus: BTreeMap<String, Gpu> = BTreeMap::new();
    for node in nodes {
        let Some(name) = &node.accelerator else {
            continue;
        };
        if node.gpu_allocatable == 0 {
            continue;
        }
        if let Some(filter) = name_filter
            && !name.to_lowercase().contains(&filter.to_lowercase())
        {
            continue;
        }
        let gpu = gpus.entry(name.clone()).or_insert_with(|| Gpu {
            free: Some(0),
            ..Gpu::default()
        });
        gpu.most_on_a_node = gpu.most_on_a_node.max(node.gpu_allocatable);
        gpu.capacity += node.gpu_allocatable;
        gpu.free = gpu.free.zip(node.gpu_free).map(|(a, b)| a + b);
    }
    gpus.into_iter()
        .filter_map(|(name, gpu)| {
            let mut counts: Vec<u64> = std::iter::successors(Some(1u64), |n| n.checked_mul(2))
                .take_while(|n| *n <= gpu.most_on_a_node)
                .collect();
            if counts.last() != Some(&gpu.most_on_a_node) {
                counts.push(gpu.most_on_a_node);
            }
            if let Some(wanted) = quantity {
                counts.retain(|n| *n == u64::from(wanted));
            }
            (!counts.is_empty()).then(|| {
                let free = gpu
                    .free
                    .map_or(-1, |f| i64::try_from(f).unwrap_or(i64::MAX));
                serde_json::json!([name, counts, gpu.capacity, free])
            })
        })
        .collect()
}

fn node_record(node: &NodeInfo) -> serde_json::Value {
    let free = node
        .gpu_free
        .map_or(-1, |f| i64::try_from(f).unwrap_or(i64::MAX));
    serde_json::json!({
        "name": node.name,
        "accelerator_type": node.accelerator,
        "total": {
            "accelerator_count": node.gpu_capacity,
            "accelerator_allocatable": node.gpu_allocatable,
        },
        "free": {"accelerators_available": free},
        "ip_address": node.ip,
        "cpu_count": node.cpus,
        "memory_gb": node.memory_gb,
        "cpu_free": null,
        "memory_free_gb": null,
        "is_ready": node.ready,
        "is_cordoned": node.cordoned,
        "taints": node.taints,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, gpu: Option<&str>, allocatable: u64, free: Option<u64>) -> NodeInfo {
        NodeInfo {
            name: name.to_owned(),
            accelerator: gpu.map(str::to_owned),
            gpu_capacity: allocatable,
            gpu_allocatable: allocatable,
            gpu_free: free,
            ip: None,
            cpus: Some(8.0),
            memory_gb: Some(32.0),
            ready: true,
            cordoned: false,
            taints: Vec::new(),
        }
    }

    #[test]
    fn gpus_are_summed_per_kind_with_the_quantities_a_pod_can_ask() {
        let nodes = [
            node("a", Some("H100"), 8, Some(3)),
            node("b", Some("H100"), 2, Some(2)),
            node("c", Some("L4"), 1, Some(0)),
            node("d", None, 4, Some(4)),
            node("e", Some("T4"), 0, Some(0)),
        ];
        assert_eq!(
            availability(&nodes, None, None),
            [
                serde_json::json!(["H100", [1, 2, 4, 8], 10, 5]),
                serde_json::json!(["L4", [1], 1, 0]),
            ]
        );
        assert_eq!(
            availability(&nodes, Some("h1"), Some(2)),
            [serde_json::json!(["H100", [2], 10, 5])]
        );
        let odd = [node("a", Some("A100"), 6, None)];
        assert_eq!(
            availability(&odd, None, None),
            [serde_json::json!(["A100", [1, 2, 4, 6], 6, -1])],
            "-1 free: the pods could not be listed"
        );
    }
}
