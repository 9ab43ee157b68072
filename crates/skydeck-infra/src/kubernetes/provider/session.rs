//! Sessions (`skydeck ssh`) in a pod, over the API server's exec
//! subresource like every other command: on a terminal, the exec asks the
//! container runtime for a pty of the client's size (resizes travel on the
//! stream's resize channel, and closing the stream hangs up the shell); on
//! pipes, stdout and stderr apart.
//!
//! Kubernetes before 1.29 cannot close stdin alone (see [`super::exec`]):
//! ending stdin would end the whole stream and lose the command's last
//! output and its exit status. So the end of the client's input is not
//! passed on; a program that reads its input to the end is given it as a
//! file instead, or run on a terminal where ^D travels as data.

use super::exec::{PodRunner, exit_code};
use crate::session::{Input, Process, Reader, Session, SessionSpec, TtySize, drive};
use crate::{InfraError, Result};
use async_trait::async_trait;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{AttachedProcess, TerminalSize};
use std::future::Future;
use std::pin::Pin;
use tokio::io::{AsyncWriteExt, SimplexStream, WriteHalf};

/// The program of `spec` as the exec runs it: in the node's directory,
/// which is its HOME too (as a `local` node's sandbox), with the
/// cluster's variables and the client's `TERM` on a terminal.
pub fn session_argv(spec: &SessionSpec) -> Vec<String> {
    let mut argv = vec!["/bin/sh".to_owned(), "-c".to_owned()];
    let mut env = Vec::new();
    match &spec.sandbox {
        Some(dir) => {
            let dir = dir.display().to_string();
            argv.push(r#"cd "$1" || exit 1; shift; exec env "$@""#.to_owned());
            argv.push("sh".to_owned());
            argv.push(dir.clone());
            env.push(format!("HOME={dir}"));
        }
        None => {
            argv.push(r#"exec env "$@""#.to_owned());
            argv.push("sh".to_owned());
        }
    }
    if spec.tty.is_some() {
        let term = spec.term.as_deref().unwrap_or("xterm");
        env.push(format!("TERM={term}"));
    }
    env.extend(spec.env.iter().map(|(key, value)| format!("{key}={value}")));
    argv.extend(env);
    argv.extend(spec.argv.iter().cloned());
    argv
}

pub(super) async fn open(runner: &PodRunner, spec: SessionSpec) -> Result<Session> {
    if spec.argv.is_empty() {
        return Err(InfraError::Command("empty command".to_owned()));
    }
    let mut process = runner
        .open_session(session_argv(&spec), spec.tty.is_some())
        .await?;
    let mut sizes = process.terminal_size();
    let mut resize = move |size: TtySize| {
        if let Some(sizes) = sizes.as_mut() {
            let _ = sizes.try_send(TerminalSize {
                width: size.cols,
                height: size.rows,
            });
        }
    };
    if let Some(size) = spec.tty {
        resize(size);
    }
    let stdin = process.stdin();
    let stdout: Reader = match process.stdout() {
        Some(reader) => Box::new(reader),
        None => Box::new(tokio::io::empty()),
    };
    let stderr = process.stderr().map(|reader| Box::new(reader) as Reader);
    let status: Pin<Box<dyn Future<Output = Option<Status>> + Send>> = match process.take_status() {
        Some(status) => Box::pin(status),
        None => Box::pin(async { None }),
    };
    Ok(drive(
        Box::new(PodInput {
            stdin,
            resize: Box::new(resize),
        }),
        stdout,
        stderr,
        Box::new(PodProcess {
            process,
            status: Some(status),
            pod: runner.pod().to_owned(),
        }),
    ))
}

struct PodInput {
    /// Held until the session ends, never closed: see the module's note.
    stdin: Option<WriteHalf<SimplexStream>>,
    resize: Box<dyn FnMut(TtySize) + Send>,
}

#[async_trait]
impl Input for PodInput {
    async fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        match &mut self.stdin {
            Some(pipe) => {
                pipe.write_all(data).await?;
                pipe.flush().await
            }
            None => Ok(()),
        }
    }

    async fn eof(&mut self) {}

    fn resize(&mut self, size: TtySize) {
        (self.resize)(size);
    }
}

struct PodProcess {
    /// Owns the stream: dropping it ends the exec.
    process: AttachedProcess,
    status: Option<Pin<Box<dyn Future<Output = Option<Status>> + Send>>>,
    pod: String,
}

#[async_trait]
impl Process for PodProcess {
    async fn wait(&mut self) -> Result<i32> {
        let Some(status) = self.status.take() else {
            return Ok(-1);
        };
        let Some(status) = status.await else {
            return Err(InfraError::Command(format!(
                "the session in pod {} ended without an exit status (the pod or its \
                 connection went away)",
                self.pod
            )));
        };
        exit_code(&status).map_err(|message| {
            InfraError::Command(format!(
                "cannot start the session in pod {}: {message}",
                self.pod
            ))
        })
    }

    async fn kill(&mut self) {
        // Ending the stream closes the pty, which hangs up the program.
        self.process.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn a_session_runs_in_the_node_directory_with_the_cluster_variables() {
        let spec = SessionSpec {
            argv: vec!["hostname".to_owned()],
            tty: Some(TtySize { cols: 80, rows: 24 }),
            term: Some("vt100".to_owned()),
            sandbox: Some(PathBuf::from("/root/.skydeck/clusters/c/nodes/0")),
            env: vec![("SKYPILOT_NODE_RANK".to_owned(), "0".to_owned())],
        };
        let argv = session_argv(&spec);
        assert_eq!(argv[0], "/bin/sh");
        assert_eq!(
            argv[3..],
            [
                "sh",
                "/root/.skydeck/clusters/c/nodes/0",
                "HOME=/root/.skydeck/clusters/c/nodes/0",
                "TERM=vt100",
                "SKYPILOT_NODE_RANK=0",
                "hostname"
            ]
        );
        let pipes = session_argv(&SessionSpec { tty: None, ..spec });
        assert!(!pipes.iter().any(|word| word.starts_with("TERM=")));
    }
}
