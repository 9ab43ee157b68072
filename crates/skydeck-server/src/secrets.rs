//! Task secrets kept out of the database.
//!
//! A request's body is stored as JSON and shown to whoever may list
//! requests, so a task YAML is stored with its secret values redacted. The
//! YAML as sent, which the operation needs, goes to a file only the server's
//! user can read, named by the request id; it is removed once the request
//! is over. A server that crashes mid-launch finds it there on restart, so a
//! resumed launch still has its secrets.

use serde_json::Value;
use skydeck_types::command_line;
use skydeck_types::task::{parse_tasks, redact_task_yaml};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct SecretStash {
    dir: PathBuf,
}

impl SecretStash {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn path(&self, request_id: &str) -> Option<PathBuf> {
        // Request ids are UUIDs the server made; anything else is not ours.
        let safe = !request_id.is_empty()
            && request_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-');
        safe.then(|| self.dir.join(format!("{request_id}.yaml")))
    }

    /// The form of `task_yaml` that may be stored. When it differs from the
    /// original, the original is first written to the stash, so the request
    /// can be stored only once its secrets are safe.
    pub fn stash_task(&self, request_id: &str, task_yaml: &str) -> std::io::Result<String> {
        let storable = redact_task_yaml(task_yaml);
        if storable == task_yaml {
            return Ok(storable);
        }
        let path = self.path(request_id).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "invalid request id")
        })?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        write_private(&path, task_yaml.as_bytes())?;
        Ok(storable)
    }

    /// The task YAML the request was sent with: the stashed original when
    /// there is one, else the stored form (which then had no secrets).
    pub fn original_task(&self, request_id: &str, stored: String) -> String {
        self.path(request_id)
            .and_then(|path| std::fs::read_to_string(path).ok())
            .unwrap_or(stored)
    }

    /// Forgets a request's secrets.
    pub fn discard(&self, request_id: &str) {
        if let Some(path) = self.path(request_id) {
            let _ = std::fs::remove_file(path);
        }
    }

    /// The ids of the requests whose secrets were stashed at least
    /// `min_age` ago. The age keeps a sweep away from a request whose
    /// secrets are stashed but which is not stored yet.
    pub fn request_ids(&self, min_age: Duration) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter(|entry| {
                entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|modified| modified.elapsed().ok())
                    .is_some_and(|age| age >= min_age)
            })
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                name.strip_suffix(".yaml").map(str::to_owned)
            })
            .collect()
    }
}

/// The fields of a request body that hold the command line that made it.
const COMMAND_LINE_FIELDS: &[&str] = &["entrypoint", "entrypoint_command"];

/// Secrets typed on the command line (`--secret NAME=VALUE`, or `--env
/// NAME=VALUE` for a NAME under the task's `secrets:`), removed from the
/// request's stored command lines: `entrypoint` (returned, for the
/// request's column) and the body's `entrypoint`/`entrypoint_command`,
/// which `status -v`, `/api/status` and the database show. The task's
/// secret values are also removed wherever they appear, so a value with
/// spaces (split when the client joined its arguments) goes whole.
pub async fn redact_command_lines(
    stash: &SecretStash,
    request_id: &str,
    body: &mut Value,
    entrypoint: &str,
) -> std::io::Result<String> {
    let mentions_flags = |line: &str| line.contains("--secret") || line.contains("--env");
    let lines: Vec<&str> = COMMAND_LINE_FIELDS
        .iter()
        .filter_map(|field| body.get(*field)?.as_str())
        .chain([entrypoint])
        .collect();
    if !lines.into_iter().any(mentions_flags) {
        return Ok(entrypoint.to_owned());
    }
    // The task as sent (with its secret values) is in the stash when it
    // had any; parsing it is CPU work, so not on an async worker.
    let task = body
        .get("task")
        .or_else(|| body.get("dag"))
        .and_then(Value::as_str)
        .map(|stored| stash.original_task(request_id, stored.to_owned()));
    let mut owned = body.take();
    let entrypoint = entrypoint.to_owned();
    let (owned, entrypoint) = tokio::task::spawn_blocking(move || {
        let tasks = task
            .as_deref()
            .and_then(|yaml| parse_tasks(yaml).ok())
            .unwrap_or_default();
        let names: Vec<&str> = tasks
            .iter()
            .flat_map(|t| t.secrets.keys().map(String::as_str))
            .collect();
        let values: Vec<&str> = tasks.iter().flat_map(|t| t.secret_values()).collect();
        let redact = |line: &str| {
            command_line::redact_line(&command_line::redact_values(line, &values), &names)
        };
        for field in COMMAND_LINE_FIELDS {
            if let Some(Value::String(line)) = owned.get_mut(*field) {
                *line = redact(line);
            }
        }
        let entrypoint = redact(&entrypoint);
        (owned, entrypoint)
    })
    .await
    .map_err(std::io::Error::other)?;
    *body = owned;
    Ok(entrypoint)
}

/// Writes a file readable by its owner only, whole or not at all.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let partial = path.with_extension("partial");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&partial, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const WITH_SECRET: &str = "run: echo hi\nsecrets:\n  HF_TOKEN: hf_abc123\n";

    #[test]
    fn a_task_with_secrets_is_stored_redacted_and_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let stash = SecretStash::new(dir.path().join("secrets"));
        let id = "0b7c6c1e-9a43-4a57-8d0e-2f1f4b3c9d11";
        let storable = stash.stash_task(id, WITH_SECRET).unwrap();
        assert!(!storable.contains("hf_abc123"), "{storable}");
        assert!(storable.contains("HF_TOKEN"));

        let file = dir.path().join("secrets").join(format!("{id}.yaml"));
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(stash.original_task(id, storable.clone()), WITH_SECRET);
        assert_eq!(stash.request_ids(Duration::ZERO), vec![id.to_owned()]);
        assert!(stash.request_ids(Duration::from_secs(3600)).is_empty());

        stash.discard(id);
        assert_eq!(stash.original_task(id, storable.clone()), storable);
        assert!(stash.request_ids(Duration::ZERO).is_empty());
    }

    #[test]
    fn a_task_without_secrets_is_stored_as_sent_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let stash = SecretStash::new(dir.path().join("secrets"));
        let task = "run: echo hi\nenvs:\n  A: b\n";
        assert_eq!(stash.stash_task("abc", task).unwrap(), task);
        assert!(!dir.path().join("secrets").exists());
    }

    #[tokio::test]
    async fn secrets_typed_on_the_command_line_are_stored_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let stash = SecretStash::new(dir.path().join("secrets"));
        let id = "0b7c6c1e-9a43-4a57-8d0e-2f1f4b3c9d11";
        let task = "run: echo hi\nsecrets:\n  HF_TOKEN: hf two words\n  DB: null\n";
        let stored = stash.stash_task(id, task).unwrap();
        let line = "sky launch --secret HF_TOKEN=hf two words --env DB=pw-db9 --env A=1 t.yaml";
        let mut body = serde_json::json!({
            "task": stored,
            "entrypoint": "sky launch",
            "entrypoint_command": line,
        });
        let entrypoint = redact_command_lines(&stash, id, &mut body, "sky launch")
            .await
            .unwrap();
        assert_eq!(entrypoint, "sky launch");
        assert_eq!(
            body["entrypoint_command"],
            "sky launch --secret HF_TOKEN=<redacted> --env DB=<redacted> --env A=1 t.yaml"
        );
        assert_eq!(body["task"], stored.as_str(), "the rest is untouched");
    }

    #[test]
    fn ids_that_could_name_another_path_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let stash = SecretStash::new(dir.path().join("secrets"));
        assert!(stash.stash_task("../escape", WITH_SECRET).is_err());
        assert!(!dir.path().join("escape.yaml").exists());
    }
}
