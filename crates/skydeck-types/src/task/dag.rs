//! Reading a task YAML text: one task, or a chain of tasks in several
//! documents, possibly behind a header document naming the chain.

use super::collect::{mistake_budget, read_task};
use super::error::{FieldPath, TaskError, TaskErrorKind};
use super::limits;
use super::locate::{locate, locate_duplicate_key};
use super::spec::TaskSpec;
use super::yaml::{describe, string};
use crate::names::JobName;
use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;

/// A chain of tasks run one after another, and the chain's name.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskDag {
    pub name: Option<JobName>,
    pub tasks: Vec<TaskSpec>,
}

impl TaskDag {
    /// The chain as the official client sends it: a header document with
    /// the name, then one document per task.
    pub fn to_yaml(&self) -> String {
        #[derive(Serialize)]
        struct Header<'a> {
            name: Option<&'a str>,
        }
        let header = Header {
            name: self.name.as_deref(),
        };
        let mut text = serde_yaml_ng::to_string(&header).expect("a header serializes");
        for task in &self.tasks {
            text.push_str("---\n");
            text.push_str(&task.to_yaml());
        }
        text
    }
}

/// Parses a task YAML: one or more documents separated by `---`. A first
/// document holding only `name` (and optionally `execution: serial`) names
/// the chain and is not a task, as in SkyPilot's DAG YAML.
pub fn parse_dag(text: &str) -> Result<TaskDag, TaskError> {
    limits::check_text_size(text)?;
    let documents = read_documents(text)?;
    let several = documents.len() > 1;
    let place = |error: TaskError, index: usize| -> TaskError {
        let error = match locate(text, index, error.path().segments(), error.target()) {
            Some((line, column)) => error.located(line, column),
            None => error,
        };
        if several {
            error.in_document(index + 1)
        } else {
            error
        }
    };

    if let Some(index) = documents.iter().position(|(_, doc)| doc.is_null()) {
        let message = if several {
            "this document is empty: remove the extra --- or give the task's fields"
        } else {
            "the task YAML is empty: give at least run: (or setup:)"
        };
        let error = TaskError::new(TaskErrorKind::EmptyDocument, FieldPath::root(), message);
        return Err(place(error, documents[index].0));
    }

    // Every document is read even after a mistake, so that one run reports
    // all of them.
    let mut mistakes = Vec::new();
    let mut name = None;
    let mut first_task = 0;
    if let Some((index, header)) = documents.first().filter(|(_, doc)| is_header(doc)) {
        match header_name(header) {
            Ok(header_name) => name = header_name,
            Err(e) => mistakes.push(place(e, *index)),
        }
        first_task = 1;
    }
    let mut tasks = Vec::new();
    let budget = mistake_budget(text.len());
    for (index, document) in &documents[first_task..] {
        if mistakes.len() >= budget {
            break;
        }
        match read_task(document, budget - mistakes.len()) {
            Ok(task) => match task.check_limits() {
                Ok(()) => tasks.push(task),
                Err(e) => mistakes.push(place(e, *index)),
            },
            Err(errors) => mistakes.extend(errors.into_iter().map(|e| place(e, *index))),
        }
    }
    if let Some(error) = TaskError::several(mistakes) {
        return Err(error);
    }
    if tasks.is_empty() {
        // Only a header: SkyPilot still makes one (empty) task of it.
        tasks.push(TaskSpec {
            name: name.clone(),
            ..TaskSpec::default()
        });
    } else if documents.len() == 1 {
        name = tasks[0].name.clone();
    }
    Ok(TaskDag { name, tasks })
}

/// Parses a task YAML into its tasks, in order; see [`parse_dag`].
pub fn parse_tasks(text: &str) -> Result<Vec<TaskSpec>, TaskError> {
    parse_dag(text).map(|dag| dag.tasks)
}

/// Every document with its position in the text.
fn read_documents(text: &str) -> Result<Vec<(usize, Value)>, TaskError> {
    let mut documents = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        limits::check_document_count(index + 1)?;
        let mut value = Value::deserialize(document).map_err(|e| syntax_error(&e, text, index))?;
        // PyYAML resolves `<<: *anchor` merges while reading; do the same.
        value
            .apply_merge()
            .map_err(|e| syntax_error(&e, text, index))?;
        documents.push((index, value));
    }
    if documents.is_empty() {
        let error = TaskError::new(
            TaskErrorKind::EmptyDocument,
            FieldPath::root(),
            "the task YAML is empty: give at least run: (or setup:)",
        );
        return Err(error);
    }
    Ok(documents)
}

fn is_header(document: &Value) -> bool {
    let Value::Mapping(mapping) = document else {
        return false;
    };
    let keys: Vec<&str> = mapping.keys().filter_map(Value::as_str).collect();
    keys.len() == mapping.len()
        && (keys == ["name"]
            || (keys.len() == 2 && keys.contains(&"name") && keys.contains(&"execution")))
}

fn header_name(header: &Value) -> Result<Option<JobName>, TaskError> {
    let root = FieldPath::root();
    if let Some(execution) = header.get("execution") {
        let path = root.key("execution");
        if string(execution, &path, "serial")? != "serial" {
            return Err(TaskError::invalid(
                &path,
                &describe(execution),
                "serial (a chain runs its tasks in order)",
            ));
        }
    }
    match header.get("name") {
        None | Some(Value::Null) => Ok(None),
        Some(name) => {
            let path = root.key("name");
            let name = string(name, &path, "a string")?;
            super::spec::job_name(name, &path).map(Some)
        }
    }
}

/// A YAML syntax error, with its position and a hint for the usual cause.
fn syntax_error(error: &serde_yaml_ng::Error, text: &str, document: usize) -> TaskError {
    let message = strip_positions(&error.to_string());
    const DUPLICATE: &str = "duplicate entry with key ";
    let duplicate_key = message
        .find(DUPLICATE)
        .map(|at| &message[at + DUPLICATE.len()..]);
    let (message, position) = match duplicate_key {
        Some(key) => (
            format!("duplicate key {key}: a key may appear only once in a mapping"),
            locate_duplicate_key(text, document),
        ),
        None => (
            format!("invalid YAML: {message}"),
            error.location().map(|l| (l.line(), l.column())),
        ),
    };
    let mut task_error = TaskError::new(TaskErrorKind::Syntax, FieldPath::root(), message.clone());
    if let Some((line, column)) = position {
        task_error = task_error.located(line, column);
        let line = text.lines().nth(line.saturating_sub(1)).unwrap_or("");
        if line
            .chars()
            .take_while(|c| c.is_whitespace())
            .any(|c| c == '\t')
            || message.contains("tab")
        {
            task_error = task_error.with_suggestion("YAML indentation must use spaces, not tabs");
        }
    }
    task_error
}

/// The library's message without its " at line N column M" parts, which
/// `TaskError` shows in front.
fn strip_positions(message: &str) -> String {
    fn digits(s: &str) -> &str {
        s.trim_start_matches(|c: char| c.is_ascii_digit())
    }
    let mut out = String::new();
    let mut rest = message;
    while let Some(start) = rest.find(" at line ") {
        out.push_str(&rest[..start]);
        let after = digits(&rest[start + " at line ".len()..]);
        rest = after.strip_prefix(" column ").map_or(after, digits);
    }
    out.push_str(rest);
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_cut_from_library_messages() {
        assert_eq!(
            strip_positions(
                "found a tab character that violates indentation at line 2 column 1, \
                 while scanning a plain scalar at line 1 column 7"
            ),
            "found a tab character that violates indentation, while scanning a plain scalar"
        );
        assert_eq!(
            strip_positions("duplicate entry with key \"a\""),
            "duplicate entry with key \"a\""
        );
    }
}
