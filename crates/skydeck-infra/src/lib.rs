//! Skydeck's infrastructure layer: how clusters come to exist and how the
//! server reaches their nodes.
//!
//! A [`Provider`] makes, queries, stops and removes clusters of one kind of
//! infrastructure; a [`CommandRunner`] runs commands on one node. The server
//! drives every backend through these two traits, and talks to a cluster's
//! agent with [`AgentClient`], which only needs a runner for the head node.

mod agent_client;
pub mod kubernetes;
pub mod local;
mod machine;
pub mod placement;
mod runner;
pub mod session;
pub mod ssh;

pub use agent_client::{AgentClient, LogFollow};
pub use machine::{Machine, NodeRequest};
pub use runner::{CommandOutput, CommandRunner, LocalRunner, READER_GONE, STREAM_CHUNK};
/// The agent's description of its cluster is the handle's too: one
/// definition of what a node is, on both sides of `cluster.json`.
pub use skydeck_agent::cluster::{Capacity, ClusterInfo, NodeInfo};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
pub use skydeck_types::names::ClusterName;
use std::sync::Arc;

/// What to provision.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSpec {
    pub name: ClusterName,
    pub num_nodes: u32,
    /// The launching user's hash, for names and the agent's records.
    pub user_hash: String,
    /// What every node must have.
    pub node: NodeRequest,
    /// Where placement put each node, by rank; empty where the
    /// infrastructure places clusters itself (see [`Provider::placement`]).
    pub allocations: Vec<placement::Allocation>,
}

/// The hosts Skydeck places an infrastructure's clusters on itself, as
/// they are now.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacementPool {
    /// The pool's name, as the store records its hosts.
    pub pool: String,
    pub hosts: Vec<placement::Host>,
    /// What to say when the hosts lack a GPU model or count altogether.
    pub gpu_hint: String,
}

/// A provisioned cluster: everything needed to reach it again. Stored by the
/// server as JSON and handed back to the provider on every later call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handle {
    /// Parsed again whenever a handle is read back, so a stored handle
    /// with a name that is a path does not decode.
    pub cluster_name: ClusterName,
    /// The cluster's directory on the head node (the agent's home).
    pub cluster_dir: String,
    pub nodes: Vec<NodeInfo>,
    /// What each node offers.
    pub capacity: Capacity,
    /// Ports the task asked to expose, reachable at the head node's IP.
    #[serde(default)]
    pub ports: Vec<u16>,
    /// What each node asked for when launched: what a stopped cluster
    /// (which holds nothing) is placed with again when it starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<NodeRequest>,
    /// The placement host of each node, by rank (`ssh/<pool>/<host>`):
    /// how a provider that reaches nodes over the network finds them
    /// again. Empty for `local`, whose nodes are all on this machine.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

/// What a provider sees of a cluster now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterState {
    /// Nodes exist and the agent runs.
    Running,
    /// Nodes exist and nothing runs on them.
    Stopped,
    /// The nodes run but the agent does not (it crashed or was killed):
    /// `start` brings it back, and it settles the jobs it lost.
    AgentDown,
    /// The agent stopped the cluster itself (autostop); `down` asks for it
    /// to be torn down.
    AutoStopped { down: bool },
    /// Nothing is left.
    Gone,
}

#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    /// The request cannot be met by this infrastructure at all; retrying
    /// will not help. The message says what to change.
    #[error("{0}")]
    Unsatisfiable(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A command on a node failed.
    #[error("{0}")]
    Command(String),
    /// What was asked would act outside the provider's own territory (a
    /// handle whose directory is not its cluster's, a symbolic link where a
    /// cluster directory should be); nothing was done.
    #[error("{0}")]
    Refused(String),
}

impl InfraError {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}

pub type Result<T, E = InfraError> = std::result::Result<T, E>;

/// One kind of infrastructure.
#[async_trait]
pub trait Provider: Send + Sync {
    /// The name users type (`--infra local`).
    fn name(&self) -> &'static str;
    /// `Ok(detail)` when usable here, `Err(reason)` saying what to do.
    fn check(&self) -> std::result::Result<String, String>;
    /// Makes the cluster exist with its agent running, or finishes making
    /// it: calling it again on a half-made cluster continues.
    async fn provision(&self, spec: &ClusterSpec) -> Result<Handle>;
    /// Refuses, before anything is made, a cluster this infrastructure
    /// can never host (more nodes than it allows), saying what to change;
    /// no retry lifts it. `provision` checks it too.
    fn admits(&self, spec: &ClusterSpec) -> Result<()>;
    /// Refuses, before anything is made, a file mount destination this
    /// infrastructure cannot place where the task says (never elsewhere).
    fn admits_file_mount(&self, _target: &skydeck_types::task::MountTarget) -> Result<()> {
        Ok(())
    }
    async fn query(&self, handle: &Handle) -> Result<ClusterState>;
    /// Stops everything running on the cluster; its nodes and files stay.
    async fn stop(&self, handle: &Handle) -> Result<()>;
    /// Brings a stopped cluster back (its agent running again).
    async fn start(&self, handle: &Handle) -> Result<()>;
    /// Removes the cluster and everything on it. Idempotent.
    async fn terminate(&self, handle: &Handle) -> Result<()>;
    /// Removes what a provisioning that never returned its handle (the
    /// server died) may have left of cluster `name`. Idempotent.
    async fn terminate_unrecorded(&self, name: &ClusterName) -> Result<()>;
    /// How to run commands on the head node, where the agent lives.
    fn head_runner(&self, handle: &Handle) -> Arc<dyn CommandRunner>;
    /// Copies a local directory (or file) to `remote` on every node.
    async fn sync_up(&self, handle: &Handle, local: &std::path::Path, remote: &str) -> Result<()>;
    /// The hosts Skydeck places this infrastructure's clusters on itself
    /// (this machine, SSH node pools), probed now; `None` where another
    /// scheduler places them (Kubernetes, Slurm, clouds).
    fn placement(&self) -> Option<PlacementPool> {
        None
    }
}
