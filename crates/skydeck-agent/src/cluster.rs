//! `cluster.json`: what the provider tells the agent about its cluster.

use anyhow::{Context, ensure};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub name: String,
    pub num_nodes: usize,
    /// Ordered by rank: `nodes[k].rank == k`.
    pub nodes: Vec<NodeInfo>,
    /// What each node offers.
    pub capacity: Capacity,
    pub cloud: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default)]
    pub user_hash: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub rank: usize,
    pub ip: String,
    /// The node's sandbox root: HOME for job processes.
    pub dir: PathBuf,
    /// The GPU indices placement gave the node: its jobs'
    /// `CUDA_VISIBLE_DEVICES` (empty: no GPU). `None` where the node is a
    /// machine of its own, whose GPUs are all its jobs'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<Vec<u32>>,
    /// How the head's agent reaches this node over SSH; `None` where the
    /// node is on the head's own machine (every `local` node, and the head
    /// itself everywhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<NodeSsh>,
    /// How the head's agent reaches this node's agent over TCP (a
    /// Kubernetes pod: `node-serve` on the pod's IP); `None` elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<NodeTcp>,
}

/// A worker whose own agent listens (`skydeck agent node-serve`) for the
/// head's, which proves it knows the cluster's secret (a file on the head,
/// the same on the worker) before the worker runs anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeTcp {
    pub host: String,
    pub port: u16,
    /// The cluster's secret, on the head.
    pub secret_file: PathBuf,
}

/// A worker node as the head's agent reaches it: with the cluster's own
/// key pair (made by the server for this cluster, authorized on the
/// worker for the cluster's life), checked against the host keys the
/// server recorded for the pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSsh {
    /// The address the head connects to (the node's `ip` as the pool
    /// file names it may be a host name).
    pub host: String,
    pub port: u16,
    pub user: String,
    /// The cluster's private key, on the head.
    pub identity_file: PathBuf,
    /// A `known_hosts` file on the head holding the workers' host keys.
    pub known_hosts: PathBuf,
    /// The agent's binary on the node (installed content-addressed).
    pub agent: PathBuf,
}

impl NodeInfo {
    /// Whether the head's agent reaches this node over a link (SSH or
    /// TCP) rather than on its own machine.
    pub fn is_remote(&self) -> bool {
        self.ssh.is_some() || self.tcp.is_some()
    }

    /// Where a job's processes start, as SkyPilot's `~/sky_workdir`.
    pub fn workdir(&self) -> PathBuf {
        self.dir.join("sky_workdir")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    #[serde(default)]
    pub cpus: f64,
    #[serde(default)]
    pub memory_gb: f64,
    #[serde(default)]
    pub accelerators: BTreeMap<String, f64>,
}

impl ClusterInfo {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let info: Self = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid cluster description", path.display()))?;
        info.check()
            .with_context(|| format!("{} is inconsistent", path.display()))?;
        Ok(info)
    }

    fn check(&self) -> anyhow::Result<()> {
        ensure!(
            self.num_nodes == self.nodes.len() && self.num_nodes > 0,
            "num_nodes is {} but {} nodes are listed",
            self.num_nodes,
            self.nodes.len()
        );
        for (index, node) in self.nodes.iter().enumerate() {
            ensure!(
                node.rank == index,
                "node {index} has rank {}: nodes must be listed by rank from 0",
                node.rank
            );
            ensure!(
                node.dir.is_absolute(),
                "node {index}'s dir {} is not an absolute path",
                node.dir.display()
            );
        }
        Ok(())
    }
}
