//! CPU, memory and disk quantities as SkyPilot writes them: `2`, `"2+"`,
//! `0.5`, `"16GB"`, `"32GB+"`.

use super::error::{FieldPath, TaskError};
use super::yaml::{describe, quote};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_yaml_ng::Value;
use std::fmt;
use std::str::FromStr;

/// Binary size units SkyPilot accepts, in bytes per unit.
const SIZE_UNITS: [(&str, f64); 10] = [
    ("kb", 1024.0),
    ("ki", 1024.0),
    ("mb", 1048576.0),
    ("mi", 1048576.0),
    ("gb", 1073741824.0),
    ("gi", 1073741824.0),
    ("tb", 1099511627776.0),
    ("ti", 1099511627776.0),
    ("pb", 1125899906842624.0),
    ("pi", 1125899906842624.0),
];

/// A count as SkyPilot prints it: whole numbers without a decimal point.
pub(crate) fn format_count(count: f64) -> String {
    if count.fract() == 0.0 && count.abs() < 1e15 {
        format!("{}", count as i64)
    } else {
        format!("{count}")
    }
}

fn parse_number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

/// A size in GB from `"16"`, `"16GB"`, `"512MB"` or `"1TB"`; bare numbers
/// are already GB.
fn parse_size_gb(s: &str) -> Option<f64> {
    let s = s.trim();
    if let Some(n) = parse_number(s) {
        return Some(n);
    }
    let lower = s.to_ascii_lowercase();
    SIZE_UNITS.iter().find_map(|(unit, bytes)| {
        let number = lower.strip_suffix(unit)?;
        parse_number(number).map(|n| n * bytes / 1073741824.0)
    })
}

/// The CPUs a node needs: `count`, or at least `count` (`"4+"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuRequest {
    pub count: f64,
    pub at_least: bool,
}

impl CpuRequest {
    const EXPECTED: &'static str = "a number of CPUs such as 4 or \"4+\"";

    fn parse_str(s: &str) -> Option<Self> {
        let s = s.trim();
        let (number, at_least) = match s.strip_suffix('+') {
            Some(number) => (number, true),
            None => (s, false),
        };
        Self::checked(parse_number(number)?, at_least)
    }

    fn checked(count: f64, at_least: bool) -> Option<Self> {
        (count.is_finite() && count > 0.0).then_some(Self { count, at_least })
    }

    pub(crate) fn from_yaml(value: &Value, path: &FieldPath) -> Result<Self, TaskError> {
        let parsed = match value {
            Value::Number(n) => n.as_f64().and_then(|n| Self::checked(n, false)),
            Value::String(s) => Self::parse_str(s),
            _ => None,
        };
        parsed.ok_or_else(|| TaskError::invalid(path, &describe(value), Self::EXPECTED))
    }
}

impl FromStr for CpuRequest {
    type Err = TaskError;

    fn from_str(s: &str) -> Result<Self, TaskError> {
        Self::parse_str(s)
            .ok_or_else(|| TaskError::invalid(&FieldPath::root(), &quote(s), Self::EXPECTED))
    }
}

impl fmt::Display for CpuRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}",
            format_count(self.count),
            if self.at_least { "+" } else { "" }
        )
    }
}

/// The memory a node needs in GB: `gb`, or at least `gb` (`"32+"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemoryRequest {
    pub gb: f64,
    pub at_least: bool,
}

impl MemoryRequest {
    const EXPECTED: &'static str =
        "a memory size in GB such as 16, \"16+\" or \"16GB\" (units KB/MB/GB/TB/PB)";

    fn parse_str(s: &str) -> Option<Self> {
        let s = s.trim();
        let (size, at_least) = match s.strip_suffix('+') {
            Some(size) => (size, true),
            None => (s, false),
        };
        Self::checked(parse_size_gb(size)?, at_least)
    }

    // Zero is legal here because Slurm clusters that do not track memory use
    // it; `TaskSpec::validate` rejects it everywhere else.
    fn checked(gb: f64, at_least: bool) -> Option<Self> {
        (gb.is_finite() && gb >= 0.0).then_some(Self { gb, at_least })
    }

    pub(crate) fn from_yaml(value: &Value, path: &FieldPath) -> Result<Self, TaskError> {
        let parsed = match value {
            Value::Number(n) => n.as_f64().and_then(|n| Self::checked(n, false)),
            Value::String(s) => Self::parse_str(s),
            _ => None,
        };
        parsed.ok_or_else(|| TaskError::invalid(path, &describe(value), Self::EXPECTED))
    }
}

impl FromStr for MemoryRequest {
    type Err = TaskError;

    fn from_str(s: &str) -> Result<Self, TaskError> {
        Self::parse_str(s)
            .ok_or_else(|| TaskError::invalid(&FieldPath::root(), &quote(s), Self::EXPECTED))
    }
}

impl fmt::Display for MemoryRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}",
            format_count(self.gb),
            if self.at_least { "+" } else { "" }
        )
    }
}

const DISK_EXPECTED: &str = "a disk size in whole GB such as 256 or \"1TB\"";

/// A disk size in whole GB from `256`, `"256"`, `"256GB"` or `"1TB"`.
pub(crate) fn disk_size_from_yaml(value: &Value, path: &FieldPath) -> Result<u64, TaskError> {
    let gb = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => parse_size_gb(s),
        _ => None,
    };
    whole_gb(gb).ok_or_else(|| TaskError::invalid(path, &describe(value), DISK_EXPECTED))
}

pub(crate) fn parse_disk_size(s: &str) -> Result<u64, TaskError> {
    whole_gb(parse_size_gb(s))
        .ok_or_else(|| TaskError::invalid(&FieldPath::root(), &quote(s), DISK_EXPECTED))
}

fn whole_gb(gb: Option<f64>) -> Option<u64> {
    gb.filter(|gb| *gb > 0.0 && gb.fract() == 0.0 && *gb < 1e15)
        .map(|gb| gb as u64)
}

/// Serialize through `Display` and deserialize through `from_yaml`, so the
/// serde forms accept exactly what a task YAML accepts.
macro_rules! serde_as_yaml_scalar {
    ($ty:ty) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = Value::deserialize(deserializer)?;
                Self::from_yaml(&value, &FieldPath::root()).map_err(serde::de::Error::custom)
            }
        }
    };
}

serde_as_yaml_scalar!(CpuRequest);
serde_as_yaml_scalar!(MemoryRequest);

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml_ng::from_str(text).unwrap()
    }

    fn cpus(text: &str) -> Result<CpuRequest, TaskError> {
        CpuRequest::from_yaml(&yaml(text), &FieldPath::root().key("resources").key("cpus"))
    }

    #[test]
    fn cpus_in_every_form_skypilot_accepts() {
        assert_eq!(
            cpus("2").unwrap(),
            CpuRequest {
                count: 2.0,
                at_least: false
            }
        );
        assert_eq!(
            cpus("\"2\"").unwrap(),
            CpuRequest {
                count: 2.0,
                at_least: false
            }
        );
        assert_eq!(
            cpus("2+").unwrap(),
            CpuRequest {
                count: 2.0,
                at_least: true
            }
        );
        assert_eq!(cpus("0.5").unwrap().count, 0.5);
        assert_eq!(cpus("2+").unwrap().to_string(), "2+");
        assert_eq!(cpus("4").unwrap().to_string(), "4");
        assert_eq!(cpus("0.5").unwrap().to_string(), "0.5");
        assert_eq!("8+".parse::<CpuRequest>().unwrap().to_string(), "8+");
    }

    #[test]
    fn cpus_reject_words_zero_and_lists() {
        assert_eq!(
            cpus("two").unwrap_err().to_string(),
            "resources.cpus: invalid value \"two\": expected a number of CPUs such as 4 or \"4+\""
        );
        assert!(cpus("0").is_err());
        assert!(cpus("-1").is_err());
        assert!(cpus("[2]").is_err());
        assert!(cpus("2++").is_err());
    }

    #[test]
    fn memory_with_units_and_plus() {
        let path = FieldPath::root().key("memory");
        let memory = |text: &str| MemoryRequest::from_yaml(&yaml(text), &path);
        assert_eq!(
            memory("16").unwrap(),
            MemoryRequest {
                gb: 16.0,
                at_least: false
            }
        );
        assert_eq!(
            memory("16+").unwrap(),
            MemoryRequest {
                gb: 16.0,
                at_least: true
            }
        );
        assert_eq!(memory("16GB").unwrap().gb, 16.0);
        assert_eq!(
            memory("32gb+").unwrap(),
            MemoryRequest {
                gb: 32.0,
                at_least: true
            }
        );
        assert_eq!(memory("512MB").unwrap().gb, 0.5);
        assert_eq!(memory("1TB").unwrap().gb, 1024.0);
        assert_eq!(memory("2Gi").unwrap().gb, 2.0);
        assert_eq!(memory("16GB+").unwrap().to_string(), "16+");
        assert!(memory("lots").is_err());
        assert!(memory("16XB").is_err());
        assert!(memory("-4").is_err());
    }

    #[test]
    fn disk_sizes_are_whole_gb() {
        let path = FieldPath::root().key("disk_size");
        assert_eq!(disk_size_from_yaml(&yaml("256"), &path).unwrap(), 256);
        assert_eq!(disk_size_from_yaml(&yaml("1TB"), &path).unwrap(), 1024);
        assert_eq!(parse_disk_size("100GB").unwrap(), 100);
        assert!(disk_size_from_yaml(&yaml("512MB"), &path).is_err());
        assert!(disk_size_from_yaml(&yaml("0"), &path).is_err());
        assert!(parse_disk_size("big").is_err());
    }

    #[test]
    fn serde_uses_the_yaml_forms() {
        let cpu: CpuRequest = serde_json::from_str("\"4+\"").unwrap();
        assert_eq!(serde_json::to_string(&cpu).unwrap(), "\"4+\"");
        let memory: MemoryRequest = serde_json::from_str("8").unwrap();
        assert_eq!(serde_json::to_string(&memory).unwrap(), "\"8\"");
        assert!(serde_json::from_str::<CpuRequest>("\"x\"").is_err());
    }
}
