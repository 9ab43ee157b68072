//! Kubernetes as infrastructure `kubernetes/<context>`: a cluster is one pod
//! per node, reached through the API server alone (exec, logs, port
//! forwarding), so the server needs no route to the pods.
//!
//! [`target`] says which context and how pods are made there;
//! [`connect`] turns a kubeconfig context (or the pod's own service account)
//! into a [`KubeTarget`]; [`check`] says whether a context is usable and
//! [`nodes`] what GPUs its nodes have; [`provider`] is the [`crate::Provider`] on one
//! target.

pub mod check;
pub mod connect;
pub mod nodes;
pub mod provider;
pub mod target;

pub use provider::KubeProvider;
pub use target::{KubeSettings, KubeTarget, PortMode, RemoteIdentity};
