//! Ports to open: `8080`, `"8080"`, `"10000-10010"`, or a list of those.

use super::error::{FieldPath, TaskError};
use super::yaml::{describe, quote};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_yaml_ng::Value;
use std::fmt;
use std::str::FromStr;

const EXPECTED: &str = "a port (1-65535) such as 8080, or a range such as \"10000-10010\"";

/// An inclusive range of ports; a single port has `start == end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl PortRange {
    pub fn single(port: u16) -> Self {
        Self {
            start: port,
            end: port,
        }
    }

    pub fn ports(&self) -> impl Iterator<Item = u16> {
        self.start..=self.end
    }

    fn parse_str(s: &str) -> Option<Self> {
        let port = |p: &str| p.trim().parse::<u16>().ok().filter(|p| *p > 0);
        let range = match s.trim().split_once('-') {
            Some((start, end)) => Self {
                start: port(start)?,
                end: port(end)?,
            },
            None => Self::single(port(s)?),
        };
        (range.start <= range.end).then_some(range)
    }

    fn from_yaml(value: &Value, path: &FieldPath) -> Result<Self, TaskError> {
        let parsed = match value {
            Value::Number(n) => n
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .filter(|p| *p > 0)
                .map(Self::single),
            Value::String(s) => Self::parse_str(s),
            _ => None,
        };
        parsed.ok_or_else(|| TaskError::invalid(path, &describe(value), EXPECTED))
    }

    /// Reads the `ports` field: one port or range, or a list of them.
    pub(crate) fn list_from_yaml(value: &Value, path: &FieldPath) -> Result<Vec<Self>, TaskError> {
        match value {
            Value::Sequence(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| Self::from_yaml(item, &path.index(i)))
                .collect(),
            single => Ok(vec![Self::from_yaml(single, path)?]),
        }
    }
}

impl FromStr for PortRange {
    type Err = TaskError;

    fn from_str(s: &str) -> Result<Self, TaskError> {
        Self::parse_str(s)
            .ok_or_else(|| TaskError::invalid(&FieldPath::root(), &quote(s), EXPECTED))
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

impl Serialize for PortRange {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::from_yaml(&value, &FieldPath::root()).map_err(serde::de::Error::custom)
    }
}

/// Every port in `ranges`, sorted, each once.
pub(crate) fn expand(ranges: &[PortRange]) -> Vec<u16> {
    let mut ports: Vec<u16> = ranges.iter().flat_map(PortRange::ports).collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<PortRange>, TaskError> {
        let value: Value = serde_yaml_ng::from_str(text).unwrap();
        PortRange::list_from_yaml(&value, &FieldPath::root().key("resources").key("ports"))
    }

    #[test]
    fn every_form_of_ports() {
        assert_eq!(parse("8080").unwrap(), vec![PortRange::single(8080)]);
        assert_eq!(parse("\"8080\"").unwrap(), vec![PortRange::single(8080)]);
        assert_eq!(
            parse("10000-10002").unwrap(),
            vec![PortRange {
                start: 10000,
                end: 10002
            }]
        );
        let list = parse("[8080, \"9000-9001\", 8080]").unwrap();
        assert_eq!(expand(&list), vec![8080, 9000, 9001]);
        assert_eq!(list[1].to_string(), "9000-9001");
    }

    #[test]
    fn bad_ports_name_the_item() {
        assert!(parse("0").is_err());
        assert!(parse("70000").is_err());
        assert!(parse("9001-9000").is_err());
        assert!(parse("http").is_err());
        let error = parse("[80, web]").unwrap_err();
        assert_eq!(error.path().to_string(), "resources.ports[1]");
        assert!(
            error.to_string().contains("invalid value \"web\""),
            "{error}"
        );
    }
}
