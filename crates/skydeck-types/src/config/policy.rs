//! `admin_policy`: a REST policy service's URL, or Skydeck's built-in
//! declarative rules.
//!
//! SkyPilot also takes a Python class path here; Skydeck cannot import
//! Python, so that is an error that says how to get the same effect.

use super::error::{ConfigError, child, closest};
use super::schema::is_http_url;
use super::shape::{Others, Shape};
use super::workspace::canonical_infra;
use crate::task::INFRA_KINDS;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

const KEY: &str = "admin_policy";

/// How requests are checked before they run.
#[derive(Debug, Clone, PartialEq)]
pub enum AdminPolicy {
    /// SkyPilot's RESTful policy: each request is POSTed to this URL.
    Rest { url: String },
    /// Skydeck's built-in declarative policy.
    Rules(PolicyRules),
}

/// The built-in policy: caps and requirements every task must meet, and
/// an autostop forced on clusters that would otherwise idle too long.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyRules {
    /// Label keys every task's `resources.labels` must have.
    pub required_labels: Vec<String>,
    /// Infrastructure kinds a task may use (canonical, lower case); `None`
    /// allows any.
    pub allowed_infra: Option<Vec<String>>,
    /// CPUs per node.
    pub max_cpus: Option<f64>,
    /// Memory per node, in GB.
    pub max_memory_gb: Option<f64>,
    /// Accelerators per node, counted over all types.
    pub max_accelerators: Option<f64>,
    pub max_num_nodes: Option<u32>,
    /// Forced on launch when the request sets no autostop or a longer one.
    pub autostop: Option<ForcedAutostop>,
}

/// The autostop a policy imposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForcedAutostop {
    pub idle_minutes: u64,
    /// Tear the cluster down instead of stopping it.
    pub down: bool,
}

/// SkyPilot's `request_options`: what a launch asked for beyond the task.
/// `None` for requests that are not about one cluster (managed jobs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRequestOptions {
    pub cluster_name: Option<String>,
    /// Negative turns autostop off, as `sky autostop --cancel` does.
    pub idle_minutes_to_autostop: Option<i64>,
    #[serde(default)]
    pub down: bool,
    #[serde(default)]
    pub dryrun: bool,
}

const POSITIVE: &str = "a number greater than 0";

const RULES: Shape = Shape::Map(
    &[
        ("required_labels", Shape::List(&Shape::Str)),
        ("allowed_infra", Shape::List(&Shape::Str)),
        ("max_cpus", Shape::Check(POSITIVE, positive)),
        ("max_memory", Shape::Check(POSITIVE, positive)),
        ("max_accelerators", Shape::Check(POSITIVE, positive)),
        (
            "max_num_nodes",
            Shape::Check("a whole number, 1 or more", positive_whole),
        ),
        (
            "autostop",
            Shape::Either(&[
                Shape::Check("idle minutes such as 30", positive_whole),
                Shape::Map(
                    &[
                        (
                            "idle_minutes",
                            Shape::Check("a whole number, 1 or more", positive_whole),
                        ),
                        ("down", Shape::Bool),
                    ],
                    Others::Reject,
                ),
            ]),
        ),
    ],
    Others::Reject,
);

impl AdminPolicy {
    /// Reads the value of `admin_policy`; `None` for null (no policy).
    pub fn from_json(value: &Json) -> Result<Option<Self>, ConfigError> {
        match value {
            Json::Null => Ok(None),
            Json::String(text) => Self::from_text(text.trim()).map(Some),
            Json::Object(_) => PolicyRules::from_json(value).map(|rules| Some(Self::Rules(rules))),
            other => Err(ConfigError::expected(
                KEY,
                "a policy URL (https://…) or a mapping of policy rules",
                other,
            )),
        }
    }

    fn from_text(text: &str) -> Result<Self, ConfigError> {
        if is_http_url(text) {
            return Ok(Self::Rest {
                url: text.to_owned(),
            });
        }
        if text.is_empty() {
            return Err(ConfigError::new(
                KEY,
                "is empty: give a policy URL (https://…) or a mapping of policy rules, \
                 or remove the key",
            ));
        }
        Err(ConfigError::new(
            KEY,
            format!(
                "{text:?} is a Python policy class, which Skydeck cannot run. Serve the \
                 policy over HTTP and give its URL instead (admin_policy: \
                 https://policy.example.com/; SkyPilot's examples/admin_policy/example_server \
                 wraps a policy class that way), or use Skydeck's built-in rules \
                 (admin_policy: {{required_labels: [team], max_cpus: 16, allowed_infra: [kubernetes]}})"
            ),
        ))
    }
}

impl PolicyRules {
    fn from_json(value: &Json) -> Result<Self, ConfigError> {
        RULES.check(value, KEY)?;
        let number = |key: &str| value.get(key).and_then(Json::as_f64);
        let present = |key: &str| value.get(key).filter(|v| !v.is_null());
        let strings = |key: &str| -> Option<Vec<String>> {
            value.get(key)?.as_array().map(|items| {
                items
                    .iter()
                    .filter_map(|item| item.as_str().map(str::to_owned))
                    .collect()
            })
        };
        let allowed_infra = strings("allowed_infra")
            .map(|kinds| {
                kinds
                    .iter()
                    .enumerate()
                    .map(|(i, kind)| infra_kind(kind, i))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        if allowed_infra.as_ref().is_some_and(Vec::is_empty) {
            return Err(ConfigError::new(
                &child(KEY, "allowed_infra"),
                "is empty, which would reject every task; list the infrastructure tasks may use, \
                 or remove the key to allow any",
            ));
        }
        let autostop = present("autostop").map(|autostop| match autostop {
            Json::Object(_) => ForcedAutostop {
                // The schema check guarantees whole numbers here.
                idle_minutes: autostop
                    .get("idle_minutes")
                    .and_then(Json::as_u64)
                    .unwrap_or(DEFAULT_IDLE_MINUTES),
                down: autostop
                    .get("down")
                    .and_then(Json::as_bool)
                    .unwrap_or(false),
            },
            minutes => ForcedAutostop {
                idle_minutes: minutes.as_u64().unwrap_or(DEFAULT_IDLE_MINUTES),
                down: false,
            },
        });
        Ok(Self {
            required_labels: strings("required_labels").unwrap_or_default(),
            allowed_infra,
            max_cpus: number("max_cpus"),
            max_memory_gb: number("max_memory"),
            max_accelerators: number("max_accelerators"),
            max_num_nodes: value
                .get("max_num_nodes")
                .and_then(Json::as_u64)
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            autostop,
        })
    }
}

/// SkyPilot's idle time for `autostop: true`.
pub(crate) const DEFAULT_IDLE_MINUTES: u64 = 5;

fn infra_kind(kind: &str, index: usize) -> Result<String, ConfigError> {
    let canonical = canonical_infra(kind);
    if INFRA_KINDS.contains(&canonical.as_str()) {
        return Ok(canonical);
    }
    let mut error = ConfigError::expected(
        &super::error::item(&child(KEY, "allowed_infra"), index),
        "an infrastructure name such as local, kubernetes, ssh, slurm or aws",
        &Json::String(kind.to_owned()),
    );
    if let Some(near) = closest(&canonical, INFRA_KINDS.iter().copied()) {
        error.message.push_str(&format!("; did you mean `{near}`?"));
    }
    Err(error)
}

fn positive(value: &Json, path: &str) -> Result<(), ConfigError> {
    match value.as_f64() {
        Some(n) if n > 0.0 => Ok(()),
        _ => Err(ConfigError::expected(path, POSITIVE, value)),
    }
}

fn positive_whole(value: &Json, path: &str) -> Result<(), ConfigError> {
    match value.as_u64() {
        Some(n) if n >= 1 => Ok(()),
        _ => Err(ConfigError::expected(
            path,
            "a whole number, 1 or more",
            value,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read_rules(value: Json) -> PolicyRules {
        match AdminPolicy::from_json(&value) {
            Ok(Some(AdminPolicy::Rules(rules))) => rules,
            other => panic!("{value}: {other:?}"),
        }
    }

    #[test]
    fn urls_are_rest_policies() {
        assert_eq!(
            AdminPolicy::from_json(&json!("https://policy.example.com/apply")).unwrap(),
            Some(AdminPolicy::Rest {
                url: "https://policy.example.com/apply".into()
            })
        );
        assert!(matches!(
            AdminPolicy::from_json(&json!("http://127.0.0.1:8080")).unwrap(),
            Some(AdminPolicy::Rest { .. })
        ));
        assert_eq!(AdminPolicy::from_json(&Json::Null).unwrap(), None);
    }

    #[test]
    fn python_classes_are_explained() {
        let error = AdminPolicy::from_json(&json!("my_policy.SkyPilotPolicyV1")).unwrap_err();
        assert_eq!(error.path, "admin_policy");
        let text = error.to_string();
        assert!(
            text.starts_with(
                "config key `admin_policy`: \"my_policy.SkyPilotPolicyV1\" is a Python policy class"
            ),
            "{text}"
        );
        assert!(text.contains("give its URL"), "{text}");
        assert!(text.contains("built-in rules"), "{text}");
        assert!(AdminPolicy::from_json(&json!("")).is_err());
        assert!(AdminPolicy::from_json(&json!(3)).is_err());
    }

    #[test]
    fn reads_every_rule() {
        let rules = read_rules(json!({
            "required_labels": ["team", "project"],
            "allowed_infra": ["local", "K8s"],
            "max_cpus": 16, "max_memory": 64.5, "max_accelerators": 8, "max_num_nodes": 4,
            "autostop": {"idle_minutes": 30, "down": true},
        }));
        assert_eq!(rules.required_labels, ["team", "project"]);
        assert_eq!(
            rules.allowed_infra.as_deref(),
            Some(&["local".to_owned(), "kubernetes".to_owned()][..])
        );
        assert_eq!(rules.max_cpus, Some(16.0));
        assert_eq!(rules.max_memory_gb, Some(64.5));
        assert_eq!(rules.max_accelerators, Some(8.0));
        assert_eq!(rules.max_num_nodes, Some(4));
        assert_eq!(
            rules.autostop,
            Some(ForcedAutostop {
                idle_minutes: 30,
                down: true
            })
        );
        assert_eq!(
            read_rules(json!({"autostop": 10})).autostop,
            Some(ForcedAutostop {
                idle_minutes: 10,
                down: false
            })
        );
        assert_eq!(read_rules(json!({})), PolicyRules::default());
    }

    #[test]
    fn bad_rules_name_their_key() {
        let cases = [
            (
                json!({"max_cpu": 4}),
                "admin_policy.max_cpu",
                "did you mean `max_cpus`?",
            ),
            (
                json!({"max_cpus": 0}),
                "admin_policy.max_cpus",
                "expected a number greater than 0, got 0",
            ),
            (
                json!({"max_num_nodes": 1.5}),
                "admin_policy.max_num_nodes",
                "a whole number, 1 or more",
            ),
            (
                json!({"allowed_infra": ["kubernets"]}),
                "admin_policy.allowed_infra[0]",
                "did you mean `kubernetes`?",
            ),
            (
                json!({"allowed_infra": []}),
                "admin_policy.allowed_infra",
                "would reject every task",
            ),
            (
                json!({"required_labels": "team"}),
                "admin_policy.required_labels",
                "expected a list of strings",
            ),
            (
                json!({"autostop": {"idle_minute": 5}}),
                "admin_policy.autostop.idle_minute",
                "did you mean `idle_minutes`?",
            ),
            (
                json!({"autostop": {"down": "yes"}}),
                "admin_policy.autostop.down",
                "expected true or false",
            ),
        ];
        for (value, path, hint) in cases {
            let error = AdminPolicy::from_json(&value).expect_err(&value.to_string());
            assert_eq!(error.path, path, "{value}: {error}");
            assert!(error.message.contains(hint), "{value}: {error}");
        }
    }

    #[test]
    fn request_options_use_skypilot_field_names() {
        let options: PolicyRequestOptions = serde_json::from_value(json!({
            "cluster_name": "c1", "idle_minutes_to_autostop": null, "down": false, "dryrun": true
        }))
        .unwrap();
        assert_eq!(options.cluster_name.as_deref(), Some("c1"));
        assert!(options.dryrun);
        assert_eq!(
            serde_json::to_value(&options).unwrap(),
            json!({"cluster_name": "c1", "idle_minutes_to_autostop": null, "down": false, "dryrun": true})
        );
    }
}
