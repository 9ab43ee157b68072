//! `skydeck agent node-exec`: a worker's share of one phase, started by the
//! head's agent over SSH (see `remote`). It reads its command and
//! environment as one JSON line on stdin, runs the node's shell as the head
//! runs its own (`runner::start_shell`: the same wrapped script, its own
//! session and process group), copies the shell's output to stdout, and
//! exits with the shell's code, reported on stderr too so the head can tell
//! it from ssh's own failures.
//!
//! Whatever ends the head's side ends the node's processes: stdin closing
//! (the head killed its ssh: a cancel, another node failing, the head
//! agent dying), no heartbeat on stdin for the silence limit (the link is
//! gone, which sshd would notice only much later), or SIGTERM/SIGHUP. The
//! whole process group is stopped, as on the head when a phase ends.

use crate::env::Phase;
use crate::process::{KILL_GRACE, terminate_groups};
use crate::runner::{DRAIN_TIMEOUT, NodeCommand, exit_code, start_shell};
use anyhow::{Context, ensure};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::io::{BufRead, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};

/// The agent subcommand's name (`skydeck agent node-exec`).
pub(crate) const SUBCOMMAND: &str = "node-exec";
/// Starts every report line on stderr.
const REPORT: &str = "skydeck-node-exec:";

/// The first line of node-exec's stdin.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct NodeExecRequest {
    /// The task's setup or run commands, unwrapped.
    pub command: String,
    pub phase: Phase,
    /// `dir/sky_workdir` of the node, on the node.
    pub workdir: PathBuf,
    /// Where the wrapped script is written on the node (mode 0600; removed
    /// when the phase ends).
    pub script_file: PathBuf,
    /// The node's environment, SkyPilot's variables included.
    pub env: Vec<(String, String)>,
    /// Stop the node's processes after this long without a heartbeat.
    pub silence_limit_secs: Option<f64>,
}

/// What node-exec tells the head on stderr.
#[derive(Debug, PartialEq)]
pub(crate) enum Report {
    /// The node's shell runs, with this pid (on the node).
    Started { pid: i32 },
    /// The node's shell exited with this code.
    Exit { code: i32 },
}

impl Report {
    fn line(&self) -> String {
        match self {
            Self::Started { pid } => format!("{REPORT} started pid={pid}\n"),
            Self::Exit { code } => format!("{REPORT} exit code={code}\n"),
        }
    }

    pub(crate) fn parse(line: &str) -> Option<Self> {
        let rest = line.strip_prefix(REPORT)?.trim();
        if let Some(pid) = rest.strip_prefix("started pid=") {
            return pid.parse().ok().map(|pid| Self::Started { pid });
        }
        let code = rest.strip_prefix("exit code=")?;
        code.parse().ok().map(|code| Self::Exit { code })
    }

    fn send(&self) -> std::io::Result<()> {
        let mut err = std::io::stderr().lock();
        err.write_all(self.line().as_bytes())?;
        err.flush()
    }
}

impl NodeExecRequest {
    fn check(&self) -> anyhow::Result<()> {
        for (what, path) in [
            ("workdir", &self.workdir),
            ("script_file", &self.script_file),
        ] {
            ensure!(
                path.is_absolute(),
                "{what} {} is not absolute",
                path.display()
            );
        }
        if let Some(limit) = self.silence_limit_secs {
            ensure!(
                limit.is_finite() && limit > 0.0,
                "silence_limit_secs must be a positive number of seconds"
            );
        }
        Ok(())
    }
}

pub(crate) async fn run() -> anyhow::Result<ExitCode> {
    let (first, mut head) = read_stdin();
    let first = first
        .await
        .context("stdin closed before the node's request came")??;
    let request: NodeExecRequest =
        serde_json::from_slice(&first).context("stdin does not start with a node request")?;
    request.check()?;
    for dir in [
        Some(request.workdir.as_path()),
        request.script_file.parent(),
    ]
    .into_iter()
    .flatten()
    {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let node = NodeCommand {
        rank: 0,
        phase: request.phase,
        workdir: request.workdir.clone(),
        script_file: request.script_file.clone(),
        env: request.env,
    };
    let shell = start_shell(&request.command, &node)
        .await
        .context("cannot start bash")?;
    let (mut child, pid) = (shell.child, shell.pid);
    Report::Started { pid }.send()?;
    let copy = tokio::spawn(copy_out(shell.output));
    let silence = request.silence_limit_secs.map(Duration::from_secs_f64);
    let code = tokio::select! {
        status = child.wait() => Some(exit_code(status)),
        () = head_gone(&mut head, silence) => None,
        _ = terminate.recv() => None,
        _ = hangup.recv() => None,
        _ = interrupt.recv() => None,
    };
    // What the shell left in its group goes too, as on the head.
    terminate_groups(&[pid], KILL_GRACE).await;
    if code.is_none() {
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, child.wait()).await;
    }
    if tokio::time::timeout(DRAIN_TIMEOUT, copy).await.is_err() {
        // A process that left the group holds the pipe; the phase is over.
    }
    let _ = std::fs::remove_file(&request.script_file);
    match code {
        Some(code) => {
            Report::Exit { code }.send()?;
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX)))
        }
        None => Ok(ExitCode::from(u8::MAX)),
    }
}

/// Reads stdin on a thread of its own: a blocking read cannot be cancelled,
/// and one in tokio's pool would hold the runtime (so the exit) until the
/// next heartbeat. Yields the first line, then a message per later read;
/// the channel closes with stdin.
fn read_stdin() -> (
    oneshot::Receiver<std::io::Result<Vec<u8>>>,
    mpsc::UnboundedReceiver<()>,
) {
    let (first_tx, first) = oneshot::channel();
    let (beat_tx, beats) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut line = Vec::new();
        if let Err(err) = stdin.read_until(b'\n', &mut line) {
            let _ = first_tx.send(Err(err));
            return;
        }
        if line.is_empty() || first_tx.send(Ok(line)).is_err() {
            return;
        }
        let mut buffer = [0u8; 256];
        while matches!(stdin.read(&mut buffer), Ok(n) if n > 0) {
            if beat_tx.send(()).is_err() {
                return;
            }
        }
    });
    (first, beats)
}

/// Returns when the head stops talking: stdin closed or broken, or silent
/// past `silence`.
async fn head_gone(head: &mut mpsc::UnboundedReceiver<()>, silence: Option<Duration>) {
    loop {
        let beat = match silence {
            Some(limit) => match tokio::time::timeout(limit, head.recv()).await {
                Ok(beat) => beat,
                Err(_) => return,
            },
            None => head.recv().await,
        };
        if beat.is_none() {
            return;
        }
    }
}

/// The shell's output, as it comes, to stdout (the SSH channel).
async fn copy_out(mut output: impl AsyncRead + Unpin) {
    let mut stdout = tokio::io::stdout();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match output.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stdout.write_all(&buffer[..n]).await.is_err() || stdout.flush().await.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip_and_other_lines_are_not_reports() {
        for report in [Report::Started { pid: 42 }, Report::Exit { code: 143 }] {
            assert_eq!(Report::parse(report.line().trim_end()), Some(report));
        }
        assert_eq!(Report::parse("Host key verification failed."), None);
        assert_eq!(Report::parse("skydeck-node-exec: exit code=x"), None);
    }

    #[test]
    fn relative_paths_are_refused() {
        let request = NodeExecRequest {
            command: "true".into(),
            phase: Phase::Run,
            workdir: "w".into(),
            script_file: "/s".into(),
            env: Vec::new(),
            silence_limit_secs: None,
        };
        let err = request.check().unwrap_err().to_string();
        assert!(err.contains("workdir w is not absolute"), "{err}");
    }
}
