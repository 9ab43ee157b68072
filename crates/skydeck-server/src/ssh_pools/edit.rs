//! Changing the pool file and the SSH key store from the API (the official
//! client's `POST /ssh_node_pools`, `DELETE /ssh_node_pools/{pool}` and
//! `POST /ssh_node_pools/keys`, which `sky ssh up -f` calls).
//!
//! Both hold secrets (private keys, sudo passwords), so both are written
//! 0600 and replaced by rename: a reader (or a crash) sees the old file or
//! the new one, never half of one. Edits of the pool file are serialised
//! in this process, so two admins' merges cannot lose each other's pool.

use skydeck_types::names::{PoolName, SshKeyName};
use skydeck_types::ssh_node_pools::NodePools;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A private key is a few KiB (RSA 8192 in PEM is under 7 KiB).
pub const MAX_KEY_BYTES: usize = 64 * 1024;
/// The whole pool file after an edit.
pub const MAX_POOL_FILE_BYTES: usize = 1024 * 1024;
/// Keys in the store: `sky ssh up -f` uploads one per host per run.
pub const MAX_KEYS: usize = 10_000;

/// Why an edit was refused; each maps to one HTTP status.
#[derive(Debug)]
pub enum EditError {
    /// What was sent breaks a rule (400).
    Invalid(String),
    /// No such pool (404).
    NotFound(String),
    /// The server could not read or write its files (500).
    Io(String),
}

static POOL_FILE_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Writes `bytes` to `path` with mode 0600 through a temporary file in the
/// same directory and a rename.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Reads the pool file in use (none: no pools).
fn read_pools(home: &Path) -> Result<NodePools, EditError> {
    super::load(home).map_err(EditError::Io)
}

fn write_pools(home: &Path, pools: &NodePools) -> Result<PathBuf, EditError> {
    let text = serde_yaml_ng::to_string(pools).map_err(|e| EditError::Io(e.to_string()))?;
    if text.len() > MAX_POOL_FILE_BYTES {
        return Err(EditError::Invalid(format!(
            "the pool file would be {} bytes, more than the {MAX_POOL_FILE_BYTES} allowed: \
             delete pools no longer used (`DELETE /ssh_node_pools/POOL`)",
            text.len()
        )));
    }
    let path = super::writable_pool_file(home);
    write_private(&path, text.as_bytes())
        .map_err(|e| EditError::Io(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

/// Replaces (or adds) each pool of `update` in the file, as SkyPilot does:
/// a pool is replaced whole, other pools are kept.
pub async fn merge_pools(home: &Path, update: NodePools) -> Result<PathBuf, EditError> {
    if update.pools.is_empty() {
        return Err(EditError::Invalid(
            "no pools sent: send a mapping from pool name to pool, e.g. \
             {\"mypool\": {\"hosts\": [\"10.0.0.1\"], \"user\": \"ubuntu\"}}"
                .to_owned(),
        ));
    }
    for (name, pool) in &update.pools {
        if pool.hosts.is_empty() {
            return Err(EditError::Invalid(format!(
                "pool {name} has no hosts: list at least one under `hosts`"
            )));
        }
    }
    let _guard = POOL_FILE_LOCK.lock().await;
    let mut pools = read_pools(home)?;
    pools.pools.extend(update.pools);
    write_pools(home, &pools)
}

/// Takes `pool` out of the file; `in_use` is asked under the file's lock,
/// so the answer holds for the write that follows.
pub async fn delete_pool(home: &Path, pool: &PoolName) -> Result<PathBuf, EditError> {
    let _guard = POOL_FILE_LOCK.lock().await;
    let mut pools = read_pools(home)?;
    if pools.pools.remove(pool).is_none() {
        return Err(EditError::NotFound(format!(
            "SSH Node Pool `{pool}` not found in the pool file"
        )));
    }
    write_pools(home, &pools)
}

/// The key store: `$SKYDECK_HOME/ssh_keys`, 0700.
pub fn keys_dir(home: &Path) -> PathBuf {
    home.join("ssh_keys")
}

/// The file of a stored key (the name is one path component by its type).
pub fn key_path(home: &Path, name: &SshKeyName) -> PathBuf {
    keys_dir(home).join(name.as_str())
}

/// Checks that `content` is a private key in a form `ssh` reads (OpenSSH,
/// PEM or PKCS#8), so a wrong upload fails here rather than at `ssh up`.
pub fn check_private_key(content: &[u8]) -> Result<(), EditError> {
    if content.len() > MAX_KEY_BYTES {
        return Err(EditError::Invalid(format!(
            "the key is {} bytes; a private key is at most {MAX_KEY_BYTES}",
            content.len()
        )));
    }
    let text = std::str::from_utf8(content).map_err(|_| {
        EditError::Invalid(
            "the key is not text: upload the private key file (PEM or OpenSSH format)".to_owned(),
        )
    })?;
    let looks_private = text.contains("-----BEGIN ") && text.contains("PRIVATE KEY-----");
    if !looks_private {
        return Err(EditError::Invalid(
            "the file is not a private key (no `-----BEGIN … PRIVATE KEY-----`): upload the \
             private half (e.g. ~/.ssh/id_ed25519, not the .pub)"
                .to_owned(),
        ));
    }
    Ok(())
}

/// Stores a key (replacing one of that name) and says where it lies.
pub fn store_key(home: &Path, name: &SshKeyName, content: &[u8]) -> Result<PathBuf, EditError> {
    check_private_key(content)?;
    let dir = keys_dir(home);
    std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)))
        .map_err(|e| EditError::Io(format!("cannot make {}: {e}", dir.display())))?;
    let path = key_path(home, name);
    if !path.exists() && list_keys(home)?.len() >= MAX_KEYS {
        return Err(EditError::Invalid(format!(
            "the key store holds {MAX_KEYS} keys already: remove unused ones from {}",
            dir.display()
        )));
    }
    // ssh refuses a key without a final newline in some formats.
    let mut bytes = content.to_vec();
    if !bytes.ends_with(b"\n") {
        bytes.push(b'\n');
    }
    write_private(&path, &bytes)
        .map_err(|e| EditError::Io(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

/// The stored keys' names, sorted (temporary files left by a crash are not
/// keys).
pub fn list_keys(home: &Path) -> Result<Vec<String>, EditError> {
    let dir = keys_dir(home);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(EditError::Io(format!("cannot read {}: {e}", dir.display()))),
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| SshKeyName::new(n.as_str()).is_ok())
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] =
        b"-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----";

    #[test]
    fn a_stored_key_is_private_and_listed() {
        let home = tempfile::tempdir().unwrap();
        let name = SshKeyName::new("pool-0-ab12").unwrap();
        let path = store_key(home.path(), &name, KEY).unwrap();
        assert_eq!(path, home.path().join("ssh_keys/pool-0-ab12"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(keys_dir(home.path()))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        assert!(std::fs::read(&path).unwrap().ends_with(b"\n"));
        assert_eq!(list_keys(home.path()).unwrap(), vec!["pool-0-ab12"]);
    }

    #[test]
    fn a_public_key_or_binary_is_not_stored() {
        let home = tempfile::tempdir().unwrap();
        let name = SshKeyName::new("k").unwrap();
        for bad in [&b"ssh-ed25519 AAAA me@host"[..], &[0xff, 0xfe, 0x00][..]] {
            assert!(matches!(
                store_key(home.path(), &name, bad),
                Err(EditError::Invalid(_))
            ));
        }
        let huge = vec![b'a'; MAX_KEY_BYTES + 1];
        assert!(matches!(
            store_key(home.path(), &name, &huge),
            Err(EditError::Invalid(_))
        ));
        assert!(!key_path(home.path(), &name).exists());
    }

    #[tokio::test]
    async fn merging_replaces_whole_pools_and_keeps_the_others() {
        let home = tempfile::tempdir().unwrap();
        // Ours exists, so a `~/.sky` file on this machine is never touched.
        std::fs::write(home.path().join("ssh_node_pools.yaml"), "").unwrap();
        let first = NodePools::from_yaml("a:\n  hosts: [h1]\nb:\n  hosts: [h2]\n").unwrap();
        merge_pools(home.path(), first).await.unwrap();
        let update = NodePools::from_yaml("b:\n  user: ubuntu\n  hosts: [h3]\n").unwrap();
        let path = merge_pools(home.path(), update).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let pools = crate::ssh_pools::load(home.path()).unwrap();
        let text = serde_json::to_string(&pools).unwrap();
        assert_eq!(
            text,
            r#"{"a":{"hosts":["h1"]},"b":{"hosts":["h3"],"user":"ubuntu"}}"#
        );
        delete_pool(home.path(), &PoolName::new("a").unwrap())
            .await
            .unwrap();
        assert!(matches!(
            delete_pool(home.path(), &PoolName::new("a").unwrap()).await,
            Err(EditError::NotFound(_))
        ));
        let left: Vec<String> = crate::ssh_pools::load(home.path())
            .unwrap()
            .pools
            .keys()
            .map(|k| k.to_string())
            .collect();
        assert_eq!(left, vec!["b"]);
    }
}
