//! Files clients upload for their tasks (workdir, file mounts), as the
//! official client sends them: one zip, in chunks, named by a content hash
//! (`blob_id`).
//!
//! # Whose blob
//!
//! Blobs are kept per user, under `uploads/users/<user id>/<blob id>/`, as
//! SkyPilot keeps them: the uploading user is the authenticated caller (with
//! auth off, the `user_hash` the client names). `exists` answers for the
//! caller's own blobs only, and a launch finds its blob in the requesting
//! user's directory only, so no user can plant or read another's files.
//!
//! # Content-addressed
//!
//! A blob's id is SHA-256 over the (member name, SHA-256 of member content)
//! pairs in name order (a directory's content is empty, a symbolic link's is
//! its target), as `_compute_zip_blob_id` in `sky/client/common.py`
//! computes it. The server computes it again from what it unpacked and
//! refuses an upload whose content does not hash to the id it was sent
//! under. A name the zip holds twice (the official client zips a file
//! mount inside the workdir twice) is unpacked once, from its last copy,
//! and counts in the id once per copy as if each were that one; members
//! whose different names land on one path must be identical. Either way the
//! id determines what was unpacked.
//!
//! # What a zip may hold
//!
//! - Member names stay inside the blob: `..` and absolute names are refused,
//!   and so is any member that would be written through a symbolic link
//!   unpacked before it.
//! - Symbolic links are kept, and **confined**: a link whose target is
//!   absolute is refused, and so is one whose target, resolved inside the
//!   unpacked tree (through the other links, as the kernel would), climbs
//!   out of the blob. Clients send relative targets (both rewrite absolute
//!   ones), so honest uploads never hit this. Links are checked in memory,
//!   within a budget of steps per upload, so a crafted web of links costs
//!   bounded time.
//! - Size: at most `max_bytes` unpacked, counted from the declared sizes
//!   before anything is written and from the bytes actually inflated while
//!   writing (a member may not inflate past its declared size); a member
//!   may not declare more than [`MAX_RATIO`] times its compressed size (more
//!   than deflate can honestly reach: a forged header); only stored and
//!   deflated members are read.
//! - Entries: at most `max_entries` (names zipped twice count twice). As
//!   parsing holds every entry in memory, a zip with more than
//!   [`PARSE_MARGIN`] times that many central directory signatures is
//!   refused before it is parsed (the margin is for zips stored inside the
//!   upload, whose own signatures may show through).
//!
//! Every refusal removes everything of that upload (chunks, the assembled
//! zip, the staging directory) and is a 4xx saying what was wrong.
//!
//! # Sweeping
//!
//! Chunks and staging of uploads that never completed are removed by
//! [`Uploads::sweep`] once nothing touched them for `stale_after` (an hour by
//! default), from the server's maintenance loop.

use sha2::{Digest, Sha256};
use skydeck_types::names::{BlobId, UserId, confine};
use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Entries an upload may hold unless `SKYDECK_MAX_UPLOAD_ENTRIES` says
/// otherwise.
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;
/// Incomplete uploads untouched this long are swept unless
/// `SKYDECK_UPLOAD_STALE_SECONDS` says otherwise.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(3600);

/// Deflate cannot inflate more than about 1032 bytes per compressed byte;
/// a member that declares more is forged.
pub const MAX_RATIO: u64 = 1100;

/// How many times `max_entries` central directory signatures a zip may
/// show before it is parsed.
pub const PARSE_MARGIN: u64 = 4;

/// Longest symbolic link target (Linux's `PATH_MAX`).
const MAX_LINK_TARGET: u64 = 4096;

/// Links followed while resolving one target, as the kernel's limit.
const MAX_LINK_HOPS: usize = 40;

/// The sweep runs at most this often, whatever the heartbeat.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Where each user's blobs live, under the uploads root.
const USERS_DIR: &str = "users";

/// What one upload may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Bytes, zipped (all chunks together) and unpacked alike.
    pub max_bytes: u64,
    pub max_entries: usize,
    /// Incomplete uploads untouched this long are removed.
    pub stale_after: Duration,
}

impl Limits {
    pub fn new(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            max_entries: DEFAULT_MAX_ENTRIES,
            stale_after: DEFAULT_STALE_AFTER,
        }
    }
}

/// Why an upload was refused; the message says what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("{0}")]
    Invalid(String),
    #[error(
        "the upload is larger than this server accepts ({limit} bytes); raise SKYDECK_MAX_UPLOAD_BYTES on the server or upload less (.skyignore)"
    )]
    TooLarge { limit: u64 },
    #[error(
        "the upload holds more than {limit} files and directories; raise SKYDECK_MAX_UPLOAD_ENTRIES on the server or upload less (.skyignore)"
    )]
    TooManyEntries { limit: usize },
    #[error(
        "the upload's content hashes to {actual}, not to the id {claimed} it was sent under; zip the files again and upload them under the id their content gives"
    )]
    HashMismatch { claimed: BlobId, actual: String },
    #[error("cannot store the upload: {0}")]
    Io(#[from] std::io::Error),
}

/// State of a chunked upload after one more chunk arrived.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    Completed,
    Uploading { missing: Vec<usize> },
}

/// Where a user's unpacked blob is, under the uploads root `root`. The one
/// place that knows the layout (the launch side reads it through
/// `Infra::upload_dir`).
pub fn blob_files(root: &Path, user: &UserId, id: &BlobId) -> PathBuf {
    blob_dir(root, user, id).join("files")
}

fn blob_dir(root: &Path, user: &UserId, id: &BlobId) -> PathBuf {
    confine(
        &root.join(USERS_DIR),
        Path::new(user.as_str()).join(id.as_str()),
    )
    .expect("a user id and a blob id are single path components")
}

type FinishLock = Arc<Mutex<()>>;

pub struct Uploads {
    root: PathBuf,
    pub limits: Limits,
    /// One lock per (user, blob): the chunks of one upload arrive in
    /// parallel, and exactly one of them assembles and unpacks it.
    finishing: Mutex<HashMap<(UserId, BlobId), FinishLock>>,
    last_sweep: Mutex<Option<std::time::Instant>>,
}

impl Uploads {
    pub fn new(root: PathBuf, limits: Limits) -> Self {
        Self {
            root,
            limits,
            finishing: Mutex::new(HashMap::new()),
            last_sweep: Mutex::new(None),
        }
    }

    pub fn max_bytes(&self) -> u64 {
        self.limits.max_bytes
    }

    /// Where an unpacked blob's files are, once complete.
    pub fn files(&self, user: &UserId, id: &BlobId) -> PathBuf {
        blob_files(&self.root, user, id)
    }

    /// Whether `user` has uploaded blob `id` completely.
    pub fn exists(&self, user: &UserId, id: &BlobId) -> bool {
        self.files(user, id).is_dir()
    }

    fn chunks_dir(&self, user: &UserId, id: &BlobId) -> PathBuf {
        blob_dir(&self.root, user, id).join("chunks")
    }

    /// Where chunk `index` of an upload is written once whole.
    pub fn chunk_path(&self, user: &UserId, id: &BlobId, index: usize) -> std::io::Result<PathBuf> {
        let dir = self.chunks_dir(user, id);
        std::fs::create_dir_all(&dir)?;
        Ok(dir.join(format!("part{index}")))
    }

    /// Bytes of this upload's received chunks other than chunk `except`
    /// (which a retry replaces): what the next chunk adds to must stay under
    /// the limit, whatever the number of chunks.
    pub fn stored_bytes(&self, user: &UserId, id: &BlobId, except: usize) -> u64 {
        let skip = format!("part{except}");
        std::fs::read_dir(self.chunks_dir(user, id))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|entry| entry.file_name() != skip.as_str())
            .filter_map(|entry| entry.metadata().ok())
            .map(|meta| meta.len())
            .sum()
    }

    fn lock(&self, user: &UserId, id: &BlobId) -> Arc<Mutex<()>> {
        self.finishing
            .lock()
            .expect("upload locks")
            .entry((user.clone(), id.clone()))
            .or_default()
            .clone()
    }

    fn unlock(&self, user: &UserId, id: &BlobId, lock: Arc<Mutex<()>>) {
        let mut locks = self.finishing.lock().expect("upload locks");
        // Two holders: the map and us. Anyone else still wants it.
        if Arc::strong_count(&lock) == 2 {
            locks.remove(&(user.clone(), id.clone()));
        }
    }

    /// Removes everything of an upload that is not complete. Blocking.
    pub fn discard(&self, user: &UserId, id: &BlobId) {
        let lock = self.lock(user, id);
        {
            let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
            if !self.exists(user, id) {
                let _ = std::fs::remove_dir_all(blob_dir(&self.root, user, id));
            }
        }
        self.unlock(user, id, lock);
    }

    /// Unpacks the upload once every chunk is there, and checks that its
    /// content hashes to `id`. Blocking: run it off the async runtime. On
    /// any error, everything of this upload is removed.
    pub fn complete(
        &self,
        user: &UserId,
        id: &BlobId,
        total: usize,
    ) -> Result<Progress, UploadError> {
        let lock = self.lock(user, id);
        let result = {
            let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
            self.complete_locked(user, id, total)
        };
        self.unlock(user, id, lock);
        result
    }

    fn complete_locked(
        &self,
        user: &UserId,
        id: &BlobId,
        total: usize,
    ) -> Result<Progress, UploadError> {
        if self.exists(user, id) {
            return Ok(Progress::Completed);
        }
        let chunks = self.chunks_dir(user, id);
        let missing: Vec<usize> = (0..total)
            .filter(|i| !chunks.join(format!("part{i}")).is_file())
            .collect();
        if !missing.is_empty() {
            return Ok(Progress::Uploading { missing });
        }
        let dir = blob_dir(&self.root, user, id);
        let finished = self.assemble_and_unpack(&dir, id, total);
        match finished {
            Ok(()) => {
                let _ = std::fs::remove_dir_all(&chunks);
                let _ = std::fs::remove_file(dir.join("upload.zip"));
                Ok(Progress::Completed)
            }
            Err(err) => {
                // Nothing of a refused upload stays: no `files` exists yet
                // (checked above, under the lock), so the whole directory
                // is this upload's leftovers.
                let _ = std::fs::remove_dir_all(&dir);
                Err(err)
            }
        }
    }

    fn assemble_and_unpack(
        &self,
        dir: &Path,
        id: &BlobId,
        total: usize,
    ) -> Result<(), UploadError> {
        let chunks = dir.join("chunks");
        let zip_path = dir.join("upload.zip");
        let mut signatures = SignatureCounter::default();
        {
            let mut zip = std::fs::File::create(&zip_path)?;
            let mut buffer = vec![0u8; 256 * 1024];
            for i in 0..total {
                let mut part = std::fs::File::open(chunks.join(format!("part{i}")))?;
                loop {
                    let n = part.read(&mut buffer)?;
                    if n == 0 {
                        break;
                    }
                    signatures.feed(&buffer[..n]);
                    zip.write_all(&buffer[..n])?;
                }
            }
            zip.sync_all()?;
        }
        // Parsing the central directory holds every entry in memory: count
        // the entries' signatures first, so a zip of millions of empty
        // members is refused before it is parsed. The exact count is
        // checked once parsed.
        if signatures.count > (self.limits.max_entries as u64).saturating_mul(PARSE_MARGIN) {
            return Err(UploadError::TooManyEntries {
                limit: self.limits.max_entries,
            });
        }
        // Unpacked beside the final place and renamed, so a crash midway
        // never leaves a half-filled `files` that looks complete.
        let staging = dir.join("files.partial");
        let _ = std::fs::remove_dir_all(&staging);
        let actual = unpack(&zip_path, &staging, &self.limits)?;
        if actual != id.as_str() {
            return Err(UploadError::HashMismatch {
                claimed: id.clone(),
                actual,
            });
        }
        std::fs::rename(&staging, dir.join("files"))?;
        Ok(())
    }

    /// Removes what uploads that never completed left behind (chunks, an
    /// assembled zip, a staging directory) once nothing touched it for
    /// `stale_after` before `now`, and blobs in the layout before blobs
    /// were kept per user (no one can use those any more). Returns how many
    /// it removed. Blocking.
    pub fn sweep(&self, now: SystemTime) -> usize {
        let Some(cutoff) = now.checked_sub(self.limits.stale_after) else {
            return 0;
        };
        let stale = |path: &Path| newest_mtime(path).is_none_or(|t| t < cutoff);
        let mut removed = 0;
        for entry in read_dir(&self.root) {
            let path = entry.path();
            // A blob of the old, shared layout: `uploads/<blob id>/`.
            if BlobId::new(entry.file_name().to_string_lossy()).is_ok() && stale(&path) {
                removed += usize::from(std::fs::remove_dir_all(&path).is_ok());
            }
        }
        for user_entry in read_dir(&self.root.join(USERS_DIR)) {
            let Ok(user) = UserId::new(user_entry.file_name().to_string_lossy()) else {
                continue;
            };
            for blob_entry in read_dir(&user_entry.path()) {
                let Ok(id) = BlobId::new(blob_entry.file_name().to_string_lossy()) else {
                    continue;
                };
                let dir = blob_entry.path();
                let lock = self.lock(&user, &id);
                // An upload being unpacked right now is not stale.
                if let Ok(_guard) = lock.try_lock() {
                    removed += sweep_blob(&dir, &stale);
                }
                self.unlock(&user, &id, lock);
            }
            // Leaves the user's directory if nothing is left in it.
            let _ = std::fs::remove_dir(user_entry.path());
        }
        removed
    }

    /// [`Self::sweep`] off the async runtime, at most once a minute; for
    /// the server's maintenance loop.
    pub async fn sweep_stale(self: &Arc<Self>) {
        {
            let mut last = self.last_sweep.lock().expect("last sweep");
            if last.is_some_and(|at| at.elapsed() < SWEEP_EVERY) {
                return;
            }
            *last = Some(std::time::Instant::now());
        }
        let uploads = self.clone();
        match tokio::task::spawn_blocking(move || uploads.sweep(SystemTime::now())).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "swept incomplete uploads"),
            Err(err) => tracing::warn!(error = %err, "cannot sweep incomplete uploads"),
        }
    }
}

/// Sweeps one blob directory; returns 1 if it removed something.
fn sweep_blob(dir: &Path, stale: &dyn Fn(&Path) -> bool) -> usize {
    if !dir.join("files").is_dir() {
        if stale(dir) {
            return usize::from(std::fs::remove_dir_all(dir).is_ok());
        }
        return 0;
    }
    // A complete blob: only what a crash between unpacking and cleaning up
    // left beside it.
    let mut removed = 0;
    for leftover in ["chunks", "upload.zip", "files.partial"] {
        let path = dir.join(leftover);
        if path.exists() && stale(&path) {
            let gone = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed += usize::from(gone.is_ok());
        }
    }
    removed.min(1)
}

fn read_dir(dir: &Path) -> impl Iterator<Item = std::fs::DirEntry> {
    std::fs::read_dir(dir).into_iter().flatten().flatten()
}

/// The latest modification under `path` (itself, and the entries of the
/// directories in it, one level down: chunks sit in `chunks/`).
fn newest_mtime(path: &Path) -> Option<SystemTime> {
    let mtime = |p: &Path| std::fs::symlink_metadata(p).and_then(|m| m.modified()).ok();
    let mut newest = mtime(path);
    for entry in read_dir(path) {
        newest = newest.max(mtime(&entry.path()));
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            for inner in read_dir(&entry.path()) {
                newest = newest.max(mtime(&inner.path()));
            }
        }
    }
    newest
}

/// Counts central directory header signatures (`PK\x01\x02`) in a stream:
/// an upper bound on the entries any parse of it can hold.
#[derive(Default)]
struct SignatureCounter {
    count: u64,
    /// The last bytes of the previous buffer, for a signature split
    /// between two.
    tail: Vec<u8>,
}

const CENTRAL_HEADER: &[u8; 4] = b"PK\x01\x02";

impl SignatureCounter {
    fn feed(&mut self, bytes: &[u8]) {
        // Those spanning the boundary: the tail alone (under 4 bytes) and
        // the buffer's first 3 bytes cannot hold one.
        let mut joined = std::mem::take(&mut self.tail);
        joined.extend_from_slice(&bytes[..bytes.len().min(3)]);
        self.count += count_signatures(&joined) + count_signatures(bytes);
        let last = if bytes.len() >= 3 { bytes } else { &joined };
        self.tail = last[last.len().saturating_sub(3)..].to_vec();
    }
}

fn count_signatures(bytes: &[u8]) -> u64 {
    bytes.windows(4).filter(|w| w == CENTRAL_HEADER).count() as u64
}

/// What kind of member a zip entry is, as the official client's hash
/// sees it: a link has the link type in its mode; a directory's name ends
/// in `/` and it is not a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Directory,
    Link,
    File,
}

/// Unpacks `zip_path` into `dest` within `limits`; returns the blob id its
/// content gives. Refuses members that would land outside `dest`, links
/// that point outside it, and content past the limits.
pub fn unpack(zip_path: &Path, dest: &Path, limits: &Limits) -> Result<String, UploadError> {
    let file = std::fs::File::open(zip_path)?;
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|err| UploadError::Invalid(format!("the upload is not a valid zip: {err}")))?;
    if archive.len() > limits.max_entries {
        return Err(UploadError::TooManyEntries {
            limit: limits.max_entries,
        });
    }
    check_declared_sizes(&mut archive, limits.max_bytes)?;
    let copies = name_copies(
        zip_path,
        archive.central_directory_start(),
        limits.max_entries,
    )?;
    std::fs::create_dir_all(dest)?;
    let mut written: u64 = 0;
    let mut digests: Vec<(String, [u8; 32])> = Vec::with_capacity(archive.len());
    let mut seen: HashMap<PathBuf, (Kind, [u8; 32])> = HashMap::new();
    let mut links = Links::default();
    let mut link_paths: Vec<PathBuf> = Vec::new();
    let mut counted = 0;
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|err| UploadError::Invalid(format!("unreadable zip member {i}: {err}")))?;
        let name = entry.name().to_owned();
        let copies = copies.get(entry.name_raw()).copied().unwrap_or(0);
        counted += copies;
        let relative = safe_relative(&name)?;
        let kind = if entry
            .unix_mode()
            .is_some_and(|mode| mode & 0o170000 == 0o120000)
        {
            Kind::Link
        } else if name.ends_with('/') {
            Kind::Directory
        } else {
            Kind::File
        };
        let declared = entry.size();
        let member = |err: std::io::Error| member_error(&name, err);
        let target = dest.join(&relative);
        if let Some(link) = links.link_above(&relative) {
            return Err(UploadError::Invalid(format!(
                "zip member {name:?} would be written through the symbolic link {:?}",
                link.display()
            )));
        }
        let duplicate = seen.get(&relative).copied();
        let digest: [u8; 32] = match kind {
            Kind::Directory => {
                if duplicate.is_none() {
                    std::fs::create_dir_all(&target).map_err(member)?;
                }
                Sha256::digest(b"").into()
            }
            Kind::Link => {
                let mut link_target = Vec::new();
                (&mut entry)
                    .take(MAX_LINK_TARGET + 1)
                    .read_to_end(&mut link_target)
                    .map_err(|err| {
                        UploadError::Invalid(format!("unreadable symbolic link {name:?}: {err}"))
                    })?;
                let link_target = link_target_path(&name, link_target)?;
                if duplicate.is_none() {
                    if let Some(parent) = target.parent() {
                        std::fs::create_dir_all(parent).map_err(member)?;
                    }
                    std::os::unix::fs::symlink(&link_target, &target).map_err(member)?;
                    links.insert(&relative, link_target.clone());
                    link_paths.push(relative.clone());
                }
                Sha256::digest(link_target.as_os_str().as_encoded_bytes()).into()
            }
            Kind::File => {
                let mut hasher = Sha256::new();
                let mut out = if duplicate.is_none() {
                    if let Some(parent) = target.parent() {
                        std::fs::create_dir_all(parent).map_err(member)?;
                    }
                    Some(std::fs::File::create(&target).map_err(member)?)
                } else {
                    None
                };
                let mut buffer = vec![0u8; 64 * 1024];
                let mut size: u64 = 0;
                loop {
                    let n = entry.read(&mut buffer).map_err(|err| {
                        UploadError::Invalid(format!("corrupt zip member {name:?}: {err}"))
                    })?;
                    if n == 0 {
                        break;
                    }
                    size += n as u64;
                    if size > declared {
                        return Err(UploadError::Invalid(format!(
                            "zip member {name:?} inflates past the {declared} bytes its header declares"
                        )));
                    }
                    if duplicate.is_none() {
                        written += n as u64;
                        if written > limits.max_bytes {
                            return Err(UploadError::TooLarge {
                                limit: limits.max_bytes,
                            });
                        }
                    }
                    hasher.update(&buffer[..n]);
                    if let Some(out) = &mut out {
                        out.write_all(&buffer[..n]).map_err(member)?;
                    }
                }
                if out.is_some()
                    && let Some(mode) = entry.unix_mode()
                {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(
                        &target,
                        std::fs::Permissions::from_mode(mode & 0o755),
                    )
                    .map_err(member)?;
                }
                hasher.finalize().into()
            }
        };
        match duplicate {
            None => {
                seen.insert(relative, (kind, digest));
            }
            // The official client may zip a path twice (a file mount inside
            // the workdir): the same member again is harmless.
            Some(first) if first == (kind, digest) => {}
            Some(_) => {
                return Err(UploadError::Invalid(format!(
                    "zip member {name:?} lands on a path another member has already written, \
                     with different content; send each path once"
                )));
            }
        }
        digests.extend(std::iter::repeat_n((name, digest), copies));
    }
    if counted != copies.values().sum::<usize>() {
        return Err(UploadError::Invalid(
            "the zip's member names are ambiguous (the same bytes under two encodings); \
             zip the files again"
                .to_owned(),
        ));
    }
    let mut budget = LINK_STEPS;
    for link in &link_paths {
        links.confine(link, &mut budget)?;
    }
    Ok(blob_id_of(digests))
}

/// How many central directory entries carry each raw name, reading the
/// directory from `start`. The zip crate shows one member per name (the
/// last); the official client's id counts every copy.
fn name_copies(
    zip_path: &Path,
    start: u64,
    max_entries: usize,
) -> Result<HashMap<Vec<u8>, usize>, UploadError> {
    use std::io::{BufReader, Seek, SeekFrom};
    let corrupt = |err: std::io::Error| {
        UploadError::Invalid(format!("the zip's central directory is corrupt: {err}"))
    };
    let mut reader = BufReader::new(std::fs::File::open(zip_path)?);
    reader.seek(SeekFrom::Start(start)).map_err(corrupt)?;
    let mut copies: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut entries = 0;
    loop {
        // The fixed part of a central directory header, 46 bytes.
        let mut header = [0u8; 46];
        match reader.read_exact(&mut header[..4]) {
            Ok(()) if &header[..4] == CENTRAL_HEADER => {}
            _ => break,
        }
        reader.read_exact(&mut header[4..]).map_err(corrupt)?;
        let field = |at: usize| usize::from(u16::from_le_bytes([header[at], header[at + 1]]));
        let (name_len, extra_len, comment_len) = (field(28), field(30), field(32));
        let mut name = vec![0u8; name_len];
        reader.read_exact(&mut name).map_err(corrupt)?;
        reader
            .seek_relative((extra_len + comment_len) as i64)
            .map_err(corrupt)?;
        *copies.entry(name).or_default() += 1;
        entries += 1;
        if entries > max_entries {
            return Err(UploadError::TooManyEntries { limit: max_entries });
        }
    }
    Ok(copies)
}

/// SHA-256 over the (name, content digest) pairs in name order, as
/// `_compute_zip_blob_id` in `sky/client/common.py` computes it.
pub fn blob_id_of(mut digests: Vec<(String, [u8; 32])>) -> String {
    // Stable, like Python's sort: members named twice keep their order.
    digests.sort_by(|a, b| a.0.cmp(&b.0));
    let mut hasher = Sha256::new();
    for (name, digest) in &digests {
        hasher.update(name.as_bytes());
        hasher.update(digest);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Refuses a zip whose headers declare more than the limits allow, before
/// anything is inflated.
fn check_declared_sizes(
    archive: &mut zip::ZipArchive<std::fs::File>,
    max_bytes: u64,
) -> Result<(), UploadError> {
    let mut declared: u64 = 0;
    for i in 0..archive.len() {
        let entry = archive
            .by_index_raw(i)
            .map_err(|err| UploadError::Invalid(format!("unreadable zip member {i}: {err}")))?;
        let name = entry.name();
        if entry.encrypted() {
            return Err(UploadError::Invalid(format!(
                "zip member {name:?} is encrypted; send it unencrypted"
            )));
        }
        let method = entry.compression();
        if !matches!(
            method,
            zip::CompressionMethod::Stored | zip::CompressionMethod::Deflated
        ) {
            return Err(UploadError::Invalid(format!(
                "zip member {name:?} is compressed with {method}; only stored and deflated members are accepted"
            )));
        }
        if entry.size() > entry.compressed_size().saturating_mul(MAX_RATIO) + MAX_RATIO {
            return Err(UploadError::Invalid(format!(
                "zip member {name:?} declares {} bytes from {} compressed, more than deflate can produce; the zip is forged",
                entry.size(),
                entry.compressed_size()
            )));
        }
        declared = declared.saturating_add(entry.size());
        if declared > max_bytes {
            return Err(UploadError::TooLarge { limit: max_bytes });
        }
    }
    Ok(())
}

/// An error creating a member: the zip's doing (a name too long, a file
/// where a directory must be…) unless the disk itself failed.
fn member_error(name: &str, err: std::io::Error) -> UploadError {
    use std::io::ErrorKind;
    match err.kind() {
        ErrorKind::StorageFull
        | ErrorKind::QuotaExceeded
        | ErrorKind::ReadOnlyFilesystem
        | ErrorKind::PermissionDenied => UploadError::Io(err),
        _ => UploadError::Invalid(format!("cannot unpack zip member {name:?}: {err}")),
    }
}

fn link_target_path(name: &str, target: Vec<u8>) -> Result<PathBuf, UploadError> {
    use std::os::unix::ffi::OsStringExt;
    if target.len() as u64 > MAX_LINK_TARGET || target.is_empty() || target.contains(&0) {
        return Err(UploadError::Invalid(format!(
            "symbolic link {name:?} has an invalid target (empty, over {MAX_LINK_TARGET} bytes, or with a NUL byte)"
        )));
    }
    let path = PathBuf::from(OsString::from_vec(target));
    if path.is_absolute() {
        return Err(UploadError::Invalid(format!(
            "symbolic link {name:?} points to the absolute path {:?}; only links relative to the \
             link, inside the upload, are accepted",
            path.display()
        )));
    }
    Ok(path)
}

/// The links unpacked so far, as a tree of path components: checking a
/// path against them costs one lookup per component and no filesystem
/// call, whatever a hostile zip holds. Only `unpack` writes into its
/// destination, so this is every link there is.
#[derive(Default)]
struct Links {
    children: HashMap<OsString, Links>,
    target: Option<PathBuf>,
}

/// Steps all the links of one upload may take to resolve: far more than
/// honest links need, and a bound on what a crafted chain can cost.
const LINK_STEPS: usize = 10_000_000;

impl Links {
    fn insert(&mut self, path: &Path, target: PathBuf) {
        let mut node = self;
        for component in path.components() {
            node = node
                .children
                .entry(component.as_os_str().to_owned())
                .or_default();
        }
        node.target = Some(target);
    }

    /// The first link among the parent directories of `path`: writing
    /// through it would land wherever it points.
    fn link_above(&self, path: &Path) -> Option<PathBuf> {
        let components: Vec<Component> = path.components().collect();
        let mut node = self;
        let mut at = PathBuf::new();
        for component in &components[..components.len().saturating_sub(1)] {
            node = node.children.get(component.as_os_str())?;
            at.push(component);
            if node.target.is_some() {
                return Some(at);
            }
        }
        None
    }

    /// Refuses the link at `link` if its target, resolved as the kernel
    /// would through the other links, leaves the upload.
    fn confine(&self, link: &Path, budget: &mut usize) -> Result<(), UploadError> {
        let mut at: Vec<Option<&Links>> = vec![Some(self)];
        let mut node = Some(self);
        let parents: Vec<Component> = link
            .parent()
            .into_iter()
            .flat_map(Path::components)
            .collect();
        for component in parents {
            node = node.and_then(|n| n.children.get(component.as_os_str()));
            at.push(node);
        }
        let Some(target) = self.target_of(link) else {
            return Ok(());
        };
        let mut hops = 0;
        match self.resolve(&mut at, target, &mut hops, budget) {
            Resolved::Inside => Ok(()),
            Resolved::Outside => Err(UploadError::Invalid(format!(
                "symbolic link {:?} points outside the upload (to {:?}), or through more than \
                 {MAX_LINK_HOPS} links; only links to paths inside the upload are accepted",
                link.display(),
                target.display()
            ))),
            Resolved::TooCostly => Err(UploadError::Invalid(format!(
                "the upload's symbolic links take more than {LINK_STEPS} steps to check; send \
                 fewer or shorter links"
            ))),
        }
    }

    fn target_of(&self, link: &Path) -> Option<&Path> {
        let mut node = self;
        for component in link.components() {
            node = node.children.get(component.as_os_str())?;
        }
        node.target.as_deref()
    }

    /// Walks `target` from the directory `at` (the tree nodes from the
    /// root down, `None` below any path no link is under), following
    /// links.
    fn resolve<'a>(
        &'a self,
        at: &mut Vec<Option<&'a Links>>,
        target: &'a Path,
        hops: &mut usize,
        budget: &mut usize,
    ) -> Resolved {
        for component in target.components() {
            if *budget == 0 {
                return Resolved::TooCostly;
            }
            *budget -= 1;
            match component {
                Component::CurDir => {}
                Component::ParentDir => {
                    // The root stays: popping it is climbing out.
                    if at.len() == 1 {
                        return Resolved::Outside;
                    }
                    at.pop();
                }
                Component::RootDir | Component::Prefix(_) => return Resolved::Outside,
                Component::Normal(part) => {
                    let node = at
                        .last()
                        .copied()
                        .flatten()
                        .and_then(|n| n.children.get(part));
                    match node.and_then(|n| n.target.as_deref()) {
                        Some(next) => {
                            *hops += 1;
                            if *hops > MAX_LINK_HOPS {
                                return Resolved::Outside;
                            }
                            match self.resolve(at, next, hops, budget) {
                                Resolved::Inside => {}
                                other => return other,
                            }
                        }
                        None => at.push(node),
                    }
                }
            }
        }
        Resolved::Inside
    }
}

enum Resolved {
    Inside,
    Outside,
    TooCostly,
}

/// The member name as a path inside the destination, or why not. Leading
/// `/` is dropped: the client stores absolute paths without it, and an
/// absolute member must not escape.
fn safe_relative(name: &str) -> Result<PathBuf, UploadError> {
    if name.chars().any(char::is_control) {
        return Err(UploadError::Invalid(format!(
            "zip member {name:?} has a control character in its name"
        )));
    }
    let mut path = PathBuf::new();
    for component in Path::new(name.trim_start_matches('/')).components() {
        match component {
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(UploadError::Invalid(format!(
                    "zip member {name:?} would be written outside the upload directory"
                )));
            }
        }
    }
    if path.as_os_str().is_empty() {
        return Err(UploadError::Invalid(format!(
            "zip member {name:?} names no path"
        )));
    }
    Ok(path)
}

#[cfg(test)]
mod tests;
