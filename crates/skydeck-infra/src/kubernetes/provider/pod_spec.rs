//! The pod of one node, as SkyPilot 0.14.1 makes it (its labels, requests,
//! GPU affinity and tolerations, `/dev/shm`), built as JSON so that the
//! admin's `pod_config` merges into it the way SkyPilot merges it. Pure: no
//! client, so every field is unit-tested.
//!
//! Only core/v1 fields that Kubernetes 1.20 serves are used: an older API
//! server drops unknown fields silently.

use super::names::ClusterNames;
use crate::NodeRequest;
use crate::kubernetes::{KubeSettings, RemoteIdentity};
use serde_json::{Map, Value, json};

/// The container's name, SkyPilot's.
pub const CONTAINER: &str = "ray-node";
/// The service account `SERVICE_ACCOUNT` (and the other enum values of
/// `remote_identity`) run pods as.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "skypilot-service-account";
/// The image a task without `image_id: docker:<image>` runs in, unless
/// [`IMAGE_ENV`] names another.
pub const DEFAULT_IMAGE: &str = "docker.io/library/debian:bookworm-slim";
/// Names the default image (for clusters without a registry, an image
/// imported into the nodes' container runtime).
pub const IMAGE_ENV: &str = "SKYDECK_KUBERNETES_IMAGE";
/// Where a worker's agent listens for the head's (in the pod's own network
/// namespace, so one port for every pod).
pub const NODE_PORT: u16 = 46581;

/// SkyPilot's sizes for a node that asks for none (`sky/clouds/kubernetes.py`).
const DEFAULT_CPUS: f64 = 2.0;
const DEFAULT_MEMORY_GB: f64 = 2.0;
const DEFAULT_CPUS_PER_GPU: f64 = 4.0;
const DEFAULT_MEMORY_GB_PER_GPU: f64 = 16.0;

/// Node label keys that name a node's GPU model, SkyPilot's formatters
/// (`utils.LABEL_FORMATTER_REGISTRY`).
pub const GPU_LABEL_KEYS: &[&str] = &[
    "skypilot.co/accelerator",
    "cloud.google.com/gke-accelerator",
    "karpenter.k8s.aws/instance-gpu-name",
    "nvidia.com/gpu.product",
    "gpu.nvidia.com/class",
    "nebius.com/gpu-name",
];

/// Where a GPU pod must go: the extended resource it asks for and the node
/// labels that carry the model it wants.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuPlacement {
    /// `nvidia.com/gpu` or `amd.com/gpu`.
    pub resource_key: String,
    pub count: f64,
    /// Alternatives (any one will do): a label key and the values that
    /// mean the requested model.
    pub labels: Vec<(String, Vec<String>)>,
}

impl GpuPlacement {
    /// The placement of `count` GPUs of model `name` on nodes labelled as
    /// SkyPilot's formatters label them, with the values each uses for it.
    /// `labelled` are the values the context's nodes really carry (key,
    /// value): those that mean `name` are used too (GPU operator products
    /// such as `NVIDIA-H100-80GB-HBM3`).
    pub fn for_model(name: &str, count: f64, labelled: &[(String, String)]) -> Self {
        let lower = name.to_ascii_lowercase();
        let upper = name.to_ascii_uppercase();
        let mut labels: Vec<(String, Vec<String>)> = vec![
            ("skypilot.co/accelerator".into(), vec![lower.clone()]),
            (
                "cloud.google.com/gke-accelerator".into(),
                vec![format!("nvidia-tesla-{lower}"), format!("nvidia-{lower}")],
            ),
            (
                "karpenter.k8s.aws/instance-gpu-name".into(),
                vec![lower.clone()],
            ),
            ("gpu.nvidia.com/class".into(), vec![upper.clone()]),
            ("nebius.com/gpu-name".into(), vec![upper.clone()]),
        ];
        for (key, value) in labelled {
            if GPU_LABEL_KEYS.contains(&key.as_str()) && label_means(key, value, name) {
                match labels.iter_mut().find(|(k, _)| k == key) {
                    Some((_, values)) if !values.contains(value) => values.push(value.clone()),
                    Some(_) => {}
                    None => labels.push((key.clone(), vec![value.clone()])),
                }
            }
        }
        let resource_key = std::env::var("CUSTOM_GPU_RESOURCE_KEY")
            .ok()
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| {
                if upper.starts_with("MI") {
                    "amd.com/gpu".into()
                } else {
                    "nvidia.com/gpu".into()
                }
            });
        Self {
            resource_key,
            count,
            labels,
        }
    }
}

/// Whether node label `key=value` names GPU model `name` (case aside; a
/// longer variant such as `H200-SXM-141GB` names `H200`).
pub fn label_means(key: &str, value: &str, name: &str) -> bool {
    let mut value = value.to_ascii_uppercase();
    if key == "cloud.google.com/gke-accelerator" {
        value = value
            .trim_start_matches("NVIDIA-TESLA-")
            .trim_start_matches("NVIDIA-")
            .to_owned();
    }
    if key == "nvidia.com/gpu.product" {
        value = value
            .trim_start_matches("NVIDIA-")
            .trim_start_matches("GEFORCE-")
            .replace("RTX-", "RTX");
    }
    let name = name.to_ascii_uppercase();
    value == name
        || value
            .strip_prefix(&name)
            .is_some_and(|rest| rest.starts_with('-'))
}

/// Everything that shapes one node's pod.
pub struct PodPlan<'a> {
    pub names: &'a ClusterNames,
    pub rank: usize,
    pub num_nodes: usize,
    pub request: &'a NodeRequest,
    pub settings: &'a KubeSettings,
    /// The GPUs of the node, when it asks for any.
    pub gpu: Option<&'a GpuPlacement>,
}

/// The image a node runs: the task's `docker:<image>`, or the default.
pub fn image_of(request: &NodeRequest) -> String {
    request
        .image
        .as_deref()
        .map(|image| image.strip_prefix("docker:").unwrap_or(image).to_owned())
        .filter(|image| !image.is_empty())
        .or_else(|| std::env::var(IMAGE_ENV).ok().filter(|i| !i.is_empty()))
        .unwrap_or_else(|| DEFAULT_IMAGE.to_owned())
}

/// CPUs and memory (GB) a node requests: what it asked for, else
/// SkyPilot's defaults (more with GPUs).
pub fn size_of(request: &NodeRequest) -> (f64, f64) {
    let gpus: f64 = request.accelerators.values().sum();
    let (cpus, memory) = if gpus > 0.0 {
        (
            DEFAULT_CPUS_PER_GPU * gpus,
            DEFAULT_MEMORY_GB_PER_GPU * gpus,
        )
    } else {
        (DEFAULT_CPUS, DEFAULT_MEMORY_GB)
    };
    (
        request.cpus.unwrap_or(cpus),
        request.memory_gb.unwrap_or(memory),
    )
}

/// The service account the pods run as.
pub fn service_account(settings: &KubeSettings) -> &str {
    match &settings.remote_identity {
        RemoteIdentity::ServiceAccount => DEFAULT_SERVICE_ACCOUNT,
        RemoteIdentity::Named(name) => name,
    }
}

/// A Kubernetes quantity from a number (`2`, `0.5`, `1.5`).
fn quantity(value: f64, unit: &str) -> String {
    let mut text = format!("{value:.3}");
    while text.ends_with('0') {
        text.pop();
    }
    if text.ends_with('.') {
        text.pop();
    }
    format!("{text}{unit}")
}

/// The command that keeps the pod alive: the agent is copied in and
/// started later, through exec. A shell as PID 1 also reaps what the
/// agent's detached processes leave.
pub fn keep_alive_command() -> Vec<String> {
    vec![
        "/bin/sh".into(),
        "-c".into(),
        "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done".into(),
    ]
}

/// The pod of node `plan.rank`, `pod_config` and `custom_metadata` merged.
pub fn pod_manifest(plan: &PodPlan<'_>) -> Value {
    let names = plan.names;
    let head = plan.rank == 0;
    let pod_name = names.pod(plan.rank);
    let (cpus, memory_gb) = size_of(plan.request);
    let mut labels = Map::new();
    for (key, value) in [
        ("parent", "skypilot".to_owned()),
        ("skypilot-cluster", names.on_cloud.clone()),
        ("skypilot-cluster-name", names.on_cloud.clone()),
        ("ray-cluster-name", names.on_cloud.clone()),
        ("skypilot-user", names.user_label.clone()),
        (
            "ray-node-type",
            if head { "head" } else { "worker" }.to_owned(),
        ),
        (
            "skypilot-head-node",
            if head { "1" } else { "0" }.to_owned(),
        ),
        ("component", pod_name.clone()),
        (
            super::names::SKYDECK_CLUSTER_LABEL,
            names.display_label.clone(),
        ),
    ] {
        labels.insert(key.to_owned(), Value::String(value));
    }
    if plan.gpu.is_some() {
        labels.insert("skypilot-binpack".into(), "gpu".into());
    }
    let annotations = json!({
        "skypilot-user": names.user,
        "skypilot-cluster-name": names.display,
    });

    let mut requests = Map::new();
    requests.insert("cpu".into(), quantity(cpus, "").into());
    requests.insert("memory".into(), quantity(memory_gb, "G").into());
    let mut limits = Map::new();
    let mut tolerations = Vec::new();
    let mut affinity = Map::new();
    match plan.gpu {
        Some(gpu) => {
            let count = quantity(gpu.count.ceil(), "");
            requests.insert(gpu.resource_key.clone(), count.clone().into());
            limits.insert(gpu.resource_key.clone(), count.into());
            tolerations.push(json!({
                "key": gpu.resource_key, "operator": "Exists", "effect": "NoSchedule",
            }));
            let terms: Vec<Value> = gpu
                .labels
                .iter()
                .map(|(key, values)| {
                    json!({"matchExpressions": [{"key": key, "operator": "In", "values": values}]})
                })
                .collect();
            affinity.insert(
                "nodeAffinity".into(),
                json!({"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}),
            );
            affinity.insert(
                "podAffinity".into(),
                json!({"preferredDuringSchedulingIgnoredDuringExecution": [{
                    "weight": 100,
                    "podAffinityTerm": {
                        "labelSelector": {"matchLabels": {"skypilot-binpack": "gpu"}},
                        "topologyKey": "kubernetes.io/hostname",
                    },
                }]}),
            );
        }
        None => {
            // Keeps GPU nodes free for the pods that need them.
            let expressions: Vec<Value> = GPU_LABEL_KEYS
                .iter()
                .map(|key| json!({"key": key, "operator": "DoesNotExist"}))
                .collect();
            affinity.insert(
                "nodeAffinity".into(),
                json!({"preferredDuringSchedulingIgnoredDuringExecution": [{
                    "weight": 1, "preference": {"matchExpressions": expressions},
                }]}),
            );
        }
    }
    if plan.num_nodes > 1 {
        affinity.insert(
            "podAntiAffinity".into(),
            json!({"preferredDuringSchedulingIgnoredDuringExecution": [{
                "weight": 100,
                "podAffinityTerm": {
                    "labelSelector": {"matchExpressions": [{
                        "key": "skypilot-cluster-name", "operator": "In", "values": [names.on_cloud],
                    }]},
                    "topologyKey": "kubernetes.io/hostname",
                },
            }]}),
        );
    }
    let mut env = vec![
        json!({"name": "SKYPILOT_POD_NODE_TYPE", "value": if head { "head" } else { "worker" }}),
        json!({"name": "MY_POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}),
        json!({"name": "SKYPILOT_POD_CPU_CORE_LIMIT", "valueFrom": {"resourceFieldRef": {
            "containerName": CONTAINER, "resource": "requests.cpu"}}}),
        json!({"name": "SKYPILOT_POD_MEMORY_BYTES_LIMIT", "valueFrom": {"resourceFieldRef": {
            "containerName": CONTAINER, "resource": "requests.memory"}}}),
    ];
    if plan.gpu.is_none() {
        env.push(json!({"name": "NVIDIA_VISIBLE_DEVICES", "value": "none"}));
    }
    let mut resources = json!({"requests": requests});
    if !limits.is_empty() {
        resources["limits"] = Value::Object(limits);
    }
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            "restartPolicy": "Never",
            "serviceAccountName": service_account(plan.settings),
            "automountServiceAccountToken": true,
            "affinity": affinity,
            "tolerations": tolerations,
            "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory"}}],
            "containers": [{
                "name": CONTAINER,
                "image": image_of(plan.request),
                "imagePullPolicy": "IfNotPresent",
                "command": keep_alive_command(),
                "env": env,
                "ports": [{"name": "skydeck-node", "containerPort": NODE_PORT, "protocol": "TCP"}],
                "resources": resources,
                "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
            }],
        },
    });
    if let Some(config) = &plan.settings.pod_config {
        merge_pod_config(&mut pod, config);
    }
    if let Some(metadata) = custom_metadata(plan.settings) {
        merge_pod_config(&mut pod, &json!({ "metadata": metadata }));
    }
    // The admin's config may not rename the pod or make it restart: the
    // cluster is found by its pods' names, and a restarted pod has lost
    // the agent copied into it.
    pod["metadata"]["name"] = Value::String(names.pod(plan.rank));
    pod["spec"]["restartPolicy"] = "Never".into();
    pod
}

/// `custom_metadata`'s labels and annotations (never its name or
/// namespace, which SkyPilot's schema refuses too).
pub fn custom_metadata(settings: &KubeSettings) -> Option<Value> {
    let metadata = settings.custom_metadata.as_ref()?.as_object()?;
    let kept: Map<String, Value> = metadata
        .iter()
        .filter(|(key, _)| matches!(key.as_str(), "labels" | "annotations"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (!kept.is_empty()).then_some(Value::Object(kept))
}

/// SkyPilot's merge of `pod_config` into its template
/// (`combine_pod_config_fields`): objects merge key by key, lists are
/// appended to, except `containers`, whose first entry merges into the
/// node's container; any other value replaces.
pub fn merge_pod_config(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(key) {
                    Some(existing) if key == "containers" => merge_containers(existing, value),
                    Some(existing) => merge_pod_config(existing, value),
                    None => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (Value::Array(base), Value::Array(overlay)) => base.extend(overlay.iter().cloned()),
        (base, overlay) => *base = overlay.clone(),
    }
}

fn merge_containers(base: &mut Value, overlay: &Value) {
    let (Value::Array(base), Value::Array(overlay)) = (base, overlay) else {
        return;
    };
    for (index, container) in overlay.iter().enumerate() {
        match base.get_mut(index) {
            Some(existing) => merge_pod_config(existing, container),
            None => base.push(container.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn names() -> ClusterNames {
        ClusterNames::new(
            &crate::ClusterName::new("My_Cluster.dev").unwrap(),
            "fcd1e5cf0000",
        )
    }

    fn plan<'a>(
        names: &'a ClusterNames,
        request: &'a NodeRequest,
        settings: &'a KubeSettings,
        gpu: Option<&'a GpuPlacement>,
        rank: usize,
    ) -> Value {
        pod_manifest(&PodPlan {
            names,
            rank,
            num_nodes: 2,
            request,
            settings,
            gpu,
        })
    }

    #[test]
    fn a_cpu_pod_carries_skypilots_labels_requests_and_shm() {
        let names = names();
        let request = NodeRequest {
            cpus: Some(0.5),
            memory_gb: Some(1.5),
            image: Some("docker:localhost/debian:bookworm".into()),
            ..NodeRequest::default()
        };
        let settings = KubeSettings::default();
        let pod = plan(&names, &request, &settings, None, 0);
        assert_eq!(pod["metadata"]["name"], "my-cluster-dev-fcd1e5cf-head");
        let labels = &pod["metadata"]["labels"];
        for (key, value) in [
            ("parent", "skypilot"),
            ("skypilot-cluster", "my-cluster-dev-fcd1e5cf"),
            ("skypilot-cluster-name", "my-cluster-dev-fcd1e5cf"),
            ("ray-cluster-name", "my-cluster-dev-fcd1e5cf"),
            ("ray-node-type", "head"),
            ("skypilot-head-node", "1"),
            ("component", "my-cluster-dev-fcd1e5cf-head"),
            ("skypilot-user", "fcd1e5cf0000"),
        ] {
            assert_eq!(labels[key], value, "{key}");
        }
        assert!(labels.get("skypilot-binpack").is_none());
        assert_eq!(
            pod["metadata"]["annotations"]["skypilot-cluster-name"],
            "My_Cluster.dev"
        );
        let spec = &pod["spec"];
        assert_eq!(spec["restartPolicy"], "Never");
        assert_eq!(spec["serviceAccountName"], DEFAULT_SERVICE_ACCOUNT);
        let container = &spec["containers"][0];
        assert_eq!(container["name"], CONTAINER);
        assert_eq!(container["image"], "localhost/debian:bookworm");
        assert_eq!(
            container["resources"],
            json!({"requests": {"cpu": "0.5", "memory": "1.5G"}})
        );
        assert_eq!(
            spec["volumes"][0],
            json!({"name": "dshm", "emptyDir": {"medium": "Memory"}})
        );
        assert_eq!(container["volumeMounts"][0]["mountPath"], "/dev/shm");
        // CPU pods stay off GPU nodes when they can; two nodes spread.
        let preferred =
            &spec["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0];
        assert_eq!(
            preferred["preference"]["matchExpressions"][0]["operator"],
            "DoesNotExist"
        );
        assert!(spec["affinity"]["podAntiAffinity"].is_object());
        assert!(
            container["env"]
                .as_array()
                .unwrap()
                .contains(&json!({"name": "NVIDIA_VISIBLE_DEVICES", "value": "none"}))
        );
        let worker = plan(&names, &request, &settings, None, 1);
        assert_eq!(
            worker["metadata"]["name"],
            "my-cluster-dev-fcd1e5cf-worker1"
        );
        assert_eq!(worker["metadata"]["labels"]["ray-node-type"], "worker");
        assert_eq!(worker["metadata"]["labels"]["skypilot-head-node"], "0");
    }

    #[test]
    fn gpus_are_requested_and_limited_with_affinity_and_toleration() {
        let names = names();
        let request = NodeRequest {
            accelerators: BTreeMap::from([("H100".to_owned(), 2.0)]),
            ..NodeRequest::default()
        };
        let settings = KubeSettings::default();
        let nodes = [(
            "nvidia.com/gpu.product".to_owned(),
            "NVIDIA-H100-80GB-HBM3".to_owned(),
        )];
        let gpu = GpuPlacement::for_model("H100", 2.0, &nodes);
        let pod = plan(&names, &request, &settings, Some(&gpu), 0);
        let resources = &pod["spec"]["containers"][0]["resources"];
        assert_eq!(resources["requests"]["nvidia.com/gpu"], "2");
        assert_eq!(resources["limits"], json!({"nvidia.com/gpu": "2"}));
        // SkyPilot's default size for two GPUs.
        assert_eq!(resources["requests"]["cpu"], "8");
        assert_eq!(resources["requests"]["memory"], "32G");
        assert_eq!(
            pod["spec"]["tolerations"][0],
            json!({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"})
        );
        let terms = pod["spec"]["affinity"]["nodeAffinity"]
            ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            .as_array()
            .unwrap()
            .clone();
        assert!(terms.contains(&json!({"matchExpressions": [{
            "key": "skypilot.co/accelerator", "operator": "In", "values": ["h100"]}]})));
        assert!(terms.contains(&json!({"matchExpressions": [{
            "key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-H100-80GB-HBM3"]}]})));
        assert_eq!(pod["metadata"]["labels"]["skypilot-binpack"], "gpu");
        assert!(
            pod["spec"]["containers"][0]["env"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["name"] != "NVIDIA_VISIBLE_DEVICES")
        );
        assert_eq!(
            GpuPlacement::for_model("MI300", 1.0, &[]).resource_key,
            "amd.com/gpu"
        );
    }

    #[test]
    fn gpu_labels_match_the_model_and_its_longer_variants_only() {
        assert!(label_means("skypilot.co/accelerator", "h100", "H100"));
        assert!(label_means(
            "cloud.google.com/gke-accelerator",
            "nvidia-tesla-a100",
            "A100"
        ));
        assert!(label_means(
            "nvidia.com/gpu.product",
            "NVIDIA-H200-SXM-141GB",
            "H200"
        ));
        assert!(label_means(
            "nvidia.com/gpu.product",
            "NVIDIA-GeForce-RTX-4090",
            "RTX4090"
        ));
        assert!(!label_means("skypilot.co/accelerator", "h1000", "H100"));
        assert!(!label_means("skypilot.co/accelerator", "a100", "H100"));
    }

    #[test]
    fn pod_config_and_custom_metadata_merge_as_skypilot_merges_them() {
        let names = names();
        let request = NodeRequest::default();
        let settings = KubeSettings {
            pod_config: Some(json!({
                "metadata": {"name": "renamed", "labels": {"team": "ml"}},
                "spec": {
                    "restartPolicy": "Always",
                    "imagePullSecrets": [{"name": "regcred"}],
                    "tolerations": [{"key": "dedicated", "operator": "Exists"}],
                    "containers": [{
                        "imagePullPolicy": "Never",
                        "env": [{"name": "A", "value": "1"}],
                    }],
                },
            })),
            custom_metadata: Some(json!({
                "name": "no", "labels": {"cost": "42"}, "annotations": {"owner": "x"},
            })),
            remote_identity: RemoteIdentity::Named("runner".into()),
            ..KubeSettings::default()
        };
        let pod = plan(&names, &request, &settings, None, 0);
        assert_eq!(pod["metadata"]["name"], "my-cluster-dev-fcd1e5cf-head");
        assert_eq!(pod["metadata"]["labels"]["team"], "ml");
        assert_eq!(pod["metadata"]["labels"]["cost"], "42");
        assert_eq!(pod["metadata"]["labels"]["parent"], "skypilot");
        assert_eq!(pod["metadata"]["annotations"]["owner"], "x");
        let spec = &pod["spec"];
        assert_eq!(spec["restartPolicy"], "Never");
        assert_eq!(spec["serviceAccountName"], "runner");
        assert_eq!(spec["imagePullSecrets"], json!([{"name": "regcred"}]));
        assert_eq!(spec["tolerations"][0]["key"], "dedicated");
        let container = &spec["containers"][0];
        assert_eq!(spec["containers"].as_array().unwrap().len(), 1);
        assert_eq!(container["imagePullPolicy"], "Never");
        assert_eq!(container["name"], CONTAINER);
        let env = container["env"].as_array().unwrap();
        assert!(env.contains(&json!({"name": "A", "value": "1"})));
        assert!(env.iter().any(|e| e["name"] == "MY_POD_IP"));
        // The manifest is a valid core/v1 Pod.
        let typed: k8s_openapi::api::core::v1::Pod = serde_json::from_value(pod).unwrap();
        assert_eq!(typed.spec.unwrap().containers[0].name, CONTAINER);
    }

    #[test]
    fn quantities_are_plain_numbers() {
        assert_eq!(quantity(2.0, ""), "2");
        assert_eq!(quantity(0.25, ""), "0.25");
        assert_eq!(quantity(1.5, "G"), "1.5G");
    }
}
