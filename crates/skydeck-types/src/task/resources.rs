//! `resources`: what each node of a task needs, and where it may run.

use super::accelerators::{Accelerator, Accelerators};
use super::autostop::Autostop;
use super::error::{FieldPath, TaskError, did_you_mean};
use super::infra::{Infra, canonical_kind, unknown_kind};
use super::ports::{self, PortRange};
use super::quantity::{CpuRequest, MemoryRequest, disk_size_from_yaml};
use super::yaml::{Fields, describe, integer, number, scalar_to_string};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value as Json;
use serde_yaml_ng::Value;
use std::collections::BTreeMap;

/// Keys of a resources mapping, as SkyPilot 0.14's schema lists them
/// (`gpus` is its alias of `accelerators`).
const KEYS: &[&str] = &[
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
    "job_recovery",
    "volumes",
    "disk_size",
    "disk_tier",
    "network_tier",
    "local_disk",
    "max_hourly_cost",
    "ports",
    "labels",
    "accelerator_args",
    "image_id",
    "autostop",
    "priority",
    "priority_class",
    "any_of",
    "ordered",
    "ephemeral_storage",
    "_no_missing_accel_warnings",
    "_docker_login_config",
    "_is_image_managed",
    "_requires_fuse",
    "_cluster_config_overrides",
];

/// Keys SkyPilot's client and controllers set for themselves; kept as they
/// are so a task passes through unchanged.
const INTERNAL_KEYS: &[&str] = &[
    "ephemeral_storage",
    "_no_missing_accel_warnings",
    "_docker_login_config",
    "_is_image_managed",
    "_requires_fuse",
    "_cluster_config_overrides",
];

const HINTS: &[(&str, &str)] = &[
    (
        "hooks",
        "lifecycle hooks go under the task's config.hooks, not resources",
    ),
    ("spot_recovery", "it is now called \"job_recovery\""),
    ("gpu", "did you mean \"gpus\" (or \"accelerators\")?"),
    ("cpu", "did you mean \"cpus\"?"),
];

const ENTRY_HINTS: &[(&str, &str)] = &[
    (
        "any_of",
        "any_of and ordered cannot be nested inside their own entries",
    ),
    (
        "ordered",
        "any_of and ordered cannot be nested inside their own entries",
    ),
    (
        "hooks",
        "lifecycle hooks go under the task's config.hooks, not resources",
    ),
];

const DISK_TIERS: &[&str] = &["low", "medium", "high", "ultra", "best"];
const NETWORK_TIERS: &[&str] = &["standard", "best"];
const ACCELERATOR_ARGS: &[&str] = &[
    "runtime_version",
    "tpu_name",
    "tpu_vm",
    "gcp_queued_resource",
];
const PRIORITY_RANGE: (i64, i64) = (-1000, 1000);

/// A VM or container image: one for everywhere, or one per region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ImageId {
    Image(String),
    ByRegion(BTreeMap<String, String>),
}

/// The resources of a task (or of one `any_of`/`ordered` candidate).
/// Every field is optional; an empty `Resources` lets the scheduler choose.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Resources {
    /// `local`, `k8s`, `kubernetes/<context>`, `aws/us-east-1`, `ssh/<pool>`…
    #[serde(skip_serializing_if = "Option::is_none")]
    pub infra: Option<String>,
    /// Legacy spelling of `infra`'s first segment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<CpuRequest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryRequest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accelerators: Option<Accelerators>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accelerator_args: Option<Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_spot: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_recovery: Option<Json>,
    /// Disk size in GB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_tier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_tier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_disk: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_hourly_cost: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<PortRange>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_id: Option<ImageId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autostop: Option<Autostop>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority_class: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Json>,
    /// Candidates of which any one will do; each overrides these fields.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub any_of: Vec<Resources>,
    /// Candidates in order of preference; each overrides these fields.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ordered: Vec<Resources>,
    /// SkyPilot's internal keys (`_docker_login_config`…), kept as given.
    #[serde(flatten)]
    pub internal: BTreeMap<String, Json>,
}

impl Resources {
    /// Reads a resources mapping. `entry` is true for an `any_of`/`ordered`
    /// candidate, which may not nest further choices.
    pub(crate) fn from_yaml(
        value: &Value,
        path: &FieldPath,
        entry: bool,
    ) -> Result<Self, TaskError> {
        if value.is_null() {
            return Ok(Self::default());
        }
        let (known, hints): (Vec<&str>, _) = if entry {
            (
                KEYS.iter()
                    .copied()
                    .filter(|k| *k != "any_of" && *k != "ordered")
                    .collect(),
                ENTRY_HINTS,
            )
        } else {
            (KEYS.to_vec(), HINTS)
        };
        let fields = Fields::strict(value, path, "a mapping of resources", &known, hints)?;
        let mut resources = Self {
            infra: infra(&fields)?,
            cloud: cloud(&fields)?,
            region: fields.string("region")?,
            zone: fields.string("zone")?,
            instance_type: fields.string("instance_type")?,
            cpus: read(&fields, "cpus", CpuRequest::from_yaml)?,
            memory: read(&fields, "memory", MemoryRequest::from_yaml)?,
            accelerators: accelerators(&fields, !entry)?,
            accelerator_args: accelerator_args(&fields)?,
            use_spot: fields.bool("use_spot")?,
            job_recovery: job_recovery(&fields)?,
            disk_size: read(&fields, "disk_size", disk_size_from_yaml)?,
            disk_tier: one_of(&fields, "disk_tier", DISK_TIERS)?,
            network_tier: one_of(&fields, "network_tier", NETWORK_TIERS)?,
            local_disk: scalar_string(&fields, "local_disk")?,
            max_hourly_cost: max_hourly_cost(&fields)?,
            ports: read(&fields, "ports", PortRange::list_from_yaml)?,
            labels: labels(&fields)?,
            image_id: image_id(&fields)?,
            autostop: read(&fields, "autostop", Autostop::from_yaml)?,
            priority: priority(&fields)?,
            priority_class: fields.string("priority_class")?,
            volumes: list_json(&fields, "volumes")?,
            any_of: candidates(&fields, "any_of")?,
            ordered: candidates(&fields, "ordered")?,
            internal: BTreeMap::new(),
        };
        for key in INTERNAL_KEYS {
            if let Some(json) = fields.json(key)? {
                resources.internal.insert((*key).to_owned(), json);
            }
        }
        check_combinations(&resources, &fields)?;
        Ok(resources)
    }

    /// The candidates the scheduler may pick from, most preferred first
    /// when the task states a preference (`ordered`, a list of
    /// accelerators). Each is these resources overridden by one
    /// `any_of`/`ordered` entry and carries a single accelerator type; a
    /// task with no choices gives exactly one.
    pub fn choices(&self) -> Vec<Resources> {
        let base = Resources {
            any_of: Vec::new(),
            ordered: Vec::new(),
            ..self.clone()
        };
        let entries = if !self.any_of.is_empty() {
            &self.any_of
        } else if !self.ordered.is_empty() {
            &self.ordered
        } else {
            return base.split_accelerators();
        };
        entries
            .iter()
            .flat_map(|entry| base.overridden_by(entry).split_accelerators())
            .collect()
    }

    /// True when `choices()` is in order of preference rather than a set.
    pub fn choices_are_ordered(&self) -> bool {
        !self.ordered.is_empty() || matches!(self.accelerators, Some(Accelerators::Ordered(_)))
    }

    /// These resources with every field that `entry` sets taken from it;
    /// labels are merged, as SkyPilot merges them.
    fn overridden_by(&self, entry: &Resources) -> Resources {
        fn pick<T: Clone>(entry: &Option<T>, base: &Option<T>) -> Option<T> {
            entry.clone().or_else(|| base.clone())
        }
        let mut labels = self.labels.clone();
        labels.extend(entry.labels.clone());
        let mut internal = self.internal.clone();
        internal.extend(entry.internal.clone());
        Resources {
            infra: pick(&entry.infra, &self.infra),
            cloud: pick(&entry.cloud, &self.cloud),
            region: pick(&entry.region, &self.region),
            zone: pick(&entry.zone, &self.zone),
            instance_type: pick(&entry.instance_type, &self.instance_type),
            cpus: pick(&entry.cpus, &self.cpus),
            memory: pick(&entry.memory, &self.memory),
            accelerators: pick(&entry.accelerators, &self.accelerators),
            accelerator_args: pick(&entry.accelerator_args, &self.accelerator_args),
            use_spot: pick(&entry.use_spot, &self.use_spot),
            job_recovery: pick(&entry.job_recovery, &self.job_recovery),
            disk_size: pick(&entry.disk_size, &self.disk_size),
            disk_tier: pick(&entry.disk_tier, &self.disk_tier),
            network_tier: pick(&entry.network_tier, &self.network_tier),
            local_disk: pick(&entry.local_disk, &self.local_disk),
            max_hourly_cost: pick(&entry.max_hourly_cost, &self.max_hourly_cost),
            ports: pick(&entry.ports, &self.ports),
            labels,
            image_id: pick(&entry.image_id, &self.image_id),
            autostop: pick(&entry.autostop, &self.autostop),
            priority: pick(&entry.priority, &self.priority),
            priority_class: pick(&entry.priority_class, &self.priority_class),
            volumes: pick(&entry.volumes, &self.volumes),
            any_of: Vec::new(),
            ordered: Vec::new(),
            internal,
        }
    }

    /// One copy per accelerator candidate, as SkyPilot expands them.
    fn split_accelerators(self) -> Vec<Resources> {
        match &self.accelerators {
            Some(many @ (Accelerators::AnyOf(_) | Accelerators::Ordered(_))) => many
                .candidates()
                .iter()
                .map(|accelerator| Resources {
                    accelerators: Some(Accelerators::One(accelerator.clone())),
                    ..self.clone()
                })
                .collect(),
            _ => vec![self],
        }
    }

    /// Where these resources may run, from `infra` or the legacy
    /// `cloud`/`region`/`zone`; `None` when unconstrained.
    pub fn infra_spec(&self) -> Option<Infra> {
        if let Some(infra) = &self.infra {
            return infra.parse().ok();
        }
        if self.cloud.is_none() && self.region.is_none() && self.zone.is_none() {
            return None;
        }
        Some(Infra {
            kind: self.cloud.as_deref().map(|cloud| {
                canonical_kind(cloud).map_or_else(|| cloud.to_ascii_lowercase(), str::to_owned)
            }),
            region: self.region.clone(),
            zone: self.zone.clone(),
        })
    }

    /// The infrastructure kind: `local`, `kubernetes` (for `k8s` too),
    /// `aws`, `ssh`, `slurm`…; `None` when any will do.
    pub fn infra_kind(&self) -> Option<String> {
        self.infra_spec().and_then(|infra| infra.kind)
    }

    pub fn cpus_per_node(&self) -> Option<CpuRequest> {
        self.cpus
    }

    pub fn memory_gb(&self) -> Option<f64> {
        self.memory.map(|m| m.gb)
    }

    /// The accelerator each node needs: for a candidate from `choices()`,
    /// its only one; otherwise the most preferred.
    pub fn accelerator(&self) -> Option<&Accelerator> {
        self.accelerators
            .as_ref()
            .and_then(|a| a.candidates().first())
    }

    /// Every accelerator that would do, most preferred first; empty when
    /// none is asked for.
    pub fn accelerators(&self) -> &[Accelerator] {
        self.accelerators
            .as_ref()
            .map_or(&[], Accelerators::candidates)
    }

    /// Every port to open, sorted, each once.
    pub fn ports(&self) -> Vec<u16> {
        self.ports.as_deref().map(ports::expand).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl<'de> Deserialize<'de> for Resources {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::from_yaml(&value, &FieldPath::root(), false).map_err(serde::de::Error::custom)
    }
}

fn read<T>(
    fields: &Fields<'_>,
    key: &str,
    parse: impl Fn(&Value, &FieldPath) -> Result<T, TaskError>,
) -> Result<Option<T>, TaskError> {
    fields
        .get(key)
        .map(|v| parse(v, &fields.path_of(key)))
        .transpose()
}

fn infra(fields: &Fields<'_>) -> Result<Option<String>, TaskError> {
    let Some(text) = fields.string("infra")? else {
        return Ok(None);
    };
    Infra::parse_at(&text, &fields.path_of("infra"))?;
    Ok(Some(text.trim().to_owned()))
}

fn cloud(fields: &Fields<'_>) -> Result<Option<String>, TaskError> {
    let Some(text) = fields.string("cloud")? else {
        return Ok(None);
    };
    match canonical_kind(&text) {
        Some(kind) => Ok(Some(kind.to_owned())),
        None => Err(unknown_kind(&fields.path_of("cloud"), &text, &text)),
    }
}

fn accelerators(
    fields: &Fields<'_>,
    allow_choice: bool,
) -> Result<Option<Accelerators>, TaskError> {
    if fields.has("accelerators") && fields.has("gpus") {
        return Err(TaskError::conflict(
            fields.path_of("gpus"),
            "give either accelerators or gpus (its alias), not both",
        )
        .at_key());
    }
    let key = if fields.has("gpus") {
        "gpus"
    } else {
        "accelerators"
    };
    read(fields, key, |v, path| {
        Accelerators::from_yaml(v, path, allow_choice)
    })
}

fn accelerator_args(fields: &Fields<'_>) -> Result<Option<Json>, TaskError> {
    let Some(value) = fields.get("accelerator_args") else {
        return Ok(None);
    };
    let path = fields.path_of("accelerator_args");
    Fields::strict(
        value,
        &path,
        "a mapping of accelerator arguments",
        ACCELERATOR_ARGS,
        &[],
    )?;
    fields.json("accelerator_args")
}

fn job_recovery(fields: &Fields<'_>) -> Result<Option<Json>, TaskError> {
    match fields.get("job_recovery") {
        None | Some(Value::String(_) | Value::Mapping(_)) => fields.json("job_recovery"),
        Some(other) => Err(TaskError::invalid(
            &fields.path_of("job_recovery"),
            &describe(other),
            "a strategy name such as \"EAGER_NEXT_REGION\" or a mapping with strategy/max_restarts_on_errors",
        )),
    }
}

/// A lower-case word from `allowed`, given in any case.
fn one_of(fields: &Fields<'_>, key: &str, allowed: &[&str]) -> Result<Option<String>, TaskError> {
    let Some(text) = fields.string(key)? else {
        return Ok(None);
    };
    let lower = text.to_ascii_lowercase();
    if allowed.contains(&lower.as_str()) {
        return Ok(Some(lower));
    }
    let error = TaskError::invalid(
        &fields.path_of(key),
        &describe(&Value::String(text)),
        &format!("one of {}", allowed.join(", ")),
    );
    Err(match did_you_mean(&lower, allowed) {
        Some(suggestion) => error.with_suggestion(suggestion),
        None => error,
    })
}

fn scalar_string(fields: &Fields<'_>, key: &str) -> Result<Option<String>, TaskError> {
    fields
        .get(key)
        .map(|v| {
            scalar_to_string(v)
                .ok_or_else(|| TaskError::invalid(&fields.path_of(key), &describe(v), "a string"))
        })
        .transpose()
}

fn max_hourly_cost(fields: &Fields<'_>) -> Result<Option<f64>, TaskError> {
    const EXPECTED: &str = "a cost in dollars per hour greater than 0";
    let Some(value) = fields.get("max_hourly_cost") else {
        return Ok(None);
    };
    let path = fields.path_of("max_hourly_cost");
    let cost = number(value, &path, EXPECTED)?;
    if cost <= 0.0 {
        return Err(TaskError::invalid(&path, &describe(value), EXPECTED));
    }
    Ok(Some(cost))
}

fn labels(fields: &Fields<'_>) -> Result<BTreeMap<String, String>, TaskError> {
    let Some(value) = fields.get("labels") else {
        return Ok(BTreeMap::new());
    };
    let labels = Fields::open(
        value,
        &fields.path_of("labels"),
        "a mapping of label names to values",
    )?;
    labels
        .entries()
        .map(|(key, v)| {
            let text = scalar_to_string(v).ok_or_else(|| {
                TaskError::invalid(
                    &labels.path_of(key),
                    &describe(v),
                    "a label value (a string)",
                )
            })?;
            Ok((key.to_owned(), text))
        })
        .collect()
}

fn image_id(fields: &Fields<'_>) -> Result<Option<ImageId>, TaskError> {
    const EXPECTED: &str =
        "an image such as \"docker:ubuntu:22.04\", or a mapping of region to image";
    let Some(value) = fields.get("image_id") else {
        return Ok(None);
    };
    let path = fields.path_of("image_id");
    match value {
        Value::String(image) => Ok(Some(ImageId::Image(image.clone()))),
        Value::Mapping(_) => {
            let regions = Fields::open(value, &path, EXPECTED)?;
            let map = regions
                .entries()
                .map(|(region, v)| {
                    let image = scalar_to_string(v).ok_or_else(|| {
                        TaskError::invalid(&regions.path_of(region), &describe(v), "an image name")
                    })?;
                    Ok((region.to_owned(), image))
                })
                .collect::<Result<_, TaskError>>()?;
            Ok(Some(ImageId::ByRegion(map)))
        }
        other => Err(TaskError::invalid(&path, &describe(other), EXPECTED)),
    }
}

fn priority(fields: &Fields<'_>) -> Result<Option<i64>, TaskError> {
    let (min, max) = PRIORITY_RANGE;
    let expected = format!("a whole number from {min} to {max}");
    let Some(value) = fields.get("priority") else {
        return Ok(None);
    };
    let path = fields.path_of("priority");
    let priority = integer(value, &path, &expected)?;
    if !(min..=max).contains(&priority) {
        return Err(TaskError::invalid(&path, &describe(value), &expected));
    }
    Ok(Some(priority))
}

fn list_json(fields: &Fields<'_>, key: &str) -> Result<Option<Json>, TaskError> {
    match fields.get(key) {
        None | Some(Value::Sequence(_)) => fields.json(key),
        Some(other) => Err(TaskError::invalid(
            &fields.path_of(key),
            &describe(other),
            "a list",
        )),
    }
}

fn candidates(fields: &Fields<'_>, key: &str) -> Result<Vec<Resources>, TaskError> {
    let Some(value) = fields.get(key) else {
        return Ok(Vec::new());
    };
    let path = fields.path_of(key);
    let Value::Sequence(items) = value else {
        return Err(TaskError::invalid(
            &path,
            &describe(value),
            "a list of resources mappings",
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            if item.is_null() {
                return Err(TaskError::invalid(
                    &path.index(i),
                    "null",
                    "a resources mapping",
                ));
            }
            Resources::from_yaml(item, &path.index(i), true)
        })
        .collect()
}

/// Fields that are each valid but that SkyPilot refuses together.
fn check_combinations(resources: &Resources, fields: &Fields<'_>) -> Result<(), TaskError> {
    if resources.infra.is_some()
        && let Some(key) = ["cloud", "region", "zone"]
            .into_iter()
            .find(|k| fields.has(k))
    {
        return Err(TaskError::conflict(
            fields.path_of(key),
            format!("give either infra or the legacy {key}, not both"),
        )
        .with_suggestion("fold it into infra, e.g. infra: aws/us-east-1/us-east-1a")
        .at_key());
    }
    if !resources.any_of.is_empty() && !resources.ordered.is_empty() {
        return Err(TaskError::conflict(
            fields.path_of("ordered"),
            "give either any_of or ordered, not both",
        )
        .at_key());
    }
    let several = resources
        .accelerators
        .as_ref()
        .is_some_and(|a| a.candidates().len() > 1);
    let key = if fields.has("gpus") {
        "gpus"
    } else {
        "accelerators"
    };
    if several && !resources.ordered.is_empty() {
        return Err(TaskError::conflict(
            fields.path_of(key),
            "several accelerators cannot be combined with ordered; list the choices as ordered entries",
        ));
    }
    if matches!(resources.accelerators, Some(Accelerators::Ordered(_)))
        && !resources.any_of.is_empty()
    {
        return Err(TaskError::conflict(
            fields.path_of(key),
            "a preference list of accelerators cannot be combined with any_of; use a mapping {A: n, B: n}",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Resources, TaskError> {
        let value: Value = serde_yaml_ng::from_str(text).unwrap();
        Resources::from_yaml(&value, &FieldPath::root().key("resources"), false)
    }

    #[test]
    fn reads_the_common_fields() {
        let r = parse(
            "{infra: k8s/ctx, cpus: 2+, memory: 16GB, gpus: H100:8, use_spot: true, disk_size: 100, \
             ports: [8080, 9000-9001], labels: {team: ml, tier: 1}, image_id: docker:ubuntu}",
        )
        .unwrap();
        assert_eq!(r.infra_kind().as_deref(), Some("kubernetes"));
        assert_eq!(r.cpus_per_node().unwrap().to_string(), "2+");
        assert_eq!(r.memory_gb(), Some(16.0));
        assert_eq!(r.accelerator().unwrap().to_string(), "H100:8");
        assert_eq!(r.ports(), vec![8080, 9000, 9001]);
        assert_eq!(r.labels["tier"], "1");
        assert_eq!(r.image_id, Some(ImageId::Image("docker:ubuntu".into())));
        assert_eq!(r.use_spot, Some(true));
        assert_eq!(r.disk_size, Some(100));
    }

    #[test]
    fn legacy_cloud_keys_give_the_infra_kind() {
        let r = parse("{cloud: AWS, region: us-east-1}").unwrap();
        assert_eq!(r.infra_kind().as_deref(), Some("aws"));
        assert_eq!(r.infra_spec().unwrap().to_string(), "aws/us-east-1");
        assert_eq!(parse("{}").unwrap().infra_kind(), None);
        assert_eq!(parse("{infra: '*'}").unwrap().infra_kind(), None);
    }

    #[test]
    fn unknown_keys_suggest_the_right_one() {
        let error = parse("{cpu: 2}").unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown field \"cpu\" in resources; did you mean \"cpus\"?"
        );
        let error = parse("{acelerators: H100}").unwrap_err();
        assert_eq!(error.suggestion(), Some("did you mean \"accelerators\"?"));
        let error = parse("{hooks: []}").unwrap_err();
        assert!(error.to_string().contains("config.hooks"), "{error}");
    }

    #[test]
    fn conflicts() {
        assert!(parse("{infra: aws, region: us-east-1}").is_err());
        assert!(parse("{accelerators: H100, gpus: A100}").is_err());
        assert!(parse("{any_of: [{cpus: 2}], ordered: [{cpus: 4}]}").is_err());
        assert!(parse("{accelerators: {A100: 1, H100: 1}, ordered: [{cpus: 4}]}").is_err());
        assert!(parse("{accelerators: [A100, H100], any_of: [{cpus: 4}]}").is_err());
        let nested = parse("{any_of: [{cpus: 2, any_of: [{cpus: 4}]}]}").unwrap_err();
        assert_eq!(nested.path().to_string(), "resources.any_of[0].any_of");
        assert!(nested.to_string().contains("cannot be nested"), "{nested}");
    }

    #[test]
    fn enums_and_ranges() {
        assert_eq!(
            parse("{disk_tier: HIGH}").unwrap().disk_tier.as_deref(),
            Some("high")
        );
        let error = parse("{disk_tier: hihg}").unwrap_err();
        assert_eq!(error.suggestion(), Some("did you mean \"high\"?"));
        assert!(parse("{priority: 5000}").is_err());
        assert!(parse("{max_hourly_cost: 0}").is_err());
        assert!(parse("{infra: mars}").is_err());
        assert!(parse("{cloud: mars}").is_err());
        assert!(parse("{accelerator_args: {tpu_vn: true}}").is_err());
    }

    #[test]
    fn choices_merge_entries_into_the_base() {
        let r = parse(
            "{cpus: 4, labels: {a: '1'}, any_of: [{infra: aws, labels: {b: '2'}}, {infra: k8s, cpus: 8}]}",
        )
        .unwrap();
        let choices = r.choices();
        assert_eq!(choices.len(), 2);
        assert_eq!(choices[0].infra_kind().as_deref(), Some("aws"));
        assert_eq!(choices[0].cpus.unwrap().count, 4.0);
        assert_eq!(choices[0].labels.len(), 2);
        assert_eq!(choices[1].cpus.unwrap().count, 8.0);
        assert!(choices.iter().all(|c| c.any_of.is_empty()));
        assert!(!r.choices_are_ordered());
    }

    #[test]
    fn choices_split_accelerator_lists() {
        let r = parse("{accelerators: [H100:8, A100:8]}").unwrap();
        assert_eq!(r.accelerators().len(), 2);
        assert!(parse("{}").unwrap().accelerators().is_empty());
        let names: Vec<_> = r
            .choices()
            .iter()
            .map(|c| c.accelerator().unwrap().name.clone())
            .collect();
        assert_eq!(names, ["H100", "A100"]);
        assert!(r.choices_are_ordered());
        assert_eq!(parse("{}").unwrap().choices(), vec![Resources::default()]);
    }

    #[test]
    fn internal_keys_pass_through() {
        let r = parse(
            "{_docker_login_config: {username: u, password: p, server: s}, _requires_fuse: true}",
        )
        .unwrap();
        assert_eq!(r.internal["_requires_fuse"], Json::Bool(true));
        let yaml = serde_yaml_ng::to_string(&r).unwrap();
        assert_eq!(parse(&yaml).unwrap(), r);
    }
}
