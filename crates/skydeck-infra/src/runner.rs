//! Running commands on a node.

use crate::session::{Session, SessionSpec};
use crate::{InfraError, Result};
use async_trait::async_trait;
use std::path::PathBuf;
use std::process::Stdio;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::mpsc;

/// The most a streamed command's output is read (and held) at once: a
/// single line longer than this still travels in bounded pieces. Every
/// followed log (each running managed job has one) holds a buffer this
/// size, so it is small: 16 KiB reads keep up with any job's output.
pub const STREAM_CHUNK: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// The exit code; -1 when killed by a signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CommandOutput {
    pub fn success(&self) -> bool {
        self.code == 0
    }
}

/// How the server reaches one node: run a program there, with arguments
/// passed as they are (no shell in between, so nothing needs quoting).
#[async_trait]
pub trait CommandRunner: Send + Sync {
    /// Runs `argv`, feeding it `stdin`, and returns once it exits.
    async fn run(&self, argv: &[String], stdin: Option<Vec<u8>>) -> Result<CommandOutput>;
    /// Runs `argv` and sends its stdout to `out` as it arrives, as raw
    /// bytes in pieces of at most [`STREAM_CHUNK`] (output is not text:
    /// lines may be any length and any bytes); returns the exit code.
    /// Dropping the future, or `out`'s receiver, kills the command: a
    /// reader that went away stops the work at once, even while the
    /// command prints nothing.
    async fn stream(&self, argv: &[String], out: mpsc::Sender<Vec<u8>>) -> Result<i32>;
    /// Starts `spec` with its input and output relayed as they flow, on a
    /// pseudo-terminal when `spec.tty` asks for one (`skydeck ssh`).
    async fn session(&self, spec: SessionSpec) -> Result<Session> {
        let _ = spec;
        Err(InfraError::Refused(
            "interactive sessions are not available on this infrastructure".to_owned(),
        ))
    }
}

/// Runs commands on this machine.
#[derive(Debug, Clone)]
pub struct LocalRunner {
    /// Working directory of the commands.
    pub dir: PathBuf,
}

impl LocalRunner {
    fn command(&self, argv: &[String]) -> Result<Command> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| InfraError::Command("empty command".to_owned()))?;
        let mut command = Command::new(program);
        command.args(args).current_dir(&self.dir).kill_on_drop(true);
        Ok(command)
    }
}

#[async_trait]
impl CommandRunner for LocalRunner {
    async fn run(&self, argv: &[String], stdin: Option<Vec<u8>>) -> Result<CommandOutput> {
        let mut command = self.command(argv)?;
        command
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .map_err(InfraError::io(format!("cannot run {}", argv[0])))?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(&input)
                .await
                .map_err(InfraError::io(format!("cannot write to {}", argv[0])))?;
        }
        let output = child
            .wait_with_output()
            .await
            .map_err(InfraError::io(format!("cannot wait for {}", argv[0])))?;
        Ok(CommandOutput {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    async fn stream(&self, argv: &[String], out: mpsc::Sender<Vec<u8>>) -> Result<i32> {
        let mut command = self.command(argv)?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .map_err(InfraError::io(format!("cannot run {}", argv[0])))?;
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        // Drained beside stdout so a chatty stderr cannot fill its pipe and
        // stall the command; only its start is kept, for the debug log.
        let stderr_text = tokio::spawn(async move {
            let mut kept = Vec::new();
            let mut buf = vec![0; 1024];
            while let Ok(n @ 1..) = stderr.read(&mut buf).await {
                if kept.len() < STREAM_CHUNK {
                    kept.extend_from_slice(&buf[..n]);
                }
            }
            String::from_utf8_lossy(&kept).into_owned()
        });
        let mut buf = vec![0; STREAM_CHUNK];
        loop {
            let read = tokio::select! {
                read = stdout.read(&mut buf) => read,
                () = out.closed() => return Ok(reader_gone(&mut child).await),
            };
            let n = read.map_err(InfraError::io(format!("cannot read from {}", argv[0])))?;
            if n == 0 {
                break;
            }
            if out.send(buf[..n].to_vec()).await.is_err() {
                return Ok(reader_gone(&mut child).await);
            }
        }
        let status = child
            .wait()
            .await
            .map_err(InfraError::io(format!("cannot wait for {}", argv[0])))?;
        let stderr_text = stderr_text.await.unwrap_or_default();
        if !stderr_text.trim().is_empty() {
            tracing::debug!(command = %argv[0], stderr = %stderr_text.trim(), "command wrote to stderr");
        }
        Ok(status.code().unwrap_or(-1))
    }

    async fn session(&self, spec: SessionSpec) -> Result<Session> {
        let dir = spec.sandbox.clone().unwrap_or_else(|| self.dir.clone());
        match spec.tty {
            Some(size) => crate::session::spawn_pty(&dir, &spec, size),
            None => crate::session::spawn_pipes(&dir, &spec),
        }
    }
}

/// The exit code a stream reports when its reader left first: the
/// command is killed, as nobody reads what it prints.
pub const READER_GONE: i32 = -2;

async fn reader_gone(child: &mut tokio::process::Child) -> i32 {
    let _ = child.kill().await;
    READER_GONE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[tokio::test]
    async fn runs_with_stdin_and_reports_the_exit_code() {
        let runner = LocalRunner {
            dir: std::env::temp_dir(),
        };
        let out = runner
            .run(
                &argv(&["sh", "-c", "cat; echo oops >&2; exit 3"]),
                Some(b"hi".to_vec()),
            )
            .await
            .unwrap();
        assert_eq!(
            (out.code, out.stdout.as_str(), out.stderr.as_str()),
            (3, "hi", "oops\n")
        );
    }

    async fn collect(runner: &LocalRunner, script: &str) -> (i32, Vec<Vec<u8>>) {
        let (tx, mut rx) = mpsc::channel(4);
        let reading = tokio::spawn(async move {
            let mut chunks = Vec::new();
            while let Some(chunk) = rx.recv().await {
                chunks.push(chunk);
            }
            chunks
        });
        let code = runner
            .stream(&argv(&["sh", "-c", script]), tx)
            .await
            .unwrap();
        (code, reading.await.unwrap())
    }

    #[tokio::test]
    async fn streams_output_as_raw_bytes() {
        let runner = LocalRunner {
            dir: std::env::temp_dir(),
        };
        let (code, chunks) = collect(&runner, "printf 'a\\377\\nb'; exit 3").await;
        assert_eq!((code, chunks.concat()), (3, b"a\xff\nb".to_vec()));
    }

    #[tokio::test]
    async fn a_long_line_arrives_in_bounded_pieces() {
        let runner = LocalRunner {
            dir: std::env::temp_dir(),
        };
        let (code, chunks) = collect(&runner, "head -c 1000000 /dev/zero | tr '\\0' x").await;
        assert_eq!(code, 0);
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 1_000_000);
        assert!(chunks.iter().all(|c| c.len() <= STREAM_CHUNK));
    }

    #[tokio::test]
    async fn a_reader_that_leaves_kills_a_silent_command() {
        let runner = LocalRunner {
            dir: std::env::temp_dir(),
        };
        let (tx, rx) = mpsc::channel(1);
        let command = argv(&["sleep", "600"]);
        let stream = runner.stream(&command, tx);
        drop(rx);
        // Without the closed-reader check this would wait for `sleep`.
        let code = tokio::time::timeout(std::time::Duration::from_secs(60), stream)
            .await
            .expect("the stream ends once its reader is gone")
            .unwrap();
        assert_eq!(code, READER_GONE);
    }
}
