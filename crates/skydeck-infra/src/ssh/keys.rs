//! Per-cluster SSH keys: the head reaches its workers with a key the server
//! makes for that cluster alone, authorized on each worker under a marker
//! so that `down` removes exactly that line again.

use super::runner::SshRunner;
use crate::runner::CommandRunner;
use crate::{InfraError, Result};
use std::path::{Path, PathBuf};

/// A key pair made for one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterKey {
    pub private_key: PathBuf,
    /// `ssh-ed25519 AAAA… MARKER`: the authorized_keys line.
    pub public_line: String,
    pub marker: String,
}

impl ClusterKey {
    /// Makes a new ed25519 key pair at `dir/id_ed25519` (mode 0600), whose
    /// comment is `skydeck-server:<this server's host name> <marker>`: the
    /// marker (letters, digits, `-`, `_`, `.`, `:`) is the last field, which
    /// names the key's line on every host; the server's name before it tells
    /// an admin reading authorized_keys whose key it is.
    pub async fn generate(dir: &Path, marker: &str) -> Result<Self> {
        check_marker(marker)?;
        let comment = format!("{} {marker}", server_note());
        std::fs::create_dir_all(dir)
            .map_err(InfraError::io(format!("cannot make {}", dir.display())))?;
        let private_key = dir.join("id_ed25519");
        for stale in [private_key.clone(), private_key.with_extension("pub")] {
            match std::fs::remove_file(&stale) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(InfraError::io(format!(
                        "cannot replace {}",
                        stale.display()
                    ))(e));
                }
                _ => {}
            }
        }
        let out = tokio::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", &comment, "-f"])
            .arg(&private_key)
            .output()
            .await
            .map_err(InfraError::io("cannot run ssh-keygen"))?;
        if !out.status.success() {
            return Err(InfraError::Command(format!(
                "ssh-keygen failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let public = private_key.with_extension("pub");
        let public_line = std::fs::read_to_string(&public)
            .map_err(InfraError::io(format!("cannot read {}", public.display())))?
            .trim()
            .to_owned();
        Ok(Self {
            private_key,
            public_line,
            marker: marker.to_owned(),
        })
    }
}

/// `skydeck-server:<host name>`, the host name cut to what a marker may
/// hold (a pod's name on Kubernetes, the machine's elsewhere).
pub fn server_note() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
        .take(64)
        .collect();
    format!(
        "skydeck-server:{}",
        if host.is_empty() { "unknown" } else { &host }
    )
}

fn check_marker(marker: &str) -> Result<()> {
    let ok = !marker.is_empty()
        && marker.len() <= 128
        && marker
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(InfraError::Refused(format!(
            "{marker:?} cannot mark a key: letters, digits, '-', '_', '.', ':' only"
        )))
    }
}

/// Rewrites `~/.ssh/authorized_keys` without the lines whose last field is
/// the marker (`$1`), adding `$2` when given. Under a lock; the new file is
/// written beside and renamed over the old (through any link the user
/// made, keeping its mode and owner), so sshd never reads it half-written:
/// a truncate-and-rewrite in place would lock every other key of the login
/// out for that moment. A file that would not change is left alone.
const EDIT: &str = r#"set -e
umask 077
mkdir -p "$HOME/.ssh"
f="$HOME/.ssh/authorized_keys"
[ -e "$f" ] || : >"$f"
exec 9>>"$HOME/.ssh/.skydeck.lock"
flock 9 2>/dev/null || true
real=$(readlink -f "$f")
tmp="$(dirname "$real")/.skydeck.authorized_keys.$$"
trap 'rm -f "$tmp"' EXIT
awk -v m="$1" '$NF != m' "$real" >"$tmp"
if [ -n "$2" ]; then printf '%s\n' "$2" >>"$tmp"; fi
if cmp -s "$tmp" "$real"; then exit 0; fi
chmod --reference="$real" "$tmp" 2>/dev/null || chmod 600 "$tmp"
chown --reference="$real" "$tmp" 2>/dev/null || true
mv -f "$tmp" "$real"
"#;

impl SshRunner {
    /// Lets `key` log in to this host as the runner's user.
    pub async fn authorize_key(&self, key: &ClusterKey) -> Result<()> {
        self.edit_authorized_keys(&key.marker, &key.public_line)
            .await
    }

    /// Removes the key marked `marker` from this host (a no-op when absent).
    pub async fn revoke_key(&self, marker: &str) -> Result<()> {
        self.edit_authorized_keys(marker, "").await
    }

    async fn edit_authorized_keys(&self, marker: &str, line: &str) -> Result<()> {
        check_marker(marker)?;
        if line.contains(['\n', '\r'])
            || (!line.is_empty() && !line.ends_with(&format!(" {marker}")))
        {
            return Err(InfraError::Refused(
                "a key line must be one line ending in its marker".to_owned(),
            ));
        }
        let argv: Vec<String> = ["sh", "-c", EDIT, "authorize", marker, line]
            .iter()
            .map(|w| (*w).to_owned())
            .collect();
        let out = self.run(&argv, None).await?;
        if out.success() {
            Ok(())
        } else {
            Err(InfraError::Command(format!(
                "cannot edit ~/.ssh/authorized_keys on {}: {}",
                self.target(),
                out.stderr.trim()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cluster_key_names_the_server_and_ends_in_its_marker() {
        let dir = tempfile::tempdir().unwrap();
        let key = ClusterKey::generate(dir.path(), "skydeck-cluster:c1")
            .await
            .unwrap();
        let fields: Vec<&str> = key.public_line.split_whitespace().collect();
        assert_eq!(fields[0], "ssh-ed25519");
        assert_eq!(fields[2], server_note());
        assert!(fields[2].starts_with("skydeck-server:"));
        assert!(fields[2].len() > "skydeck-server:".len());
        // The marker stays the last field: `revoke_key` finds the line by it.
        assert_eq!(fields.last(), Some(&"skydeck-cluster:c1"));
        check_marker(fields[2]).unwrap();
    }
}
