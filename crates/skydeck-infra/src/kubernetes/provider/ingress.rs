//! `kubernetes.ports: ingress`, in SkyPilot's shapes
//! (`sky/provision/kubernetes/network.py`, `kubernetes-ingress.yml.j2`):
//! one ClusterIP Service per port on the head pod and one Ingress of class
//! `nginx` routing `/skypilot/<namespace>/<name on cloud>/<port>` to it.
//! The address users reach comes from the ingress-nginx controller's own
//! Service, as SkyPilot reads it.

use super::names::ClusterNames;
use super::{KubeProvider, is_status};
use crate::{Handle, InfraError, Result};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The ingress class SkyPilot requires.
pub const INGRESS_CLASS: &str = "nginx";
/// Where the ingress-nginx controller's Service lives (its chart's names).
pub const CONTROLLER_NAMESPACE: &str = "ingress-nginx";
pub const CONTROLLER_SERVICE: &str = "ingress-nginx-controller";
/// An address an admin pins on the controller's Service when Kubernetes
/// knows none (SkyPilot's annotation).
const EXTERNAL_IP_ANNOTATION: &str = "skypilot.co/external-ip";
/// Who owns the fields server-side apply writes.
const FIELD_MANAGER: &str = "skydeck";

/// SkyPilot's name of the Service in front of one port.
pub fn port_service_name(on_cloud: &str, port: u16) -> String {
    format!("{on_cloud}--skypilot-svc--{port}")
}

/// SkyPilot's name of a cluster's Ingress.
pub fn ingress_name(on_cloud: &str) -> String {
    format!("{on_cloud}-skypilot-ingress")
}

/// The path of one port under the controller's address.
pub fn port_path(namespace: &str, on_cloud: &str, port: u16) -> String {
    format!("/skypilot/{namespace}/{on_cloud}/{port}")
}

/// The Service that puts `port` of the head pod behind a stable name.
pub fn port_service_manifest(names: &ClusterNames, port: u16) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": port_service_name(&names.on_cloud, port),
            "labels": super::ports::cluster_labels(names),
        },
        "spec": {
            "type": "ClusterIP",
            "selector": {"component": names.pod(0)},
            "ports": [{"port": port, "targetPort": port, "protocol": "TCP", "name": format!("port{port}")}],
        },
    })
}

/// The Ingress that routes each port's path to its Service; nginx strips
/// the prefix (`rewrite-target: /$2`), so the task's server sees `/...`.
pub fn ingress_manifest(names: &ClusterNames, namespace: &str, ports: &[u16]) -> Value {
    let paths: Vec<Value> = ports
        .iter()
        .map(|&port| {
            json!({
                "path": format!("{}(/|$)(.*)", port_path(namespace, &names.on_cloud, port)),
                "pathType": "ImplementationSpecific",
                "backend": {"service": {
                    "name": port_service_name(&names.on_cloud, port),
                    "port": {"number": port},
                }},
            })
        })
        .collect();
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": ingress_name(&names.on_cloud),
            "labels": super::ports::cluster_labels(names),
            "annotations": {
                "nginx.ingress.kubernetes.io/use-regex": "true",
                "nginx.ingress.kubernetes.io/rewrite-target": "/$2",
            },
        },
        "spec": {
            "ingressClassName": INGRESS_CLASS,
            "rules": [{"http": {"paths": paths}}],
        },
    })
}

/// The base URL (`http://host[:port]`) users reach the controller at,
/// read off its Service as SkyPilot does: a load balancer's address, an
/// external IP, the admin's annotation, or else `localhost` and the
/// NodePort of its `http` port.
pub fn controller_base_url(service: &Service) -> Option<String> {
    let spec = service.spec.as_ref();
    let load_balancer = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .and_then(|ingress| ingress.first())
        .and_then(|i| i.ip.clone().or_else(|| i.hostname.clone()));
    let external = spec
        .and_then(|s| s.external_ips.as_ref())
        .and_then(|ips| ips.first().cloned());
    let annotated = service
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(EXTERNAL_IP_ANNOTATION).cloned());
    if let Some(host) = load_balancer.or(external).or(annotated) {
        return Some(format!("http://{host}"));
    }
    let node_port = spec
        .and_then(|s| s.ports.as_ref())
        .and_then(|ports| ports.iter().find(|p| p.name.as_deref() == Some("http")))
        .and_then(|p| p.node_port)?;
    Some(format!("http://localhost:{node_port}"))
}

impl KubeProvider {
    fn ingresses(&self) -> Api<Ingress> {
        Api::namespaced(self.target.client.clone(), &self.target.namespace)
    }

    /// Makes the port Services and the Ingress (server-side apply: a
    /// relaunch updates them), after removing port Services of ports the
    /// task no longer asks for.
    pub(super) async fn open_ingress(&self, names: &ClusterNames, ports: &[u16]) -> Result<()> {
        let classes: Api<IngressClass> = Api::all(self.target.client.clone());
        let class = classes
            .get_opt(INGRESS_CLASS)
            .await
            .map_err(|err| self.context_error("cannot read ingress classes", &err))?;
        if class.is_none() {
            return Err(InfraError::Unsatisfiable(format!(
                "kubernetes.ports is `ingress`, but Kubernetes context {} has no IngressClass \
                 `{INGRESS_CLASS}`: install the ingress-nginx controller there (its Service \
                 {CONTROLLER_NAMESPACE}/{CONTROLLER_SERVICE} gives the address), or set \
                 kubernetes.ports to `loadbalancer` or `podip`",
                self.target.context
            )));
        }
        let services = self.services();
        let prefix = format!("{}--skypilot-svc--", names.on_cloud);
        let wanted: Vec<String> = ports
            .iter()
            .map(|&p| port_service_name(&names.on_cloud, p))
            .collect();
        let made = services
            .list(
                &ListParams::default().labels(&format!("skypilot-cluster-name={}", names.on_cloud)),
            )
            .await
            .map_err(|err| self.context_error("cannot list services", &err))?;
        let stale: Vec<String> = made
            .items
            .into_iter()
            .filter_map(|s| s.metadata.name)
            .filter(|name| name.starts_with(&prefix) && !wanted.contains(name))
            .collect();
        for name in &stale {
            self.delete_quietly(&services, name).await?;
        }
        for &port in ports {
            let manifest = self.with_custom_metadata(port_service_manifest(names, port));
            self.apply(
                &services,
                &port_service_name(&names.on_cloud, port),
                manifest,
            )
            .await?;
        }
        let manifest =
            self.with_custom_metadata(ingress_manifest(names, &self.target.namespace, ports));
        self.apply(&self.ingresses(), &ingress_name(&names.on_cloud), manifest)
            .await
    }

    /// Deletes the cluster's Ingress by name (its port Services go with
    /// the cluster's labelled services). A refusal is ignored when the
    /// context is not in ingress mode, whose credentials need no ingress
    /// rights: it could not have made one under them.
    pub(super) async fn close_ingress(&self, on_cloud: &str) -> Result<()> {
        let name = ingress_name(on_cloud);
        match self
            .ingresses()
            .delete(&name, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if is_status(&err, 404) => Ok(()),
            Err(err)
                if is_status(&err, 403)
                    && self.target.settings.ports != crate::kubernetes::PortMode::Ingress =>
            {
                Ok(())
            }
            Err(err) => Err(self.context_error(&format!("cannot delete ingress {name}"), &err)),
        }
    }

    /// Each port's URL under the ingress controller's address.
    pub(super) async fn ingress_endpoints(&self, handle: &Handle) -> Result<BTreeMap<u16, String>> {
        let on_cloud = Self::on_cloud_of(handle)?;
        let controllers: Api<Service> =
            Api::namespaced(self.target.client.clone(), CONTROLLER_NAMESPACE);
        let controller = controllers
            .get_opt(CONTROLLER_SERVICE)
            .await
            .map_err(|err| {
                self.context_error(
                    &format!("cannot read service {CONTROLLER_NAMESPACE}/{CONTROLLER_SERVICE}"),
                    &err,
                )
            })?;
        let Some(controller) = controller else {
            return Err(InfraError::Command(format!(
                "Kubernetes context {} has no ingress controller service \
                 {CONTROLLER_NAMESPACE}/{CONTROLLER_SERVICE}, which kubernetes.ports `ingress` \
                 reaches the cluster's ports through: install ingress-nginx there",
                self.target.context
            )));
        };
        let Some(base) = controller_base_url(&controller) else {
            return Err(InfraError::Command(format!(
                "the ingress controller's service {CONTROLLER_NAMESPACE}/{CONTROLLER_SERVICE} \
                 has no address yet (no load balancer address, external IP, \
                 {EXTERNAL_IP_ANNOTATION} annotation or `http` node port)"
            )));
        };
        Ok(handle
            .ports
            .iter()
            .map(|&port| {
                let path = port_path(&self.target.namespace, on_cloud, port);
                (port, format!("{base}{path}"))
            })
            .collect())
    }

    /// Creates or updates `name` to `manifest`.
    async fn apply<K>(&self, api: &Api<K>, name: &str, manifest: Value) -> Result<()>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        api.patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&manifest),
        )
        .await
        .map(drop)
        .map_err(|err| self.context_error(&format!("cannot create or update {name}"), &err))
    }

    async fn delete_quietly(&self, api: &Api<Service>, name: &str) -> Result<()> {
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(err) if is_status(&err, 404) => Ok(()),
            Err(err) => Err(self.context_error(&format!("cannot delete service {name}"), &err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClusterName;

    fn names() -> ClusterNames {
        ClusterNames::new(&ClusterName::new("web").unwrap(), "abcdef12345")
    }

    #[test]
    fn each_port_gets_skypilots_service_and_path() {
        let service = port_service_manifest(&names(), 8080);
        assert_eq!(
            service["metadata"]["name"],
            "web-abcdef12--skypilot-svc--8080"
        );
        assert_eq!(service["spec"]["type"], "ClusterIP");
        assert_eq!(
            service["spec"]["selector"]["component"],
            "web-abcdef12-head"
        );
        assert_eq!(
            service["metadata"]["labels"]["skypilot-cluster-name"],
            "web-abcdef12"
        );

        let ingress = ingress_manifest(&names(), "team", &[8080, 9000]);
        assert_eq!(ingress["metadata"]["name"], "web-abcdef12-skypilot-ingress");
        assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
        let second = &ingress["spec"]["rules"][0]["http"]["paths"][1];
        assert_eq!(second["path"], "/skypilot/team/web-abcdef12/9000(/|$)(.*)");
        assert_eq!(
            second["backend"]["service"]["name"],
            "web-abcdef12--skypilot-svc--9000"
        );
        assert_eq!(second["backend"]["service"]["port"]["number"], 9000);
        assert_eq!(
            ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/rewrite-target"],
            "/$2"
        );
        // The manifests are what the API types accept.
        serde_json::from_value::<Ingress>(ingress).unwrap();
        serde_json::from_value::<Service>(service).unwrap();
    }

    fn controller(value: Value) -> Service {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_controllers_address_is_read_in_skypilots_order() {
        let node_ports = json!({"spec": {"ports": [
            {"name": "https", "port": 443, "nodePort": 31443},
            {"name": "http", "port": 80, "nodePort": 31080},
        ]}});
        assert_eq!(
            controller_base_url(&controller(node_ports.clone())).as_deref(),
            Some("http://localhost:31080")
        );
        let mut annotated = node_ports.clone();
        annotated["metadata"] = json!({"annotations": {"skypilot.co/external-ip": "10.1.2.3"}});
        assert_eq!(
            controller_base_url(&controller(annotated.clone())).as_deref(),
            Some("http://10.1.2.3")
        );
        let mut balanced = annotated;
        balanced["status"] = json!({"loadBalancer": {"ingress": [{"hostname": "lb.test"}]}});
        assert_eq!(
            controller_base_url(&controller(balanced)).as_deref(),
            Some("http://lb.test")
        );
        assert_eq!(controller_base_url(&controller(json!({}))), None);
    }
}
