//! Task secrets kept out of the database.
//!
//! A request's body is stored as JSON and shown to whoever may list
//! requests, so a task YAML is stored with its secret values redacted. The
//! YAML as sent, which the operation needs, goes to a file only the server's
//! user can read, named by the request id; it is removed once the request
//! is over. A server that crashes mid-launch finds it there on restart, so a
//! resumed launch still has its secrets.

use skydeck_types::task::redact_task_yaml;
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

    #[test]
    fn ids_that_could_name_another_path_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let stash = SecretStash::new(dir.path().join("secrets"));
        assert!(stash.stash_task("../escape", WITH_SECRET).is_err());
        assert!(!dir.path().join("escape.yaml").exists());
    }
}
