//! The [`crate::Provider`] on one Kubernetes context: pods, exec, sync.
//!
//! A placeholder until the backend lands: it connects nothing and refuses
//! every launch, so the server's wiring can be built against its shape.

use super::KubeTarget;
use crate::{ClusterName, ClusterSpec, ClusterState, CommandRunner, Handle, InfraError, Result};
use async_trait::async_trait;
use std::sync::Arc;

/// Clusters as pods on one context.
pub struct KubeProvider {
    target: KubeTarget,
}

impl KubeProvider {
    pub fn new(target: KubeTarget) -> Self {
        Self { target }
    }

    /// The context this provider launches on.
    pub fn target(&self) -> &KubeTarget {
        &self.target
    }

    fn not_yet(&self) -> InfraError {
        InfraError::Unsatisfiable(format!(
            "Kubernetes context {} cannot host clusters yet",
            self.target.context
        ))
    }
}

#[async_trait]
impl crate::Provider for KubeProvider {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn check(&self) -> std::result::Result<String, String> {
        Err(self.not_yet().to_string())
    }

    async fn provision(&self, _spec: &ClusterSpec) -> Result<Handle> {
        Err(self.not_yet())
    }

    fn admits(&self, _spec: &ClusterSpec) -> Result<()> {
        Err(self.not_yet())
    }

    async fn query(&self, _handle: &Handle) -> Result<ClusterState> {
        Err(self.not_yet())
    }

    async fn stop(&self, _handle: &Handle) -> Result<()> {
        Err(self.not_yet())
    }

    async fn start(&self, _handle: &Handle) -> Result<()> {
        Err(self.not_yet())
    }

    async fn terminate(&self, _handle: &Handle) -> Result<()> {
        Err(self.not_yet())
    }

    async fn terminate_unrecorded(&self, _name: &ClusterName) -> Result<()> {
        Err(self.not_yet())
    }

    fn head_runner(&self, _handle: &Handle) -> Arc<dyn CommandRunner> {
        unimplemented!("no Kubernetes cluster can be launched yet")
    }

    async fn sync_up(
        &self,
        _handle: &Handle,
        _local: &std::path::Path,
        _remote: &str,
    ) -> Result<()> {
        Err(self.not_yet())
    }
}
