//! `config.yaml`'s `kubernetes` section (and `workspaces.<ws>.kubernetes`)
//! read into types: which contexts may be used, and per context the
//! namespace, the pods' service account, `pod_config`, `custom_metadata`,
//! `provision_timeout` and the ports mode.
//!
//! The schema ([`super::schema`]) has already checked the shapes; this adds
//! the rules a shape cannot say (a namespace is a DNS label, a timeout is
//! -1 or more, metadata may not rename what it is put on) and resolves one
//! context's settings the way SkyPilot does: the most specific of
//! `workspaces.<ws>.kubernetes.context_configs.<ctx>`,
//! `workspaces.<ws>.kubernetes`, `kubernetes.context_configs.<ctx>` and
//! `kubernetes` wins, key by key.

use super::error::{ConfigError, child, describe, item};
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;

/// The `remote_identity` values that all mean "the default service account
/// `skypilot-service-account`".
const DEFAULT_IDENTITIES: &[&str] = &["SERVICE_ACCOUNT", "LOCAL_CREDENTIALS", "NO_UPLOAD"];

/// `allowed_contexts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedContexts {
    /// `all`: every context of the kubeconfig (and `in-cluster`).
    All,
    /// These contexts, in the order written; the first is the default.
    Listed(Vec<String>),
}

/// `provision_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProvisionTimeout {
    /// `-1`: wait for the scheduler as long as it takes.
    Forever,
    Seconds(u64),
}

/// `ports`: how a cluster's ports are exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubePorts {
    LoadBalancer,
    Ingress,
    PodIp,
}

/// The service account pods run as, for one context.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum KubeIdentity {
    /// `SERVICE_ACCOUNT`, `LOCAL_CREDENTIALS` or `NO_UPLOAD` (the default):
    /// SkyPilot's `skypilot-service-account`.
    #[default]
    Default,
    /// A service account the admin made, used as is.
    Named(String),
}

/// `remote_identity` as written: one value, or `{context-glob: value}`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum IdentitySetting {
    One(KubeIdentity),
    ByContext(Vec<(String, KubeIdentity)>),
}

impl IdentitySetting {
    /// The identity for `context`; `None` when no glob matches it.
    fn for_context(&self, context: &str) -> Option<KubeIdentity> {
        match self {
            Self::One(identity) => Some(identity.clone()),
            // The config reaches us as JSON, whose mappings do not keep
            // the order written: the context's own name wins, then the
            // longest (most specific) glob that matches.
            Self::ByContext(rules) => rules
                .iter()
                .filter(|(glob, _)| crate::glob::matches(glob, context))
                .max_by_key(|(glob, _)| (glob.as_str() == context, glob.len()))
                .map(|(_, identity)| identity.clone()),
        }
    }
}

/// `custom_metadata`: labels and annotations put on everything a cluster
/// makes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CustomMetadata {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// The per-context keys, as one level of the config sets them (absent
/// keys are `None`, so a less specific level may fill them).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct ContextKeys {
    namespace: Option<String>,
    remote_identity: Option<IdentitySetting>,
    pod_config: Option<Json>,
    custom_metadata: Option<CustomMetadata>,
    provision_timeout: Option<ProvisionTimeout>,
    ports: Option<KubePorts>,
}

/// One `kubernetes` block: the global one or a workspace's.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KubernetesSection {
    allowed_contexts: Option<AllowedContexts>,
    keys: ContextKeys,
    context_configs: BTreeMap<String, ContextKeys>,
}

/// The settings of one context, every level applied.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KubeContextSettings {
    /// `None`: the kubeconfig context's namespace (or, in-cluster, the
    /// pod's), else `default`.
    pub namespace: Option<String>,
    pub remote_identity: KubeIdentity,
    /// Merged into every pod (a mapping).
    pub pod_config: Option<Json>,
    pub custom_metadata: CustomMetadata,
    /// `None`: SkyPilot's default for the cluster's size.
    pub provision_timeout: Option<ProvisionTimeout>,
    /// `None`: `loadbalancer`.
    pub ports: Option<KubePorts>,
}

/// Every `kubernetes` block of a config.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KubernetesConfig {
    global: KubernetesSection,
    workspaces: BTreeMap<String, KubernetesSection>,
}

impl KubernetesConfig {
    /// Reads the `kubernetes` block and each `workspaces.<ws>.kubernetes`
    /// of a config that passed the schema.
    pub(crate) fn from_config(config: &Json) -> Result<Self, ConfigError> {
        let global = match config.get("kubernetes").filter(|v| !v.is_null()) {
            Some(section) => KubernetesSection::read(section, "kubernetes")?,
            None => KubernetesSection::default(),
        };
        let mut workspaces = BTreeMap::new();
        if let Some(Json::Object(map)) = config.get("workspaces") {
            for (name, workspace) in map {
                let Some(section) = workspace.get("kubernetes").filter(|v| !v.is_null()) else {
                    continue;
                };
                let path = child(&child("workspaces", name), "kubernetes");
                workspaces.insert(name.clone(), KubernetesSection::read(section, &path)?);
            }
        }
        Ok(Self { global, workspaces })
    }

    /// `allowed_contexts` for `workspace`: the workspace's list wins over
    /// the global one; `None` when neither sets it (SkyPilot then uses the
    /// kubeconfig's current context, else `in-cluster`).
    pub fn allowed_contexts(&self, workspace: &str) -> Option<&AllowedContexts> {
        self.workspaces
            .get(workspace)
            .and_then(|w| w.allowed_contexts.as_ref())
            .or(self.global.allowed_contexts.as_ref())
    }

    /// Which setting [`Self::allowed_contexts`] comes from, for messages.
    pub fn allowed_contexts_key(&self, workspace: &str) -> String {
        if self
            .workspaces
            .get(workspace)
            .is_some_and(|w| w.allowed_contexts.is_some())
        {
            format!("workspaces.{workspace}.kubernetes.allowed_contexts")
        } else {
            "kubernetes.allowed_contexts".to_owned()
        }
    }

    /// The settings of `context` for a request in `workspace`.
    pub fn settings(&self, workspace: &str, context: &str) -> KubeContextSettings {
        let ws = self.workspaces.get(workspace);
        let levels: Vec<&ContextKeys> = [
            ws.and_then(|w| w.context_configs.get(context)),
            ws.map(|w| &w.keys),
            self.global.context_configs.get(context),
            Some(&self.global.keys),
        ]
        .into_iter()
        .flatten()
        .collect();
        KubeContextSettings {
            namespace: levels.iter().find_map(|l| l.namespace.clone()),
            remote_identity: levels
                .iter()
                .find_map(|l| {
                    l.remote_identity
                        .as_ref()
                        .and_then(|r| r.for_context(context))
                })
                .unwrap_or_default(),
            pod_config: levels.iter().find_map(|l| l.pod_config.clone()),
            custom_metadata: levels
                .iter()
                .find_map(|l| l.custom_metadata.clone())
                .unwrap_or_default(),
            provision_timeout: levels.iter().find_map(|l| l.provision_timeout),
            ports: levels.iter().find_map(|l| l.ports),
        }
    }
}

impl KubernetesSection {
    fn read(value: &Json, path: &str) -> Result<Self, ConfigError> {
        let Some(map) = value.as_object() else {
            return Err(ConfigError::expected(path, "a mapping", value));
        };
        let allowed_contexts = match map.get("allowed_contexts") {
            None | Some(Json::Null) => None,
            Some(Json::String(all)) if all == "all" => Some(AllowedContexts::All),
            Some(Json::Array(items)) => {
                let key = child(path, "allowed_contexts");
                let mut names = Vec::new();
                for (i, name) in items.iter().enumerate() {
                    let name = name.as_str().ok_or_else(|| {
                        ConfigError::expected(&item(&key, i), "a context name", name)
                    })?;
                    check_context_name(name, &item(&key, i))?;
                    names.push(name.to_owned());
                }
                Some(AllowedContexts::Listed(names))
            }
            Some(other) => {
                return Err(ConfigError::expected(
                    &child(path, "allowed_contexts"),
                    "a list of context names, or all",
                    other,
                ));
            }
        };
        let keys = ContextKeys::read(map, path)?;
        let mut context_configs = BTreeMap::new();
        if let Some(configs) = map.get("context_configs").filter(|v| !v.is_null()) {
            let key = child(path, "context_configs");
            let Some(configs) = configs.as_object() else {
                return Err(ConfigError::expected(
                    &key,
                    "a mapping of context names",
                    configs,
                ));
            };
            for (context, config) in configs {
                let at = child(&key, context);
                check_context_name(context, &at)?;
                let Some(config) = config.as_object() else {
                    if config.is_null() {
                        continue;
                    }
                    return Err(ConfigError::expected(&at, "a mapping", config));
                };
                context_configs.insert(context.clone(), ContextKeys::read(config, &at)?);
            }
        }
        Ok(Self {
            allowed_contexts,
            keys,
            context_configs,
        })
    }
}

impl ContextKeys {
    fn read(map: &Map<String, Json>, path: &str) -> Result<Self, ConfigError> {
        let get = |key: &str| map.get(key).filter(|v| !v.is_null());
        let at = |key: &str| child(path, key);
        let namespace = match get("namespace") {
            Some(value) => Some(dns_label(value, &at("namespace"), "namespace")?),
            None => None,
        };
        let remote_identity = match get("remote_identity") {
            Some(value) => Some(read_identity(value, &at("remote_identity"))?),
            None => None,
        };
        let pod_config = match get("pod_config") {
            Some(value) if value.is_object() => Some(value.clone()),
            Some(value) => {
                return Err(ConfigError::expected(
                    &at("pod_config"),
                    "a mapping merged into each pod (for example {spec: {tolerations: [...]}})",
                    value,
                ));
            }
            None => None,
        };
        let custom_metadata = match get("custom_metadata") {
            Some(value) => Some(read_metadata(value, &at("custom_metadata"))?),
            None => None,
        };
        let provision_timeout = match get("provision_timeout") {
            Some(value) => Some(read_timeout(value, &at("provision_timeout"))?),
            None => None,
        };
        let ports = match get("ports") {
            Some(value) => Some(match value.as_str() {
                Some("loadbalancer") => KubePorts::LoadBalancer,
                Some("ingress") => KubePorts::Ingress,
                Some("podip") => KubePorts::PodIp,
                _ => {
                    return Err(ConfigError::expected(
                        &at("ports"),
                        "one of loadbalancer, ingress, podip",
                        value,
                    ));
                }
            }),
            None => None,
        };
        Ok(Self {
            namespace,
            remote_identity,
            pod_config,
            custom_metadata,
            provision_timeout,
            ports,
        })
    }
}

/// A context name as a config may write it: what a kubeconfig allows
/// (EKS ARNs have `:` and `/`), but not empty, blank or with control
/// characters, which no kubeconfig context has.
fn check_context_name(name: &str, path: &str) -> Result<(), ConfigError> {
    if name.trim().is_empty() || name.len() > 253 || name.chars().any(char::is_control) {
        return Err(ConfigError::new(
            path,
            format!(
                "{} is not a kubeconfig context name (1 to 253 characters, no spaces only, \
                 no control characters)",
                describe(&Json::String(name.to_owned()))
            ),
        ));
    }
    Ok(())
}

/// A Kubernetes object name of the DNS-label kind (namespaces): lower-case
/// letters, digits and `-`, starting and ending with a letter or digit, at
/// most 63 characters.
fn dns_label(value: &Json, path: &str, what: &str) -> Result<String, ConfigError> {
    let rule = "lower-case letters, digits and '-', starting and ending with a letter or digit, \
                at most 63 characters";
    let Some(text) = value.as_str() else {
        return Err(ConfigError::expected(
            path,
            &format!("a {what} name"),
            value,
        ));
    };
    if is_dns_label(text) {
        Ok(text.to_owned())
    } else {
        Err(ConfigError::new(
            path,
            format!("{} is not a valid {what} name: use {rule}", describe(value)),
        ))
    }
}

fn is_dns_label(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// A service account name: a DNS subdomain (labels joined by `.`), at most
/// 253 characters.
fn is_dns_subdomain(text: &str) -> bool {
    text.len() <= 253 && text.split('.').all(is_dns_label)
}

fn read_one_identity(value: &Json, path: &str) -> Result<KubeIdentity, ConfigError> {
    let Some(text) = value.as_str() else {
        return Err(ConfigError::expected(
            path,
            "SERVICE_ACCOUNT, LOCAL_CREDENTIALS, NO_UPLOAD or a service account name",
            value,
        ));
    };
    if DEFAULT_IDENTITIES.contains(&text) {
        return Ok(KubeIdentity::Default);
    }
    if is_dns_subdomain(text) {
        return Ok(KubeIdentity::Named(text.to_owned()));
    }
    Err(ConfigError::new(
        path,
        format!(
            "{} is neither SERVICE_ACCOUNT, LOCAL_CREDENTIALS, NO_UPLOAD nor a service account \
             name (lower-case letters, digits, '-' and '.')",
            describe(value)
        ),
    ))
}

fn read_identity(value: &Json, path: &str) -> Result<IdentitySetting, ConfigError> {
    match value {
        Json::Object(rules) => rules
            .iter()
            .map(|(glob, identity)| {
                read_one_identity(identity, &child(path, glob)).map(|id| (glob.clone(), id))
            })
            .collect::<Result<_, _>>()
            .map(IdentitySetting::ByContext),
        other => read_one_identity(other, path).map(IdentitySetting::One),
    }
}

fn read_timeout(value: &Json, path: &str) -> Result<ProvisionTimeout, ConfigError> {
    match value.as_i64() {
        Some(-1) => Ok(ProvisionTimeout::Forever),
        Some(seconds) if seconds >= 0 => Ok(ProvisionTimeout::Seconds(seconds.unsigned_abs())),
        _ => Err(ConfigError::expected(
            path,
            "a whole number of seconds, or -1 to wait forever",
            value,
        )),
    }
}

fn read_metadata(value: &Json, path: &str) -> Result<CustomMetadata, ConfigError> {
    let Some(map) = value.as_object() else {
        return Err(ConfigError::expected(
            path,
            "a mapping with labels and annotations",
            value,
        ));
    };
    let mut metadata = CustomMetadata::default();
    for (key, entries) in map {
        let at = child(path, key);
        let target = match key.as_str() {
            "labels" => &mut metadata.labels,
            "annotations" => &mut metadata.annotations,
            "name" | "namespace" => {
                return Err(ConfigError::new(
                    &at,
                    format!(
                        "custom_metadata may not set {key}: the cluster names its own objects; \
                         use kubernetes.namespace to choose the namespace"
                    ),
                ));
            }
            _ => {
                return Err(ConfigError::new(
                    &at,
                    "unknown key under custom_metadata; it takes labels and annotations",
                ));
            }
        };
        if entries.is_null() {
            continue;
        }
        let Some(entries) = entries.as_object() else {
            return Err(ConfigError::expected(
                &at,
                "a mapping of names to text",
                entries,
            ));
        };
        for (name, text) in entries {
            let Some(text) = text.as_str() else {
                return Err(ConfigError::expected(
                    &child(&at, name),
                    "text (quote numbers)",
                    text,
                ));
            };
            target.insert(name.clone(), text.to_owned());
        }
    }
    Ok(metadata)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_config;

    const CONFIG: &str = r#"
kubernetes:
  allowed_contexts: [kind-a, prod]
  namespace: team
  remote_identity: {"prod*": skydeck-runner, "*": SERVICE_ACCOUNT}
  provision_timeout: 30
  ports: podip
  custom_metadata: {labels: {team: ml}}
  pod_config: {spec: {runtimeClassName: nvidia}}
  context_configs:
    prod:
      namespace: prod-jobs
      provision_timeout: -1
workspaces:
  research:
    kubernetes:
      allowed_contexts: [kind-a]
      namespace: research
      context_configs:
        kind-a: {ports: ingress}
  open:
    kubernetes: {allowed_contexts: all}
"#;

    fn kube() -> KubernetesConfig {
        parse_config(CONFIG).unwrap().kubernetes().clone()
    }

    #[test]
    fn the_workspace_list_wins_over_the_global_one() {
        let kube = kube();
        assert_eq!(
            kube.allowed_contexts("default"),
            Some(&AllowedContexts::Listed(vec![
                "kind-a".into(),
                "prod".into()
            ]))
        );
        assert_eq!(
            kube.allowed_contexts("research"),
            Some(&AllowedContexts::Listed(vec!["kind-a".into()]))
        );
        assert_eq!(kube.allowed_contexts("open"), Some(&AllowedContexts::All));
        assert_eq!(
            kube.allowed_contexts_key("research"),
            "workspaces.research.kubernetes.allowed_contexts"
        );
        assert_eq!(
            kube.allowed_contexts_key("default"),
            "kubernetes.allowed_contexts"
        );
        assert_eq!(
            KubernetesConfig::default().allowed_contexts("default"),
            None
        );
    }

    #[test]
    fn the_most_specific_level_wins_key_by_key() {
        let kube = kube();
        let prod = kube.settings("default", "prod");
        assert_eq!(prod.namespace.as_deref(), Some("prod-jobs"));
        assert_eq!(prod.provision_timeout, Some(ProvisionTimeout::Forever));
        assert_eq!(prod.ports, Some(KubePorts::PodIp), "from the top level");
        assert_eq!(
            prod.remote_identity,
            KubeIdentity::Named("skydeck-runner".into()),
            "the most specific glob that matches"
        );
        assert_eq!(prod.custom_metadata.labels["team"], "ml");
        assert_eq!(
            prod.pod_config.unwrap()["spec"]["runtimeClassName"],
            "nvidia"
        );

        let kind = kube.settings("default", "kind-a");
        assert_eq!(kind.namespace.as_deref(), Some("team"));
        assert_eq!(kind.provision_timeout, Some(ProvisionTimeout::Seconds(30)));
        assert_eq!(kind.remote_identity, KubeIdentity::Default);

        let research = kube.settings("research", "kind-a");
        assert_eq!(research.namespace.as_deref(), Some("research"));
        assert_eq!(research.ports, Some(KubePorts::Ingress));
        // The global context block is less specific than the workspace.
        assert_eq!(
            kube.settings("research", "prod").namespace.as_deref(),
            Some("research")
        );

        let empty = KubernetesConfig::default().settings("default", "x");
        assert_eq!(empty, KubeContextSettings::default());
    }

    fn rejected(text: &str) -> String {
        parse_config(text).unwrap_err().to_string()
    }

    #[test]
    fn bad_values_are_errors_at_their_key() {
        assert_eq!(
            rejected("kubernetes:\n  namespace: Team_A\n"),
            "config key `kubernetes.namespace`: \"Team_A\" is not a valid namespace name: use \
             lower-case letters, digits and '-', starting and ending with a letter or digit, at \
             most 63 characters"
        );
        assert_eq!(
            rejected("kubernetes:\n  provision_timeout: -5\n"),
            "config key `kubernetes.provision_timeout`: expected a whole number of seconds, or -1 \
             to wait forever, got -5"
        );
        let error = rejected("kubernetes:\n  context_configs:\n    prod:\n      ports: nodeport\n");
        assert!(
            error.starts_with("config key `kubernetes.context_configs.prod.ports`"),
            "{error}"
        );
        assert_eq!(
            rejected("kubernetes:\n  remote_identity: {\"*\": Bad_Name}\n"),
            "config key `kubernetes.remote_identity.*`: \"Bad_Name\" is neither \
             SERVICE_ACCOUNT, LOCAL_CREDENTIALS, NO_UPLOAD nor a service account name \
             (lower-case letters, digits, '-' and '.')"
        );
        let error = rejected("kubernetes:\n  custom_metadata: {name: x}\n");
        assert!(
            error.starts_with(
                "config key `kubernetes.custom_metadata.name`: custom_metadata may not set name"
            ),
            "{error}"
        );
        let error = rejected("kubernetes:\n  custom_metadata: {labels: {tier: 1}}\n");
        assert!(
            error.starts_with("config key `kubernetes.custom_metadata.labels.tier`"),
            "{error}"
        );
        let error = rejected("workspaces:\n  w:\n    kubernetes:\n      namespace: \"-x\"\n");
        assert!(
            error.starts_with("config key `workspaces.w.kubernetes.namespace`"),
            "{error}"
        );
        let error = rejected(
            "workspaces:\n  w:\n    kubernetes:\n      context_configs:\n        c: {provision_timeout: -2}\n",
        );
        assert!(
            error.starts_with(
                "config key `workspaces.w.kubernetes.context_configs.c.provision_timeout`"
            ),
            "{error}"
        );
        let error = rejected("kubernetes:\n  allowed_contexts: [\"\"]\n");
        assert!(
            error.starts_with("config key `kubernetes.allowed_contexts[0]`"),
            "{error}"
        );
    }

    #[test]
    fn the_default_identities_are_one_and_names_are_kept() {
        for default in DEFAULT_IDENTITIES {
            let config =
                parse_config(&format!("kubernetes:\n  remote_identity: {default}\n")).unwrap();
            assert_eq!(
                config.kubernetes().settings("default", "c").remote_identity,
                KubeIdentity::Default
            );
        }
        let config = parse_config("kubernetes:\n  remote_identity: {\"gke-*\": sa.one}\n").unwrap();
        assert_eq!(
            config
                .kubernetes()
                .settings("default", "gke-a")
                .remote_identity,
            KubeIdentity::Named("sa.one".into())
        );
        assert_eq!(
            config
                .kubernetes()
                .settings("default", "other")
                .remote_identity,
            KubeIdentity::Default,
            "no glob matches: the default"
        );
    }
}
