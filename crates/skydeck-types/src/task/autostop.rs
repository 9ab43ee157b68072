//! `resources.autostop`: `false`, `10`, `"2h"`, or `{idle_minutes, down,
//! wait_for, hook, hook_timeout}`.

use super::error::{FieldPath, TaskError};
use super::yaml::{Fields, boolean, describe, integer, string};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_yaml_ng::Value;

const KEYS: &[&str] = &["idle_minutes", "down", "wait_for", "hook", "hook_timeout"];
const WAIT_FOR: &[&str] = &["jobs_and_ssh", "jobs", "none"];
const EXPECTED: &str = "false, idle minutes such as 10 or \"2h\" (units m/h/d/w), or a mapping with idle_minutes/down/wait_for";

/// When a cluster stops (or goes down) by itself after being idle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Autostop {
    /// `false` turns autostop off entirely.
    pub enabled: bool,
    pub idle_minutes: Option<u64>,
    /// Tear the cluster down instead of stopping it.
    pub down: Option<bool>,
    /// What counts as activity: `jobs_and_ssh`, `jobs` or `none`.
    pub wait_for: Option<String>,
    pub hook: Option<String>,
    pub hook_timeout: Option<u64>,
}

impl Autostop {
    fn enabled() -> Self {
        Self {
            enabled: true,
            idle_minutes: None,
            down: None,
            wait_for: None,
            hook: None,
            hook_timeout: None,
        }
    }

    pub(crate) fn from_yaml(value: &Value, path: &FieldPath) -> Result<Self, TaskError> {
        let invalid = || TaskError::invalid(path, &describe(value), EXPECTED);
        match value {
            Value::Bool(enabled) => Ok(Self {
                enabled: *enabled,
                ..Self::enabled()
            }),
            Value::Number(_) => {
                let minutes = integer(value, path, EXPECTED)?;
                let minutes = u64::try_from(minutes).map_err(|_| invalid())?;
                Ok(Self {
                    idle_minutes: Some(minutes),
                    ..Self::enabled()
                })
            }
            Value::String(text) => {
                let minutes = parse_minutes(text).ok_or_else(invalid)?;
                Ok(Self {
                    idle_minutes: Some(minutes),
                    ..Self::enabled()
                })
            }
            Value::Mapping(_) => Self::from_mapping(value, path),
            _ => Err(invalid()),
        }
    }

    fn from_mapping(value: &Value, path: &FieldPath) -> Result<Self, TaskError> {
        let fields = Fields::strict(value, path, EXPECTED, KEYS, &[])?;
        let minutes = |key: &str, min: i64| -> Result<Option<u64>, TaskError> {
            let Some(v) = fields.get(key) else {
                return Ok(None);
            };
            let expected = format!("a whole number >= {min}");
            let n = integer(v, &fields.path_of(key), &expected)?;
            if n < min {
                return Err(TaskError::invalid(
                    &fields.path_of(key),
                    &describe(v),
                    &expected,
                ));
            }
            Ok(Some(n as u64))
        };
        let wait_for = match fields.get("wait_for") {
            None => None,
            Some(v) => {
                let key_path = fields.path_of("wait_for");
                let mode = string(v, &key_path, "jobs_and_ssh, jobs or none")?.to_ascii_lowercase();
                if !WAIT_FOR.contains(&mode.as_str()) {
                    return Err(TaskError::invalid(
                        &key_path,
                        &describe(v),
                        "jobs_and_ssh, jobs or none",
                    ));
                }
                Some(mode)
            }
        };
        Ok(Self {
            enabled: true,
            idle_minutes: minutes("idle_minutes", 0)?,
            down: fields
                .get("down")
                .map(|v| boolean(v, &fields.path_of("down")))
                .transpose()?,
            wait_for,
            hook: fields.string("hook")?,
            hook_timeout: minutes("hook_timeout", 1)?,
        })
    }
}

/// `"90"`, `"30m"`, `"2h"`, `"1d"`, `"1w"` in minutes.
fn parse_minutes(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text.chars().take_while(char::is_ascii_digit).count();
    let number: u64 = text[..digits].parse().ok()?;
    let factor = match &text[digits..] {
        "" | "m" | "M" => 1,
        "h" | "H" => 60,
        "d" | "D" => 24 * 60,
        "w" | "W" => 7 * 24 * 60,
        _ => return None,
    };
    number.checked_mul(factor)
}

impl Serialize for Autostop {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if !self.enabled {
            return serializer.serialize_bool(false);
        }
        let only_minutes = self.down.is_none()
            && self.wait_for.is_none()
            && self.hook.is_none()
            && self.hook_timeout.is_none();
        match self.idle_minutes {
            Some(minutes) if only_minutes => return serializer.serialize_u64(minutes),
            None if only_minutes => return serializer.serialize_bool(true),
            _ => {}
        }
        let mut map = serializer.serialize_map(None)?;
        if let Some(minutes) = self.idle_minutes {
            map.serialize_entry("idle_minutes", &minutes)?;
        }
        if let Some(down) = self.down {
            map.serialize_entry("down", &down)?;
        }
        if let Some(wait_for) = &self.wait_for {
            map.serialize_entry("wait_for", wait_for)?;
        }
        if let Some(hook) = &self.hook {
            map.serialize_entry("hook", hook)?;
        }
        if let Some(timeout) = self.hook_timeout {
            map.serialize_entry("hook_timeout", &timeout)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Autostop {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::from_yaml(&value, &FieldPath::root()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Autostop, TaskError> {
        let value: Value = serde_yaml_ng::from_str(text).unwrap();
        Autostop::from_yaml(&value, &FieldPath::root().key("resources").key("autostop"))
    }

    #[test]
    fn every_form() {
        assert!(!parse("false").unwrap().enabled);
        assert_eq!(parse("10").unwrap().idle_minutes, Some(10));
        assert_eq!(parse("2h").unwrap().idle_minutes, Some(120));
        let full = parse("{idle_minutes: 5, down: true, wait_for: JOBS}").unwrap();
        assert_eq!(full.down, Some(true));
        assert_eq!(full.wait_for.as_deref(), Some("jobs"));
    }

    #[test]
    fn mistakes_are_named() {
        assert!(parse("soon").is_err());
        assert!(parse("-5").is_err());
        assert!(parse("{wait_for: ssh}").is_err());
        let error = parse("{idle_minute: 5}").unwrap_err();
        assert_eq!(error.suggestion(), Some("did you mean \"idle_minutes\"?"));
    }

    #[test]
    fn serializes_back_to_an_equal_value() {
        for text in [
            "false",
            "true",
            "10",
            "{idle_minutes: 5, down: true, wait_for: jobs}",
        ] {
            let autostop = parse(text).unwrap();
            let yaml = serde_yaml_ng::to_string(&autostop).unwrap();
            assert_eq!(parse(&yaml).unwrap(), autostop, "{text} -> {yaml}");
        }
    }
}
