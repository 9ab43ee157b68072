//! Kubernetes contexts as the server's infrastructure `kubernetes/<context>`
//! (`k8s/<context>` in tasks): the kubeconfig's contexts and, in a pod,
//! `in-cluster`; `kubernetes.allowed_contexts` says which a workspace may
//! use, and one provider per context keeps its client.
//!
//! A bare `kubernetes` is settled at launch to the first allowed context,
//! as `ssh` is to a pool, so a cluster's record always names its context.

use crate::skypilot::exception;
use skydeck_infra::kubernetes::connect::KubeSources;
use skydeck_infra::kubernetes::{KubeProvider, KubeSettings, PortMode, RemoteIdentity};
use skydeck_types::RequestError;
use skydeck_types::config::{
    AllowedContexts, DEFAULT_WORKSPACE, KubeContextSettings, KubeIdentity, KubePorts,
    ProvisionTimeout, SkyConfig,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The infra prefix of a context.
pub const PREFIX: &str = "kubernetes/";

/// How long `check` waits for one context's API server.
const CHECK_TIMEOUT: Duration = Duration::from_secs(15);

/// A context's provider, and the settings it was made with.
type Made = (KubeContextSettings, Arc<KubeProvider>);

/// The contexts this server can reach, and the providers made so far.
pub struct KubeContexts {
    sources: KubeSources,
    providers: Mutex<HashMap<String, Made>>,
    /// The config last seen by a launch or check: what a provider made
    /// outside a request (a cluster's later operations) is shaped by.
    config: Mutex<Arc<SkyConfig>>,
    /// What the last check found per context (`true`: usable), so that
    /// `enabled_clouds` (asked by every `sky status`) needs no API call.
    checked: Mutex<HashMap<String, bool>>,
    /// The program copied into pods as the agent (`SKYDECK_AGENT_PROGRAM`,
    /// else this binary); `None` leaves the provider's default.
    program: Option<PathBuf>,
}

fn refused(message: String) -> RequestError {
    RequestError::new(exception::VALUE_ERROR, message)
}

/// One context as `check` sees it.
pub struct ContextState {
    pub name: String,
    /// `Ok(detail)`, or `Err(reason)` saying what to do.
    pub enabled: Result<String, String>,
}

impl KubeContexts {
    /// `KUBECONFIG` (or `~/.kube/config`) and the pod's service account.
    pub fn from_env() -> Self {
        Self::new(KubeSources::from_env())
    }

    /// Copies `program` into pods as each cluster's agent.
    #[must_use]
    pub fn with_program(mut self, program: PathBuf) -> Self {
        self.program = Some(program);
        self
    }

    pub fn new(sources: KubeSources) -> Self {
        Self {
            sources,
            providers: Mutex::new(HashMap::new()),
            config: Mutex::new(Arc::new(SkyConfig::default())),
            checked: Mutex::new(HashMap::new()),
            program: None,
        }
    }

    fn observe(&self, config: &Arc<SkyConfig>) {
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = Arc::clone(config);
    }

    /// The contexts `workspace` may use, in order (the first is where a
    /// bare `kubernetes` goes): the listed ones that exist; every context
    /// for `all`; unset, the kubeconfig's current context, else
    /// `in-cluster` (SkyPilot's rule).
    pub fn allowed(&self, config: &SkyConfig, workspace: &str) -> Vec<String> {
        let existing = self.sources.contexts();
        match config.kubernetes().allowed_contexts(workspace) {
            Some(AllowedContexts::All) => existing,
            Some(AllowedContexts::Listed(listed)) => listed
                .iter()
                .filter(|c| existing.contains(c))
                .cloned()
                .collect(),
            None => self.sources.default_context().into_iter().collect(),
        }
    }

    /// Whether `workspace` may launch on `context`: an error names the
    /// setting and the contexts it allows.
    pub fn check_allowed(
        &self,
        config: &SkyConfig,
        workspace: &str,
        context: &str,
    ) -> Result<(), String> {
        let allowed = self.allowed(config, workspace);
        if allowed.iter().any(|c| c == context) {
            return Ok(());
        }
        let listed = if allowed.is_empty() {
            "none".to_owned()
        } else {
            allowed
                .iter()
                .map(|c| format!("kubernetes/{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let kube = config.kubernetes();
        let why = match kube.allowed_contexts(workspace) {
            Some(AllowedContexts::Listed(_)) => {
                let key = kube.allowed_contexts_key(workspace);
                if self.sources.contexts().iter().any(|c| c == context) {
                    format!("the server config's {key} does not list it")
                } else {
                    format!(
                        "the server's kubeconfig has no such context (and {key} does not list \
                         it)"
                    )
                }
            }
            Some(AllowedContexts::All) => "the server's kubeconfig has no such context".to_owned(),
            None => "kubernetes.allowed_contexts is not set, so only the kubeconfig's current \
                     context (or in-cluster) is used"
                .to_owned(),
        };
        Err(format!(
            "Kubernetes context `{context}` is not allowed in workspace `{workspace}`: {why}. \
             Allowed: {listed}. Use one of those (--infra k8s/<context>), or ask an admin to \
             add {context} to kubernetes.allowed_contexts"
        ))
    }

    /// The provider of `context` with `workspace`'s settings, made (and
    /// kept) when first asked or when the settings changed.
    pub fn provider_for(
        &self,
        config: &Arc<SkyConfig>,
        workspace: &str,
        context: &str,
    ) -> Result<Arc<KubeProvider>, RequestError> {
        self.observe(config);
        let settings = config.kubernetes().settings(workspace, context);
        let mut providers = self.providers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((made_with, provider)) = providers.get(context)
            && *made_with == settings
        {
            return Ok(Arc::clone(provider));
        }
        let (namespace, kube_settings) = infra_settings(&settings);
        let target = self
            .sources
            .connect(context, namespace, kube_settings)
            .map_err(|err| refused(format!("Kubernetes context {context}: {err}")))?;
        let provider = KubeProvider::new(target);
        let provider = Arc::new(match &self.program {
            Some(program) => provider.with_program(program.clone()),
            None => provider,
        });
        providers.insert(context.to_owned(), (settings, Arc::clone(&provider)));
        Ok(provider)
    }

    /// The provider of `context` for a cluster already on it: the one
    /// made at its launch, or one with the settings of the config last
    /// seen (the default workspace's).
    pub fn provider(&self, context: &str) -> Result<Arc<KubeProvider>, RequestError> {
        if let Some((_, provider)) = self
            .providers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(context)
        {
            return Ok(Arc::clone(provider));
        }
        let config = Arc::clone(&self.config.lock().unwrap_or_else(|e| e.into_inner()));
        self.provider_for(&config, DEFAULT_WORKSPACE, context)
    }

    /// Every context `workspace` may use, each checked against its API
    /// server (SkyPilot's test: list a pod in the namespace, list nodes).
    pub async fn states(&self, config: &Arc<SkyConfig>, workspace: &str) -> Vec<ContextState> {
        let mut states = Vec::new();
        for name in self.allowed(config, workspace) {
            let enabled = match self.provider_for(config, workspace, &name) {
                Ok(provider) => {
                    let check = skydeck_infra::kubernetes::check::check(provider.target());
                    match tokio::time::timeout(CHECK_TIMEOUT, check).await {
                        Ok(result) => result,
                        Err(_) => Err(format!(
                            "Kubernetes API unreachable: no answer within {}s",
                            CHECK_TIMEOUT.as_secs()
                        )),
                    }
                }
                Err(err) => Err(err.to_string()),
            };
            self.checked
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name.clone(), enabled.is_ok());
            states.push(ContextState { name, enabled });
        }
        states
    }

    /// The contexts `workspace` may use that the last check did not find
    /// unusable (one never checked counts as usable), for `enabled_clouds`.
    pub fn enabled(&self, config: &SkyConfig, workspace: &str) -> Vec<String> {
        let checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
        self.allowed(config, workspace)
            .into_iter()
            .filter(|c| checked.get(c).copied().unwrap_or(true))
            .collect()
    }

    /// Why no context could be found, for `check`.
    pub fn none_reason(&self) -> String {
        let mut reason = "No Kubernetes context is available: set KUBECONFIG (or write \
                          ~/.kube/config) for the server, or run it in a pod with a service \
                          account"
            .to_owned();
        if let Some(err) = self.sources.kubeconfig_error() {
            reason.push_str(&format!(" ({err})"));
        }
        reason.push('.');
        reason
    }
}

/// `config.yaml`'s settings of one context as the backend takes them: the
/// namespace (if the config names one) and the rest.
pub fn infra_settings(settings: &KubeContextSettings) -> (Option<String>, KubeSettings) {
    let defaults = KubeSettings::default();
    let custom_metadata = (!settings.custom_metadata.labels.is_empty()
        || !settings.custom_metadata.annotations.is_empty())
    .then(|| {
        serde_json::json!({
            "labels": settings.custom_metadata.labels,
            "annotations": settings.custom_metadata.annotations,
        })
    });
    let kube = KubeSettings {
        pod_config: settings.pod_config.clone(),
        custom_metadata,
        provision_timeout: match settings.provision_timeout {
            Some(ProvisionTimeout::Forever) => None,
            Some(ProvisionTimeout::Seconds(seconds)) => Some(Duration::from_secs(seconds)),
            None => defaults.provision_timeout,
        },
        remote_identity: match &settings.remote_identity {
            KubeIdentity::Default => RemoteIdentity::ServiceAccount,
            KubeIdentity::Named(name) => RemoteIdentity::Named(name.clone()),
        },
        ports: match settings.ports {
            Some(KubePorts::Ingress) => PortMode::Ingress,
            Some(KubePorts::PodIp) => PortMode::PodIp,
            Some(KubePorts::LoadBalancer) | None => PortMode::LoadBalancer,
        },
    };
    (settings.namespace.clone(), kube)
}

/// The context a launch on `kubernetes` or `kubernetes/<context>` goes to,
/// checked against `allowed_contexts`; a bare `kubernetes` becomes the
/// workspace's first allowed context. Other infrastructure is left as is.
pub async fn settle_context(
    ctx: &crate::ops::RequestContext,
    plan: &mut crate::clusters::plan::Plan,
) -> Result<(), RequestError> {
    let kube = ctx.infra.kube();
    let denied = |message: String| RequestError::new(exception::PERMISSION_DENIED, message);
    let context = match plan.infra.as_str() {
        "kubernetes" => {
            let allowed = kube.allowed(&ctx.config, &ctx.workspace);
            let Some(first) = allowed.into_iter().next() else {
                return Err(refused(format!(
                    "Cannot launch on kubernetes: no Kubernetes context is allowed in workspace \
                     `{}`. {}",
                    ctx.workspace,
                    kube.none_reason()
                )));
            };
            first
        }
        infra => match infra.strip_prefix(PREFIX) {
            Some(context) => context.to_owned(),
            None => return Ok(()),
        },
    };
    kube.check_allowed(&ctx.config, &ctx.workspace, &context)
        .map_err(|reason| denied(format!("Cannot launch: {reason}.")))?;
    kube.provider_for(&ctx.config, &ctx.workspace, &context)?;
    plan.infra = format!("{PREFIX}{context}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use skydeck_types::config::parse_config;

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
- {name: dev, context: {cluster: c, user: u, namespace: team-a}}
- {name: prod, context: {cluster: c, user: u}}
- {name: ssh-rack, context: {cluster: c, user: u}}
"#;

    fn contexts() -> (tempfile::TempDir, KubeContexts) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, KUBECONFIG).unwrap();
        let sources = KubeSources::from_kubeconfig_file(&path).unwrap();
        (dir, KubeContexts::new(sources))
    }

    fn config(text: &str) -> Arc<SkyConfig> {
        Arc::new(parse_config(text).unwrap())
    }

    #[test]
    fn unset_allows_the_current_context_only() {
        let (_dir, kube) = contexts();
        let empty = config("");
        assert_eq!(kube.allowed(&empty, "default"), ["dev"]);
        kube.check_allowed(&empty, "default", "dev").unwrap();
        let err = kube.check_allowed(&empty, "default", "prod").unwrap_err();
        assert!(err.contains("Allowed: kubernetes/dev"), "{err}");
    }

    #[test]
    fn the_workspace_list_wins_and_names_what_is_allowed() {
        let (_dir, kube) = contexts();
        let config = config(
            "kubernetes:\n  allowed_contexts: [prod, dev, gone]\nworkspaces:\n  team:\n    \
             kubernetes:\n      allowed_contexts: [dev]\n  open:\n    kubernetes:\n      \
             allowed_contexts: all\n",
        );
        assert_eq!(kube.allowed(&config, "default"), ["prod", "dev"]);
        assert_eq!(kube.allowed(&config, "team"), ["dev"]);
        assert_eq!(kube.allowed(&config, "open"), ["dev", "prod"]);
        let err = kube.check_allowed(&config, "team", "prod").unwrap_err();
        assert_eq!(
            err,
            "Kubernetes context `prod` is not allowed in workspace `team`: the server config's \
             workspaces.team.kubernetes.allowed_contexts does not list it. Allowed: \
             kubernetes/dev. Use one of those (--infra k8s/<context>), or ask an admin to add \
             prod to kubernetes.allowed_contexts"
        );
        let err = kube.check_allowed(&config, "default", "gone").unwrap_err();
        assert!(err.contains("has no such context"), "{err}");
        assert!(
            err.contains("Allowed: kubernetes/prod, kubernetes/dev"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_provider_is_kept_while_its_settings_stay() {
        let (_dir, kube) = contexts();
        let first_config = config("kubernetes:\n  namespace: jobs\n");
        let first = kube.provider_for(&first_config, "default", "dev").unwrap();
        assert_eq!(first.target().namespace, "jobs");
        assert!(Arc::ptr_eq(&first, &kube.provider("dev").unwrap()));
        let changed = config("kubernetes:\n  provision_timeout: -1\n");
        let second = kube.provider_for(&changed, "default", "dev").unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(second.target().namespace, "team-a", "the context's own");
        assert_eq!(second.target().settings.provision_timeout, None);
        assert!(kube.provider_for(&changed, "default", "nowhere").is_err());
    }

    #[test]
    fn settings_become_the_backends() {
        let config = config(
            "kubernetes:\n  ports: podip\n  provision_timeout: 90\n  remote_identity: runner\n  \
             custom_metadata: {labels: {team: ml}}\n",
        );
        let (namespace, settings) = infra_settings(&config.kubernetes().settings("default", "dev"));
        assert_eq!(namespace, None);
        assert_eq!(settings.ports, PortMode::PodIp);
        assert_eq!(settings.provision_timeout, Some(Duration::from_secs(90)));
        assert_eq!(
            settings.remote_identity,
            RemoteIdentity::Named("runner".into())
        );
        assert_eq!(settings.custom_metadata.unwrap()["labels"]["team"], "ml");
        let (_, defaults) = infra_settings(&KubeContextSettings::default());
        assert_eq!(
            defaults.provision_timeout,
            KubeSettings::default().provision_timeout
        );
        assert_eq!(defaults.custom_metadata, None);
    }
}
