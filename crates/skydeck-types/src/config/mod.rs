//! SkyPilot's server config (`config.yaml`, the keys of SkyPilot 0.14:
//! <https://docs.skypilot.co/en/latest/reference/config.html>) as Skydeck
//! reads it.
//!
//! The config arrives as YAML text (the file) or as JSON (the API); either
//! way it is checked against SkyPilot's keys, with a mistake reported at
//! its dotted path (`workspaces.team-a.private`) and a mistyped key
//! answered with the nearest real one. The parts Skydeck acts on are read
//! into types: workspaces (who may use them, which infrastructure they
//! leave out), `allowed_clouds` and `admin_policy`. The whole config is
//! kept as given, to pass on to a REST admin policy and to show (redacted,
//! see [`redact_config`]) through the API.

mod error;
mod kubernetes;
mod policy;
mod redact;
mod rules;
mod schema;
mod shape;
mod workspace;

pub use error::ConfigError;
pub use kubernetes::{
    AllowedContexts, CustomMetadata, KubeContextSettings, KubeIdentity, KubePorts,
    KubernetesConfig, ProvisionTimeout,
};
pub use policy::{AdminPolicy, ForcedAutostop, PolicyRequestOptions, PolicyRules};
pub use redact::{redact_config, restore_redacted};
pub use rules::PolicyViolation;
pub use workspace::{DEFAULT_WORKSPACE, Workspace};

use crate::task::REDACTED;
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use workspace::canonical_infra;

/// A checked server config.
#[derive(Debug, Clone, PartialEq)]
pub struct SkyConfig {
    /// The config as given (a mapping), for policies and for showing.
    value: Json,
    /// Lower case, `k8s` spelled `kubernetes`; `None` allows any.
    allowed_clouds: Option<Vec<String>>,
    active_workspace: Option<String>,
    /// Always holds `default`.
    workspaces: BTreeMap<String, Workspace>,
    admin_policy: Option<AdminPolicy>,
    /// `kubernetes` and `workspaces.<ws>.kubernetes`, read.
    kubernetes: KubernetesConfig,
}

/// Reads a config file's text; empty text (or only comments) is an empty
/// config.
pub fn parse_config(text: &str) -> Result<SkyConfig, ConfigError> {
    if text.trim().is_empty() {
        return Ok(SkyConfig::default());
    }
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)
        .map_err(|e| ConfigError::new("", format!("invalid YAML: {e}")))?;
    SkyConfig::from_yaml_value(value)
}

impl Default for SkyConfig {
    fn default() -> Self {
        Self::from_json(Json::Object(Map::new())).expect("the empty config is valid")
    }
}

impl SkyConfig {
    /// Reads a config sent as JSON (the API's form). `null` is the empty
    /// config.
    pub fn from_json(value: Json) -> Result<Self, ConfigError> {
        let value = match value {
            Json::Null => Json::Object(Map::new()),
            Json::Object(_) => value,
            other => {
                return Err(ConfigError::new(
                    "",
                    format!(
                        "the top level must be a mapping of config keys such as api_server, \
                         workspaces or kubernetes, got {}",
                        error::describe(&other)
                    ),
                ));
            }
        };
        schema::CONFIG.check(&value, "")?;
        let present = |key: &str| value.get(key).filter(|v| !v.is_null());
        let workspaces = workspace::read_workspaces(present("workspaces"))?;
        // `workspace` is the legacy spelling of `active_workspace`.
        let (active_key, active_workspace) =
            match (present("active_workspace"), present("workspace")) {
                (Some(active), _) => ("active_workspace", active.as_str().map(str::to_owned)),
                (None, Some(legacy)) => ("workspace", legacy.as_str().map(str::to_owned)),
                (None, None) => ("active_workspace", None),
            };
        if let Some(active) = &active_workspace {
            workspace::check_active(active_key, active, &workspaces)?;
        }
        let admin_policy = match present("admin_policy") {
            Some(policy) => AdminPolicy::from_json(policy)?,
            None => None,
        };
        let kubernetes = KubernetesConfig::from_config(&value)?;
        let allowed_clouds = present("allowed_clouds")
            .and_then(Json::as_array)
            .map(|clouds| {
                clouds
                    .iter()
                    .filter_map(Json::as_str)
                    .map(canonical_infra)
                    .collect()
            });
        Ok(Self {
            value,
            allowed_clouds,
            active_workspace,
            workspaces,
            admin_policy,
            kubernetes,
        })
    }

    /// Reads a config parsed from YAML.
    pub fn from_yaml_value(value: serde_yaml_ng::Value) -> Result<Self, ConfigError> {
        Self::from_json(yaml_to_json(value, "")?)
    }

    /// The config as given.
    pub fn as_json(&self) -> &Json {
        &self.value
    }

    /// The config with its secrets replaced by `<redacted>`, for showing.
    pub fn redacted_json(&self) -> Json {
        let mut value = self.value.clone();
        redact_config(&mut value);
        value
    }

    /// The config as YAML text, as SkyPilot sends it to a REST policy.
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(&self.value).expect("JSON values serialize to YAML")
    }

    /// The value at a key path such as `["api_server",
    /// "requests_retention_hours"]`; `None` when absent or null.
    pub fn get(&self, path: &[&str]) -> Option<&Json> {
        path.iter()
            .try_fold(&self.value, |value, key| value.get(key))
            .filter(|value| !value.is_null())
    }

    /// `db`: the database URL, when the config sets one.
    pub fn db(&self) -> Option<&str> {
        self.get(&["db"]).and_then(Json::as_str)
    }

    /// The infrastructure `allowed_clouds` lists (lower case, `k8s` as
    /// `kubernetes`); `None` when it is not set, which allows any.
    pub fn allowed_clouds(&self) -> Option<&[String]> {
        self.allowed_clouds.as_deref()
    }

    /// The `kubernetes` settings, per workspace and context.
    pub fn kubernetes(&self) -> &KubernetesConfig {
        &self.kubernetes
    }

    pub fn admin_policy(&self) -> Option<&AdminPolicy> {
        self.admin_policy.as_ref()
    }

    /// The workspace requests use when they name none.
    pub fn active_workspace(&self) -> &str {
        self.active_workspace
            .as_deref()
            .unwrap_or(DEFAULT_WORKSPACE)
    }

    /// A workspace by name; `default` always exists.
    pub fn workspace(&self, name: &str) -> Option<&Workspace> {
        self.workspaces.get(name)
    }

    /// Every workspace name, sorted; `default` included.
    pub fn workspace_names(&self) -> Vec<&str> {
        self.workspaces.keys().map(String::as_str).collect()
    }

    pub fn workspaces(&self) -> &BTreeMap<String, Workspace> {
        &self.workspaces
    }

    /// Whether a task in `workspace` may run on `infra_kind` (`aws`,
    /// `k8s`, `local`…): it must be in `allowed_clouds` when that is set,
    /// and not disabled in the workspace. The error says which setting
    /// refuses it and what to do.
    pub fn infra_allowed(&self, workspace: &str, infra_kind: &str) -> Result<(), String> {
        let kind = canonical_infra(infra_kind);
        let Some(settings) = self.workspace(workspace) else {
            return Err(format!(
                "workspace `{workspace}` is not defined in the server config (defined: {}); \
                 use one of those, or ask an admin to add it under workspaces",
                self.workspace_names().join(", ")
            ));
        };
        if let Some(allowed) = &self.allowed_clouds
            && !allowed.contains(&kind)
        {
            return Err(format!(
                "infrastructure `{kind}` is not enabled on this server: the server config's \
                 allowed_clouds lists only {}; use one of those, or ask an admin to add {kind} \
                 to allowed_clouds",
                allowed.join(", ")
            ));
        }
        if settings.disables(&kind) {
            return Err(format!(
                "infrastructure `{kind}` is disabled in workspace `{workspace}` (server config: \
                 workspaces.{workspace}.{kind}.disabled: true); use other infrastructure or \
                 another workspace, or ask an admin to remove that setting"
            ));
        }
        Ok(())
    }
}

/// A YAML tree as JSON: keys become strings (as PyYAML's `str()` would
/// give them), `<<` merges are resolved, and what JSON cannot hold (tags,
/// infinite numbers) is an error at its path.
fn yaml_to_json(mut value: serde_yaml_ng::Value, path: &str) -> Result<Json, ConfigError> {
    use serde_yaml_ng::Value as Yaml;
    value
        .apply_merge()
        .map_err(|e| ConfigError::new(path, format!("invalid YAML merge (<<): {e}")))?;
    Ok(match value {
        Yaml::Null => Json::Null,
        Yaml::Bool(b) => Json::Bool(b),
        Yaml::Number(n) => {
            if let Some(i) = n.as_i64() {
                Json::from(i)
            } else if let Some(u) = n.as_u64() {
                Json::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map(Json::Number)
                    .ok_or_else(|| {
                        ConfigError::new(path, format!("{n} is not a number a config can hold"))
                    })?
            }
        }
        Yaml::String(s) => Json::String(s),
        Yaml::Sequence(items) => Json::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| yaml_to_json(item, &error::item(path, i)))
                .collect::<Result<_, _>>()?,
        ),
        Yaml::Mapping(mapping) => {
            let mut map = Map::new();
            for (key, item) in mapping {
                let key = match key {
                    Yaml::String(s) => s,
                    Yaml::Bool(true) => "True".to_owned(),
                    Yaml::Bool(false) => "False".to_owned(),
                    Yaml::Number(n) => n.to_string(),
                    Yaml::Null => "None".to_owned(),
                    _ => {
                        return Err(ConfigError::new(
                            path,
                            "has a mapping key that is a list or mapping; keys must be plain text",
                        ));
                    }
                };
                let item = yaml_to_json(item, &error::child(path, &key))?;
                map.insert(key, item);
            }
            Json::Object(map)
        }
        Yaml::Tagged(tagged) => {
            return Err(ConfigError::new(
                path,
                format!(
                    "YAML tags such as {} are not supported in the config",
                    tagged.tag
                ),
            ));
        }
    })
}

#[cfg(test)]
mod tests;
