//! A small schema language for the config's keys, and the walk that checks
//! a value against it.
//!
//! SkyPilot validates its config with JSON Schema; the tables in `schema`
//! say the same things in this form, so that a mistake is reported at its
//! dotted path with a suggestion for a mistyped key.

use super::error::{ConfigError, child, closest, item};
use crate::task::INFRA_KINDS;
use serde_json::Value as Json;

/// What a config value must look like.
pub(crate) enum Shape {
    /// Anything: options Skydeck carries along without reading.
    Any,
    Str,
    Bool,
    /// A whole number.
    Int,
    Num,
    /// One of these words, in any case.
    Word(&'static [&'static str]),
    List(&'static Shape),
    /// A mapping with these keys; see `Others` for the rest.
    Map(&'static [(&'static str, Shape)], Others),
    /// A mapping of names the user picks (contexts, daemons…) to values.
    MapOf(&'static Shape),
    /// The first of these that fits.
    Either(&'static [Shape]),
    /// A check that needs code: the value, its path.
    Check(&'static str, fn(&Json, &str) -> Result<(), ConfigError>),
}

/// Which keys a `Shape::Map` takes beyond the ones it lists.
pub(crate) enum Others {
    /// None: an unknown key is an error that suggests the nearest known one.
    Reject,
    /// Any key, with any value (plugin and pass-through sections).
    Accept,
    /// Any infrastructure name (`aws`, `local`, `k8s`…), as this shape.
    Infra(&'static Shape),
}

impl Shape {
    /// The shape as an error message names it: "true or false".
    fn expected(&self) -> String {
        match self {
            Self::Any => "any value".to_owned(),
            Self::Str => "a string".to_owned(),
            Self::Bool => "true or false".to_owned(),
            Self::Int => "a whole number".to_owned(),
            Self::Num => "a number".to_owned(),
            Self::Word(words) => format!("one of {}", words.join(", ")),
            Self::List(Self::Str) => "a list of strings".to_owned(),
            Self::List(_) => "a list".to_owned(),
            Self::Map(..) | Self::MapOf(_) => "a mapping".to_owned(),
            Self::Either(shapes) => shapes
                .iter()
                .map(Self::expected)
                .collect::<Vec<_>>()
                .join(" or "),
            Self::Check(expected, _) => (*expected).to_owned(),
        }
    }

    /// Checks `value`, found at `path`, against this shape.
    pub(crate) fn check(&self, value: &Json, path: &str) -> Result<(), ConfigError> {
        let wrong = || Err(ConfigError::expected(path, &self.expected(), value));
        match (self, value) {
            (Self::Any, _)
            | (Self::Str, Json::String(_))
            | (Self::Bool, Json::Bool(_))
            | (Self::Num, Json::Number(_)) => Ok(()),
            (Self::Bool, Json::String(s)) => {
                let mut error = ConfigError::expected(path, &self.expected(), value);
                if let Some(hint) = bool_word_hint(s) {
                    error.message.push_str(&hint);
                }
                Err(error)
            }
            (Self::Int, Json::Number(n)) if n.is_i64() || n.is_u64() => Ok(()),
            (Self::Word(words), Json::String(s)) => {
                let lower = s.to_ascii_lowercase();
                if words.iter().any(|w| w.eq_ignore_ascii_case(&lower)) {
                    return Ok(());
                }
                let mut error = ConfigError::expected(path, &self.expected(), value);
                if let Some(near) = closest(&lower, words.iter().copied()) {
                    error.message.push_str(&format!("; did you mean `{near}`?"));
                }
                Err(error)
            }
            (Self::List(shape), Json::Array(items)) => items
                .iter()
                .enumerate()
                .try_for_each(|(i, v)| shape.check(v, &item(path, i))),
            (Self::Map(fields, others), Json::Object(map)) => {
                for (key, v) in map {
                    let key_path = child(path, key);
                    if let Some((_, shape)) = fields.iter().find(|(k, _)| k == key) {
                        // `key:` with nothing after it counts as absent,
                        // as when its children were commented out.
                        if !v.is_null() {
                            shape.check(v, &key_path)?;
                        }
                        continue;
                    }
                    match others {
                        Others::Accept => {}
                        Others::Infra(_) if is_infra_name(key) && v.is_null() => {}
                        Others::Infra(shape) if is_infra_name(key) => shape.check(v, &key_path)?,
                        Others::Infra(_) | Others::Reject => {
                            return Err(unknown_key(path, key, fields, others));
                        }
                    }
                }
                Ok(())
            }
            (Self::MapOf(shape), Json::Object(map)) => map
                .iter()
                .filter(|(_, v)| !v.is_null())
                .try_for_each(|(key, v)| shape.check(v, &child(path, key))),
            (Self::Either(shapes), _) => {
                if shapes.iter().any(|s| s.check(value, path).is_ok()) {
                    return Ok(());
                }
                // A value of the right kind but wrong inside (a mapping with
                // a typo) is better explained by that shape's own error.
                match shapes.iter().find(|s| s.accepts_kind(value)) {
                    Some(shape) => shape.check(value, path),
                    None => wrong(),
                }
            }
            (Self::Check(_, check), _) => check(value, path),
            _ => wrong(),
        }
    }

    /// Whether `value` is the collection this shape takes (a mapping for
    /// a mapping…), whatever is inside.
    fn accepts_kind(&self, value: &Json) -> bool {
        matches!(
            (self, value),
            (Self::Map(..) | Self::MapOf(_), Json::Object(_)) | (Self::List(_), Json::Array(_))
        )
    }
}

/// An infrastructure kind as a config key: SkyPilot's clouds, Skydeck's
/// `local`, and the `k8s` alias.
pub(crate) fn is_infra_name(key: &str) -> bool {
    key == "k8s" || INFRA_KINDS.contains(&key)
}

/// The error for a key a mapping does not take: the nearest known key, or
/// the list of them when it is short.
fn unknown_key(
    parent: &str,
    key: &str,
    fields: &[(&'static str, Shape)],
    others: &Others,
) -> ConfigError {
    let known: Vec<&str> = fields.iter().map(|(k, _)| *k).collect();
    let infra: &[&str] = match others {
        Others::Infra(_) => INFRA_KINDS,
        _ => &[],
    };
    let place = if parent.is_empty() {
        "at the top level".to_owned()
    } else {
        format!("under `{parent}`")
    };
    let mut message = format!("unknown key {place}");
    if let Some(near) = closest(key, known.iter().chain(infra).copied()) {
        message.push_str(&format!("; did you mean `{near}`?"));
    } else if known.len() <= 12 && infra.is_empty() {
        message.push_str(&format!("; the keys allowed here are {}", known.join(", ")));
    } else {
        message.push_str(
            "; see https://docs.skypilot.co/en/latest/reference/config.html for the keys allowed",
        );
    }
    ConfigError::new(&child(parent, key), message)
}

/// What to write instead of a boolean given as text: PyYAML reads an
/// unquoted `yes` or `on` as true, YAML 1.2 (Skydeck's parser) as text.
fn bool_word_hint(s: &str) -> Option<String> {
    let meaning = match s.to_ascii_lowercase().as_str() {
        "true" | "false" => {
            return Some(format!("; write {} without quotes", s.to_ascii_lowercase()));
        }
        "yes" | "on" => "true",
        "no" | "off" => "false",
        _ => return None,
    };
    Some(format!(
        "; write {meaning} (Skydeck reads YAML 1.2, where {s} is text)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const INNER: Shape = Shape::Map(&[("disabled", Shape::Bool)], Others::Reject);
    const SHAPE: Shape = Shape::Map(
        &[
            ("name", Shape::Str),
            ("count", Shape::Int),
            ("tags", Shape::List(&Shape::Str)),
            ("mode", Shape::Word(&["fast", "slow"])),
            (
                "either",
                Shape::Either(&[Shape::List(&Shape::Str), Shape::Word(&["all"])]),
            ),
            ("sub", INNER),
        ],
        Others::Infra(&INNER),
    );

    fn check(value: Json) -> Result<(), ConfigError> {
        SHAPE.check(&value, "root")
    }

    #[test]
    fn accepts_what_fits() {
        check(
            json!({"name": "x", "count": 3, "tags": ["a"], "mode": "FAST",
                     "either": "all", "sub": {"disabled": true}, "aws": {"disabled": false}}),
        )
        .unwrap();
        check(json!({"either": ["a", "b"]})).unwrap();
    }

    #[test]
    fn wrong_types_name_the_path() {
        let error = check(json!({"count": 2.5})).unwrap_err();
        assert_eq!(
            error.to_string(),
            "config key `root.count`: expected a whole number, got 2.5"
        );
        let error = check(json!({"tags": ["a", 3]})).unwrap_err();
        assert_eq!(error.path, "root.tags[1]");
        assert_eq!(error.message, "expected a string, got 3");
        let error = check(json!({"either": 5})).unwrap_err();
        assert_eq!(
            error.message,
            "expected a list of strings or one of all, got 5"
        );
        let error = check(json!({"mode": "fats"})).unwrap_err();
        assert_eq!(
            error.message,
            "expected one of fast, slow, got \"fats\"; did you mean `fast`?"
        );
    }

    #[test]
    fn quoted_yaml_words_get_a_hint() {
        let error = check(json!({"sub": {"disabled": "yes"}})).unwrap_err();
        assert_eq!(
            error.to_string(),
            "config key `root.sub.disabled`: expected true or false, got \"yes\"; \
             write true (Skydeck reads YAML 1.2, where yes is text)"
        );
        let error = check(json!({"sub": {"disabled": "False"}})).unwrap_err();
        assert!(
            error.message.ends_with("; write false without quotes"),
            "{error}"
        );
    }

    #[test]
    fn unknown_keys_suggest_or_list() {
        let error = check(json!({"nmae": "x"})).unwrap_err();
        assert_eq!(error.path, "root.nmae");
        assert_eq!(
            error.message,
            "unknown key under `root`; did you mean `name`?"
        );
        let error = check(json!({"kubernets": {}})).unwrap_err();
        assert!(
            error.message.ends_with("did you mean `kubernetes`?"),
            "{error}"
        );
        let error = check(json!({"sub": {"zzz": 1}})).unwrap_err();
        assert_eq!(error.path, "root.sub.zzz");
        assert_eq!(
            error.message,
            "unknown key under `root.sub`; the keys allowed here are disabled"
        );
    }

    #[test]
    fn a_mapping_with_a_typo_inside_an_either_reports_the_typo() {
        const EITHER: Shape = Shape::Either(&[Shape::Str, INNER]);
        let error = EITHER.check(&json!({"disabld": true}), "x").unwrap_err();
        assert_eq!(error.path, "x.disabld");
    }
}
