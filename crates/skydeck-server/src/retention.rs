//! What the server keeps, and for how long.
//!
//! Without this a busy server grows forever: every request is a row and
//! often a log file, every upload a directory, every `--sync-down` a copy of
//! a job log. Finished requests (and their logs) and prepared downloads go
//! once they are older than the request retention; uploaded blobs once no
//! request has used them for the blob retention. Requests still waiting or
//! running are never touched, however old. (Incomplete uploads are swept by
//! `uploads.rs`.)

use crate::state::AppState;
use skydeck_store::RequestFilter;
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

pub const ENV_REQUEST_RETENTION_HOURS: &str = "SKYDECK_REQUEST_RETENTION_HOURS";
pub const ENV_BLOB_RETENTION_HOURS: &str = "SKYDECK_BLOB_RETENTION_HOURS";

const DEFAULT_REQUESTS: Duration = Duration::from_secs(7 * 24 * 3600);
const DEFAULT_BLOBS: Duration = Duration::from_secs(24 * 3600);

/// Rows deleted per statement: a sweep after a long pause (or a shortened
/// retention) never holds the database in one huge transaction.
const BATCH: u32 = 500;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retention {
    /// Finished requests, their logs and prepared downloads.
    pub requests: Duration,
    /// Uploaded blobs no request has used for this long.
    pub blobs: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            requests: DEFAULT_REQUESTS,
            blobs: DEFAULT_BLOBS,
        }
    }
}

impl Retention {
    /// From `SKYDECK_REQUEST_RETENTION_HOURS` and
    /// `SKYDECK_BLOB_RETENTION_HOURS` (fractions allowed: `0.5` is 30
    /// minutes); the defaults are 7 days and 1 day.
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            requests: hours(ENV_REQUEST_RETENTION_HOURS)?.unwrap_or(DEFAULT_REQUESTS),
            blobs: hours(ENV_BLOB_RETENTION_HOURS)?.unwrap_or(DEFAULT_BLOBS),
        })
    }

    /// How often to sweep: often enough that nothing outlives its
    /// retention by more than a tenth of it, and at most every 10 minutes.
    pub fn sweep_interval(&self) -> Duration {
        (self.requests.min(self.blobs) / 10).clamp(Duration::from_secs(1), Duration::from_secs(600))
    }
}

fn hours(name: &str) -> anyhow::Result<Option<Duration>> {
    parse_hours(name, std::env::var(name).ok())
}

fn parse_hours(name: &str, value: Option<String>) -> anyhow::Result<Option<Duration>> {
    match value {
        Some(value) if !value.trim().is_empty() => match value.trim().parse::<f64>() {
            Ok(h) if h.is_finite() && h > 0.0 && h < 1e6 => {
                Ok(Some(Duration::from_secs_f64(h * 3600.0)))
            }
            _ => anyhow::bail!(
                "{name}={value:?}: expected a number of hours above 0, e.g. 168 for a week or \
                 0.5 for 30 minutes"
            ),
        },
        _ => Ok(None),
    }
}

/// What one sweep removed.
#[derive(Debug, Default, PartialEq)]
pub struct Swept {
    pub requests: usize,
    pub files: usize,
    pub blobs: usize,
}

/// One pass over everything kept; failures are logged and retried at the
/// next pass.
pub async fn sweep(state: &AppState) -> Swept {
    let retention = state.config.retention;
    let now = SystemTime::now();
    let request_cutoff = now - retention.requests;
    let mut swept = Swept::default();
    let before = crate::executor::now() - retention.requests.as_secs_f64();
    let logs = state.executor.logs().clone();
    loop {
        let ids = match state.store.delete_finished_requests(before, BATCH).await {
            Ok(ids) => ids,
            Err(err) => {
                tracing::warn!(error = %err, "cannot delete old requests");
                break;
            }
        };
        swept.requests += ids.len();
        state.executor.forget_finished(&ids);
        for id in &ids {
            if let Some(path) = logs.path(id) {
                let _ = std::fs::remove_file(path);
            }
        }
        if ids.len() < BATCH as usize {
            break;
        }
    }
    let uploads = state.config.paths.uploads();
    let blob_cutoff = now - retention.blobs;
    // Reading every request for the blobs they name costs; only done when
    // some blob is old enough to go.
    let any_old = {
        let uploads = uploads.clone();
        tokio::task::spawn_blocking(move || count_unused_blobs(&uploads, blob_cutoff) > 0)
            .await
            .unwrap_or(false)
    };
    let keep = if any_old {
        blobs_in_use(state, blob_cutoff).await
    } else {
        None
    };
    let paths = state.config.paths.clone();
    let files = tokio::task::spawn_blocking(move || {
        // Logs whose request is gone (deleted through another replica, or
        // before this sweep existed) age out by their own time.
        remove_files_older_than(&paths.request_logs(), request_cutoff)
            + remove_files_older_than(&paths.downloads(), request_cutoff)
    });
    let blobs = match keep {
        Some(keep) => {
            tokio::task::spawn_blocking(move || remove_unused_blobs(&uploads, &keep, blob_cutoff))
                .await
                .unwrap_or(0)
        }
        None => 0,
    };
    swept.files = files.await.unwrap_or(0);
    swept.blobs = blobs;
    if swept != Swept::default() {
        tracing::info!(
            requests = swept.requests,
            files = swept.files,
            blobs = swept.blobs,
            "removed what outlived its retention"
        );
    }
    swept
}

/// Blob ids named by requests that are not finished or were made after
/// `since`; `None` when the requests cannot be read (then nothing goes).
async fn blobs_in_use(state: &AppState, since: SystemTime) -> Option<HashSet<String>> {
    let since = since
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let requests = match state.store.list_requests(&RequestFilter::default()).await {
        Ok(requests) => requests,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read requests; keeping every upload");
            return None;
        }
    };
    // A managed job relaunches from its files until it is done.
    let jobs = match state.store.list_active_managed_jobs(None).await {
        Ok(jobs) => jobs,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read managed jobs; keeping every upload");
            return None;
        }
    };
    Some(
        requests
            .iter()
            .filter(|r| !r.status.is_finished() || r.created_at >= since)
            .filter_map(|r| r.body.get("file_mounts_blob_id")?.as_str())
            .map(str::to_owned)
            .chain(jobs.into_iter().filter_map(|job| job.file_mounts_blob))
            .collect(),
    )
}

/// Removes regular files under `root` last changed before `cutoff`, then
/// the folders that left empty; returns how many files went. Symlinks are
/// removed as links, never followed.
fn remove_files_older_than(root: &Path, cutoff: SystemTime) -> usize {
    let Ok(entries) = std::fs::read_dir(root) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            removed += remove_files_older_than(&path, cutoff);
            // Fails (and stays) unless empty.
            if meta.modified().is_ok_and(|m| m < cutoff) {
                let _ = std::fs::remove_dir(&path);
            }
        } else if meta.modified().is_ok_and(|m| m < cutoff) && std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Removes completed blobs (a folder with its unpacked `files`) under
/// `root`, at any depth up to three, that are not in `keep` and were last
/// changed before `cutoff`. Incomplete uploads are not this sweep's.
fn remove_unused_blobs(root: &Path, keep: &HashSet<String>, cutoff: SystemTime) -> usize {
    walk_blobs(root, Some(keep), cutoff)
}

/// How many completed blobs are old enough to go if no request names them.
fn count_unused_blobs(root: &Path, cutoff: SystemTime) -> usize {
    walk_blobs(root, None, cutoff)
}

/// Removes (with `keep`) or counts (without) old completed blobs.
fn walk_blobs(root: &Path, keep: Option<&HashSet<String>>, cutoff: SystemTime) -> usize {
    fn walk(dir: &Path, keep: Option<&HashSet<String>>, cutoff: SystemTime, depth: u8) -> usize {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let completed = std::fs::symlink_metadata(path.join("files")).is_ok_and(|m| m.is_dir());
            if !completed {
                if depth < 3 {
                    removed += walk(&path, keep, cutoff, depth + 1);
                }
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|m| m < cutoff);
            removed += match keep {
                None => usize::from(old),
                Some(keep) => usize::from(
                    old && !keep.contains(&name) && std::fs::remove_dir_all(&path).is_ok(),
                ),
            };
        }
        removed
    }
    walk(root, keep, cutoff, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_mtime(path: &Path, ago: Duration) {
        let file = std::fs::File::open(path).unwrap();
        file.set_modified(SystemTime::now() - ago).unwrap();
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn old_files_go_and_their_empty_folders_with_them() {
        let dir = tempfile::tempdir().unwrap();
        let job = dir.path().join("clients/u/sky_logs/c/1");
        std::fs::create_dir_all(&job).unwrap();
        std::fs::write(job.join("run.log"), "x").unwrap();
        std::fs::write(dir.path().join("fresh.log"), "y").unwrap();
        set_mtime(&job.join("run.log"), 3 * HOUR);
        for folder in [
            "clients/u/sky_logs/c/1",
            "clients/u/sky_logs/c",
            "clients/u/sky_logs",
            "clients/u",
            "clients",
        ] {
            set_mtime(&dir.path().join(folder), 3 * HOUR);
        }
        let removed = remove_files_older_than(dir.path(), SystemTime::now() - HOUR);
        assert_eq!(removed, 1);
        assert!(!dir.path().join("clients").exists());
        assert!(dir.path().join("fresh.log").exists());
    }

    #[test]
    fn only_old_completed_blobs_that_no_request_uses_go() {
        let dir = tempfile::tempdir().unwrap();
        let blob = |name: &str, complete: bool, age: Duration| {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.join(if complete { "files" } else { "chunks" })).unwrap();
            set_mtime(&path, age);
            path
        };
        let old = blob("old", true, 48 * HOUR);
        let used = blob("used", true, 48 * HOUR);
        let fresh = blob("fresh", true, HOUR / 2);
        let partial = blob("partial", false, 48 * HOUR);
        let nested = blob("user1/nested", true, 48 * HOUR);
        let keep = HashSet::from(["used".to_owned()]);
        let cutoff = SystemTime::now() - 24 * HOUR;
        assert_eq!(
            count_unused_blobs(dir.path(), cutoff),
            3,
            "old, used and nested"
        );
        let removed = remove_unused_blobs(dir.path(), &keep, cutoff);
        assert_eq!(removed, 2);
        assert!(!old.exists() && !nested.exists());
        assert!(used.exists() && fresh.exists() && partial.exists());
    }

    #[test]
    fn retention_reads_hours_and_refuses_nonsense() {
        assert_eq!(
            Retention::default().sweep_interval(),
            Duration::from_secs(600)
        );
        let short = Retention {
            requests: Duration::from_secs(60),
            blobs: Duration::from_secs(3600),
        };
        assert_eq!(short.sweep_interval(), Duration::from_secs(6));
        let parse = |value: &str| parse_hours("X", Some(value.to_owned()));
        assert_eq!(parse("0.5").unwrap(), Some(Duration::from_secs(1800)));
        assert_eq!(parse("").unwrap(), None);
        for bad in ["0", "-1", "week", "inf"] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains("number of hours"), "{bad}: {err}");
        }
    }
}
