//! Sessions (`skydeck ssh`) on a node reached over SSH.
//!
//! On a terminal: the system `ssh -tt` over the runner's master connection
//! (no new handshake, the pool's host keys), itself on a local
//! pseudo-terminal, so the host gives the program a pty of the same size,
//! resizes of the local one reach it as ssh's own window-change requests,
//! and closing it hangs up the remote shell.
//!
//! On pipes: the runner's own command, whose process group is named on
//! stderr's first line and killed when the client leaves, since closing a
//! channel does not stop a remote command that reads and writes nothing.

use super::quote::quote_argv;
use super::runner::{KillGuard, SshRunner, exit_code, take_mark};
use super::target::SshTarget;
use crate::session::{Input, Process, Reader, Session, SessionSpec, TtySize, drive, spawn_pty};
use crate::{InfraError, Result};
use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

/// The most of stderr held back while looking for the group-id line.
const MARK_WINDOW: usize = 64 * 1024;

pub(super) async fn open(runner: &SshRunner, spec: SessionSpec) -> Result<Session> {
    if spec.argv.is_empty() {
        return Err(InfraError::Command("empty command".to_owned()));
    }
    runner.connected().await?;
    // The login's home is where sshd starts it; the cluster's variables
    // go on through `env`, every word quoted.
    let argv: Vec<String> = std::iter::once("env".to_owned())
        .chain(spec.env.iter().map(|(key, value)| format!("{key}={value}")))
        .chain(spec.argv.iter().cloned())
        .collect();
    match spec.tty {
        Some(size) => on_terminal(runner, &spec, &argv, size),
        None => on_pipes(runner, &argv).await,
    }
}

fn on_terminal(
    runner: &SshRunner,
    spec: &SessionSpec,
    argv: &[String],
    size: TtySize,
) -> Result<Session> {
    let socket = runner.control_socket();
    let local = SessionSpec {
        argv: vec![
            "ssh".to_owned(),
            "-S".to_owned(),
            socket.display().to_string(),
            "-o".to_owned(),
            "ControlMaster=no".to_owned(),
            "-tt".to_owned(),
            "-q".to_owned(),
            // A placeholder: the master behind the socket is connected to
            // the right host already.
            "skydeck-ssh".to_owned(),
            format!("exec {}", quote_argv(argv)),
        ],
        tty: Some(size),
        term: spec.term.clone(),
        sandbox: None,
        env: Vec::new(),
    };
    spawn_pty(&std::env::temp_dir(), &local, size)
}

async fn on_pipes(runner: &SshRunner, argv: &[String]) -> Result<Session> {
    let (mut child, mut guard) = runner.spawn(argv, true).await?;
    let stdin = child.stdin().take().expect("piped");
    let stdout: Reader = Box::new(child.stdout().take().expect("piped"));
    let (pgid, stderr) = unmarked(child.stderr().take().expect("piped"));
    guard.pgid = Some(pgid);
    Ok(drive(
        Box::new(RemoteInput(Some(stdin))),
        stdout,
        Some(stderr),
        Box::new(RemoteProcess {
            child: Some(child),
            guard,
            target: runner.target().clone(),
        }),
    ))
}

/// Stderr without the group-id line, which is sent on as soon as it came.
fn unmarked(
    mut stderr: impl AsyncRead + Unpin + Send + 'static,
) -> (oneshot::Receiver<u32>, Reader) {
    let (tx, rx) = oneshot::channel();
    let (mut rest, reader) = tokio::io::duplex(MARK_WINDOW);
    tokio::spawn(async move {
        let mut held = Vec::new();
        let mut buf = vec![0; 8192];
        let mut tx = Some(tx);
        while let Ok(n @ 1..) = stderr.read(&mut buf).await {
            if tx.is_none() {
                if rest.write_all(&buf[..n]).await.is_err() {
                    return;
                }
                continue;
            }
            held.extend_from_slice(&buf[..n]);
            if let Some((pgid, after)) = take_mark(&held) {
                let _ = tx.take().map(|tx| tx.send(pgid));
                if rest.write_all(&after).await.is_err() {
                    return;
                }
            } else if held.len() > MARK_WINDOW {
                // No mark (not our command line?): pass everything on.
                tx = None;
                if rest.write_all(&held).await.is_err() {
                    return;
                }
            }
        }
    });
    (rx, Box::new(reader))
}

struct RemoteInput(Option<openssh::ChildStdin>);

#[async_trait]
impl Input for RemoteInput {
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
        if let Some(mut pipe) = self.0.take() {
            let _ = pipe.shutdown().await;
        }
    }

    fn resize(&mut self, _size: TtySize) {}
}

struct RemoteProcess {
    child: Option<openssh::Child<std::sync::Arc<openssh::Session>>>,
    guard: KillGuard,
    target: SshTarget,
}

#[async_trait]
impl Process for RemoteProcess {
    async fn wait(&mut self) -> Result<i32> {
        let Some(child) = self.child.take() else {
            return Ok(-1);
        };
        let status = child.wait().await;
        self.guard.disarm();
        exit_code(status, &self.guard.session, &self.target).await
    }

    async fn kill(&mut self) {
        self.guard.kill_now().await;
    }
}
