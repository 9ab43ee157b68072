//! Each request's log: a file under the state directory that `/api/stream`
//! replays from byte 0 and follows — or, for a request whose reader is
//! connected while it runs (a followed job log), a live channel to that
//! reader, so that an endless follow copies nothing to disk. A log read
//! once to its end (`follow: false`) goes to both: the official client
//! saves such a log (`sky jobs logs --sync-down`) by streaming the same
//! request again from `/api/stream` while the first response drains.

use crate::signals::Signals;
use bytes::Bytes;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

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
    /// Where the output goes instead of the file while a reader is
    /// attached (see [`RequestLog::live`]).
    live: Option<mpsc::Sender<Bytes>>,
    /// Whether a live log is also written to the file.
    tee: bool,
}

/// The reader of a live request log went away.
#[derive(Debug)]
pub struct ReaderGone;

impl RequestLog {
    pub fn new(dir: &LogDir, id: &str, signals: Arc<Signals>) -> Self {
        Self {
            id: id.to_owned(),
            path: dir.path(id),
            file: Mutex::new(None),
            signals,
            live: None,
            tee: false,
        }
    }

    /// A log that keeps nothing: for operations a page runs to read, whose
    /// answer is the page.
    pub fn discarding(signals: Arc<Signals>) -> Self {
        Self {
            id: String::new(),
            path: None,
            file: Mutex::new(None),
            signals,
            live: None,
            tee: false,
        }
    }

    /// A log whose output goes to `reader` as it is written (and, with
    /// `tee`, to the file as well). Lines written with the synchronous
    /// [`RequestLog::write`] while the channel is full fall back to the
    /// file.
    pub fn live(
        dir: &LogDir,
        id: &str,
        signals: Arc<Signals>,
        reader: mpsc::Sender<Bytes>,
        tee: bool,
    ) -> Self {
        Self {
            live: Some(reader),
            tee,
            ..Self::new(dir, id, signals)
        }
    }

    /// Writes `text`, waiting for a live reader to take it (so a slow
    /// reader slows the writer instead of growing a buffer). Fails only
    /// when the live reader has gone.
    pub async fn send(&self, text: String) -> Result<(), ReaderGone> {
        if text.is_empty() {
            return Ok(());
        }
        match &self.live {
            Some(reader) => {
                if self.tee {
                    self.append(&text);
                }
                reader.send(Bytes::from(text)).await.map_err(|_| ReaderGone)
            }
            None => {
                self.append(&text);
                Ok(())
            }
        }
    }

    /// True when this log had a live reader and it has gone.
    pub fn reader_gone(&self) -> bool {
        self.live.as_ref().is_some_and(mpsc::Sender::is_closed)
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Writes `text` as is. Failures to log never fail the request itself.
    pub fn write(&self, text: &str) {
        if let Some(reader) = &self.live {
            let sent = reader
                .try_send(Bytes::copy_from_slice(text.as_bytes()))
                .is_ok();
            if sent && !self.tee {
                return;
            }
        }
        self.append(text);
    }

    /// Appends `text` to the file and wakes its streams.
    fn append(&self, text: &str) {
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

/// Turns a byte stream into text, replacing each invalid UTF-8 sequence
/// with U+FFFD as Python's `errors="replace"` does (so as SkyPilot shows
/// such output), and keeping a character split between two pieces whole.
#[derive(Debug, Default)]
pub struct LossyUtf8 {
    /// The start of a character whose rest has not arrived (under 4 bytes).
    pending: Vec<u8>,
}

impl LossyUtf8 {
    pub fn push(&mut self, bytes: &[u8]) -> String {
        let joined;
        let mut rest = if self.pending.is_empty() {
            bytes
        } else {
            let mut pending = std::mem::take(&mut self.pending);
            pending.extend_from_slice(bytes);
            joined = pending;
            &joined[..]
        };
        let mut out = String::with_capacity(rest.len());
        loop {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    out.push_str(text);
                    return out;
                }
                Err(err) => {
                    let (valid, after) = rest.split_at(err.valid_up_to());
                    out.push_str(std::str::from_utf8(valid).expect("checked valid"));
                    match err.error_len() {
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            rest = &after[bad..];
                        }
                        None => {
                            self.pending = after.to_vec();
                            return out;
                        }
                    }
                }
            }
        }
    }

    /// What is left at the end of the stream: a replacement for a
    /// character that never completed.
    pub fn finish(&mut self) -> String {
        if std::mem::take(&mut self.pending).is_empty() {
            String::new()
        } else {
            char::REPLACEMENT_CHARACTER.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lossy(pieces: &[&[u8]]) -> String {
        let mut decoder = LossyUtf8::default();
        let mut out: String = pieces.iter().map(|p| decoder.push(p)).collect();
        out.push_str(&decoder.finish());
        out
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        assert_eq!(lossy(&[b"ok \xff done\n"]), "ok \u{fffd} done\n");
        assert_eq!(lossy(&[b"\xc3"]), "\u{fffd}");
        let whole = String::from_utf8_lossy(b"a\xe2\x82b\xf0\x9f\x98\x80\xff").into_owned();
        assert_eq!(lossy(&[b"a\xe2\x82b\xf0\x9f\x98\x80\xff"]), whole);
    }

    #[test]
    fn a_character_split_between_pieces_stays_whole() {
        let euro = "€".as_bytes();
        assert_eq!(
            lossy(&[b"x", &euro[..1], &euro[1..2], &euro[2..], b"y"]),
            "x€y"
        );
    }

    #[tokio::test]
    async fn a_live_log_goes_to_its_reader_not_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogDir::new(dir.path().to_path_buf()).unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let log = RequestLog::live(&logs, "r1", Arc::new(Signals::default()), tx, false);
        log.send("job output\n".to_owned()).await.unwrap();
        log.line("server line");
        assert_eq!(rx.recv().await.unwrap(), "job output\n");
        assert_eq!(rx.recv().await.unwrap(), "server line\n");
        assert!(!log.path().unwrap().exists());
        drop(rx);
        assert!(log.send("more".to_owned()).await.is_err());
    }

    #[tokio::test]
    async fn a_live_log_read_once_is_also_kept_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogDir::new(dir.path().to_path_buf()).unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let log = RequestLog::live(&logs, "r1", Arc::new(Signals::default()), tx, true);
        log.send("job output\n".to_owned()).await.unwrap();
        log.line("server line");
        assert_eq!(rx.recv().await.unwrap(), "job output\n");
        assert_eq!(rx.recv().await.unwrap(), "server line\n");
        let kept = std::fs::read_to_string(log.path().unwrap()).unwrap();
        assert_eq!(kept, "job output\nserver line\n");
    }

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
