//! Sessions on this machine: plain pipes, or a pseudo-terminal from
//! `pty-process` (it makes the program a session leader with the pty as
//! its controlling terminal, which needs `setsid`/`TIOCSCTTY` between
//! fork and exec: unsafe code this workspace forbids itself).

use super::driver::{Input, Process, Reader, drive};
use super::{Session, SessionSpec, TtySize};
use crate::{InfraError, Result};
use async_trait::async_trait;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use std::path::Path;
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};

fn program(spec: &SessionSpec) -> Result<(&String, &[String])> {
    spec.argv
        .split_first()
        .ok_or_else(|| InfraError::Command("empty command".to_owned()))
}

fn env(spec: &SessionSpec) -> Vec<(String, String)> {
    let home = spec
        .sandbox
        .as_ref()
        .map(|dir| ("HOME".to_owned(), dir.display().to_string()));
    home.into_iter().chain(spec.env.iter().cloned()).collect()
}

/// `spec` on plain pipes, in its own process group (killed as one).
pub(crate) fn spawn_pipes(dir: &Path, spec: &SessionSpec) -> Result<Session> {
    let (name, args) = program(spec)?;
    let mut child = tokio::process::Command::new(name)
        .args(args)
        .current_dir(dir)
        .envs(env(spec))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(InfraError::io(format!("cannot run {name}")))?;
    let stdin = child.stdin.take().expect("piped");
    let stdout: Reader = Box::new(child.stdout.take().expect("piped"));
    let stderr: Reader = Box::new(child.stderr.take().expect("piped"));
    let group = child.id().map(pid);
    Ok(drive(
        Box::new(PipeInput(Some(stdin))),
        stdout,
        Some(stderr),
        Box::new(Child {
            child,
            kill: Box::new(move || {
                if let Some(group) = group {
                    let _ = killpg(group, Signal::SIGKILL);
                }
            }),
        }),
    ))
}

/// `spec` on a new pseudo-terminal, as the leader of a new session.
pub(crate) fn spawn_pty(dir: &Path, spec: &SessionSpec, size: TtySize) -> Result<Session> {
    let (name, args) = program(spec)?;
    let pty_error = |err: pty_process::Error| {
        InfraError::Command(format!("cannot open a pseudo-terminal for {name}: {err}"))
    };
    let (pty, pts) = pty_process::open().map_err(pty_error)?;
    pty.resize(pty_size(size)).map_err(pty_error)?;
    let term = spec.term.clone().unwrap_or_else(|| "xterm".to_owned());
    let child = pty_process::Command::new(name)
        .args(args)
        .current_dir(dir)
        .envs(env(spec))
        .env("TERM", term)
        .kill_on_drop(true)
        .spawn(pts)
        .map_err(pty_error)?;
    let leader = child.id().map(pid);
    let (read, write) = pty.into_split();
    Ok(drive(
        Box::new(PtyInput(write)),
        Box::new(PtyOutput(read)),
        None,
        Box::new(Child {
            child,
            kill: Box::new(move || {
                if let Some(leader) = leader {
                    kill_session(leader);
                }
            }),
        }),
    ))
}

fn pid(id: u32) -> Pid {
    Pid::from_raw(i32::try_from(id).unwrap_or(i32::MAX))
}

fn pty_size(size: TtySize) -> pty_process::Size {
    pty_process::Size::new(size.rows, size.cols)
}

/// Hangs up and kills every process of the session `leader` leads: an
/// interactive shell puts each job in a process group of its own, so the
/// leader's group alone would leave them running.
fn kill_session(leader: Pid) {
    let _ = killpg(leader, Signal::SIGHUP);
    for member in session_members(leader) {
        let _ = kill(member, Signal::SIGKILL);
    }
    let _ = kill(leader, Signal::SIGKILL);
}

/// The processes whose session id is `sid` (from `/proc`; none elsewhere).
fn session_members(sid: Pid) -> Vec<Pid> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&id| {
            std::fs::read_to_string(format!("/proc/{id}/stat"))
                .ok()
                .and_then(|stat| session_of(&stat))
                == Some(sid.as_raw())
        })
        .map(Pid::from_raw)
        .collect()
}

/// The session id in a `/proc/PID/stat` line: the fourth field after the
/// command name, which is in parentheses and may itself hold spaces.
fn session_of(stat: &str) -> Option<i32> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(3)?.parse().ok()
}

struct PipeInput(Option<tokio::process::ChildStdin>);

#[async_trait]
impl Input for PipeInput {
    async fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        match &mut self.0 {
            Some(pipe) => {
                pipe.write_all(data).await?;
                pipe.flush().await
            }
            None => Ok(()),
        }
    }

    async fn eof(&mut self) {
        self.0 = None;
    }

    fn resize(&mut self, _size: TtySize) {}
}

struct PtyInput(pty_process::OwnedWritePty);

#[async_trait]
impl Input for PtyInput {
    async fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.0.write_all(data).await?;
        self.0.flush().await
    }

    /// On a terminal the end of input is the user's ^D, sent as data.
    async fn eof(&mut self) {}

    fn resize(&mut self, size: TtySize) {
        let _ = self.0.resize(pty_size(size));
    }
}

/// A pty's output; Linux answers EIO once every holder of the terminal
/// closed it, which is its end, not a failure.
struct PtyOutput(pty_process::OwnedReadPty);

impl AsyncRead for PtyOutput {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match Pin::new(&mut self.0).poll_read(cx, buf) {
            Poll::Ready(Err(err)) if err.raw_os_error() == Some(nix::errno::Errno::EIO as i32) => {
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

struct Child {
    child: tokio::process::Child,
    kill: Box<dyn FnMut() + Send>,
}

#[async_trait]
impl Process for Child {
    async fn wait(&mut self) -> Result<i32> {
        let status = self
            .child
            .wait()
            .await
            .map_err(InfraError::io("cannot wait for a session's program"))?;
        Ok(status.code().unwrap_or(-1))
    }

    async fn kill(&mut self) {
        (self.kill)();
        let _ = self.child.kill().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_id_is_read_past_a_command_name_with_spaces() {
        let stat = "4242 (my prog) S 1 4242 4242 34816 4242 4194560";
        assert_eq!(session_of(stat), Some(4242));
    }
}
