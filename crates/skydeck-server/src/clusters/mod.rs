//! Clusters as the server manages them: which provider owns a cluster, how
//! to reach its agent, and what a task asks of it.

pub mod autostop;
pub mod health;
pub mod kube_contexts;
pub mod placement;
pub mod plan;
pub mod ssh_pools;

use crate::config::Paths;
use crate::downloads::Downloads;
use crate::secrets::SecretStash;
use skydeck_infra::local::LocalProvider;
use skydeck_infra::{AgentClient, Handle, Provider};
use skydeck_store::ClusterRecord;
use skydeck_types::RequestError;
use skydeck_types::names::{BlobId, UserId};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Overrides the program run as each cluster's agent (default: this
/// binary, `skydeck agent …`).
pub const ENV_AGENT_PROGRAM: &str = "SKYDECK_AGENT_PROGRAM";

/// The infrastructure the server can launch on.
pub struct Infra {
    local: Arc<LocalProvider>,
    /// SSH node pools, as `ssh/<pool>`.
    ssh: ssh_pools::SshPools,
    /// Kubernetes contexts, as `kubernetes/<context>`.
    kube: kube_contexts::KubeContexts,
    uploads: PathBuf,
    /// Task YAMLs as sent, while the database holds them redacted.
    pub secrets: SecretStash,
    /// Job logs prepared for clients to download.
    pub downloads: Downloads,
    /// What the last checks found wrong with each cluster.
    pub health: health::ClusterHealth,
    /// One lock per cluster name: launch, start, stop and down of one
    /// cluster run one at a time.
    locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The state directory (`$SKYDECK_HOME`): SSH node pools keep their
    /// file and per-pool SSH state under it (`crate::ssh_pools`).
    home: PathBuf,
    /// The program installed and run as each cluster's agent.
    agent_program: PathBuf,
}

impl Infra {
    /// The infrastructure under `paths`, with the limits the environment
    /// sets; an error names a setting that is not valid.
    pub fn new(paths: &Paths) -> anyhow::Result<Self> {
        let max_nodes = LocalProvider::max_nodes_from_env().map_err(anyhow::Error::msg)?;
        let program = std::env::var_os(ENV_AGENT_PROGRAM)
            .map(PathBuf::from)
            .or_else(|| std::env::current_exe().ok())
            .unwrap_or_else(|| PathBuf::from("skydeck"));
        Ok(Self {
            local: Arc::new(
                LocalProvider::new(paths.clusters(), program.clone()).with_max_nodes(max_nodes),
            ),
            ssh: ssh_pools::SshPools::new(paths.clone(), program.clone()),
            kube: kube_contexts::KubeContexts::from_env().with_program(program.clone()),
            home: paths.home.clone(),
            agent_program: program,
            uploads: paths.uploads(),
            secrets: SecretStash::new(paths.secrets()),
            downloads: Downloads::new(paths.downloads()),
            health: health::ClusterHealth::default(),
            locks: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// The server's state directory.
    pub fn home(&self) -> &std::path::Path {
        &self.home
    }

    /// The Kubernetes contexts this server reaches.
    pub fn kube(&self) -> &kube_contexts::KubeContexts {
        &self.kube
    }

    /// The program `ssh up` installs on a pool's hosts (this binary).
    pub fn agent_program(&self) -> &std::path::Path {
        &self.agent_program
    }

    /// The provider for an infrastructure kind, or an error naming the
    /// kinds there are.
    pub fn provider(&self, kind: &str) -> Result<Arc<dyn Provider>, RequestError> {
        match kind {
            "local" => Ok(self.local.clone()),
            other if other.starts_with("ssh/") => Ok(self.ssh.provider(&other[4..])?),
            other if other.starts_with(kube_contexts::PREFIX) => {
                Ok(self.kube.provider(&other[kube_contexts::PREFIX.len()..])?)
            }
            other => Err(RequestError::new(
                crate::skypilot::exception::VALUE_ERROR,
                format!(
                    "Infrastructure {other:?} is not enabled on this Skydeck server; the \
                     enabled infrastructure is: local, ssh/<pool> for each pool of \
                     ssh_node_pools.yaml, and kubernetes/<context> for each allowed context. \
                     Run `sky check` to see why."
                ),
            )),
        }
    }

    /// The agent of a cluster.
    pub fn agent(&self, cluster: &ClusterRecord) -> Result<AgentClient, RequestError> {
        let handle = handle_of(cluster)?;
        match cluster.infra.as_str() {
            "local" => Ok(self.local.agent(&handle)),
            other if other.starts_with("ssh/") => {
                Ok(self.ssh.provider(&other[4..])?.agent(&handle))
            }
            other if other.starts_with(kube_contexts::PREFIX) => Ok(self
                .kube
                .provider(&other[kube_contexts::PREFIX.len()..])?
                .agent(&handle)),
            other => Err(self
                .provider(other)
                .err()
                .expect("only local, ssh/<pool> and kubernetes/<context> exist")),
        }
    }

    /// The lock of cluster `name`.
    pub fn lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .expect("cluster locks")
            .entry(name.to_owned())
            .or_default()
            .clone()
    }

    /// Where `user`'s uploaded blob's files are (only theirs: see
    /// `crate::uploads`).
    pub fn upload_dir(&self, user: &UserId, blob_id: &BlobId) -> PathBuf {
        crate::uploads::blob_files(&self.uploads, user, blob_id)
    }

    pub fn uploads_root(&self) -> &std::path::Path {
        &self.uploads
    }
}

/// The provider handle stored with a cluster.
pub fn handle_of(cluster: &ClusterRecord) -> Result<Handle, RequestError> {
    let handle: Handle = serde_json::from_value(cluster.handle.clone()).map_err(|err| {
        RequestError::new(
            crate::skypilot::exception::RUNTIME_ERROR,
            format!(
                "Cluster {:?} has no usable handle ({err}); it may still be provisioning. \
                 Run `sky status --refresh`, or `sky down` it.",
                cluster.name
            ),
        )
    })?;
    // A handle is only ever used for the cluster it was made for.
    if handle.cluster_name != cluster.name.as_str() {
        return Err(RequestError::new(
            crate::skypilot::exception::RUNTIME_ERROR,
            format!(
                "Cluster {:?} has the handle of cluster {:?}; its record was changed outside \
                 Skydeck. Remove the record by hand.",
                cluster.name, handle.cluster_name
            ),
        ));
    }
    Ok(handle)
}

/// Says which stored clusters have a name that breaks today's rule (left by
/// an older version): nothing is done to them on the server's own account
/// (`reconcile` skips them), and no request can name them.
pub async fn warn_invalid_names(store: &dyn skydeck_store::Store) {
    let clusters = match store.list_clusters(None).await {
        Ok(clusters) => clusters,
        Err(err) => {
            tracing::warn!(error = %err, "cannot list clusters");
            return;
        }
    };
    for cluster in clusters {
        if let Err(err) = skydeck_types::names::ClusterName::new(cluster.name.as_str()) {
            tracing::warn!(
                cluster = %cluster.name,
                user = %cluster.user_id,
                "skipping a stored cluster whose name is invalid ({err}); it is left as it \
                 is: remove what it made by hand, then its row from the clusters table"
            );
        }
    }
}
