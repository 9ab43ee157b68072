//! `kubernetes.ports`: how a task's `resources.ports` are exposed, in
//! SkyPilot's shapes (`sky/provision/kubernetes/network.py`).
//!
//! - `podip`: nothing is made; the endpoints are the head pod's IP, which
//!   only hosts with a route into the pod network reach.
//! - `loadbalancer` (the default): one Service `<noc>--skypilot-lb` of
//!   type LoadBalancer; the endpoint is its ingress address once a
//!   load-balancer controller gave it one.
//! - `ingress`: a Service per port and an nginx Ingress
//!   ([`super::ingress`]); the endpoints are URLs under the ingress
//!   controller's address.

use super::{KubeProvider, is_status};
use crate::kubernetes::PortMode;
use crate::{ClusterSpec, Handle, InfraError, Result};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, PostParams};
use std::collections::BTreeMap;

use super::names::{ClusterNames, SKYDECK_CLUSTER_LABEL};

/// SkyPilot's name of a cluster's load-balancer service.
pub fn load_balancer_name(on_cloud: &str) -> String {
    format!("{on_cloud}--skypilot-lb")
}

/// The labels of everything a cluster makes: SkyPilot's, which `down`
/// selects by, and Skydeck's own.
pub fn cluster_labels(names: &ClusterNames) -> serde_json::Value {
    serde_json::json!({
        "parent": "skypilot",
        "skypilot-cluster-name": names.on_cloud,
        SKYDECK_CLUSTER_LABEL: names.display_label,
    })
}

/// The Service of mode `loadbalancer`: SkyPilot's template
/// (`kubernetes-loadbalancer.yml.j2`), selecting the head pod, whose
/// address every mode reports, and labelled with the cluster so `down`
/// removes it with the pods.
pub fn load_balancer_manifest(names: &ClusterNames, ports: &[u16]) -> serde_json::Value {
    let ports: Vec<serde_json::Value> = ports
        .iter()
        .map(|port| {
            serde_json::json!({
                "port": port, "targetPort": port, "protocol": "TCP", "name": format!("port{port}"),
            })
        })
        .collect();
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": load_balancer_name(&names.on_cloud),
            "labels": cluster_labels(names),
            "annotations": {"service.beta.kubernetes.io/coreweave-load-balancer-type": "public"},
        },
        "spec": {
            "type": "LoadBalancer",
            "selector": {"component": names.pod(0)},
            "ports": ports,
        },
    })
}

impl KubeProvider {
    pub(super) fn services(&self) -> Api<Service> {
        Api::namespaced(self.target.client.clone(), &self.target.namespace)
    }

    /// `kubernetes.custom_metadata` merged into a manifest, as SkyPilot
    /// merges it into everything it makes.
    pub(super) fn with_custom_metadata(
        &self,
        mut manifest: serde_json::Value,
    ) -> serde_json::Value {
        if let Some(meta) = super::pod_spec::custom_metadata(&self.target.settings) {
            super::pod_spec::merge_pod_config(
                &mut manifest,
                &serde_json::json!({"metadata": meta}),
            );
        }
        manifest
    }

    /// Makes what the mode needs for the task's ports (a relaunch
    /// replaces them, so a changed port list takes effect).
    pub(super) async fn open_ports(&self, spec: &ClusterSpec, names: &ClusterNames) -> Result<()> {
        let ports = &spec.node.ports;
        if ports.is_empty() {
            return Ok(());
        }
        match self.target.settings.ports {
            PortMode::PodIp => Ok(()),
            PortMode::Ingress => self.open_ingress(names, ports).await,
            PortMode::LoadBalancer => self.open_load_balancer(names, ports).await,
        }
    }

    async fn open_load_balancer(&self, names: &ClusterNames, ports: &[u16]) -> Result<()> {
        let manifest = self.with_custom_metadata(load_balancer_manifest(names, ports));
        let service: Service = serde_json::from_value(manifest).map_err(|err| {
            InfraError::Unsatisfiable(format!(
                "kubernetes.custom_metadata does not make a valid service: {err}"
            ))
        })?;
        let name = load_balancer_name(&names.on_cloud);
        let api = self.services();
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(err) if is_status(&err, 404) => {}
            Err(err) => {
                return Err(self.context_error(&format!("cannot replace service {name}"), &err));
            }
        }
        api.create(&PostParams::default(), &service)
            .await
            .map(drop)
            .map_err(|err| self.context_error(&format!("cannot create service {name}"), &err))
    }

    /// Deletes the load-balancer service and the ingress by name (they
    /// may have lost their labels); absent is fine.
    pub(super) async fn close_ports(&self, on_cloud: &str) -> Result<()> {
        self.close_ingress(on_cloud).await?;
        let name = load_balancer_name(on_cloud);
        match self
            .services()
            .delete(&name, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if is_status(&err, 404) => Ok(()),
            Err(err) => Err(self.context_error(&format!("cannot delete service {name}"), &err)),
        }
    }

    /// Each exposed port's address (`host:port`), as `sky status
    /// --endpoints` shows it; an error saying why when the mode has no
    /// address yet.
    pub async fn endpoints(&self, handle: &Handle) -> Result<BTreeMap<u16, String>> {
        let head_ip = handle
            .nodes
            .first()
            .map(|n| n.ip.clone())
            .unwrap_or_default();
        let host = match self.target.settings.ports {
            PortMode::PodIp => head_ip,
            PortMode::Ingress => return self.ingress_endpoints(handle).await,
            PortMode::LoadBalancer => {
                let on_cloud = Self::on_cloud_of(handle)?;
                let name = load_balancer_name(on_cloud);
                let service = self.services().get_opt(&name).await.map_err(|err| {
                    self.context_error(&format!("cannot read service {name}"), &err)
                })?;
                let Some(service) = service else {
                    return Err(InfraError::Command(format!(
                        "the load-balancer service {name} of cluster {} is missing in \
                         namespace {}; relaunch the cluster to make it again",
                        handle.cluster_name, self.target.namespace
                    )));
                };
                let address = service
                    .status
                    .and_then(|s| s.load_balancer)
                    .and_then(|lb| lb.ingress)
                    .and_then(|ingress| ingress.into_iter().next())
                    .and_then(|i| i.ip.or(i.hostname));
                match address {
                    Some(address) => address,
                    None => {
                        return Err(InfraError::Command(format!(
                            "the load-balancer service {name} (namespace {}) has no external \
                             address yet: it is pending until a load-balancer controller of \
                             Kubernetes context {} gives it one; if the cluster has none, set \
                             kubernetes.ports to `podip` (the head pod's IP {head_ip}, reachable \
                             from inside the Kubernetes network only)",
                            self.target.namespace, self.target.context
                        )));
                    }
                }
            }
        };
        Ok(handle
            .ports
            .iter()
            .map(|port| (*port, format!("{host}:{port}")))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClusterName;

    #[test]
    fn the_load_balancer_is_skypilots_service_on_the_head() {
        let name = ClusterName::new("web").unwrap();
        let names = ClusterNames::new(&name, "abcdef12345");
        let service = load_balancer_manifest(&names, &[8080, 9000]);
        assert_eq!(service["metadata"]["name"], "web-abcdef12--skypilot-lb");
        assert_eq!(service["metadata"]["labels"]["parent"], "skypilot");
        assert_eq!(
            service["metadata"]["labels"]["skypilot-cluster-name"],
            "web-abcdef12"
        );
        assert_eq!(service["spec"]["type"], "LoadBalancer");
        assert_eq!(
            service["spec"]["selector"]["component"],
            "web-abcdef12-head"
        );
        assert_eq!(service["spec"]["ports"][1]["name"], "port9000");
        assert_eq!(service["spec"]["ports"][1]["targetPort"], 9000);
    }
}
