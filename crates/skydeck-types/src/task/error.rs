//! `TaskError`: what went wrong in a task YAML, where, and what to do instead.

use std::fmt;

/// One step of a path into a task: a mapping key or a list position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    Key(String),
    Index(usize),
}

/// Where a field sits in a task, e.g. `resources.any_of[1].cpus`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(Vec<PathSegment>);

impl FieldPath {
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// A path for something that is not in the YAML, such as a CLI flag.
    pub fn flag(name: &str) -> Self {
        Self(vec![PathSegment::Key(name.to_owned())])
    }

    pub fn key(&self, key: &str) -> Self {
        let mut segments = self.0.clone();
        segments.push(PathSegment::Key(key.to_owned()));
        Self(segments)
    }

    pub fn index(&self, index: usize) -> Self {
        let mut segments = self.0.clone();
        segments.push(PathSegment::Index(index));
        Self(segments)
    }

    pub fn segments(&self) -> &[PathSegment] {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// How a message names the mapping at this path: "the task" at the top.
    pub(crate) fn describe_container(&self) -> String {
        if self.is_root() {
            "the task".to_owned()
        } else {
            self.to_string()
        }
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                PathSegment::Key(key) if i == 0 => f.write_str(key)?,
                PathSegment::Key(key) => write!(f, ".{key}")?,
                PathSegment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// What sort of mistake a `TaskError` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskErrorKind {
    /// The text is not YAML (bad indentation, tabs, unclosed quotes…).
    Syntax,
    /// A key that the task format does not have.
    UnknownField,
    /// A value of the wrong type or outside what the field accepts.
    InvalidValue,
    /// A value that must be given (with `--env`/`--secret`) is missing.
    MissingValue,
    /// Fields that are each fine but do not go together.
    Conflict,
    /// A document with nothing in it.
    EmptyDocument,
}

/// Which part of a `key: value` pair an error is about; it decides which
/// position the error reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Key,
    Value,
}

/// An error in a task YAML or in the overrides applied to it.
///
/// Displays as `line 3, column 1: unknown field "runn" in the task; did you
/// mean "run"?`: the document (only when the text holds several), the
/// 1-based line and column when the error came from text, the field path,
/// the message and a suggestion.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskError(Box<Details>);

// Boxed so that `Result<_, TaskError>` stays small on the happy path.
#[derive(Debug, Clone, PartialEq)]
struct Details {
    kind: TaskErrorKind,
    document: Option<usize>,
    line: Option<usize>,
    column: Option<usize>,
    path: FieldPath,
    message: String,
    suggestion: Option<String>,
    target: Target,
    /// The task's further mistakes, in file order, after this first one.
    more: Vec<TaskError>,
}

impl TaskError {
    pub(crate) fn new(kind: TaskErrorKind, path: FieldPath, message: impl Into<String>) -> Self {
        Self(Box::new(Details {
            kind,
            document: None,
            line: None,
            column: None,
            path,
            message: message.into(),
            suggestion: None,
            target: Target::Value,
            more: Vec::new(),
        }))
    }

    /// One error for several mistakes: sorted into file order (document,
    /// line, column; unplaced ones last), the first one leading. `None` for
    /// an empty list.
    pub(crate) fn several(mut errors: Vec<TaskError>) -> Option<Self> {
        errors.sort_by_key(|e| (e.document(), e.line().is_none(), e.line(), e.column()));
        let mut errors = errors.into_iter();
        let mut first = errors.next()?;
        first.0.more = errors.flat_map(|e| e.all_owned()).collect();
        Some(first)
    }

    fn all_owned(mut self) -> Vec<TaskError> {
        let more = std::mem::take(&mut self.0.more);
        std::iter::once(self).chain(more).collect()
    }

    /// Every mistake this error reports, in file order: itself first, then
    /// the others found in the same read. Show each with [`Self::alone`].
    pub fn all(&self) -> impl Iterator<Item = &TaskError> {
        std::iter::once(self).chain(self.0.more.iter())
    }

    /// This mistake as one sentence, without the others it leads.
    pub fn alone(&self) -> String {
        struct One<'a>(&'a TaskError);
        impl fmt::Display for One<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt_one(f)
            }
        }
        One(self).to_string()
    }

    /// A value that is not what the field accepts: `invalid value "two":
    /// expected a number of CPUs such as 4 or "4+"`.
    pub(crate) fn invalid(path: &FieldPath, found: &str, expected: &str) -> Self {
        // Scalars are quoted as given; collections only by kind ("a list"),
        // which reads better after the expectation.
        let message = if found.starts_with("a ") || found.starts_with("an ") {
            format!("expected {expected}, found {found}")
        } else {
            format!("invalid value {found}: expected {expected}")
        };
        Self::new(TaskErrorKind::InvalidValue, path.clone(), message)
    }

    /// A key that is not allowed in the mapping at `container`.
    pub(crate) fn unknown_field(container: &FieldPath, key: &str) -> Self {
        let mut error = Self::new(
            TaskErrorKind::UnknownField,
            container.key(key),
            format!(
                "unknown field {key:?} in {}",
                container.describe_container()
            ),
        );
        error.0.target = Target::Key;
        error
    }

    pub(crate) fn conflict(path: FieldPath, message: impl Into<String>) -> Self {
        Self::new(TaskErrorKind::Conflict, path, message)
    }

    pub(crate) fn with_suggestion(mut self, suggestion: impl Into<String>) -> Self {
        self.0.suggestion = Some(suggestion.into());
        self
    }

    /// The same error about another field, e.g. a CLI flag.
    pub(crate) fn at_path(mut self, path: FieldPath) -> Self {
        self.0.path = path;
        self
    }

    /// Points the error's position at the key instead of its value.
    pub(crate) fn at_key(mut self) -> Self {
        self.0.target = Target::Key;
        self
    }

    pub(crate) fn located(mut self, line: usize, column: usize) -> Self {
        self.0.line = Some(line);
        self.0.column = Some(column);
        self
    }

    pub(crate) fn in_document(mut self, document: usize) -> Self {
        self.0.document = Some(document);
        self
    }

    pub(crate) fn target(&self) -> Target {
        self.0.target
    }

    pub fn kind(&self) -> TaskErrorKind {
        self.0.kind
    }

    /// The 1-based position of the YAML document, set when the text held
    /// more than one.
    pub fn document(&self) -> Option<usize> {
        self.0.document
    }

    /// The 1-based line of the offending key or value, when known.
    pub fn line(&self) -> Option<usize> {
        self.0.line
    }

    /// The 1-based column of the offending key or value, when known.
    pub fn column(&self) -> Option<usize> {
        self.0.column
    }

    /// The field the error is about, e.g. `resources.cpus`; empty for the
    /// task as a whole.
    pub fn path(&self) -> &FieldPath {
        &self.0.path
    }

    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// What to do instead, e.g. `did you mean "run"?`.
    pub fn suggestion(&self) -> Option<&str> {
        self.0.suggestion.as_deref()
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.more.is_empty() {
            return self.fmt_one(f);
        }
        write!(f, "{} mistakes:", self.0.more.len() + 1)?;
        for error in self.all() {
            write!(f, "\n  {}", error.alone())?;
        }
        Ok(())
    }
}

impl TaskError {
    /// This mistake alone, as one sentence.
    fn fmt_one(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut position = Vec::new();
        if let Some(document) = self.0.document {
            position.push(format!("document {document}"));
        }
        if let Some(line) = self.0.line {
            position.push(format!("line {line}"));
        }
        if let Some(column) = self.0.column {
            position.push(format!("column {column}"));
        }
        if !position.is_empty() {
            write!(f, "{}: ", position.join(", "))?;
        }
        // An unknown-field message already names where the key sits.
        if !self.0.path.is_root() && self.0.kind != TaskErrorKind::UnknownField {
            write!(f, "{}: ", self.0.path)?;
        }
        f.write_str(&self.0.message)?;
        if let Some(suggestion) = &self.0.suggestion {
            write!(f, "; {suggestion}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TaskError {}

/// The candidate closest to `given`, when it is close enough to be the
/// likely intent (a typo), so that a suggestion never looks random.
pub(crate) fn closest<'a>(given: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let given_lower = given.to_ascii_lowercase();
    candidates
        .iter()
        // Internal keys (`_docker_login_config`) are only offered to someone
        // who is already typing an internal key.
        .filter(|c| given.starts_with('_') || !c.starts_with('_'))
        .map(|c| {
            (
                *c,
                strsim::levenshtein(&given_lower, &c.to_ascii_lowercase()),
            )
        })
        .filter(|(c, distance)| {
            let shorter = given.chars().count().min(c.chars().count());
            let similarity = strsim::normalized_levenshtein(&given_lower, &c.to_ascii_lowercase());
            (*distance <= 2 && *distance < shorter) || similarity >= 0.7
        })
        .min_by_key(|(_, distance)| *distance)
        .map(|(c, _)| c)
}

/// `did you mean "run"?` for the closest candidate, if any is close.
pub(crate) fn did_you_mean(given: &str, candidates: &[&str]) -> Option<String> {
    closest(given, candidates).map(|c| format!("did you mean {c:?}?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_display_keys_and_indexes() {
        let path = FieldPath::root()
            .key("resources")
            .key("any_of")
            .index(1)
            .key("cpus");
        assert_eq!(path.to_string(), "resources.any_of[1].cpus");
        assert_eq!(
            FieldPath::root()
                .key("file_mounts")
                .key("/data")
                .to_string(),
            "file_mounts./data"
        );
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        let keys = [
            "name",
            "run",
            "setup",
            "num_nodes",
            "resources",
            "_metadata",
        ];
        assert_eq!(closest("runn", &keys), Some("run"));
        assert_eq!(closest("Run", &keys), Some("run"));
        assert_eq!(closest("resorces", &keys), Some("resources"));
        assert_eq!(closest("numnodes", &keys), Some("num_nodes"));
        assert_eq!(closest("zzz", &keys), None);
        assert_eq!(closest("x", &keys), None);
        // Internal keys are not offered for ordinary typos.
        assert_eq!(closest("metadata", &keys), None);
        assert_eq!(closest("_metadat", &keys), Some("_metadata"));
    }

    #[test]
    fn display_reads_as_one_sentence() {
        let error = TaskError::unknown_field(&FieldPath::root(), "runn")
            .with_suggestion("did you mean \"run\"?")
            .located(3, 1);
        assert_eq!(
            error.to_string(),
            "line 3, column 1: unknown field \"runn\" in the task; did you mean \"run\"?"
        );
        let error = TaskError::invalid(
            &FieldPath::root().key("resources").key("cpus"),
            "\"two\"",
            "a number of CPUs such as 4 or \"4+\"",
        )
        .located(7, 9)
        .in_document(2);
        assert_eq!(
            error.to_string(),
            "document 2, line 7, column 9: resources.cpus: invalid value \"two\": \
             expected a number of CPUs such as 4 or \"4+\""
        );
    }
}
