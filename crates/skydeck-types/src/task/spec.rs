//! `TaskSpec`: one task of a SkyPilot task YAML.

use super::error::{FieldPath, TaskError, TaskErrorKind};
use super::file_mount::FileMount;
use super::resources::Resources;
use super::yaml::{Fields, describe, integer, scalar_to_string, string};
use crate::names::JobName;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value as Json;
use serde_yaml_ng::Value;
use std::collections::BTreeMap;

/// Keys of a task, as SkyPilot 0.14's schema lists them.
const KEYS: &[&str] = &[
    "name",
    "workdir",
    "num_nodes",
    "resources",
    "envs",
    "secrets",
    "file_mounts",
    "setup",
    "run",
    "config",
    "file_mounts_mapping",
    "event_callback",
    "service",
    "pool",
    "managed_secrets",
    "inputs",
    "outputs",
    "volumes",
    "volume_mounts",
    "api_server_access",
    "_metadata",
    "_user_specified_yaml",
];

/// Keys accepted and carried along untouched: Skydeck does not act on them,
/// but the official client sends them and they must survive a round trip.
pub(crate) const PASSTHROUGH_KEYS: &[&str] = &[
    "event_callback",
    "service",
    "pool",
    "managed_secrets",
    "inputs",
    "outputs",
    "volumes",
    "volume_mounts",
    "api_server_access",
    "_metadata",
    "_user_specified_yaml",
];

/// Resource keys people put at the top level by mistake.
const MISPLACED_RESOURCE_KEYS: &[&str] = &[
    "infra",
    "cloud",
    "region",
    "zone",
    "cpus",
    "memory",
    "accelerators",
    "gpus",
    "instance_type",
    "use_spot",
    "disk_size",
    "disk_tier",
    "ports",
    "image_id",
    "labels",
    "any_of",
    "ordered",
    "autostop",
];

const HINTS: &[(&str, &str)] = &[
    (
        "storage_mounts",
        "put buckets under file_mounts as {source, name, store, mode}",
    ),
    (
        "execution",
        "execution belongs in a pipeline's header, a first document holding only name and execution",
    ),
    ("command", "did you mean \"run\"?"),
    ("env", "did you mean \"envs\"?"),
];

/// The value of an environment variable or secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    Set(String),
    /// Written as `NAME:` or `NAME: null`: the value must come from
    /// `--env NAME=VALUE` / `--secret NAME=VALUE` before launching.
    Required,
}

impl EnvValue {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Set(value) => Some(value),
            Self::Required => None,
        }
    }
}

impl Serialize for EnvValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Set(value) => serializer.serialize_str(value),
            Self::Required => serializer.serialize_none(),
        }
    }
}

impl<'de> Deserialize<'de> for EnvValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        env_value(&value, &FieldPath::root()).map_err(serde::de::Error::custom)
    }
}

/// The directory synced to the nodes as the task's working directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workdir {
    /// A directory on the submitting machine.
    Path(String),
    /// A git repository, optionally at a branch, tag or commit.
    Git {
        url: String,
        git_ref: Option<String>,
    },
}

impl Serialize for Workdir {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Path(path) => serializer.serialize_str(path),
            Self::Git { url, git_ref } => {
                let mut map = serializer.serialize_map(None)?;
                map.serialize_entry("url", url)?;
                if let Some(git_ref) = git_ref {
                    map.serialize_entry("ref", git_ref)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Workdir {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        workdir(&value, &FieldPath::root()).map_err(serde::de::Error::custom)
    }
}

/// One task: what to run, on how many nodes, with which resources.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<JobName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workdir: Option<Workdir>,
    pub num_nodes: u32,
    #[serde(skip_serializing_if = "Resources::is_empty")]
    pub resources: Resources,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub envs: BTreeMap<String, EnvValue>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, EnvValue>,
    /// Remote path → what to put there.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub file_mounts: BTreeMap<String, FileMount>,
    /// Where the official client uploaded each local path: client path →
    /// path on the API server.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub file_mounts_mapping: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setup: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// Per-task overrides of the SkyPilot config, kept as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<Json>,
    /// Accepted keys Skydeck does not interpret (`service`, `volumes`,
    /// `_user_specified_yaml`…), kept as given.
    #[serde(flatten)]
    pub passthrough: BTreeMap<String, Json>,
}

impl Default for TaskSpec {
    fn default() -> Self {
        Self {
            name: None,
            workdir: None,
            num_nodes: 1,
            resources: Resources::default(),
            envs: BTreeMap::new(),
            secrets: BTreeMap::new(),
            file_mounts: BTreeMap::new(),
            file_mounts_mapping: BTreeMap::new(),
            setup: None,
            run: None,
            config: None,
            passthrough: BTreeMap::new(),
        }
    }
}

impl TaskSpec {
    /// A task that runs `command`, for a bare command given instead of a
    /// YAML file.
    pub fn from_command(command: &str) -> Self {
        Self {
            run: Some(command.to_owned()),
            ..Self::default()
        }
    }

    /// The task as YAML that SkyPilot (and `parse_tasks`) accepts.
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self)
            .expect("a TaskSpec serializes: every mapping key is a string")
    }

    /// The resources the scheduler may choose from; see
    /// [`Resources::choices`].
    pub fn resource_choices(&self) -> Vec<Resources> {
        self.resources.choices()
    }

    /// Reads one task mapping.
    pub(crate) fn from_yaml(value: &Value) -> Result<Self, TaskError> {
        let root = FieldPath::root();
        let fields = Fields::strict(
            value,
            &root,
            "a mapping of task fields such as run, setup, resources",
            KEYS,
            HINTS,
        )
        .map_err(hint_misplaced_resource_key)?;
        let mut passthrough = BTreeMap::new();
        for key in PASSTHROUGH_KEYS {
            if let Some(value) = fields.get(key) {
                check_passthrough(key, value, &fields.path_of(key))?;
                passthrough.insert((*key).to_owned(), fields.json(key)?.unwrap_or(Json::Null));
            }
        }
        Ok(Self {
            name: fields
                .string("name")?
                .map(|name| job_name(name, &fields.path_of("name")))
                .transpose()?,
            workdir: fields
                .get("workdir")
                .map(|v| workdir(v, &fields.path_of("workdir")))
                .transpose()?,
            num_nodes: num_nodes(&fields)?,
            resources: match fields.get("resources") {
                Some(value) => Resources::from_yaml(value, &fields.path_of("resources"), false)?,
                None => Resources::default(),
            },
            envs: envs(&fields)?,
            secrets: secrets(&fields)?,
            file_mounts: file_mounts(&fields)?,
            file_mounts_mapping: file_mounts_mapping(&fields)?,
            setup: script(&fields, "setup")?,
            run: script(&fields, "run")?,
            config: config(&fields)?,
            passthrough,
        })
    }
}

impl<'de> Deserialize<'de> for TaskSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::from_yaml(&value).map_err(serde::de::Error::custom)
    }
}

/// `cpus: 4` at the top level is a common slip: say where it belongs.
fn hint_misplaced_resource_key(error: TaskError) -> TaskError {
    if error.kind() != TaskErrorKind::UnknownField {
        return error;
    }
    let key = match error.path().segments() {
        [super::error::PathSegment::Key(key)] => key.clone(),
        _ => return error,
    };
    if MISPLACED_RESOURCE_KEYS.contains(&key.as_str()) {
        error.with_suggestion(format!("{key} belongs under resources: (resources.{key})"))
    } else {
        error
    }
}

/// True for names a shell accepts as variables: `^[A-Za-z_][A-Za-z0-9_]*$`.
pub(crate) fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(crate) fn env_name_error(path: FieldPath, name: &str) -> TaskError {
    TaskError::new(
        TaskErrorKind::InvalidValue,
        path,
        format!("{name:?} is not a valid variable name: use letters, digits and _, not starting with a digit"),
    )
    .at_key()
}

fn env_value(value: &Value, path: &FieldPath) -> Result<EnvValue, TaskError> {
    if value.is_null() {
        return Ok(EnvValue::Required);
    }
    scalar_to_string(value).map(EnvValue::Set).ok_or_else(|| {
        TaskError::invalid(
            path,
            &describe(value),
            "a string (or null to require --env)",
        )
    })
}

fn workdir(value: &Value, path: &FieldPath) -> Result<Workdir, TaskError> {
    const EXPECTED: &str = "a directory, or a git repository as {url, ref}";
    match value {
        Value::String(dir) => Ok(Workdir::Path(dir.clone())),
        Value::Mapping(_) => {
            let fields = Fields::strict(value, path, EXPECTED, &["url", "ref"], &[])?;
            let url = fields.string("url")?.ok_or_else(|| {
                TaskError::new(
                    TaskErrorKind::InvalidValue,
                    path.clone(),
                    "a git workdir needs a url",
                )
            })?;
            Ok(Workdir::Git {
                url,
                git_ref: fields.string("ref")?,
            })
        }
        other => Err(TaskError::invalid(path, &describe(other), EXPECTED)),
    }
}

/// A task's name, held to the job-name rule (it shows in queues and logs).
pub(crate) fn job_name(name: String, path: &FieldPath) -> Result<JobName, TaskError> {
    JobName::new(name)
        .map_err(|err| TaskError::new(TaskErrorKind::InvalidValue, path.clone(), err.to_string()))
}

/// The most nodes a task may ask for on any infrastructure; each
/// infrastructure may allow fewer (`local`: `SKYDECK_LOCAL_MAX_NODES`).
pub const MAX_NUM_NODES: u32 = 1000;

fn num_nodes(fields: &Fields<'_>) -> Result<u32, TaskError> {
    const EXPECTED: &str = "a whole number of nodes, 1 to 1000";
    let Some(value) = fields.get("num_nodes") else {
        return Ok(1);
    };
    let path = fields.path_of("num_nodes");
    let n = integer(value, &path, EXPECTED)?;
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=MAX_NUM_NODES).contains(n))
        .ok_or_else(|| TaskError::invalid(&path, &describe(value), EXPECTED))
}

fn envs(fields: &Fields<'_>) -> Result<BTreeMap<String, EnvValue>, TaskError> {
    let Some(value) = fields.get("envs") else {
        return Ok(BTreeMap::new());
    };
    let envs = Fields::open(
        value,
        &fields.path_of("envs"),
        "a mapping of variable names to values",
    )?;
    envs.entries()
        .map(|(name, v)| {
            if !is_env_name(name) {
                return Err(env_name_error(envs.path_of(name), name));
            }
            Ok((name.to_owned(), env_value(v, &envs.path_of(name))?))
        })
        .collect()
}

/// A secret reference as SkyPilot writes it (`secrets:personal.TOKEN`):
/// Skydeck has no secret store, so it is simply a secret to be given with
/// `--secret`, named without prefix and scope.
fn secret_ref_name(reference: &str) -> &str {
    let name = reference.strip_prefix("secrets:").unwrap_or(reference);
    ["personal.", "workspace.", "global."]
        .iter()
        .find_map(|scope| name.strip_prefix(scope))
        .unwrap_or(name)
}

fn secrets(fields: &Fields<'_>) -> Result<BTreeMap<String, EnvValue>, TaskError> {
    let Some(value) = fields.get("secrets") else {
        return Ok(BTreeMap::new());
    };
    let path = fields.path_of("secrets");
    if let Value::Sequence(items) = value {
        return items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let reference = string(
                    item,
                    &path.index(i),
                    "a secret reference such as \"secrets:HF_TOKEN\"",
                )?;
                if !reference.starts_with("secrets:") {
                    return Err(TaskError::invalid(
                        &path.index(i),
                        &describe(item),
                        "a secret reference such as \"secrets:HF_TOKEN\"",
                    )
                    .with_suggestion(
                        "for secrets with values use a mapping: secrets: {NAME: value}",
                    ));
                }
                Ok((secret_ref_name(&reference).to_owned(), EnvValue::Required))
            })
            .collect();
    }
    let secrets = Fields::open(
        value,
        &path,
        "a mapping of secret names to values, or a list of references",
    )?;
    secrets
        .entries()
        .map(|(key, v)| {
            let key_path = secrets.path_of(key);
            let name = if key.starts_with("secrets:") {
                if !v.is_null() {
                    return Err(TaskError::invalid(
                        &key_path,
                        &describe(v),
                        "null for a secrets: reference",
                    )
                    .with_suggestion("to give the value inline, drop the \"secrets:\" prefix"));
                }
                secret_ref_name(key)
            } else {
                key
            };
            if !is_env_name(name) {
                return Err(env_name_error(key_path, name));
            }
            Ok((name.to_owned(), env_value(v, &key_path)?))
        })
        .collect()
}

fn file_mounts(fields: &Fields<'_>) -> Result<BTreeMap<String, FileMount>, TaskError> {
    let Some(value) = fields.get("file_mounts") else {
        return Ok(BTreeMap::new());
    };
    let mounts = Fields::open(
        value,
        &fields.path_of("file_mounts"),
        "a mapping of remote paths to sources",
    )?;
    mounts
        .entries()
        .map(|(target, v)| {
            Ok((
                target.to_owned(),
                FileMount::from_yaml(v, &mounts.path_of(target))?,
            ))
        })
        .collect()
}

fn file_mounts_mapping(fields: &Fields<'_>) -> Result<BTreeMap<String, String>, TaskError> {
    let Some(value) = fields.get("file_mounts_mapping") else {
        return Ok(BTreeMap::new());
    };
    let mapping = Fields::open(
        value,
        &fields.path_of("file_mounts_mapping"),
        "a mapping of paths to paths",
    )?;
    mapping
        .entries()
        .map(|(from, to)| {
            Ok((
                from.to_owned(),
                string(to, &mapping.path_of(from), "a path")?,
            ))
        })
        .collect()
}

fn script(fields: &Fields<'_>, key: &str) -> Result<Option<String>, TaskError> {
    let Some(value) = fields.get(key) else {
        return Ok(None);
    };
    string(
        value,
        &fields.path_of(key),
        "a shell script (a string; use | for several lines)",
    )
    .map(Some)
}

fn config(fields: &Fields<'_>) -> Result<Option<Json>, TaskError> {
    match fields.get("config") {
        None | Some(Value::Mapping(_)) => fields.json("config"),
        Some(other) => Err(TaskError::invalid(
            &fields.path_of("config"),
            &describe(other),
            "a mapping of config overrides",
        )),
    }
}

/// The shape SkyPilot's schema requires of each kept-as-is key.
fn check_passthrough(key: &str, value: &Value, path: &FieldPath) -> Result<(), TaskError> {
    let ok = match key {
        "event_callback" | "_user_specified_yaml" => value.is_string(),
        "api_server_access" => value.is_bool(),
        "managed_secrets" | "volume_mounts" => value.is_sequence(),
        _ => value.is_mapping(),
    };
    if ok {
        return Ok(());
    }
    let expected = match key {
        "event_callback" | "_user_specified_yaml" => "a string",
        "api_server_access" => "true or false",
        "managed_secrets" | "volume_mounts" => "a list",
        _ => "a mapping",
    };
    Err(TaskError::invalid(path, &describe(value), expected))
}
