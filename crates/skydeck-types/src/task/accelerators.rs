//! Accelerators: `H100`, `"H100:8"`, `{H100: 8}`, and the any-of forms
//! `{A100: 8, H100: 8}` (a mapping) and `[H100:8, A100:8]` (a list, in
//! order of preference).

use super::error::{FieldPath, TaskError};
use super::quantity::format_count;
use super::yaml::{describe, quote};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_yaml_ng::Value;
use std::fmt;
use std::str::FromStr;

const EXPECTED: &str = "an accelerator such as \"H100\" or \"H100:8\" (<name>:<count per node>)";

/// One accelerator type and how many of it each node needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Accelerator {
    pub name: String,
    pub count: f64,
}

impl Accelerator {
    pub fn new(name: impl Into<String>, count: f64) -> Self {
        Self {
            name: name.into(),
            count,
        }
    }

    /// How many each node gets.
    pub fn per_node(&self) -> f64 {
        self.count
    }

    /// How many the whole task uses across `num_nodes` nodes.
    pub fn total(&self, num_nodes: u32) -> f64 {
        self.count * f64::from(num_nodes)
    }

    fn parse_str(s: &str) -> Option<Self> {
        let s = s.trim();
        match s.rsplit_once(':') {
            Some((name, count)) if count.trim().parse::<f64>().is_ok() => {
                let count = count.trim().parse::<f64>().ok()?;
                Self::checked(name.trim(), count)
            }
            _ => Self::checked(s, 1.0),
        }
    }

    fn checked(name: &str, count: f64) -> Option<Self> {
        let name_ok =
            !name.is_empty() && !name.chars().any(char::is_whitespace) && name_parts_ok(name);
        (name_ok && count.is_finite() && count > 0.0).then(|| Self::new(name, count))
    }
}

/// A name may carry one `:` only in SkyPilot's by-memory form
/// (`nvidia:80GB`), where the part after it is a GPU memory size.
fn name_parts_ok(name: &str) -> bool {
    match name.split_once(':') {
        None => true,
        Some((maker, memory)) => {
            !maker.is_empty() && !memory.contains(':') && is_gpu_memory(memory)
        }
    }
}

/// `80GB`, `24GB+`: SkyPilot's `^[0-9]+[GgMmTt][Bb]\+?$`.
fn is_gpu_memory(s: &str) -> bool {
    let s = s.strip_suffix('+').unwrap_or(s);
    let digits = s.chars().take_while(char::is_ascii_digit).count();
    let unit: Vec<char> = s.chars().skip(digits).collect();
    digits > 0
        && unit.len() == 2
        && matches!(unit[0], 'G' | 'g' | 'M' | 'm' | 'T' | 't')
        && matches!(unit[1], 'B' | 'b')
}

impl FromStr for Accelerator {
    type Err = TaskError;

    fn from_str(s: &str) -> Result<Self, TaskError> {
        Self::parse_str(s)
            .ok_or_else(|| TaskError::invalid(&FieldPath::root(), &quote(s), EXPECTED))
    }
}

impl fmt::Display for Accelerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, format_count(self.count))
    }
}

/// The accelerators a task asks for: one type, or several to choose from.
#[derive(Debug, Clone, PartialEq)]
pub enum Accelerators {
    One(Accelerator),
    /// Any one of these; the scheduler picks (YAML: a mapping).
    AnyOf(Vec<Accelerator>),
    /// One of these, the first that fits (YAML: a list).
    Ordered(Vec<Accelerator>),
}

impl Accelerators {
    /// Every accelerator that would satisfy the request, in preference
    /// order where there is one.
    pub fn candidates(&self) -> &[Accelerator] {
        match self {
            Self::One(one) => std::slice::from_ref(one),
            Self::AnyOf(many) | Self::Ordered(many) => many,
        }
    }

    /// Reads the YAML forms. `allow_choice` is false inside an `any_of` or
    /// `ordered` entry, where SkyPilot takes a single accelerator only.
    pub(crate) fn from_yaml(
        value: &Value,
        path: &FieldPath,
        allow_choice: bool,
    ) -> Result<Self, TaskError> {
        let single = |s: &str, path: &FieldPath| {
            Accelerator::parse_str(s).ok_or_else(|| TaskError::invalid(path, &quote(s), EXPECTED))
        };
        let many = match value {
            Value::String(s) => return single(s, path).map(Self::One),
            Value::Mapping(mapping) => {
                let mut list = Vec::new();
                for (key, count) in mapping {
                    let Value::String(name) = key else {
                        return Err(TaskError::invalid(
                            path,
                            &describe(key),
                            "accelerator names as keys",
                        ));
                    };
                    let entry_path = path.key(name);
                    list.push(match count {
                        Value::Null => single(name, &entry_path)?,
                        Value::Number(n) => n
                            .as_f64()
                            .and_then(|n| Accelerator::checked(name, n))
                            .ok_or_else(|| {
                                TaskError::invalid(
                                    &entry_path,
                                    &describe(count),
                                    "a positive accelerator count",
                                )
                            })?,
                        other => {
                            return Err(TaskError::invalid(
                                &entry_path,
                                &describe(other),
                                "an accelerator count",
                            ));
                        }
                    });
                }
                Self::AnyOf(list)
            }
            Value::Sequence(items) if allow_choice => {
                let mut list = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let Value::String(s) = item else {
                        return Err(TaskError::invalid(
                            &path.index(i),
                            &describe(item),
                            EXPECTED,
                        ));
                    };
                    list.push(single(s, &path.index(i))?);
                }
                Self::Ordered(list)
            }
            other => {
                let expected = if allow_choice {
                    "an accelerator such as \"H100:8\", a mapping such as {H100: 8}, or a list to choose from"
                } else {
                    "one accelerator such as \"H100:8\" or {H100: 8}"
                };
                return Err(TaskError::invalid(path, &describe(other), expected));
            }
        };
        let candidates = many.candidates();
        if candidates.is_empty() {
            return Err(TaskError::invalid(
                path,
                &describe(value),
                "at least one accelerator",
            ));
        }
        if candidates.len() == 1 {
            return Ok(Self::One(candidates[0].clone()));
        }
        if !allow_choice {
            return Err(TaskError::invalid(
                path,
                &describe(value),
                "one accelerator: an any_of/ordered entry takes a single type",
            ));
        }
        Ok(many)
    }
}

impl FromStr for Accelerators {
    type Err = TaskError;

    fn from_str(s: &str) -> Result<Self, TaskError> {
        s.parse().map(Self::One)
    }
}

/// Counts go out as integers when whole, as SkyPilot writes them.
fn count_value(count: f64) -> serde_json::Value {
    if count.fract() == 0.0 && count.abs() < 1e15 {
        serde_json::Value::from(count as i64)
    } else {
        serde_json::Value::from(count)
    }
}

impl Serialize for Accelerators {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::One(one) => serializer.collect_str(one),
            Self::AnyOf(many) => {
                let mut map = serializer.serialize_map(Some(many.len()))?;
                for accelerator in many {
                    map.serialize_entry(&accelerator.name, &count_value(accelerator.count))?;
                }
                map.end()
            }
            Self::Ordered(many) => {
                let mut seq = serializer.serialize_seq(Some(many.len()))?;
                for accelerator in many {
                    seq.serialize_element(&accelerator.to_string())?;
                }
                seq.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Accelerators {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::from_yaml(&value, &FieldPath::root(), true).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Accelerators, TaskError> {
        let value: Value = serde_yaml_ng::from_str(text).unwrap();
        Accelerators::from_yaml(
            &value,
            &FieldPath::root().key("resources").key("accelerators"),
            true,
        )
    }

    #[test]
    fn single_accelerator_forms() {
        let h100x8 = Accelerators::One(Accelerator::new("H100", 8.0));
        assert_eq!(parse("H100:8").unwrap(), h100x8);
        assert_eq!(parse("{H100: 8}").unwrap(), h100x8);
        assert_eq!(parse("[H100:8]").unwrap(), h100x8);
        assert_eq!(
            parse("H100").unwrap(),
            Accelerators::One(Accelerator::new("H100", 1.0))
        );
        assert_eq!(parse("A100:0.5").unwrap().candidates()[0].count, 0.5);
        assert_eq!(
            parse("nvidia:80GB:2").unwrap(),
            Accelerators::One(Accelerator::new("nvidia:80GB", 2.0))
        );
    }

    #[test]
    fn choices_keep_their_kind_and_order() {
        let any = parse("{A100: 8, H100: 8}").unwrap();
        assert!(matches!(any, Accelerators::AnyOf(_)));
        assert_eq!(any.candidates().len(), 2);
        // `{V100:1, A100:1}` is YAML for two keys with null values.
        let set = parse("{V100:1, A100:2}").unwrap();
        assert_eq!(set.candidates()[1], Accelerator::new("A100", 2.0));
        let ordered = parse("[H100:8, A100:8]").unwrap();
        assert!(matches!(ordered, Accelerators::Ordered(_)));
        assert_eq!(ordered.candidates()[0].name, "H100");
    }

    #[test]
    fn helpers_count_per_node_and_total() {
        let accelerator: Accelerator = "H100:8".parse().unwrap();
        assert_eq!(accelerator.per_node(), 8.0);
        assert_eq!(accelerator.total(2), 16.0);
        assert_eq!(accelerator.to_string(), "H100:8");
    }

    #[test]
    fn bad_forms_say_what_is_expected() {
        assert_eq!(
            parse("H100:x").unwrap_err().to_string(),
            "resources.accelerators: invalid value \"H100:x\": expected an accelerator such as \
             \"H100\" or \"H100:8\" (<name>:<count per node>)"
        );
        assert!(parse("H100:0").is_err());
        assert!(parse("{H100: -1}").is_err());
        assert_eq!(
            parse("{H100: many}").unwrap_err().path().to_string(),
            "resources.accelerators.H100"
        );
        assert!(parse("{}").is_err());
        assert!(parse("8").is_err());
    }

    #[test]
    fn entries_of_any_of_take_one_type() {
        let value: Value = serde_yaml_ng::from_str("{A100: 8, H100: 8}").unwrap();
        assert!(Accelerators::from_yaml(&value, &FieldPath::root(), false).is_err());
    }

    #[test]
    fn serializes_to_forms_skypilot_reads() {
        let yaml = |a: &Accelerators| serde_yaml_ng::to_string(a).unwrap();
        assert_eq!(yaml(&parse("H100:8").unwrap()), "H100:8\n");
        assert_eq!(
            yaml(&parse("{A100: 8, H100: 0.5}").unwrap()),
            "A100: 8\nH100: 0.5\n"
        );
        assert_eq!(
            yaml(&parse("[H100:8, A100:8]").unwrap()),
            "- H100:8\n- A100:8\n"
        );
        let back: Accelerators =
            serde_yaml_ng::from_str(&yaml(&parse("[H100:8, A100:8]").unwrap())).unwrap();
        assert_eq!(back, parse("[H100:8, A100:8]").unwrap());
    }
}
