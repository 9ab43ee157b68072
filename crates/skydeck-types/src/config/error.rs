//! `ConfigError`: which config key is wrong and what to write instead.

use serde_json::Value as Json;
use std::fmt;

/// A mistake in the server config, at a dotted key path.
///
/// Displays as ``config key `workspaces.team-a.private`: expected true or
/// false, got "yes"``; an error about the config as a whole (bad YAML, a
/// top level that is not a mapping) has an empty path and displays as
/// `config: …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where the mistake is, e.g. `workspaces.team-a.private` or
    /// `allowed_clouds[1]`; empty for the config as a whole.
    pub path: String,
    /// What is wrong and, where we can tell, how to fix it.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(path: &str, message: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            message: message.into(),
        }
    }

    /// `expected <what>, got <value>`.
    pub(crate) fn expected(path: &str, expected: &str, got: &Json) -> Self {
        Self::new(path, format!("expected {expected}, got {}", describe(got)))
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "config: {}", self.message)
        } else {
            write!(f, "config key `{}`: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// The dotted path of `key` under `parent`.
pub(crate) fn child(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// The path of list item `index` under `parent`.
pub(crate) fn item(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// How a message quotes a value it rejects: scalars as written (strings in
/// quotes, cut short), collections by their kind.
pub(crate) fn describe(value: &Json) -> String {
    const MAX: usize = 60;
    match value {
        Json::Null => "null".to_owned(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => n.to_string(),
        Json::String(s) if s.chars().count() <= MAX => format!("{s:?}"),
        Json::String(s) => format!("{:?}…", s.chars().take(MAX).collect::<String>()),
        Json::Array(_) => "a list".to_owned(),
        Json::Object(_) => "a mapping".to_owned(),
    }
}

/// The candidate closest to `given`, when it is close enough to be the
/// likely intent (a typo), so that a suggestion never looks random.
pub(crate) fn closest<'a>(
    given: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let given = given.to_ascii_lowercase();
    candidates
        .into_iter()
        .filter_map(|candidate| {
            let lower = candidate.to_ascii_lowercase();
            let distance = strsim::levenshtein(&given, &lower);
            let shorter = given.chars().count().min(lower.chars().count());
            let similar = strsim::normalized_levenshtein(&given, &lower) >= 0.7;
            ((distance <= 2 && distance < shorter) || similar).then_some((candidate, distance))
        })
        .min_by_key(|(_, distance)| *distance)
        .map(|(candidate, _)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn display_names_the_key() {
        let error =
            ConfigError::expected("workspaces.team-a.private", "true or false", &json!("yes"));
        assert_eq!(
            error.to_string(),
            "config key `workspaces.team-a.private`: expected true or false, got \"yes\""
        );
        let whole = ConfigError::new("", "the top level must be a mapping");
        assert_eq!(whole.to_string(), "config: the top level must be a mapping");
    }

    #[test]
    fn paths_join_keys_and_items() {
        assert_eq!(child("", "jobs"), "jobs");
        assert_eq!(child("jobs", "controller"), "jobs.controller");
        assert_eq!(item("allowed_clouds", 2), "allowed_clouds[2]");
    }

    #[test]
    fn values_are_described_briefly() {
        assert_eq!(describe(&json!([1])), "a list");
        assert_eq!(describe(&json!({"a": 1})), "a mapping");
        assert_eq!(describe(&json!(2.5)), "2.5");
        assert!(describe(&json!("x".repeat(100))).ends_with('…'));
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        let keys = ["api_server", "workspaces", "jobs", "kubernetes"];
        assert_eq!(closest("workspace", keys), Some("workspaces"));
        assert_eq!(closest("Kubernets", keys), Some("kubernetes"));
        assert_eq!(closest("apiserver", keys), Some("api_server"));
        assert_eq!(closest("zzz", keys), None);
    }
}
