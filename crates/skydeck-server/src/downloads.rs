//! Job logs prepared for a client to download (`sky logs --sync-down`).
//!
//! SkyPilot's client maps paths by string: `/download_logs` answers with
//! folders spelled `~/.sky/api_server/clients/<user>/sky_logs/…`, and the
//! zip `/download` sends names each file by its full path on the server,
//! with the server's home in the `X-Home-Path` header. So the files live
//! under a directory that plays the server's home, laid out the same way,
//! and every path a client names is checked to stay inside its own user's
//! folder.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

/// What every client-side path starts with, after the user.
const CLIENT_ROOT: &str = ".sky/api_server/clients";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DownloadError {
    #[error("Invalid folder path: {0}")]
    Invalid(String),
    #[error("Folder not found: {0}")]
    NotFound(String),
}

pub struct Downloads {
    /// Plays the server's home directory for clients.
    home: PathBuf,
}

impl Downloads {
    pub fn new(home: PathBuf) -> Self {
        Self { home }
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Where a job's logs go, on this server and as the client names it.
    /// `None` when `user` or `cluster` could not be one path component.
    pub fn job_dir(&self, user: &str, cluster: &str, job_id: u64) -> Option<(PathBuf, String)> {
        if !is_component(user) || !is_component(cluster) {
            return None;
        }
        let relative = format!("{CLIENT_ROOT}/{user}/sky_logs/{cluster}/{job_id}");
        Some((self.home.join(&relative), format!("~/{relative}")))
    }

    /// Where a managed job's log (or its controller log) goes, named as
    /// SkyPilot's client saves it: `managed_jobs/managed-job-<id>` or
    /// `managed-controller-<id>`.
    pub fn managed_job_dir(
        &self,
        user: &str,
        job_id: i64,
        controller: bool,
    ) -> Option<(PathBuf, String)> {
        if !is_component(user) {
            return None;
        }
        let kind = if controller { "controller" } else { "job" };
        let relative =
            format!("{CLIENT_ROOT}/{user}/sky_logs/managed_jobs/managed-{kind}-{job_id}");
        Some((self.home.join(&relative), format!("~/{relative}")))
    }

    /// The folder a client named, if it is one of `user`'s and exists.
    pub fn resolve(&self, user: &str, client_path: &str) -> Result<PathBuf, DownloadError> {
        let invalid = || DownloadError::Invalid(client_path.to_owned());
        if !is_component(user) {
            return Err(invalid());
        }
        let relative = client_path.strip_prefix("~/").ok_or_else(invalid)?;
        let own = Path::new(CLIENT_ROOT).join(user);
        let relative = Path::new(relative);
        let clean = relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
        if !clean || !relative.starts_with(&own) {
            return Err(invalid());
        }
        let path = self.home.join(relative);
        // A symlink planted inside would lead out; only real folders count.
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => Ok(path),
            _ => Err(DownloadError::NotFound(client_path.to_owned())),
        }
    }

    /// A zip of `folders`, each file named by its full path without the
    /// leading `/`, as SkyPilot's server zips them.
    pub fn zip(folders: &[PathBuf]) -> std::io::Result<Vec<u8>> {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for folder in folders {
            let mut files = Vec::new();
            collect_files(folder, &mut files)?;
            for file in files {
                let name = file.to_string_lossy();
                zip.start_file(name.trim_start_matches('/'), options)
                    .map_err(std::io::Error::other)?;
                zip.write_all(&std::fs::read(&file)?)?;
            }
        }
        let cursor = zip.finish().map_err(std::io::Error::other)?;
        Ok(cursor.into_inner())
    }
}

fn is_component(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// Regular files under `dir`, sorted; symlinks are skipped.
fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect_files(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn downloads() -> (tempfile::TempDir, Downloads) {
        let dir = tempfile::tempdir().unwrap();
        let downloads = Downloads::new(dir.path().to_owned());
        (dir, downloads)
    }

    #[test]
    fn a_job_folder_resolves_for_its_user_only() {
        let (_dir, downloads) = downloads();
        let (real, client) = downloads.job_dir("u1", "c1", 3).unwrap();
        assert_eq!(client, "~/.sky/api_server/clients/u1/sky_logs/c1/3");
        std::fs::create_dir_all(&real).unwrap();
        assert_eq!(downloads.resolve("u1", &client), Ok(real));
        assert_eq!(
            downloads.resolve("u2", &client),
            Err(DownloadError::Invalid(client.clone()))
        );
    }

    #[test]
    fn paths_that_leave_the_users_folder_are_refused() {
        let (_dir, downloads) = downloads();
        for path in [
            "~/.sky/api_server/clients/u1/../u2/sky_logs",
            "/etc",
            "~/../../etc",
            "relative/path",
        ] {
            assert_eq!(
                downloads.resolve("u1", path),
                Err(DownloadError::Invalid(path.to_owned())),
                "{path}"
            );
        }
        assert!(downloads.job_dir("..", "c", 1).is_none());
        assert!(downloads.job_dir("u", "a/b", 1).is_none());
    }

    #[test]
    fn a_missing_folder_is_not_found() {
        let (_dir, downloads) = downloads();
        let path = "~/.sky/api_server/clients/u1/sky_logs/c1/9";
        assert_eq!(
            downloads.resolve("u1", path),
            Err(DownloadError::NotFound(path.to_owned()))
        );
    }

    #[test]
    fn the_zip_names_files_by_their_full_paths() {
        let (dir, downloads) = downloads();
        let (real, _) = downloads.job_dir("u1", "c1", 1).unwrap();
        std::fs::create_dir_all(&real).unwrap();
        std::fs::write(real.join("run.log"), "hello\n").unwrap();
        let bytes = Downloads::zip(std::slice::from_ref(&real)).unwrap();
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let name = archive.by_index(0).unwrap().name().to_owned();
        let expected = real.join("run.log");
        assert_eq!(format!("/{name}"), expected.to_string_lossy());
        assert!(name.starts_with(dir.path().to_string_lossy().trim_start_matches('/')));
    }
}
