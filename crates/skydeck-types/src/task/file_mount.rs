//! `file_mounts` values: a path or bucket URL, or a storage mapping
//! `{source, name, store, mode, persistent}`.

use super::error::{FieldPath, TaskError, did_you_mean};
use super::yaml::{Fields, describe, string};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value as Json;
use serde_yaml_ng::Value;
use std::collections::BTreeMap;

const KEYS: &[&str] = &[
    "name",
    "source",
    "store",
    "persistent",
    "mode",
    "type",
    "config",
    "_is_sky_managed",
    "_bucket_sub_path",
    "_force_delete",
];
const INTERNAL_KEYS: &[&str] = &["_is_sky_managed", "_bucket_sub_path", "_force_delete"];
const STORES: &[&str] = &[
    "s3",
    "gcs",
    "azure",
    "r2",
    "ibm",
    "oci",
    "nebius",
    "coreweave",
    "vastdata",
    "hf",
    "volume",
];
const MODES: &[&str] = &["MOUNT", "COPY", "MOUNT_CACHED"];
const EXPECTED: &str = "a local path, a bucket URL such as \"s3://bucket/dir\", or a storage mapping with source/name/store/mode";

/// What to put at one path on the nodes.
#[derive(Debug, Clone, PartialEq)]
pub enum FileMount {
    /// A path on the submitting machine, or a bucket URL (`s3://…`,
    /// `gs://…`), copied to the nodes.
    Source(String),
    /// A bucket to create or attach, and how.
    Storage(StorageMount),
}

/// A storage mapping in `file_mounts`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StorageMount {
    /// The bucket's name.
    pub name: Option<String>,
    /// Local paths or bucket URLs to upload; usually one.
    pub source: Vec<String>,
    /// `s3`, `gcs`, `azure`, `r2`, … (lower case).
    pub store: Option<String>,
    /// `MOUNT`, `COPY` or `MOUNT_CACHED`.
    pub mode: Option<String>,
    /// Keep the bucket after the task's cluster is gone.
    pub persistent: Option<bool>,
    /// A tuned preset for `MOUNT_CACHED`, e.g. `MODEL_CHECKPOINT_RO`.
    pub mount_type: Option<String>,
    pub config: Option<Json>,
    /// SkyPilot's internal keys (`_is_sky_managed`…), kept as given.
    pub internal: BTreeMap<String, Json>,
}

impl FileMount {
    pub(crate) fn from_yaml(value: &Value, path: &FieldPath) -> Result<Self, TaskError> {
        match value {
            Value::String(source) => Ok(Self::Source(source.clone())),
            Value::Mapping(_) => StorageMount::from_yaml(value, path).map(Self::Storage),
            other => Err(TaskError::invalid(path, &describe(other), EXPECTED)),
        }
    }
}

impl StorageMount {
    fn from_yaml(value: &Value, path: &FieldPath) -> Result<Self, TaskError> {
        let fields = Fields::strict(value, path, EXPECTED, KEYS, &[])?;
        let source = match fields.get("source") {
            None => Vec::new(),
            Some(Value::String(one)) => vec![one.clone()],
            Some(Value::Sequence(items)) if !items.is_empty() => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    string(
                        item,
                        &fields.path_of("source").index(i),
                        "a path or bucket URL",
                    )
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(TaskError::invalid(
                    &fields.path_of("source"),
                    &describe(other),
                    "a path or bucket URL, or a non-empty list of them",
                ));
            }
        };
        let mut mount = Self {
            name: fields.string("name")?,
            source,
            store: word(&fields, "store", STORES, str::to_ascii_lowercase)?,
            mode: word(&fields, "mode", MODES, str::to_ascii_uppercase)?,
            persistent: fields.bool("persistent")?,
            mount_type: fields.string("type")?.map(|t| t.to_ascii_uppercase()),
            config: match fields.get("config") {
                None | Some(Value::Mapping(_)) => fields.json("config")?,
                Some(other) => {
                    return Err(TaskError::invalid(
                        &fields.path_of("config"),
                        &describe(other),
                        "a mapping",
                    ));
                }
            },
            internal: BTreeMap::new(),
        };
        for key in INTERNAL_KEYS {
            if let Some(json) = fields.json(key)? {
                mount.internal.insert((*key).to_owned(), json);
            }
        }
        Ok(mount)
    }
}

/// A case-insensitive word from `allowed`, stored in its canonical case.
fn word(
    fields: &Fields<'_>,
    key: &str,
    allowed: &[&str],
    canonical: fn(&str) -> String,
) -> Result<Option<String>, TaskError> {
    let Some(text) = fields.string(key)? else {
        return Ok(None);
    };
    let normal = canonical(&text);
    if allowed.contains(&normal.as_str()) {
        return Ok(Some(normal));
    }
    let error = TaskError::invalid(
        &fields.path_of(key),
        &describe(&Value::String(text)),
        &format!("one of {}", allowed.join(", ")),
    );
    Err(match did_you_mean(&normal, allowed) {
        Some(suggestion) => error.with_suggestion(suggestion),
        None => error,
    })
}

impl Serialize for FileMount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Source(source) => serializer.serialize_str(source),
            Self::Storage(storage) => storage.serialize(serializer),
        }
    }
}

impl Serialize for StorageMount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if let Some(name) = &self.name {
            map.serialize_entry("name", name)?;
        }
        match self.source.as_slice() {
            [] => {}
            [one] => map.serialize_entry("source", one)?,
            many => map.serialize_entry("source", many)?,
        }
        if let Some(store) = &self.store {
            map.serialize_entry("store", store)?;
        }
        if let Some(mode) = &self.mode {
            map.serialize_entry("mode", mode)?;
        }
        if let Some(persistent) = self.persistent {
            map.serialize_entry("persistent", &persistent)?;
        }
        if let Some(mount_type) = &self.mount_type {
            map.serialize_entry("type", mount_type)?;
        }
        if let Some(config) = &self.config {
            map.serialize_entry("config", config)?;
        }
        for (key, value) in &self.internal {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for FileMount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::from_yaml(&value, &FieldPath::root()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FileMount, TaskError> {
        let value: Value = serde_yaml_ng::from_str(text).unwrap();
        FileMount::from_yaml(&value, &FieldPath::root().key("file_mounts").key("/data"))
    }

    #[test]
    fn paths_and_storage_mappings() {
        assert_eq!(parse("~/data").unwrap(), FileMount::Source("~/data".into()));
        let FileMount::Storage(storage) =
            parse("{name: my-bucket, source: ./data, store: S3, mode: mount, persistent: false}")
                .unwrap()
        else {
            panic!("expected a storage mapping");
        };
        assert_eq!(storage.store.as_deref(), Some("s3"));
        assert_eq!(storage.mode.as_deref(), Some("MOUNT"));
        assert_eq!(storage.source, vec!["./data".to_owned()]);
    }

    #[test]
    fn typos_in_storage_mappings() {
        let error = parse("{sorce: ./data}").unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown field \"sorce\" in file_mounts./data; did you mean \"source\"?"
        );
        let error = parse("{source: ./d, mode: MOUTN}").unwrap_err();
        assert_eq!(error.suggestion(), Some("did you mean \"MOUNT\"?"));
        assert!(parse("{store: dropbox}").is_err());
        assert!(parse("42").is_err());
        assert!(parse("{source: []}").is_err());
    }

    #[test]
    fn round_trips_through_yaml() {
        let mount =
            parse("{name: b, source: [./a, ./b], store: gcs, mode: COPY, _force_delete: true}")
                .unwrap();
        let yaml = serde_yaml_ng::to_string(&mount).unwrap();
        assert_eq!(parse(&yaml).unwrap(), mount);
    }
}
