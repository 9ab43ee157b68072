//! Endpoints of a cluster on Kubernetes: where `kubernetes.ports` put
//! the task's ports (the head pod's IP, or the load balancer's address).

use super::RequestContext;
use crate::clusters::kube_contexts::PREFIX;
use crate::skypilot::exception;
use skydeck_infra::Handle;
use skydeck_store::ClusterRecord;
use skydeck_types::RequestError;
use std::collections::BTreeMap;

/// `None` for a cluster that is not on Kubernetes (its head's address
/// serves); else each port's address, or why there is none yet.
pub async fn endpoints(
    ctx: &RequestContext,
    cluster: &ClusterRecord,
    handle: &Handle,
) -> Result<Option<BTreeMap<u16, String>>, RequestError> {
    let Some(context) = cluster.infra.strip_prefix(PREFIX) else {
        return Ok(None);
    };
    let provider = ctx.infra.kube().provider(context)?;
    provider
        .endpoints(handle)
        .await
        .map(Some)
        .map_err(|err| RequestError::new(exception::VALUE_ERROR, err.to_string()))
}
