//! Placement records: the hosts Skydeck places clusters on itself (this
//! machine as `local`, the hosts of SSH node pools) and what each cluster
//! node holds of them. Plain data; the fitting logic lives in
//! `skydeck_infra::placement` and the bookkeeping in the store.

use serde::{Deserialize, Serialize};

/// One GPU of a host, by the index CUDA numbers it with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gpu {
    pub index: u32,
    /// The model as users write it (`H100`).
    pub model: String,
}

/// A host and what it has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    /// Unique across pools: `local`, or `ssh/<pool>/<host>`.
    pub id: String,
    /// The pool the host belongs to (`local`, or an SSH node pool's name);
    /// a cluster is placed on the hosts of one pool.
    pub pool: String,
    pub cpus: f64,
    pub memory_gb: f64,
    pub gpus: Vec<Gpu>,
}

/// What one node of a cluster holds of one host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Allocation {
    pub cluster: String,
    pub node_rank: u32,
    pub host: String,
    pub cpus: f64,
    pub memory_gb: f64,
    /// GPU indices on the host, the node's `CUDA_VISIBLE_DEVICES`.
    pub gpus: Vec<u32>,
    /// Ports the node listens on (the head node's `resources.ports`).
    pub ports: Vec<u16>,
}
