//! Each request's log: a file under the state directory that `/api/stream`
//! replays from byte 0 and follows.

use crate::signals::Signals;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The directory of request logs.
#[derive(Debug, Clone)]
pub struct LogDir {
    dir: PathBuf,
}

impl LogDir {
    pub fn new(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    /// The log of request `id`. Ids come from our database, but we still
    /// refuse anything that could name a path outside the directory.
    pub fn path(&self, id: &str) -> Option<PathBuf> {
        let safe = !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        safe.then(|| self.dir.join(format!("{id}.log")))
    }
}

/// Appends to one request's log and wakes its streams. The file is created on
/// first write, so the many requests that log nothing cost no file.
pub struct RequestLog {
    id: String,
    path: Option<PathBuf>,
    file: Mutex<Option<File>>,
    signals: Arc<Signals>,
}

impl RequestLog {
    pub fn new(dir: &LogDir, id: &str, signals: Arc<Signals>) -> Self {
        Self {
            id: id.to_owned(),
            path: dir.path(id),
            file: Mutex::new(None),
            signals,
        }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Writes `text` as is. Failures to log never fail the request itself.
    pub fn write(&self, text: &str) {
        let Some(path) = &self.path else { return };
        let mut file = self.file.lock().expect("log lock");
        if file.is_none() {
            match OpenOptions::new().create(true).append(true).open(path) {
                Ok(opened) => *file = Some(opened),
                Err(err) => {
                    tracing::warn!(request.id = %self.id, error = %err, "cannot open request log");
                    return;
                }
            }
        }
        if let Some(f) = file.as_mut()
            && let Err(err) = f.write_all(text.as_bytes())
        {
            tracing::warn!(request.id = %self.id, error = %err, "cannot write request log");
        }
        drop(file);
        self.signals.notify(&self.id);
    }

    /// Writes one line, adding the newline.
    pub fn line(&self, line: &str) {
        self.write(&format!("{line}\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_escape_the_directory_have_no_path() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogDir::new(dir.path().join("requests")).unwrap();
        assert!(logs.path("abc-123").is_some());
        for bad in ["", "../x", "a/b", "a\\b", "..", "a b"] {
            assert!(logs.path(bad).is_none(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn the_log_appears_on_first_write_and_appends() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogDir::new(dir.path().to_path_buf()).unwrap();
        let log = RequestLog::new(&logs, "r1", Arc::new(Signals::default()));
        assert!(!log.path().unwrap().exists());
        log.line("one");
        log.write("two\n");
        assert_eq!(
            std::fs::read_to_string(log.path().unwrap()).unwrap(),
            "one\ntwo\n"
        );
    }
}
