//! From a kubeconfig context, or the service account of the pod the server
//! runs in (context `in-cluster`), to a [`super::KubeTarget`].
//!
//! The kubeconfig is `KUBECONFIG` (several paths merged) or
//! `~/.kube/config`, read once per [`KubeSources`]; every context in it is
//! offered except SkyPilot's `ssh-*` ones (SSH node pools). The in-cluster
//! context exists when the pod's service-account token is mounted.

use super::target::{IN_CLUSTER, KubeSettings, KubeTarget};
use futures_util::FutureExt;
use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use std::path::{Path, PathBuf};

/// The token a pod's service account gets; its presence is SkyPilot's
/// test for "running in a pod" as well.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The namespace the chart gives in-cluster clusters (its Role is there).
pub const ENV_IN_CLUSTER_NAMESPACE: &str = "SKYDECK_IN_CLUSTER_NAMESPACE";

/// The namespace when neither the config nor the context names one.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Where the contexts come from: a kubeconfig (if any could be read) and
/// the pod's own service account (if mounted).
#[derive(Clone, Debug, Default)]
pub struct KubeSources {
    kubeconfig: Option<Kubeconfig>,
    /// Why the kubeconfig could not be read, when one was named and broken.
    kubeconfig_error: Option<String>,
    /// The service-account directory, when its token exists.
    service_account: Option<PathBuf>,
}

/// rustls needs a process-wide crypto provider before any client is made;
/// the server may already have installed the same one.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl KubeSources {
    /// What this process can reach: `KUBECONFIG` or `~/.kube/config`, and
    /// the mounted service account.
    pub fn from_env() -> Self {
        let explicit = std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty());
        let (kubeconfig, kubeconfig_error) = match Kubeconfig::read() {
            Ok(config) => (Some(config), None),
            // No kubeconfig at all is normal (a server in a pod); a broken
            // one that was asked for is worth saying.
            Err(err) if explicit => (None, Some(format!("cannot read KUBECONFIG: {err}"))),
            Err(_) => (None, None),
        };
        let service_account =
            Some(PathBuf::from(SERVICE_ACCOUNT_DIR)).filter(|dir| dir.join("token").is_file());
        Self {
            kubeconfig,
            kubeconfig_error,
            service_account,
        }
    }

    /// One kubeconfig file and no in-cluster context (tests, `--kubeconfig`).
    pub fn from_kubeconfig_file(path: &Path) -> Result<Self, String> {
        let kubeconfig = Kubeconfig::read_from(path)
            .map_err(|err| format!("cannot read kubeconfig {}: {err}", path.display()))?;
        Ok(Self {
            kubeconfig: Some(kubeconfig),
            ..Self::default()
        })
    }

    /// Why the kubeconfig named by `KUBECONFIG` could not be read.
    pub fn kubeconfig_error(&self) -> Option<&str> {
        self.kubeconfig_error.as_deref()
    }

    /// Every context, in kubeconfig order, then `in-cluster` when the
    /// server runs in a pod. SSH node pools' `ssh-*` contexts are left out.
    pub fn contexts(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .kubeconfig
            .iter()
            .flat_map(|k| k.contexts.iter())
            .map(|c| c.name.clone())
            .filter(|name| !name.starts_with("ssh-") && name != IN_CLUSTER)
            .collect();
        if self.service_account.is_some() {
            names.push(IN_CLUSTER.to_owned());
        }
        names
    }

    /// The kubeconfig's current context (unless it is an `ssh-*` one);
    /// otherwise `in-cluster` when available. SkyPilot's choice when
    /// `allowed_contexts` is not set.
    pub fn default_context(&self) -> Option<String> {
        self.kubeconfig
            .as_ref()
            .and_then(|k| k.current_context.clone())
            .filter(|c| !c.is_empty() && !c.starts_with("ssh-"))
            .filter(|c| self.contexts().contains(c))
            .or_else(|| {
                self.service_account
                    .is_some()
                    .then(|| IN_CLUSTER.to_owned())
            })
    }

    /// A client on `context`, its pods going to `namespace` when the config
    /// names one, else to the context's own namespace (in-cluster:
    /// `SKYDECK_IN_CLUSTER_NAMESPACE`, then the pod's namespace), else
    /// `default`.
    ///
    /// Synchronous, so the server can reach a context from anywhere: kube's
    /// kubeconfig loader is `async` but never waits (exec credentials run
    /// when the client first calls), and making a client needs only to be
    /// inside the runtime.
    pub fn connect(
        &self,
        context: &str,
        namespace: Option<String>,
        settings: KubeSettings,
    ) -> Result<KubeTarget, String> {
        install_crypto_provider();
        let config = self.config(context)?;
        let namespace = namespace
            .or_else(|| {
                (context == IN_CLUSTER)
                    .then(|| std::env::var(ENV_IN_CLUSTER_NAMESPACE).ok())
                    .flatten()
                    .filter(|ns| !ns.is_empty())
            })
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = kube::Client::try_from(config)
            .map_err(|err| format!("Kubernetes context {context}: cannot make a client: {err}"))?;
        Ok(KubeTarget {
            context: context.to_owned(),
            client,
            namespace,
            settings,
        })
    }

    fn config(&self, context: &str) -> Result<Config, String> {
        if context == IN_CLUSTER && self.service_account.is_some() {
            let mut config = Config::incluster().map_err(|err| {
                format!(
                    "the in-cluster context needs KUBERNETES_SERVICE_HOST and \
                     KUBERNETES_SERVICE_PORT, which Kubernetes sets in every pod: {err}"
                )
            })?;
            if config.default_namespace.is_empty() {
                DEFAULT_NAMESPACE.clone_into(&mut config.default_namespace);
            }
            return Ok(config);
        }
        let Some(kubeconfig) = &self.kubeconfig else {
            return Err(format!(
                "there is no context {context}: no kubeconfig was found (set KUBECONFIG or \
                 write ~/.kube/config){}",
                self.kubeconfig_error
                    .as_deref()
                    .map(|e| format!("; {e}"))
                    .unwrap_or_default()
            ));
        };
        if !kubeconfig.contexts.iter().any(|c| c.name == context) {
            return Err(format!(
                "there is no context {context} in the kubeconfig; its contexts are: {}",
                self.contexts().join(", ")
            ));
        }
        let options = KubeConfigOptions {
            context: Some(context.to_owned()),
            ..KubeConfigOptions::default()
        };
        Config::from_custom_kubeconfig(kubeconfig.clone(), &options)
            .now_or_never()
            .ok_or_else(|| format!("Kubernetes context {context}: the kubeconfig loader waited"))?
            .map_err(|err| format!("Kubernetes context {context}: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = r#"
apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:1"}
users:
- name: u
  user: {token: abc}
contexts:
- name: dev
  context: {cluster: c, user: u, namespace: team-a}
- name: ssh-rack
  context: {cluster: c, user: u}
- name: prod
  context: {cluster: c, user: u}
"#;

    fn sources() -> (tempfile::TempDir, KubeSources) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, KUBECONFIG).unwrap();
        let sources = KubeSources::from_kubeconfig_file(&path).unwrap();
        (dir, sources)
    }

    #[test]
    fn every_context_but_the_ssh_pools_in_kubeconfig_order() {
        let (_dir, sources) = sources();
        assert_eq!(sources.contexts(), ["dev", "prod"]);
        assert_eq!(sources.default_context().as_deref(), Some("dev"));
        assert!(KubeSources::default().default_context().is_none());
    }

    #[tokio::test]
    async fn the_namespace_is_the_configs_then_the_contexts_then_default() {
        let (_dir, sources) = sources();
        let settings = KubeSettings::default();
        let dev = sources.connect("dev", None, settings.clone()).unwrap();
        assert_eq!(dev.namespace, "team-a");
        let prod = sources.connect("prod", None, settings.clone()).unwrap();
        assert_eq!(prod.namespace, DEFAULT_NAMESPACE);
        let named = sources
            .connect("prod", Some("jobs".into()), settings.clone())
            .unwrap();
        assert_eq!(named.namespace, "jobs");
        let err = sources.connect("nowhere", None, settings).err().unwrap();
        assert!(err.contains("its contexts are: dev, prod"), "{err}");
    }
}
