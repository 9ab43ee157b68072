//! One Kubernetes context as a place to make clusters: its client, its
//! namespace and the settings of `config.yaml`'s `kubernetes` section that
//! shape every pod made there.

use std::time::Duration;

/// The context the server runs in, when it runs in a pod.
pub const IN_CLUSTER: &str = "in-cluster";

/// A context to launch on, connected.
#[derive(Clone)]
pub struct KubeTarget {
    /// The context's name as users write it in `k8s/<context>`:
    /// [`IN_CLUSTER`] or a kubeconfig context.
    pub context: String,
    pub client: kube::Client,
    /// The namespace pods are made in.
    pub namespace: String,
    pub settings: KubeSettings,
}

/// `config.yaml`'s `kubernetes` settings for one context (after
/// `context_configs` is applied).
#[derive(Clone, Debug)]
pub struct KubeSettings {
    /// `pod_config`: merged into every pod this context makes.
    pub pod_config: Option<serde_json::Value>,
    /// `custom_metadata`: labels and annotations on everything made.
    pub custom_metadata: Option<serde_json::Value>,
    /// `provision_timeout`: how long a pod may stay unscheduled before the
    /// launch fails with the scheduler's reason; `None` waits forever (-1).
    /// SkyPilot's default: 10 s plus 0.2 s per extra node, at most 60 s.
    pub provision_timeout: Option<Duration>,
    pub remote_identity: RemoteIdentity,
    pub ports: PortMode,
}

impl Default for KubeSettings {
    fn default() -> Self {
        Self {
            pod_config: None,
            custom_metadata: None,
            provision_timeout: Some(Duration::from_secs(10)),
            remote_identity: RemoteIdentity::ServiceAccount,
            ports: PortMode::LoadBalancer,
        }
    }
}

/// `remote_identity`: the service account the pods run as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteIdentity {
    /// `SERVICE_ACCOUNT` (the default), `LOCAL_CREDENTIALS` and `NO_UPLOAD`
    /// all run pods as `skypilot-service-account`, made when missing.
    ServiceAccount,
    /// A service account named by the admin, used as is.
    Named(String),
}

/// `kubernetes.ports`: how a cluster's ports are exposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortMode {
    LoadBalancer,
    Ingress,
    PodIp,
}
