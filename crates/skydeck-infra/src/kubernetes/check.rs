//! Whether a context can host clusters: SkyPilot's test
//! (`utils.check_credentials`) of listing a pod in the namespace and the
//! nodes, with the reason in words when it cannot.

use super::target::KubeTarget;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};

/// `Ok(detail)` when the context answers and lets us list pods and nodes;
/// `Err(reason)` naming what failed (unreachable, forbidden, …).
pub async fn check(target: &KubeTarget) -> Result<String, String> {
    let pods: Api<Pod> = Api::namespaced(target.client.clone(), &target.namespace);
    pods.list(&ListParams::default().limit(1))
        .await
        .map_err(|err| {
            reason(
                &err,
                &format!("list pods in namespace {}", target.namespace),
            )
        })?;
    let nodes = Api::<Node>::all(target.client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|err| reason(&err, "list nodes"))?;
    Ok(format!(
        "namespace {}, {} node(s)",
        target.namespace,
        nodes.items.len()
    ))
}

/// A failed call in the words `sky check` prints.
pub fn reason(err: &kube::Error, what: &str) -> String {
    match err {
        kube::Error::Api(status) if status.code == 401 => {
            "Invalid credentials - do you have permission to access the cluster? (401 \
             Unauthorized)"
                .to_owned()
        }
        kube::Error::Api(status) if status.code == 403 => format!(
            "Forbidden: the credentials may not {what} ({}). Grant the permissions in \
             docs/kubernetes.md.",
            status.message
        ),
        kube::Error::Api(status) => format!("cannot {what}: {} ({})", status.message, status.code),
        other => format!("Kubernetes API unreachable: {other}"),
    }
}
