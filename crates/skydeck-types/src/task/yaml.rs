//! Reading typed fields out of a parsed YAML tree, with errors that name
//! the field, show the value and say what was expected.

use super::error::{FieldPath, TaskError, did_you_mean};
use serde_yaml_ng::Value;

/// How an error quotes a value it rejects: strings in quotes (shortened),
/// collections by their kind.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quote(s),
        Value::Sequence(_) => "a list".to_owned(),
        Value::Mapping(_) => "a mapping".to_owned(),
        Value::Tagged(tagged) => format!("a value tagged {}", tagged.tag),
    }
}

/// A string quoted for a message, cut short so one long script does not
/// flood the error.
pub(crate) fn quote(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{:?}…", head)
    }
}

/// A scalar as SkyPilot turns it into a string (`str(value)` in Python), so
/// `DEBUG: true` becomes "True" exactly as it does there.
pub(crate) fn scalar_to_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(true) => Some("True".to_owned()),
        Value::Bool(false) => Some("False".to_owned()),
        _ => None,
    }
}

/// A mapping key as a string; SkyPilot stringifies numeric keys too.
pub(crate) fn key_to_string(key: &Value) -> String {
    match key {
        Value::Null => "null".to_owned(),
        other => scalar_to_string(other).unwrap_or_else(|| describe(other)),
    }
}

/// The entries of one YAML mapping, keyed by string, with its path.
pub(crate) struct Fields<'a> {
    path: FieldPath,
    entries: Vec<(String, &'a Value)>,
}

impl<'a> Fields<'a> {
    /// Reads a mapping whose keys may be anything (`envs`, `labels`).
    pub(crate) fn open(
        value: &'a Value,
        path: &FieldPath,
        expected: &str,
    ) -> Result<Self, TaskError> {
        let Value::Mapping(mapping) = value else {
            return Err(TaskError::invalid(path, &describe(value), expected));
        };
        Ok(Self {
            path: path.clone(),
            entries: mapping.iter().map(|(k, v)| (key_to_string(k), v)).collect(),
        })
    }

    /// Reads a mapping that may only hold the `known` keys. An unknown key
    /// is an error that suggests the nearest known one, or the hint that
    /// `hints` gives for it.
    pub(crate) fn strict(
        value: &'a Value,
        path: &FieldPath,
        expected: &str,
        known: &[&str],
        hints: &[(&str, &str)],
    ) -> Result<Self, TaskError> {
        let fields = Self::open(value, path, expected)?;
        for (key, _) in &fields.entries {
            if known.contains(&key.as_str()) {
                continue;
            }
            let error = TaskError::unknown_field(path, key);
            let hint = hints
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, hint)| (*hint).to_owned())
                .or_else(|| did_you_mean(key, known));
            return Err(match hint {
                Some(hint) => error.with_suggestion(hint),
                None => error,
            });
        }
        Ok(fields)
    }

    pub(crate) fn path_of(&self, key: &str) -> FieldPath {
        self.path.key(key)
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = (&str, &'a Value)> + '_ {
        self.entries.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// The value of `key`; a key given with no value (`setup:`) counts as
    /// absent, as SkyPilot's schema check drops null fields.
    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.get_raw(key).filter(|v| !v.is_null())
    }

    /// The value of `key`, null included.
    pub(crate) fn get_raw(&self, key: &str) -> Option<&'a Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub(crate) fn string(&self, key: &str) -> Result<Option<String>, TaskError> {
        self.get(key)
            .map(|v| string(v, &self.path_of(key), "a string"))
            .transpose()
    }

    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>, TaskError> {
        self.get(key)
            .map(|v| boolean(v, &self.path_of(key)))
            .transpose()
    }

    /// A JSON copy of a field this crate keeps without interpreting.
    pub(crate) fn json(&self, key: &str) -> Result<Option<serde_json::Value>, TaskError> {
        self.get(key)
            .map(|v| to_json(v, &self.path_of(key)))
            .transpose()
    }
}

pub(crate) fn string(value: &Value, path: &FieldPath, expected: &str) -> Result<String, TaskError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        other => Err(TaskError::invalid(path, &describe(other), expected)),
    }
}

/// A boolean; also the YAML 1.1 words (`yes`, `off`…) that SkyPilot's
/// parser reads as booleans, so such a YAML means the same here.
pub(crate) fn boolean(value: &Value, path: &FieldPath) -> Result<bool, TaskError> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.as_str() {
            "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Ok(true),
            "no" | "No" | "NO" | "off" | "Off" | "OFF" => Ok(false),
            _ => Err(TaskError::invalid(path, &describe(value), "true or false")),
        },
        other => Err(TaskError::invalid(path, &describe(other), "true or false")),
    }
}

/// A whole number; `2.0` counts, as it does for JSON Schema.
pub(crate) fn integer(value: &Value, path: &FieldPath, expected: &str) -> Result<i64, TaskError> {
    let invalid = || TaskError::invalid(path, &describe(value), expected);
    let Value::Number(n) = value else {
        return Err(invalid());
    };
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
        _ => Err(invalid()),
    }
}

pub(crate) fn number(value: &Value, path: &FieldPath, expected: &str) -> Result<f64, TaskError> {
    match value {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| TaskError::invalid(path, &describe(value), expected)),
        other => Err(TaskError::invalid(path, &describe(other), expected)),
    }
}

pub(crate) fn to_json(value: &Value, path: &FieldPath) -> Result<serde_json::Value, TaskError> {
    serde_json::to_value(value)
        .map_err(|e| TaskError::invalid(path, &describe(value), &format!("plain YAML data ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml_ng::from_str(text).unwrap()
    }

    #[test]
    fn describes_values_for_messages() {
        assert_eq!(describe(&yaml("two")), "\"two\"");
        assert_eq!(describe(&yaml("[1]")), "a list");
        assert_eq!(describe(&yaml("{a: 1}")), "a mapping");
        assert_eq!(describe(&yaml("~")), "null");
        assert_eq!(describe(&yaml("2.5")), "2.5");
        assert!(quote(&"x".repeat(100)).ends_with('…'));
    }

    #[test]
    fn scalars_stringify_like_python() {
        assert_eq!(scalar_to_string(&yaml("true")).as_deref(), Some("True"));
        assert_eq!(scalar_to_string(&yaml("8")).as_deref(), Some("8"));
        assert_eq!(scalar_to_string(&yaml("1.5")).as_deref(), Some("1.5"));
        assert_eq!(scalar_to_string(&yaml("[1]")), None);
    }

    #[test]
    fn booleans_accept_yaml_1_1_words() {
        let path = FieldPath::root().key("use_spot");
        assert!(boolean(&yaml("yes"), &path).unwrap());
        assert!(!boolean(&yaml("Off"), &path).unwrap());
        let error = boolean(&yaml("maybe"), &path).unwrap_err();
        assert_eq!(
            error.to_string(),
            "use_spot: invalid value \"maybe\": expected true or false"
        );
    }

    #[test]
    fn integers_accept_whole_floats_only() {
        let path = FieldPath::root().key("num_nodes");
        assert_eq!(integer(&yaml("2"), &path, "an integer").unwrap(), 2);
        assert_eq!(integer(&yaml("2.0"), &path, "an integer").unwrap(), 2);
        assert!(integer(&yaml("2.5"), &path, "an integer").is_err());
        assert!(integer(&yaml("\"2\""), &path, "an integer").is_err());
    }

    #[test]
    fn strict_fields_reject_and_hint() {
        let value = yaml("{cpus: 2, spot_recovery: x}");
        let path = FieldPath::root().key("resources");
        let error = match Fields::strict(
            &value,
            &path,
            "a mapping",
            &["cpus", "job_recovery"],
            &[("spot_recovery", "it is now called \"job_recovery\"")],
        ) {
            Err(error) => error,
            Ok(_) => panic!("spot_recovery was accepted"),
        };
        assert_eq!(
            error.to_string(),
            "unknown field \"spot_recovery\" in resources; it is now called \"job_recovery\""
        );
        assert_eq!(error.path().to_string(), "resources.spot_recovery");
    }

    #[test]
    fn null_fields_count_as_absent() {
        let value = yaml("{setup: , run: echo}");
        let fields = Fields::open(&value, &FieldPath::root(), "a mapping").unwrap();
        assert!(fields.get("setup").is_none());
        assert!(fields.get_raw("setup").is_some());
        assert_eq!(fields.string("run").unwrap().as_deref(), Some("echo"));
    }
}
