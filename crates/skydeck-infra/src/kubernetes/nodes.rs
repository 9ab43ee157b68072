//! A context's nodes as `sky check` and `sky show-gpus` see them: which
//! GPU each has (from the node labels SkyPilot recognises), how many
//! (`status.allocatable`), and how many are free (allocatable minus the
//! GPU requests of the pods still running there).

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use std::collections::{BTreeMap, HashMap};

/// The GPU resource keys a node may have, NVIDIA first.
pub const GPU_RESOURCE_KEYS: &[&str] = &["nvidia.com/gpu", "amd.com/gpu"];

/// SkyPilot's canonical GPU names, in the order its GFD formatter tries
/// them (`sky/utils/gpu_names.py`): longer names before their prefixes.
const CANONICAL_GPU_NAMES: &[&str] = &[
    "GB300",
    "GB200",
    "B300",
    "B200",
    "B100",
    "GH200",
    "H200",
    "H100-80GB",
    "H100-MEGA",
    "H100",
    "A100-80GB",
    "A100",
    "A10G",
    "A10",
    "A16",
    "A30",
    "A40",
    "RTX6000-Ada",
    "L40S",
    "L40",
    "L4",
    "A6000",
    "A5000",
    "A4000",
    "V100-32GB",
    "V100",
    "P100",
    "P40",
    "P4000",
    "P4",
    "T4g",
    "T4",
    "K80",
    "M60",
];

/// The label keys, in SkyPilot's order (`LABEL_FORMATTER_REGISTRY`).
pub const GPU_LABEL_KEYS: &[&str] = &[
    "skypilot.co/accelerator",
    "cloud.google.com/gke-accelerator",
    "karpenter.k8s.aws/instance-gpu-name",
    "nvidia.com/gpu.product",
    "gpu.nvidia.com/class",
    "nebius.com/gpu-name",
];

/// The accelerator a node's labels name, as SkyPilot reads them; the
/// first key (in SkyPilot's order) with a valid value wins.
pub fn accelerator_from_labels(labels: &BTreeMap<String, String>) -> Option<String> {
    GPU_LABEL_KEYS.iter().find_map(|key| {
        let value = labels.get(*key)?;
        from_label(key, value)
    })
}

fn from_label(key: &str, value: &str) -> Option<String> {
    if value.is_empty() {
        return None;
    }
    match key {
        // Lower case only: an upper-case value is a labelling mistake.
        "skypilot.co/accelerator" | "karpenter.k8s.aws/instance-gpu-name" => {
            (value == value.to_lowercase()).then(|| value.to_uppercase())
        }
        "cloud.google.com/gke-accelerator" => Some(gke(value)),
        "nvidia.com/gpu.product" => Some(gfd(value)),
        "gpu.nvidia.com/class" => Some(match value {
            "H100_NVLINK_80GB" => "H100".to_owned(),
            other => other.to_owned(),
        }),
        "nebius.com/gpu-name" => Some(value.to_owned()),
        _ => None,
    }
}

fn gke(value: &str) -> String {
    if let Some(name) = value.strip_prefix("nvidia-tesla-") {
        return name.to_uppercase();
    }
    if let Some(name) = value.strip_prefix("nvidia-") {
        return match name.to_uppercase().as_str() {
            "H100-80GB" => "H100".to_owned(),
            "H200-141GB" => "H200".to_owned(),
            other => other.to_owned(),
        };
    }
    value.to_owned()
}

/// GPU feature discovery's product label (`NVIDIA-H100-80GB-HBM3`): the
/// first canonical name found in it as a whole word, else the value
/// without its vendor words.
fn gfd(value: &str) -> String {
    for name in CANONICAL_GPU_NAMES {
        let found = match *name {
            "A100-80GB" => contains_then(value, "A100", "-80GB"),
            "H100-80GB" => contains_then(value, "H100", "-80GB"),
            _ => has_word(value, name),
        };
        if found {
            return (*name).to_owned();
        }
    }
    value
        .to_uppercase()
        .replace("NVIDIA-", "")
        .replace("GEFORCE-", "")
        .replace("RTX-", "RTX")
}

/// `first`, then later `then` (`A100.*-80GB`).
fn contains_then(value: &str, first: &str, then: &str) -> bool {
    value
        .find(first)
        .is_some_and(|at| value[at + first.len()..].contains(then))
}

/// Whether `word` occurs in `value` with no letter, digit or `_` on either
/// side (a regex `\b…\b`).
fn has_word(value: &str, word: &str) -> bool {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    value.match_indices(word).any(|(at, _)| {
        let before = value[..at].chars().next_back();
        let after = value[at + word.len()..].chars().next();
        let starts = before.is_none_or(|c| !is_word(c)) || !word.starts_with(is_word);
        let ends = after.is_none_or(|c| !is_word(c)) || !word.ends_with(is_word);
        starts && ends
    })
}

/// One node, as `sky show-gpus` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeInfo {
    pub name: String,
    /// From the labels; `None` for a node without a GPU label.
    pub accelerator: Option<String>,
    /// GPUs in `status.capacity`.
    pub gpu_capacity: u64,
    /// GPUs in `status.allocatable`.
    pub gpu_allocatable: u64,
    /// Allocatable minus what running pods request; `None` when the pods
    /// of the whole cluster may not be listed.
    pub gpu_free: Option<u64>,
    pub ip: Option<String>,
    pub cpus: Option<f64>,
    pub memory_gb: Option<f64>,
    pub ready: bool,
    pub cordoned: bool,
    pub taints: Vec<serde_json::Value>,
}

/// The nodes of the cluster `client` reaches, with their GPUs.
pub async fn list_nodes(client: &kube::Client) -> Result<Vec<NodeInfo>, kube::Error> {
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    let in_use = gpus_in_use(client).await;
    Ok(nodes
        .items
        .iter()
        .map(|node| node_info(node, in_use.as_ref().ok()))
        .collect())
}

/// GPUs requested per node by pods that still hold them; an error when
/// pods may not be listed cluster-wide (the free counts are then unknown).
async fn gpus_in_use(client: &kube::Client) -> Result<HashMap<String, u64>, kube::Error> {
    let pods = Api::<Pod>::all(client.clone())
        .list(&ListParams::default().fields("status.phase!=Succeeded,status.phase!=Failed"))
        .await?;
    let mut used = HashMap::new();
    for pod in pods.items {
        let Some(spec) = pod.spec else { continue };
        let Some(node) = spec.node_name else { continue };
        let requested: u64 = spec
            .containers
            .iter()
            .filter_map(|c| c.resources.as_ref()?.requests.as_ref())
            .flat_map(|requests| {
                GPU_RESOURCE_KEYS
                    .iter()
                    .filter_map(|key| requests.get(*key))
            })
            .filter_map(|q| q.0.parse::<u64>().ok())
            .sum();
        *used.entry(node).or_default() += requested;
    }
    Ok(used)
}

fn node_info(node: &Node, in_use: Option<&HashMap<String, u64>>) -> NodeInfo {
    let name = node.metadata.name.clone().unwrap_or_default();
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let status = node.status.as_ref();
    let gpus = |resources: Option<
        &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >|
     -> u64 {
        resources
            .map(|r| {
                GPU_RESOURCE_KEYS
                    .iter()
                    .filter_map(|key| r.get(*key))
                    .filter_map(|q| q.0.parse::<u64>().ok())
                    .sum()
            })
            .unwrap_or(0)
    };
    let allocatable = status.and_then(|s| s.allocatable.as_ref());
    let gpu_allocatable = gpus(allocatable);
    let gpu_free =
        in_use.map(|used| gpu_allocatable.saturating_sub(used.get(&name).copied().unwrap_or(0)));
    let ip = status
        .and_then(|s| s.addresses.as_ref())
        .and_then(|addresses| {
            let of = |kind: &str| {
                addresses
                    .iter()
                    .find(|a| a.type_ == kind)
                    .map(|a| a.address.clone())
            };
            of("ExternalIP").or_else(|| of("InternalIP"))
        });
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        });
    let spec = node.spec.as_ref();
    let taints = spec
        .and_then(|s| s.taints.as_ref())
        .map(|taints| {
            taints
                .iter()
                .map(|t| {
                    serde_json::json!({
                        "key": t.key,
                        "value": t.value,
                        "effect": t.effect,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    NodeInfo {
        accelerator: accelerator_from_labels(&labels),
        gpu_capacity: gpus(status.and_then(|s| s.capacity.as_ref())),
        gpu_allocatable,
        gpu_free,
        ip,
        cpus: allocatable
            .and_then(|a| a.get("cpu"))
            .and_then(|q| quantity(&q.0)),
        memory_gb: allocatable
            .and_then(|a| a.get("memory"))
            .and_then(|q| quantity(&q.0))
            .map(|bytes| bytes / 1e9),
        ready,
        cordoned: spec.and_then(|s| s.unschedulable).unwrap_or(false),
        taints,
        name,
    }
}

/// A Kubernetes quantity (`4`, `3500m`, `16Gi`, `1e3`) as a number.
pub fn quantity(text: &str) -> Option<f64> {
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("Pi", 1_125_899_906_842_624.0),
        ("Ei", 1_152_921_504_606_846_976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let text = text.trim();
    for (suffix, scale) in SUFFIXES {
        if let Some(number) = text.strip_suffix(suffix) {
            return number.parse::<f64>().ok().map(|n| n * scale);
        }
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labelled(key: &str, value: &str) -> Option<String> {
        accelerator_from_labels(&BTreeMap::from([(key.to_owned(), value.to_owned())]))
    }

    #[test]
    fn each_label_format_skypilot_knows() {
        assert_eq!(
            labelled("skypilot.co/accelerator", "h100").as_deref(),
            Some("H100")
        );
        assert_eq!(
            labelled("skypilot.co/accelerator", "H100"),
            None,
            "must be lower case"
        );
        assert_eq!(
            labelled("cloud.google.com/gke-accelerator", "nvidia-tesla-t4").as_deref(),
            Some("T4")
        );
        assert_eq!(
            labelled("cloud.google.com/gke-accelerator", "nvidia-h100-80gb").as_deref(),
            Some("H100")
        );
        assert_eq!(
            labelled("cloud.google.com/gke-accelerator", "nvidia-h200-141gb").as_deref(),
            Some("H200")
        );
        assert_eq!(
            labelled("cloud.google.com/gke-accelerator", "nvidia-l4").as_deref(),
            Some("L4")
        );
        assert_eq!(
            labelled("nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3").as_deref(),
            Some("H100-80GB")
        );
        assert_eq!(
            labelled("nvidia.com/gpu.product", "NVIDIA-A100-SXM4-80GB").as_deref(),
            Some("A100-80GB")
        );
        assert_eq!(
            labelled("nvidia.com/gpu.product", "Tesla-T4").as_deref(),
            Some("T4")
        );
        assert_eq!(
            labelled("nvidia.com/gpu.product", "NVIDIA-L40S").as_deref(),
            Some("L40S"),
            "L40S is not L40 nor L4"
        );
        assert_eq!(
            labelled("nvidia.com/gpu.product", "NVIDIA-GeForce-RTX-3070").as_deref(),
            Some("RTX3070")
        );
        assert_eq!(
            labelled("gpu.nvidia.com/class", "H100_NVLINK_80GB").as_deref(),
            Some("H100")
        );
        assert_eq!(labelled("kubernetes.io/hostname", "n1"), None);
        // SkyPilot's own label wins over the others.
        let both = BTreeMap::from([
            ("nvidia.com/gpu.product".to_owned(), "Tesla-T4".to_owned()),
            ("skypilot.co/accelerator".to_owned(), "l4".to_owned()),
        ]);
        assert_eq!(accelerator_from_labels(&both).as_deref(), Some("L4"));
    }

    #[test]
    fn quantities() {
        assert_eq!(quantity("4"), Some(4.0));
        assert_eq!(quantity("3500m"), Some(3.5));
        assert_eq!(quantity("16Gi"), Some(17_179_869_184.0));
        assert_eq!(quantity("2G"), Some(2e9));
        assert_eq!(quantity("x"), None);
    }
}
