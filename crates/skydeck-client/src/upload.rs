//! Sending a task's local files (workdir, file mounts) to the API server
//! before `/launch` or `/exec`, the way the official client does
//! (`sky/client/common.py`, `sky/data/storage_utils.py`):
//!
//! 1. every path goes into one zip, each member named by its absolute path
//!    without the leading `/`, directories ending in `/`, symbolic links
//!    kept as links to a relative target, `.skyignore` (or git's ignore
//!    rules) applied inside directories;
//! 2. the blob id is a SHA-256 over the sorted (name, SHA-256 of content)
//!    pairs, so the same files give the same id however they were zipped;
//! 3. `GET /upload_v2/blob` asks whether the server has it already, else
//!    `POST /upload_v2` sends the zip in chunks.
//!
//! The request then names the blob (`file_mounts_blob_id`) and the task
//! maps each local path to itself (`file_mounts_mapping`), which tells the
//! server where in the blob each path is.

mod ignore;

use crate::{Client, ClientError, Result, check_status};
use bytes::Bytes;
use ignore::Ignore;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

/// The official client's chunk size: small enough for proxies that cap
/// request bodies at 100 MB.
pub const CHUNK_BYTES: u64 = 95_000_000;

/// Whole uploads are tried this many times when no chunk reports the
/// upload complete, as the official client does.
const ATTEMPTS: usize = 3;

/// A zip of local paths, ready to upload, named by its content.
pub struct Bundle {
    file: tempfile::NamedTempFile,
    blob_id: String,
    size: u64,
    entries: usize,
}

impl Bundle {
    /// Zips `paths` (absolute; files or directories). Blocking: run it
    /// off the async runtime.
    pub fn new(paths: &[PathBuf]) -> std::io::Result<Self> {
        let file = tempfile::Builder::new()
            .prefix("skydeck-upload-")
            .suffix(".zip")
            .tempfile()?;
        let mut builder = Builder {
            zip: ZipWriter::new(file.reopen()?),
            seen: HashSet::new(),
            digests: Vec::new(),
        };
        for path in paths {
            builder.add(path)?;
        }
        let Builder { zip, digests, .. } = builder;
        zip.finish().map_err(std::io::Error::other)?.sync_all()?;
        let size = file.as_file().metadata()?.len();
        Ok(Self {
            blob_id: blob_id(digests.clone()),
            entries: digests.len(),
            size,
            file,
        })
    }

    pub fn blob_id(&self) -> &str {
        &self.blob_id
    }

    /// The zip's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Files, directories and links in the zip.
    pub fn entries(&self) -> usize {
        self.entries
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

/// What an upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadReport {
    pub blob_id: String,
    pub size: u64,
    pub entries: usize,
    /// The server had this blob already; nothing was sent.
    pub already_there: bool,
}

impl Client {
    /// Zips `paths` and uploads them; returns the blob id to send as
    /// `file_mounts_blob_id`.
    pub async fn upload_paths(&self, paths: Vec<PathBuf>, user_hash: &str) -> Result<UploadReport> {
        let bundle = tokio::task::spawn_blocking(move || Bundle::new(&paths))
            .await
            .map_err(|e| ClientError::Local(e.to_string()))?
            .map_err(|e| ClientError::Local(format!("cannot zip the files to upload: {e}")))?;
        let already_there = self.upload_bundle(&bundle, user_hash, CHUNK_BYTES).await?;
        Ok(UploadReport {
            blob_id: bundle.blob_id.clone(),
            size: bundle.size,
            entries: bundle.entries,
            already_there,
        })
    }

    /// Uploads a bundle in chunks of `chunk_bytes` unless the server has
    /// it already; returns whether it had.
    pub async fn upload_bundle(
        &self,
        bundle: &Bundle,
        user_hash: &str,
        chunk_bytes: u64,
    ) -> Result<bool> {
        self.upload_bundle_counting(bundle, user_hash, chunk_bytes, &Arc::default())
            .await
    }

    /// [`Client::upload_bundle`], keeping in `sent` how many bytes of the
    /// zip have gone out so far, for a caller that shows progress.
    pub async fn upload_bundle_counting(
        &self,
        bundle: &Bundle,
        user_hash: &str,
        chunk_bytes: u64,
        sent: &Arc<AtomicU64>,
    ) -> Result<bool> {
        if self.blob_exists(bundle, user_hash).await? {
            return Ok(true);
        }
        let chunk_bytes = chunk_bytes.max(1);
        let total = bundle.size.div_ceil(chunk_bytes).max(1);
        for _ in 0..ATTEMPTS {
            let mut completed = false;
            for index in 0..total {
                let start = index * chunk_bytes;
                let len = chunk_bytes.min(bundle.size - start);
                completed |= self
                    .upload_chunk(bundle, user_hash, (index, total), (start, len), sent)
                    .await?;
            }
            if completed {
                return Ok(false);
            }
        }
        Err(ClientError::Local(format!(
            "the API server never reported the upload of blob {} complete",
            bundle.blob_id
        )))
    }

    async fn blob_exists(&self, bundle: &Bundle, user_hash: &str) -> Result<bool> {
        let response = self
            .send(
                self.request(reqwest::Method::GET, "/upload_v2/blob")
                    .query(&[
                        ("user_hash", user_hash),
                        ("blob_id", &bundle.blob_id),
                        ("size_bytes", &bundle.size.to_string()),
                    ]),
            )
            .await?;
        let answer: serde_json::Value = check_status(response)
            .await?
            .json()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        Ok(answer["exists"].as_bool().unwrap_or(false))
    }

    /// Sends bytes `start..start+len` of the zip; returns whether the
    /// server now has the whole upload.
    async fn upload_chunk(
        &self,
        bundle: &Bundle,
        user_hash: &str,
        (index, total): (u64, u64),
        (start, len): (u64, u64),
        sent: &Arc<AtomicU64>,
    ) -> Result<bool> {
        sent.store(start, Ordering::Relaxed);
        let sent = sent.clone();
        let local = |e: std::io::Error| ClientError::Local(format!("cannot read the upload: {e}"));
        let mut file = tokio::fs::File::open(bundle.path()).await.map_err(local)?;
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(local)?;
        // Streamed from disk: a chunk can be 95 MB.
        let body = futures_util::stream::unfold(file.take(len), move |mut reader| {
            let sent = sent.clone();
            async move {
                let mut buffer = vec![0u8; 1 << 20];
                match reader.read(&mut buffer).await {
                    Ok(0) => None,
                    Ok(n) => {
                        sent.fetch_add(n as u64, Ordering::Relaxed);
                        buffer.truncate(n);
                        Some((Ok(Bytes::from(buffer)), reader))
                    }
                    Err(err) => Some((Err(err), reader)),
                }
            }
        });
        let response = self
            .send(
                self.request(reqwest::Method::POST, "/upload_v2")
                    .query(&[
                        ("user_hash", user_hash.to_owned()),
                        ("upload_id", bundle.blob_id.clone()),
                        ("chunk_index", index.to_string()),
                        ("total_chunks", total.to_string()),
                    ])
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .body(reqwest::Body::wrap_stream(body)),
            )
            .await?;
        let answer: serde_json::Value = check_status(response)
            .await?
            .json()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        Ok(answer["status"] == "completed")
    }
}

/// SHA-256 over the (name, content digest) pairs in name order.
fn blob_id(mut digests: Vec<(String, [u8; 32])>) -> String {
    digests.sort_by(|a, b| a.0.cmp(&b.0));
    let mut hasher = Sha256::new();
    for (name, digest) in &digests {
        hasher.update(name.as_bytes());
        hasher.update(digest);
    }
    hex(&hasher.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Builder {
    zip: ZipWriter<File>,
    /// Member names so far: paths may overlap (a file mount inside the
    /// workdir), and a zip must not hold a name twice.
    seen: HashSet<String>,
    digests: Vec<(String, [u8; 32])>,
}

/// The member name of an absolute path.
fn member_name(path: &Path) -> String {
    path.to_string_lossy().trim_start_matches('/').to_owned()
}

impl Builder {
    fn add(&mut self, path: &Path) -> std::io::Result<()> {
        let meta = std::fs::metadata(path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let name = member_name(path);
        let is_link = std::fs::symlink_metadata(path)?.file_type().is_symlink();
        if meta.is_file() {
            // A file named explicitly is sent even if ignore rules list it.
            self.file(path, name)
        } else if meta.is_dir() && is_link {
            self.symlink(path, name)
        } else if meta.is_dir() {
            self.directory(name)?;
            self.walk(path, path, &Ignore::for_dir(path))
        } else {
            Err(std::io::Error::other(format!(
                "{} is neither a file nor a directory",
                path.display()
            )))
        }
    }

    fn walk(&mut self, root: &Path, dir: &Path, ignore: &Ignore) -> std::io::Result<()> {
        let mut entries = std::fs::read_dir(dir)?.collect::<std::io::Result<Vec<_>>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let relative = path.strip_prefix(root).unwrap_or(&path);
            let kind = entry.file_type()?;
            let name = member_name(&path);
            if kind.is_symlink() {
                if !ignore.excludes(relative, path.is_dir()) {
                    self.symlink(&path, name)?;
                }
            } else if kind.is_dir() {
                if !ignore.excludes(relative, true) {
                    self.directory(name)?;
                    self.walk(root, &path, ignore)?;
                }
            } else if kind.is_file() && !ignore.excludes(relative, false) {
                self.file(&path, name)?;
            }
            // Sockets, FIFOs and devices have nothing to copy.
        }
        Ok(())
    }

    fn first_time(&mut self, name: &str) -> bool {
        self.seen.insert(name.to_owned())
    }

    fn directory(&mut self, name: String) -> std::io::Result<()> {
        let name = format!("{}/", name.trim_end_matches('/'));
        if !self.first_time(&name) {
            return Ok(());
        }
        self.zip
            .add_directory(
                name.clone(),
                SimpleFileOptions::default().unix_permissions(0o755),
            )
            .map_err(std::io::Error::other)?;
        self.digests.push((name, Sha256::digest(b"").into()));
        Ok(())
    }

    /// A link stays a link, pointing at a relative target: an absolute one
    /// would not resolve on the server. Links to directories keep no
    /// trailing `/` so that the server recreates the link, not an empty
    /// directory.
    fn symlink(&mut self, path: &Path, name: String) -> std::io::Result<()> {
        if !self.first_time(&name) {
            return Ok(());
        }
        let target = std::fs::read_link(path)?;
        let target = if target.is_absolute() {
            relative_to(&target, path.parent().unwrap_or(Path::new("/")))
        } else {
            target
        };
        let target = target.to_string_lossy().into_owned();
        self.zip
            .add_symlink(name.clone(), target.clone(), SimpleFileOptions::default())
            .map_err(std::io::Error::other)?;
        self.digests
            .push((name, Sha256::digest(target.as_bytes()).into()));
        Ok(())
    }

    fn file(&mut self, path: &Path, name: String) -> std::io::Result<()> {
        if !self.first_time(&name) {
            return Ok(());
        }
        let mut source = File::open(path)?;
        let meta = source.metadata()?;
        use std::os::unix::fs::PermissionsExt;
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .unix_permissions(meta.permissions().mode() & 0o777)
            .large_file(meta.len() >= u64::from(u32::MAX));
        self.zip
            .start_file(name.clone(), options)
            .map_err(std::io::Error::other)?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            let n = source.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            self.zip.write_all(&buffer[..n])?;
        }
        self.digests.push((name, hasher.finalize().into()));
        Ok(())
    }
}

/// `target` relative to the directory `base`, both absolute, as Python's
/// `os.path.relpath` gives it.
fn relative_to(target: &Path, base: &Path) -> PathBuf {
    let target: Vec<Component> = target.components().collect();
    let base: Vec<Component> = base.components().collect();
    let common = target.iter().zip(&base).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..base.len() {
        out.push("..");
    }
    for component in &target[common..] {
        out.push(component);
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Every member of a zip: name → (content, is a link).
    fn members(path: &Path) -> BTreeMap<String, (String, bool)> {
        let mut archive = zip::ZipArchive::new(File::open(path).unwrap()).unwrap();
        let mut out = BTreeMap::new();
        for i in 0..archive.len() {
            let mut entry = archive.by_index(i).unwrap();
            let link = entry
                .unix_mode()
                .is_some_and(|mode| mode & 0o170000 == 0o120000);
            let mut content = String::new();
            entry.read_to_string(&mut content).unwrap();
            out.insert(entry.name().to_owned(), (content, link));
        }
        out
    }

    fn project() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("src/empty")).unwrap();
        std::fs::create_dir_all(root.join("cache")).unwrap();
        std::fs::write(root.join("src/main.py"), "print(1)\n").unwrap();
        std::fs::write(root.join("src/main.pyc"), "bytecode").unwrap();
        std::fs::write(root.join("cache/big.bin"), "xxxx").unwrap();
        std::fs::write(root.join(".skyignore"), "*.pyc\n/cache\n").unwrap();
        std::os::unix::fs::symlink(root.join("src/main.py"), root.join("link.py")).unwrap();
        dir
    }

    #[test]
    fn members_are_absolute_paths_with_ignores_applied_and_links_kept() {
        let dir = project();
        let root = dir.path().to_path_buf();
        let bundle = Bundle::new(std::slice::from_ref(&root)).unwrap();
        let members = members(bundle.path());
        let base = member_name(&root);
        let names: Vec<&str> = members.keys().map(String::as_str).collect();
        assert!(names.contains(&format!("{base}/").as_str()), "{names:?}");
        assert!(names.contains(&format!("{base}/src/empty/").as_str()));
        assert_eq!(
            members[&format!("{base}/src/main.py")],
            ("print(1)\n".to_owned(), false)
        );
        assert_eq!(
            members[&format!("{base}/link.py")],
            ("src/main.py".to_owned(), true),
            "absolute link targets become relative"
        );
        assert!(!names.iter().any(|n| n.ends_with(".pyc")), "{names:?}");
        assert!(!names.iter().any(|n| n.contains("/cache")), "{names:?}");
        assert_eq!(bundle.entries(), members.len());
    }

    #[test]
    fn the_blob_id_depends_on_content_only_and_overlaps_are_sent_once() {
        let dir = project();
        let root = dir.path().to_path_buf();
        let inside = root.join("src/main.py");
        let first = Bundle::new(&[root.clone(), inside.clone()]).unwrap();
        let again = Bundle::new(std::slice::from_ref(&root)).unwrap();
        assert_eq!(first.blob_id(), again.blob_id());
        assert_eq!(first.blob_id().len(), 64);
        std::fs::write(&inside, "print(2)\n").unwrap();
        let changed = Bundle::new(std::slice::from_ref(&root)).unwrap();
        assert_ne!(first.blob_id(), changed.blob_id());
    }

    #[test]
    fn a_named_file_is_sent_even_when_ignored_and_a_missing_path_is_an_error() {
        let dir = project();
        let pyc = dir.path().join("src/main.pyc");
        let bundle = Bundle::new(std::slice::from_ref(&pyc)).unwrap();
        assert!(members(bundle.path()).contains_key(&member_name(&pyc)));
        let missing = dir.path().join("nope");
        let err = Bundle::new(&[missing]).err().unwrap();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn the_blob_id_matches_the_official_clients_hash() {
        // sha256(b"a/" + sha256(b"") + b"a/f" + sha256(b"hi")), as
        // `_compute_zip_blob_id` in sky/client/common.py computes it.
        let digests = vec![
            ("a/f".to_owned(), Sha256::digest(b"hi").into()),
            ("a/".to_owned(), Sha256::digest(b"").into()),
        ];
        let mut expected = Sha256::new();
        expected.update(b"a/");
        expected.update(Sha256::digest(b""));
        expected.update(b"a/f");
        expected.update(Sha256::digest(b"hi"));
        assert_eq!(blob_id(digests), hex(&expected.finalize()));
    }

    #[test]
    fn relative_targets_climb_as_needed() {
        assert_eq!(
            relative_to(Path::new("/a/b/c"), Path::new("/a/d")),
            Path::new("../b/c")
        );
        assert_eq!(
            relative_to(Path::new("/a"), Path::new("/a")),
            Path::new(".")
        );
    }
}
