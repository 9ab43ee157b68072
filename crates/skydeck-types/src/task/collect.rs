//! Reading a task while collecting every mistake, not just the first.
//!
//! The typed readers stop at the first error. Rather than thread an error
//! list through every reader, we read again with the offending field taken
//! out of the tree, until the task reads or a mistake cannot be set aside.
//! Only mistakes local to one field (an unknown key, a wrong value) are set
//! aside; anything else (a conflict between fields, a missing value) may be
//! a consequence of what was taken out, so collecting stops there.

use super::error::{PathSegment, TaskError, TaskErrorKind};
use super::spec::TaskSpec;
use super::yaml::key_to_string;
use serde_yaml_ng::Value;

/// Enough for any real file.
const MAX_MISTAKES: usize = 50;

/// Each mistake costs a reread of the task and a walk of its text to place
/// it; this bounds the bytes a hostile file makes us go through, so a file
/// at the size limit reports its first few mistakes only.
const MAX_REREAD_BYTES: usize = 4 * 1024 * 1024;

/// How many mistakes are collected from a text of `text_len` bytes.
pub(crate) fn mistake_budget(text_len: usize) -> usize {
    (MAX_REREAD_BYTES / text_len.max(1)).clamp(1, MAX_MISTAKES)
}

/// The task in `document`, or its mistakes (at most `budget`, unplaced, in
/// the order they were found).
pub(crate) fn read_task(document: &Value, budget: usize) -> Result<TaskSpec, Vec<TaskError>> {
    let mut errors = Vec::new();
    let mut tree: Option<Value> = None;
    loop {
        let current = tree.as_ref().unwrap_or(document);
        let error = match TaskSpec::from_yaml(current) {
            Ok(task) if errors.is_empty() => return Ok(task),
            Ok(_) => return Err(errors),
            Err(error) => error,
        };
        let local = matches!(
            error.kind(),
            TaskErrorKind::UnknownField | TaskErrorKind::InvalidValue
        );
        if !local && !errors.is_empty() {
            return Err(errors);
        }
        let path = error.path().segments().to_vec();
        errors.push(error);
        if !local || errors.len() >= budget {
            return Err(errors);
        }
        let mut pruned = current.clone();
        if !remove(&mut pruned, &path) {
            return Err(errors);
        }
        tree = Some(pruned);
    }
}

/// Takes the field at `path` out of `tree`. Within a list, the whole list
/// goes, so that later errors keep the indexes of the text. False when
/// there is nothing to take out.
fn remove(tree: &mut Value, path: &[PathSegment]) -> bool {
    let keys: Vec<&str> = path
        .iter()
        .map_while(|segment| match segment {
            PathSegment::Key(key) => Some(key.as_str()),
            PathSegment::Index(_) => None,
        })
        .collect();
    let Some((last, parents)) = keys.split_last() else {
        return false;
    };
    let mut node = tree;
    for key in parents {
        match mapping_entry(node, key) {
            Some(child) => node = child,
            None => return false,
        }
    }
    let Value::Mapping(mapping) = node else {
        return false;
    };
    let before = mapping.len();
    mapping.retain(|k, _| key_to_string(k) != *last);
    mapping.len() < before
}

fn mapping_entry<'a>(node: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    let Value::Mapping(mapping) = node else {
        return None;
    };
    mapping
        .iter_mut()
        .find(|(k, _)| key_to_string(k) == key)
        .map(|(_, v)| v)
}
