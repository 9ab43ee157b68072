//! Copying a local tree to a host over the runner's connection.

use super::quote::{quote, quote_argv};
use super::runner::SshRunner;
use crate::runner::CommandRunner;
use crate::{InfraError, Result};
use std::path::Path;
use tokio::process::Command;

/// What a sync moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// Files sent, relative to the destination (rsync sends only what
    /// changed; the tar fallback sends everything).
    pub sent: Vec<String>,
    /// Whether rsync did it (both ends have it).
    pub rsync: bool,
}

impl SshRunner {
    /// Copies the contents of `local_dir` into `remote_dir` (made if
    /// missing). Symbolic links are copied as links, never followed, on
    /// either side; a `remote_dir` that is itself a link is refused. Files
    /// only on the host are left alone. A relative `remote_dir` is relative
    /// to the login's home (`~` is not expanded).
    pub async fn sync_up(&self, local_dir: &Path, remote_dir: &str) -> Result<SyncReport> {
        let remote_rsync = self.prepare(local_dir, remote_dir).await?;
        let local_rsync = *self
            .rsync
            .get_or_init(|| async {
                Command::new("rsync")
                    .arg("--version")
                    .output()
                    .await
                    .is_ok_and(|o| o.status.success())
            })
            .await;
        if remote_rsync && local_rsync {
            self.rsync_up(local_dir, remote_dir).await
        } else {
            self.tar_up(local_dir, remote_dir).await
        }
    }

    /// [`sync_up`](Self::sync_up) without rsync, as for a host that lacks
    /// it: the whole tree, piped through `tar`.
    pub async fn sync_up_with_tar(&self, local_dir: &Path, remote_dir: &str) -> Result<SyncReport> {
        self.prepare(local_dir, remote_dir).await?;
        self.tar_up(local_dir, remote_dir).await
    }

    /// Makes `remote_dir` (refusing a link there); says whether the host
    /// has rsync.
    async fn prepare(&self, local_dir: &Path, remote_dir: &str) -> Result<bool> {
        if !local_dir.is_dir() {
            return Err(InfraError::Command(format!(
                "{} is not a directory",
                local_dir.display()
            )));
        }
        let prepare = format!(
            "if [ -L {d} ]; then echo link; exit 3; fi; mkdir -p -- {d} || exit 4; \
             if command -v rsync >/dev/null; then echo rsync; fi",
            d = quote(remote_dir)
        );
        let out = self
            .run(&["sh".to_owned(), "-c".to_owned(), prepare], None)
            .await?;
        if out.code == 3 {
            return Err(InfraError::Refused(format!(
                "{remote_dir} on {} is a symbolic link: sync into a real directory",
                self.target()
            )));
        }
        if !out.success() {
            return Err(InfraError::Command(format!(
                "cannot make {remote_dir} on {}: {}",
                self.target(),
                out.stderr.trim()
            )));
        }
        Ok(out.stdout.contains("rsync"))
    }

    async fn rsync_up(&self, local_dir: &Path, remote_dir: &str) -> Result<SyncReport> {
        self.connected().await?;
        let socket = self.control_socket();
        let socket = socket
            .to_str()
            .filter(|s| {
                !s.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"' || c == '\\')
            })
            .ok_or_else(|| {
                InfraError::Refused(format!(
                    "the control socket {} cannot be passed to rsync",
                    socket.display()
                ))
            })?;
        // The host name is a placeholder: the master behind the socket is
        // already connected to the right host.
        let shell = format!("ssh -S {socket} -o ControlMaster=no");
        let mut source = local_dir.as_os_str().to_owned();
        source.push("/");
        // --protect-args sends the path inside rsync's protocol, where no
        // remote shell reads it: no quoting, and no word splitting.
        let dest = format!("skydeck-ssh:{remote_dir}/");
        let output = Command::new("rsync")
            .args(["-a", "--out-format=%n", "--protect-args", "-e", &shell])
            .arg(&source)
            .arg(&dest)
            .kill_on_drop(true)
            .output()
            .await
            .map_err(InfraError::io("cannot run rsync"))?;
        if !output.status.success() {
            return Err(InfraError::Command(format!(
                "rsync to {remote_dir} on {} failed: {}",
                self.target(),
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        let sent = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| !l.is_empty() && !l.ends_with('/'))
            .map(str::to_owned)
            .collect();
        Ok(SyncReport { sent, rsync: true })
    }

    async fn tar_up(&self, local_dir: &Path, remote_dir: &str) -> Result<SyncReport> {
        let output = Command::new("tar")
            .arg("-C")
            .arg(local_dir)
            .args(["-cf", "-", "."])
            .output()
            .await
            .map_err(InfraError::io("cannot run tar"))?;
        if !output.status.success() {
            return Err(InfraError::Command(format!(
                "tar of {} failed: {}",
                local_dir.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        let argv: Vec<String> = ["tar", "-C", remote_dir, "--no-same-owner", "-xf", "-"]
            .iter()
            .map(|w| (*w).to_owned())
            .collect();
        let out = self.run(&argv, Some(output.stdout)).await?;
        if !out.success() {
            return Err(InfraError::Command(format!(
                "unpacking into {remote_dir} on {} failed ({}): {}",
                self.target(),
                quote_argv(&argv),
                out.stderr.trim()
            )));
        }
        Ok(SyncReport {
            sent: walk(local_dir),
            rsync: false,
        })
    }
}

/// Every file under `root`, relative to it (links too, not followed).
fn walk(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(_) => {
                    if let Ok(rel) = path.strip_prefix(root) {
                        files.push(rel.to_string_lossy().into_owned());
                    }
                }
                Err(_) => {}
            }
        }
    }
    files.sort();
    files
}
