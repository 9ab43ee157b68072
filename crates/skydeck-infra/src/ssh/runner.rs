//! A [`CommandRunner`] over one SSH master connection.
//!
//! Every command runs as `echo skydeck-pgid:$$ >&2; exec ARGV` in the login
//! shell. sshd makes each session's shell the leader of a new session and
//! process group, so that first line names the group to kill when a
//! command times out or its caller goes away: closing a channel does not
//! stop a remote command that reads and writes nothing.

use super::pool::Connector;
use super::quote::quote_argv;
use super::target::SshTarget;
use crate::runner::{CommandOutput, CommandRunner, READER_GONE, STREAM_CHUNK};
use crate::session::{Session as UserSession, SessionSpec};
use crate::{InfraError, Result};
use async_trait::async_trait;
use openssh::{Session, Stdio};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

const PGID_MARK: &str = "skydeck-pgid:";

/// Runs commands on one host over one kept connection.
pub struct SshRunner {
    connector: Connector,
    /// The master connection now; replaced when it went away.
    session: std::sync::Mutex<Arc<Session>>,
    /// Held while a new master connection is being opened, so concurrent
    /// commands that found the old one gone open one, not one each.
    reopening: tokio::sync::Mutex<()>,
    command_timeout: Option<Duration>,
    pub(super) rsync: tokio::sync::OnceCell<bool>,
}

impl std::fmt::Debug for SshRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshRunner")
            .field("target", &self.connector.target)
            .field("control_socket", &self.control_socket())
            .finish_non_exhaustive()
    }
}

impl SshRunner {
    pub(super) fn new(
        connector: Connector,
        session: Session,
        command_timeout: Option<Duration>,
    ) -> Self {
        Self {
            connector,
            session: std::sync::Mutex::new(Arc::new(session)),
            reopening: tokio::sync::Mutex::new(()),
            command_timeout,
            rsync: tokio::sync::OnceCell::new(),
        }
    }

    pub fn target(&self) -> &SshTarget {
        &self.connector.target
    }

    fn session(&self) -> Arc<Session> {
        Arc::clone(&self.session.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The master connection's socket: `ssh -S SOCKET HOST CMD` runs over
    /// the same connection (rsync uses it that way).
    pub fn control_socket(&self) -> PathBuf {
        self.session().control_socket().to_path_buf()
    }

    /// Makes sure a master connection is up, opening a new one if the last
    /// one went away (it idled out, or the host was unreachable a while).
    pub async fn connected(&self) -> Result<()> {
        let session = self.session();
        if session.check().await.is_ok() {
            return Ok(());
        }
        self.reopen(&session).await.map(drop)
    }

    /// Replaces `gone` with a new master connection, unless another caller
    /// already did.
    async fn reopen(&self, gone: &Arc<Session>) -> Result<Arc<Session>> {
        let _one_at_a_time = self.reopening.lock().await;
        let current = self.session();
        if !Arc::ptr_eq(&current, gone) {
            return Ok(current);
        }
        tracing::debug!(host = %self.target(), "opening a new SSH connection");
        let fresh = Arc::new(self.connector.open().await?);
        *self.session.lock().unwrap_or_else(|e| e.into_inner()) = Arc::clone(&fresh);
        Ok(fresh)
    }

    /// Closes the master connection.
    pub async fn close(self) -> Result<()> {
        let session = self.session.into_inner().unwrap_or_else(|e| e.into_inner());
        match Arc::try_unwrap(session) {
            Ok(session) => session.close().await.map_err(|e| {
                InfraError::Command(format!(
                    "closing the connection to {}: {e}",
                    self.connector.target
                ))
            }),
            // Still in use by a kill in flight: it closes when that ends.
            Err(_) => Ok(()),
        }
    }

    pub(super) async fn spawn(
        &self,
        argv: &[String],
        stdin: bool,
    ) -> Result<(openssh::Child<Arc<Session>>, KillGuard)> {
        if argv.is_empty() {
            return Err(InfraError::Command("empty command".to_owned()));
        }
        let line = format!("echo {PGID_MARK}$$ >&2 && exec {}", quote_argv(argv));
        let start = |session: &Arc<Session>| {
            let mut command = Session::to_raw_command(Arc::clone(session), line.clone());
            command
                .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            command
        };
        let mut session = self.session();
        let child = match start(&session).spawn().await {
            Ok(child) => child,
            // The master went away (idle, or the host was cut off): one
            // new connection, one more try.
            Err(openssh::Error::Disconnected) => {
                session = self.reopen(&session).await?;
                start(&session)
                    .spawn()
                    .await
                    .map_err(|e| self.spawn_error(argv, e))?
            }
            Err(error) => return Err(self.spawn_error(argv, error)),
        };
        let guard = KillGuard {
            session,
            pgid: None,
        };
        Ok((child, guard))
    }

    fn spawn_error(&self, argv: &[String], error: openssh::Error) -> InfraError {
        InfraError::Command(format!(
            "cannot run {} on {}: {error}",
            argv[0], self.connector.target
        ))
    }
}

/// Kills the command's process group on the host unless disarmed: dropping
/// a run or stream future mid-way leaves nothing running there.
pub(super) struct KillGuard {
    pub(super) session: Arc<Session>,
    pub(super) pgid: Option<oneshot::Receiver<u32>>,
}

impl KillGuard {
    pub(super) fn disarm(&mut self) {
        self.pgid = None;
    }

    pub(super) async fn kill_now(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            kill_when_known(Arc::clone(&self.session), pgid).await;
        }
    }
}

/// How long a kill may wait for the command's group id and for the kill
/// itself: over a connection that hangs, neither may hold up the caller
/// (whose timeout this may be) for longer.
const KILL_WAIT: Duration = Duration::from_secs(5);

async fn kill_when_known(session: Arc<Session>, pgid: oneshot::Receiver<u32>) {
    let kill = async {
        if let Ok(pgid) = pgid.await {
            kill_group(&session, pgid).await;
        }
    };
    if tokio::time::timeout(KILL_WAIT, kill).await.is_err() {
        tracing::warn!("could not stop a remote command in time: its connection does not answer");
    }
}

impl Drop for KillGuard {
    fn drop(&mut self) {
        if let (Some(pgid), Ok(runtime)) = (self.pgid.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(kill_when_known(Arc::clone(&self.session), pgid));
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
pub(super) fn take_mark(buf: &[u8]) -> Option<(u32, Vec<u8>)> {
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

/// The command's exit code, or an error when the connection was lost
/// under it.
pub(super) async fn exit_code(
    status: std::result::Result<std::process::ExitStatus, openssh::Error>,
    session: &Session,
    target: &SshTarget,
) -> Result<i32> {
    let lost = |error: &dyn std::fmt::Display| {
        InfraError::Command(format!(
            "lost the connection to {target} while a command ran ({error}): \
             the host is unreachable, or sshd or the host went down"
        ))
    };
    match status {
        Ok(status) => Ok(status.code().unwrap_or(-1)),
        // The mux protocol cannot tell a command killed by a signal from a
        // lost connection: the master can.
        Err(openssh::Error::RemoteProcessTerminated) => match session.check().await {
            Ok(()) => Ok(-1),
            Err(error) => Err(lost(&error)),
        },
        Err(error) => Err(lost(&error)),
    }
}

#[async_trait]
impl CommandRunner for SshRunner {
    async fn run(&self, argv: &[String], stdin: Option<Vec<u8>>) -> Result<CommandOutput> {
        let (mut child, mut guard) = self.spawn(argv, stdin.is_some()).await?;
        let (pgid, mut stderr_task) =
            read_stderr(child.stderr().take().expect("piped"), usize::MAX);
        guard.pgid = Some(pgid);
        let mut stdout = child.stdout().take().expect("piped");
        // Written beside the reads, so a command that never reads its input
        // still times out; dropping the pipe at the end sends EOF.
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin().take()) {
            tokio::spawn(async move {
                let _ = pipe.write_all(&input).await;
            });
        }
        // The output is read to its end before the exit status is asked
        // for: once `wait` returns, the mux master stops copying the
        // command's output, cutting it short (openssh-rust/openssh#103).
        let finish = async {
            let mut out = Vec::new();
            let read = stdout.read_to_end(&mut out).await.map(|_| out);
            let stderr = (&mut stderr_task).await.unwrap_or_default();
            (read, stderr, child.wait().await)
        };
        let (read, stderr, waited) = match self.command_timeout {
            Some(limit) => match tokio::time::timeout(limit, finish).await {
                Ok(finished) => finished,
                Err(_) => {
                    guard.kill_now().await;
                    return Err(InfraError::Command(format!(
                        "{} on {} did not finish within {}s: it was stopped",
                        argv[0],
                        self.connector.target,
                        limit.as_secs_f64()
                    )));
                }
            },
            None => finish.await,
        };
        guard.disarm();
        let code = exit_code(waited, &guard.session, &self.connector.target).await?;
        // A lost read is an error, not an empty answer: callers parse what
        // the command printed.
        let stdout = read.map_err(|err| {
            InfraError::Command(format!(
                "lost the output of {} on {}: {err}",
                argv[0], self.connector.target
            ))
        })?;
        Ok(CommandOutput {
            code,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }

    async fn session(&self, spec: SessionSpec) -> Result<UserSession> {
        super::session::open(self, spec).await
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
                argv[0],
                self.target()
            )))?;
            if n == 0 {
                break;
            }
            if out.send(buf[..n].to_vec()).await.is_err() {
                guard.kill_now().await;
                return Ok(READER_GONE);
            }
        }
        let code = exit_code(child.wait().await, &guard.session, &self.connector.target).await?;
        guard.disarm();
        let stderr = stderr_task.await.unwrap_or_default();
        let stderr = String::from_utf8_lossy(&stderr);
        if !stderr.trim().is_empty() {
            tracing::debug!(command = %argv[0], host = %self.connector.target, stderr = %stderr.trim(), "command wrote to stderr");
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
