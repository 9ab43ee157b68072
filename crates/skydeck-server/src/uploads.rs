//! Files clients upload for their tasks (workdir, file mounts), as the
//! official client sends them: one zip, in chunks, named by a content hash
//! (`blob_id`). A blob is unpacked once into `uploads/<blob_id>/files`,
//! where member `home/u/proj/a.py` lands at `files/home/u/proj/a.py`.
//!
//! Nothing in a zip may land outside its directory: member names that
//! climb out (`..`, absolute paths) are refused, and so is any member that
//! would be written through a symbolic link unpacked before it.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

/// Why an upload was refused; the message says what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("{0}")]
    Invalid(String),
    #[error(
        "the upload is larger than this server accepts ({limit} bytes); raise SKYDECK_MAX_UPLOAD_BYTES on the server or upload less (.skyignore)"
    )]
    TooLarge { limit: u64 },
    #[error("cannot store the upload: {0}")]
    Io(#[from] std::io::Error),
}

/// A blob id is a SHA-256 in hex: anything else could name a path.
pub fn valid_blob_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

pub struct Uploads {
    root: PathBuf,
    pub max_bytes: u64,
}

/// State of a chunked upload after one more chunk arrived.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    Completed,
    Uploading { missing: Vec<usize> },
}

impl Uploads {
    pub fn new(root: PathBuf, max_bytes: u64) -> Self {
        Self { root, max_bytes }
    }

    fn blob_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Where an unpacked blob's files are, once complete.
    pub fn files(&self, id: &str) -> PathBuf {
        self.blob_dir(id).join("files")
    }

    pub fn exists(&self, id: &str) -> bool {
        self.files(id).is_dir()
    }

    /// Where chunk `index` of an upload is written.
    pub fn chunk_path(&self, id: &str, index: usize) -> std::io::Result<PathBuf> {
        let dir = self.blob_dir(id).join("chunks");
        std::fs::create_dir_all(&dir)?;
        Ok(dir.join(format!("part{index}")))
    }

    /// Unpacks the upload once every chunk is there.
    pub fn complete(&self, id: &str, total: usize) -> Result<Progress, UploadError> {
        if self.exists(id) {
            return Ok(Progress::Completed);
        }
        let chunks = self.blob_dir(id).join("chunks");
        let missing: Vec<usize> = (0..total)
            .filter(|i| !chunks.join(format!("part{i}")).is_file())
            .collect();
        if !missing.is_empty() {
            return Ok(Progress::Uploading { missing });
        }
        let zip_path = self.blob_dir(id).join("upload.zip");
        {
            let mut zip = std::fs::File::create(&zip_path)?;
            for i in 0..total {
                let mut part = std::fs::File::open(chunks.join(format!("part{i}")))?;
                std::io::copy(&mut part, &mut zip)?;
            }
            zip.sync_all()?;
        }
        // Unpacked beside the final place and renamed, so a crash midway
        // never leaves a half-filled `files` that looks complete.
        let staging = self.blob_dir(id).join("files.partial");
        let _ = std::fs::remove_dir_all(&staging);
        unpack(&zip_path, &staging, self.max_bytes)?;
        std::fs::rename(&staging, self.files(id))?;
        let _ = std::fs::remove_dir_all(&chunks);
        let _ = std::fs::remove_file(&zip_path);
        Ok(Progress::Completed)
    }
}

/// Unpacks `zip_path` into `dest`, refusing members that would land
/// outside it and stopping past `max_bytes` of content.
pub fn unpack(zip_path: &Path, dest: &Path, max_bytes: u64) -> Result<(), UploadError> {
    let file = std::fs::File::open(zip_path)?;
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|err| UploadError::Invalid(format!("the upload is not a valid zip: {err}")))?;
    std::fs::create_dir_all(dest)?;
    let mut written: u64 = 0;
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|err| UploadError::Invalid(format!("unreadable zip member {i}: {err}")))?;
        let name = entry.name().to_owned();
        let relative = safe_relative(&name).ok_or_else(|| {
            UploadError::Invalid(format!(
                "zip member {name:?} would be written outside the upload directory"
            ))
        })?;
        let target = dest.join(&relative);
        refuse_symlinked_parents(dest, &relative)?;
        let is_symlink = entry
            .unix_mode()
            .is_some_and(|mode| mode & 0o170000 == 0o120000);
        if entry.is_dir() {
            std::fs::create_dir_all(&target)?;
        } else if is_symlink {
            let mut link_target = String::new();
            entry.read_to_string(&mut link_target).map_err(|err| {
                UploadError::Invalid(format!("unreadable symbolic link {name:?}: {err}"))
            })?;
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            // Duplicate members are allowed (the client may send some); the
            // last one wins.
            let _ = std::fs::remove_file(&target);
            std::os::unix::fs::symlink(link_target, &target)?;
        } else {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            if std::fs::symlink_metadata(&target).is_ok_and(|m| m.file_type().is_symlink()) {
                std::fs::remove_file(&target)?;
            }
            let mut out = std::fs::File::create(&target)?;
            let mut buffer = [0u8; 64 * 1024];
            loop {
                let n = entry.read(&mut buffer).map_err(|err| {
                    UploadError::Invalid(format!("corrupt zip member {name:?}: {err}"))
                })?;
                if n == 0 {
                    break;
                }
                written += n as u64;
                if written > max_bytes {
                    return Err(UploadError::TooLarge { limit: max_bytes });
                }
                out.write_all(&buffer[..n])?;
            }
            if let Some(mode) = entry.unix_mode() {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode & 0o755))?;
            }
        }
    }
    Ok(())
}

/// The member name as a path inside the destination, or `None` if it
/// would climb out of it. Leading `/` is dropped: the client stores
/// absolute paths without it, and an absolute member must not escape.
fn safe_relative(name: &str) -> Option<PathBuf> {
    let mut path = PathBuf::new();
    for component in Path::new(name.trim_start_matches('/')).components() {
        match component {
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!path.as_os_str().is_empty()).then_some(path)
}

/// Writing through a symbolic link unpacked earlier would land wherever it
/// points: refuse any member whose parent directories include a link.
fn refuse_symlinked_parents(dest: &Path, relative: &Path) -> Result<(), UploadError> {
    let mut current = dest.to_owned();
    let parents: Vec<Component> = relative.components().collect();
    for component in &parents[..parents.len().saturating_sub(1)] {
        current.push(component);
        if std::fs::symlink_metadata(&current).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(UploadError::Invalid(format!(
                "zip member {:?} would be written through the symbolic link {:?}",
                relative.display(),
                current.strip_prefix(dest).unwrap_or(&current).display()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use zip::write::SimpleFileOptions;

    fn zip_of(entries: &[(&str, &str, bool)]) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut writer = zip::ZipWriter::new(file.reopen().unwrap());
        for (name, content, link) in entries {
            if *link {
                writer
                    .add_symlink(*name, *content, SimpleFileOptions::default())
                    .unwrap();
            } else if name.ends_with('/') {
                writer
                    .add_directory(*name, SimpleFileOptions::default())
                    .unwrap();
            } else {
                writer
                    .start_file(*name, SimpleFileOptions::default())
                    .unwrap();
                writer.write_all(content.as_bytes()).unwrap();
            }
        }
        writer.finish().unwrap();
        file
    }

    #[test]
    fn members_land_under_the_destination() {
        let zip = zip_of(&[
            ("tmp/u/proj/", "", false),
            ("tmp/u/proj/a.py", "print(1)", false),
            ("tmp/u/proj/link", "a.py", true),
        ]);
        let dest = tempfile::tempdir().unwrap();
        unpack(zip.path(), dest.path(), 1 << 20).unwrap();
        let proj = dest.path().join("tmp/u/proj");
        assert_eq!(
            std::fs::read_to_string(proj.join("a.py")).unwrap(),
            "print(1)"
        );
        assert_eq!(
            std::fs::read_link(proj.join("link")).unwrap(),
            Path::new("a.py")
        );
    }

    #[test]
    fn climbing_out_is_refused() {
        let dest = tempfile::tempdir().unwrap();
        let zip = zip_of(&[("../../evil.txt", "x", false)]);
        let err = unpack(zip.path(), &dest.path().join("d"), 1 << 20).unwrap_err();
        assert!(
            err.to_string().contains("outside the upload directory"),
            "{err}"
        );
        assert!(!dest.path().join("evil.txt").exists());
    }

    #[test]
    fn writing_through_an_unpacked_link_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        let dest = tempfile::tempdir().unwrap();
        let zip = zip_of(&[
            ("escape", outside.path().to_str().unwrap(), true),
            ("escape/owned.txt", "x", false),
        ]);
        let err = unpack(zip.path(), dest.path(), 1 << 20).unwrap_err();
        assert!(
            err.to_string().contains("through the symbolic link"),
            "{err}"
        );
        assert!(!outside.path().join("owned.txt").exists());
    }

    #[test]
    fn content_past_the_limit_is_refused() {
        let dest = tempfile::tempdir().unwrap();
        let zip = zip_of(&[("big.bin", &"x".repeat(4096), false)]);
        let err = unpack(zip.path(), dest.path(), 1000).unwrap_err();
        assert!(
            matches!(err, UploadError::TooLarge { limit: 1000 }),
            "{err}"
        );
    }

    #[test]
    fn only_hex_hashes_are_blob_ids() {
        assert!(valid_blob_id(&"a1".repeat(32)));
        assert!(!valid_blob_id("../x"));
        assert!(!valid_blob_id(&"g".repeat(64)));
    }
}
