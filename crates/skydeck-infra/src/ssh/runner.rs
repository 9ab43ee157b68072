//! A [`CommandRunner`] over one SSH master connection.
//!
//! Every command runs as `echo skydeck-pgid:$$ >&2; exec ARGV` in the login
//! shell. sshd makes each session's shell the leader of a new session and
//! process group, so that first line names the group to kill when a
//! command times out or its caller goes away: closing a channel does not
//! stop a remote command that reads and writes nothing.

use super::quote::quote_argv;
use super::target::SshTarget;
use crate::runner::{CommandOutput, CommandRunner, READER_GONE, STREAM_CHUNK};
use crate::{InfraError, Result};
use async_trait::async_trait;
use openssh::{Session, Stdio};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

const PGID_MARK: &str = "skydeck-pgid:";

/// Runs commands on one host over one kept connection.
pub struct SshRunner {
    session: Arc<Session>,
    target: SshTarget,
    command_timeout: Option<Duration>,
    pub(super) rsync: tokio::sync::OnceCell<bool>,
}

impl std::fmt::Debug for SshRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshRunner")
            .field("target", &self.target)
            .field("control_socket", &self.session.control_socket())
            .finish_non_exhaustive()
    }
}

impl SshRunner {
    pub(super) fn new(
        session: Session,
        target: SshTarget,
        command_timeout: Option<Duration>,
    ) -> Self {
        Self {
            session: Arc::new(session),
            target,
            command_timeout,
            rsync: tokio::sync::OnceCell::new(),
        }
    }

    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    /// The master connection's socket: `ssh -S SOCKET HOST CMD` runs over
    /// the same connection (rsync uses it that way).
    pub fn control_socket(&self) -> &Path {
        self.session.control_socket()
    }

    /// Whether the master connection is still up.
    pub async fn check(&self) -> Result<()> {
        self.session.check().await.map_err(|e| {
            InfraError::Command(format!("the connection to {} is down: {e}", self.target))
        })
    }

    /// Closes the master connection.
    pub async fn close(self) -> Result<()> {
        match Arc::try_unwrap(self.session) {
            Ok(session) => session.close().await.map_err(|e| {
                InfraError::Command(format!("closing the connection to {}: {e}", self.target))
            }),
            // Still in use by a kill in flight: it closes when that ends.
            Err(_) => Ok(()),
        }
    }

    fn spawn_error(&self, argv: &[String], error: openssh::Error) -> InfraError {
        InfraError::Command(format!(
            "cannot run {} on {}: {error}",
            argv[0], self.target
        ))
    }

    async fn spawn(
        &self,
        argv: &[String],
        stdin: bool,
    ) -> Result<(openssh::Child<Arc<Session>>, KillGuard)> {
        if argv.is_empty() {
            return Err(InfraError::Command("empty command".to_owned()));
        }
        let line = format!("echo {PGID_MARK}$$ >&2 && exec {}", quote_argv(argv));
        let mut command = Session::to_raw_command(Arc::clone(&self.session), line);
        command
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = command
            .spawn()
            .await
            .map_err(|e| self.spawn_error(argv, e))?;
        let guard = KillGuard {
            session: Arc::clone(&self.session),
            pgid: None,
        };
        Ok((child, guard))
    }
}

/// Kills the command's process group on the host unless disarmed: dropping
/// a run or stream future mid-way leaves nothing running there.
struct KillGuard {
    session: Arc<Session>,
    pgid: Option<oneshot::Receiver<u32>>,
}

impl KillGuard {
    fn disarm(&mut self) {
        self.pgid = None;
    }

    async fn kill_now(&mut self) {
        if let Some(pgid) = self.pgid.take()
            && let Ok(pgid) = pgid.await
        {
            kill_group(&self.session, pgid).await;
        }
    }
}

impl Drop for KillGuard {
    fn drop(&mut self) {
        if let (Some(pgid), Ok(runtime)) = (self.pgid.take(), tokio::runtime::Handle::try_current())
        {
            let session = Arc::clone(&self.session);
            runtime.spawn(async move {
                if let Ok(pgid) = pgid.await {
                    kill_group(&session, pgid).await;
                }
            });
        }
    }
}

async fn kill_group(session: &Arc<Session>, pgid: u32) {
    let line = format!("kill -KILL -- -{pgid} 2>/dev/null || kill -KILL {pgid} 2>/dev/null; true");
    let result = Session::to_raw_command(Arc::clone(session), line)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    if let Err(error) = result {
        tracing::warn!(%error, pgid, "could not kill a remote command");
    }
}

/// Reads stderr: sends the process group from the first line as soon as it
/// arrives, and returns the rest (at most `keep` bytes).
fn read_stderr(
    mut stderr: impl AsyncRead + Unpin + Send + 'static,
    keep: usize,
) -> (oneshot::Receiver<u32>, tokio::task::JoinHandle<Vec<u8>>) {
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        let mut tx = Some(tx);
        let mut kept = Vec::new();
        let mut buf = vec![0; 8192];
        while let Ok(n @ 1..) = stderr.read(&mut buf).await {
            if kept.len() < keep {
                kept.extend_from_slice(&buf[..n]);
            }
            if tx.is_some()
                && let Some((pgid, rest)) = take_mark(&kept)
            {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(pgid);
                }
                kept = rest;
            }
        }
        kept
    });
    (rx, task)
}

/// The group id and what follows it, once the mark line is complete. Lines
/// before it (a login script's chatter) are dropped with it.
fn take_mark(buf: &[u8]) -> Option<(u32, Vec<u8>)> {
    let mark = PGID_MARK.as_bytes();
    let start = buf.windows(mark.len()).position(|w| w == mark)?;
    let digits = start + mark.len();
    let end = digits + buf[digits..].iter().position(|&b| b == b'\n')?;
    let pgid = std::str::from_utf8(&buf[digits..end])
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some((pgid, buf[end + 1..].to_vec()))
}

fn exit_code(
    status: std::result::Result<std::process::ExitStatus, openssh::Error>,
    target: &SshTarget,
) -> Result<i32> {
    match status {
        Ok(status) => Ok(status.code().unwrap_or(-1)),
        // The mux protocol cannot tell a signal from a lost connection.
        Err(openssh::Error::RemoteProcessTerminated) => Ok(-1),
        Err(error) => Err(InfraError::Command(format!(
            "lost {target} while a command ran: {error}"
        ))),
    }
}

#[async_trait]
impl CommandRunner for SshRunner {
    async fn run(&self, argv: &[String], stdin: Option<Vec<u8>>) -> Result<CommandOutput> {
        let (mut child, mut guard) = self.spawn(argv, stdin.is_some()).await?;
        let (pgid, stderr_task) = read_stderr(child.stderr().take().expect("piped"), usize::MAX);
        guard.pgid = Some(pgid);
        let mut stdout = child.stdout().take().expect("piped");
        let stdout_task = tokio::spawn(async move {
            let mut out = Vec::new();
            let _ = stdout.read_to_end(&mut out).await;
            out
        });
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin().take()) {
            pipe.write_all(&input)
                .await
                .map_err(InfraError::io(format!(
                    "cannot write to {} on {}",
                    argv[0], self.target
                )))?;
            // Dropping the pipe sends EOF.
        }
        let waited = match self.command_timeout {
            Some(limit) => match tokio::time::timeout(limit, child.wait()).await {
                Ok(waited) => waited,
                Err(_) => {
                    guard.kill_now().await;
                    return Err(InfraError::Command(format!(
                        "{} on {} did not finish within {}s: it was stopped",
                        argv[0],
                        self.target,
                        limit.as_secs_f64()
                    )));
                }
            },
            None => child.wait().await,
        };
        guard.disarm();
        let code = exit_code(waited, &self.target)?;
        let stdout = stdout_task.await.unwrap_or_default();
        let stderr = stderr_task.await.unwrap_or_default();
        Ok(CommandOutput {
            code,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }

    async fn stream(&self, argv: &[String], out: mpsc::Sender<Vec<u8>>) -> Result<i32> {
        let (mut child, mut guard) = self.spawn(argv, false).await?;
        // Drained beside stdout so a chatty stderr cannot stall the command.
        let (pgid, stderr_task) = read_stderr(child.stderr().take().expect("piped"), STREAM_CHUNK);
        guard.pgid = Some(pgid);
        let mut stdout = child.stdout().take().expect("piped");
        let mut buf = vec![0; STREAM_CHUNK];
        loop {
            let read = tokio::select! {
                read = stdout.read(&mut buf) => read,
                () = out.closed() => {
                    guard.kill_now().await;
                    return Ok(READER_GONE);
                }
            };
            let n = read.map_err(InfraError::io(format!(
                "cannot read from {} on {}",
                argv[0], self.target
            )))?;
            if n == 0 {
                break;
            }
            if out.send(buf[..n].to_vec()).await.is_err() {
                guard.kill_now().await;
                return Ok(READER_GONE);
            }
        }
        let code = exit_code(child.wait().await, &self.target)?;
        guard.disarm();
        let stderr = stderr_task.await.unwrap_or_default();
        let stderr = String::from_utf8_lossy(&stderr);
        if !stderr.trim().is_empty() {
            tracing::debug!(command = %argv[0], host = %self.target, stderr = %stderr.trim(), "command wrote to stderr");
        }
        Ok(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_is_found_after_login_chatter() {
        assert_eq!(take_mark(b"skydeck-pgid:4"), None, "incomplete line");
        assert_eq!(
            take_mark(b"motd\nskydeck-pgid:42\nreal error\n"),
            Some((42, b"real error\n".to_vec()))
        );
        assert_eq!(take_mark(b"\xff\nskydeck-pgid:7\n"), Some((7, Vec::new())));
    }
}
