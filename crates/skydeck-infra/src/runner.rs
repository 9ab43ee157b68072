//! Running commands on a node.

use crate::{InfraError, Result};
use async_trait::async_trait;
use std::path::PathBuf;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

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
    /// Runs `argv` and hands each line of its stdout to `on_line` as it
    /// arrives; returns the exit code. Dropping the future kills the
    /// command.
    async fn stream(
        &self,
        argv: &[String],
        on_line: &mut (dyn for<'l> FnMut(&'l str) + Send),
    ) -> Result<i32>;
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

    async fn stream(
        &self,
        argv: &[String],
        on_line: &mut (dyn for<'l> FnMut(&'l str) + Send),
    ) -> Result<i32> {
        let mut command = self.command(argv)?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .map_err(InfraError::io(format!("cannot run {}", argv[0])))?;
        let stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        // Drained beside stdout so a chatty stderr cannot fill its pipe and
        // stall the command.
        let stderr_text = tokio::spawn(async move {
            let mut text = String::new();
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text).await;
            text
        });
        let mut lines = BufReader::new(stdout).lines();
        while let Some(line) = lines
            .next_line()
            .await
            .map_err(InfraError::io(format!("cannot read from {}", argv[0])))?
        {
            on_line(&line);
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

    #[tokio::test]
    async fn streams_lines_as_they_come() {
        let runner = LocalRunner {
            dir: std::env::temp_dir(),
        };
        let mut seen = Vec::new();
        let code = runner
            .stream(&argv(&["sh", "-c", "echo a; echo b; exit 0"]), &mut |l| {
                seen.push(l.to_owned())
            })
            .await
            .unwrap();
        assert_eq!((code, seen), (0, vec!["a".to_owned(), "b".to_owned()]));
    }
}
