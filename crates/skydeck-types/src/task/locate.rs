//! Finding the line and column of a field in the YAML text.
//!
//! `serde_yaml_ng::Value` keeps no positions, but the streaming deserializer
//! stamps every error raised inside a `deserialize_*` call with the position
//! of the node being read. So to find a field, we walk the document again
//! with a visitor that raises an error exactly when it reaches the field,
//! and read the position off that error. The parser stays the only thing
//! that knows YAML's layout rules (flow style, block scalars, anchors).

use super::error::{PathSegment, Target};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// The message of the error the walker raises when it finds the field.
const FOUND: &str = "\u{0}skydeck-located";

/// The 1-based (line, column) of the key or value at `path` in the
/// `document`-th (0-based) YAML document of `text`.
pub(crate) fn locate(
    text: &str,
    document: usize,
    path: &[PathSegment],
    target: Target,
) -> Option<(usize, usize)> {
    let doc = serde_yaml_ng::Deserializer::from_str(text).nth(document)?;
    let error = Walk { path, target }.deserialize(doc).err()?;
    if !error.to_string().contains(FOUND) {
        return None;
    }
    let location = error.location()?;
    Some((location.line(), location.column()))
}

struct Walk<'p> {
    path: &'p [PathSegment],
    target: Target,
}

impl Walk<'_> {
    fn found<E: de::Error>(&self) -> Result<(), E> {
        if self.path.is_empty() && self.target == Target::Value {
            Err(E::custom(FOUND))
        } else {
            Ok(())
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.found()
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.found()
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.found()
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.found()
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.found()
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.found()
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.found()
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        // A tagged node (`!tag value`): positions inside it are not needed.
        self.found()?;
        let (IgnoredAny, variant) = data.variant::<IgnoredAny>()?;
        de::VariantAccess::newtype_variant::<IgnoredAny>(variant)?;
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.found()?;
        let mut index = 0;
        loop {
            let wanted = matches!(self.path.first(), Some(PathSegment::Index(i)) if *i == index);
            let more = if wanted {
                seq.next_element_seed(Walk {
                    path: &self.path[1..],
                    target: self.target,
                })?
            } else {
                seq.next_element::<IgnoredAny>()?.map(|_| ())
            };
            if more.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.found()?;
        let wanted_key = match self.path.first() {
            Some(PathSegment::Key(key)) => Some(key.as_str()),
            _ => None,
        };
        let key_is_target = self.path.len() == 1 && self.target == Target::Key;
        loop {
            let seed = KeySeed {
                wanted: wanted_key,
                raise: key_is_target,
            };
            let Some(matched) = map.next_key_seed(seed)? else {
                return Ok(());
            };
            if matched {
                map.next_value_seed(Walk {
                    path: &self.path[1..],
                    target: self.target,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
}

/// Reads one mapping key; says whether it is the wanted one, or raises the
/// "found" error on it when the key itself is what we look for.
struct KeySeed<'p> {
    wanted: Option<&'p str>,
    raise: bool,
}

impl KeySeed<'_> {
    fn check<E: de::Error>(&self, key: &str) -> Result<bool, E> {
        let matched = self.wanted == Some(key);
        if matched && self.raise {
            return Err(E::custom(FOUND));
        }
        Ok(matched)
    }
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        self.check(key)
    }

    fn visit_bool<E: de::Error>(self, key: bool) -> Result<bool, E> {
        self.check(&key.to_string())
    }

    fn visit_i64<E: de::Error>(self, key: i64) -> Result<bool, E> {
        self.check(&key.to_string())
    }

    fn visit_u64<E: de::Error>(self, key: u64) -> Result<bool, E> {
        self.check(&key.to_string())
    }

    fn visit_f64<E: de::Error>(self, key: f64) -> Result<bool, E> {
        self.check(&key.to_string())
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        self.check("null")
    }

    fn visit_none<E: de::Error>(self) -> Result<bool, E> {
        self.check("null")
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<bool, A::Error> {
        IgnoredAny.visit_seq(seq)?;
        Ok(false)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
        IgnoredAny.visit_map(map)?;
        Ok(false)
    }
}

/// The 1-based (line, column) of the first key that repeats an earlier key
/// of the same mapping, which the YAML reader reports without a useful
/// position.
pub(crate) fn locate_duplicate_key(text: &str, document: usize) -> Option<(usize, usize)> {
    let doc = serde_yaml_ng::Deserializer::from_str(text).nth(document)?;
    let error = Duplicates.deserialize(doc).err()?;
    if !error.to_string().contains(FOUND) {
        return None;
    }
    let location = error.location()?;
    Some((location.line(), location.column()))
}

struct Duplicates;

impl<'de> DeserializeSeed<'de> for Duplicates {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Duplicates {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        let (IgnoredAny, variant) = data.variant::<IgnoredAny>()?;
        de::VariantAccess::newtype_variant::<IgnoredAny>(variant)?;
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Duplicates)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::HashSet::new();
        loop {
            let seed = NewKey { seen: &mut seen };
            if map.next_key_seed(seed)?.is_none() {
                return Ok(());
            }
            map.next_value_seed(Duplicates)?;
        }
    }
}

/// Reads one mapping key and raises the "found" error if it was seen. The
/// error must come from inside the visitor for it to carry the key's
/// position.
struct NewKey<'s> {
    seen: &'s mut std::collections::HashSet<String>,
}

impl NewKey<'_> {
    fn check<E: de::Error>(self, key: String) -> Result<(), E> {
        if self.seen.insert(key) {
            Ok(())
        } else {
            Err(E::custom(FOUND))
        }
    }
}

impl<'de> DeserializeSeed<'de> for NewKey<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NewKey<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<(), E> {
        self.check(format!("s:{key}"))
    }

    fn visit_bool<E: de::Error>(self, key: bool) -> Result<(), E> {
        self.check(format!("b:{key}"))
    }

    fn visit_i64<E: de::Error>(self, key: i64) -> Result<(), E> {
        self.check(format!("n:{key}"))
    }

    fn visit_u64<E: de::Error>(self, key: u64) -> Result<(), E> {
        self.check(format!("n:{key}"))
    }

    fn visit_f64<E: de::Error>(self, key: f64) -> Result<(), E> {
        self.check(format!("f:{key}"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.check("null".to_owned())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.check("null".to_owned())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        IgnoredAny.visit_seq(seq).map(|_| ())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        IgnoredAny.visit_map(map).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> PathSegment {
        PathSegment::Key(k.to_owned())
    }

    const TEXT: &str = r#"name: demo
resources:
  cpus: two
  any_of:
    - {infra: aws, cpus: 4}
    - infra: k8s
      memory: 8
run: |
  echo hi
"#;

    #[test]
    fn finds_keys_and_values_in_block_and_flow_style() {
        assert_eq!(locate(TEXT, 0, &[key("name")], Target::Key), Some((1, 1)));
        assert_eq!(locate(TEXT, 0, &[key("name")], Target::Value), Some((1, 7)));
        let cpus = [key("resources"), key("cpus")];
        assert_eq!(locate(TEXT, 0, &cpus, Target::Value), Some((3, 9)));
        let flow = [
            key("resources"),
            key("any_of"),
            PathSegment::Index(0),
            key("cpus"),
        ];
        assert_eq!(locate(TEXT, 0, &flow, Target::Key), Some((5, 20)));
        let block = [
            key("resources"),
            key("any_of"),
            PathSegment::Index(1),
            key("memory"),
        ];
        assert_eq!(locate(TEXT, 0, &block, Target::Key), Some((7, 7)));
        assert_eq!(locate(TEXT, 0, &[key("run")], Target::Key), Some((8, 1)));
    }

    #[test]
    fn missing_paths_have_no_position() {
        assert_eq!(locate(TEXT, 0, &[key("setup")], Target::Key), None);
        assert_eq!(locate(TEXT, 3, &[key("name")], Target::Key), None);
    }

    #[test]
    fn finds_the_repeated_key() {
        let text = "name: a\nresources:\n  cpus: 2\n  memory: 4\n  cpus: 3\n";
        assert_eq!(locate_duplicate_key(text, 0), Some((5, 3)));
        assert_eq!(locate_duplicate_key("a: 1\nb: {a: 1}\n", 0), None);
    }

    #[test]
    fn positions_are_absolute_across_documents() {
        let text = "name: dag\n---\nname: a\nrun: x\n---\nname: b\nrunn: y\n";
        assert_eq!(locate(text, 2, &[key("runn")], Target::Key), Some((7, 1)));
    }
}
