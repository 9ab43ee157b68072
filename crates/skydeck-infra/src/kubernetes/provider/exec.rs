//! A [`CommandRunner`] on one pod, over the API server's exec subresource
//! (a WebSocket): the server needs no route to the pod, only the API.
//!
//! Kubernetes before 1.29 speaks `v4.channel.k8s.io`, which cannot close
//! stdin alone: ending stdin closes the whole stream, and the output and
//! exit status still in flight are lost. So stdin is never closed early:
//! a command fed input runs behind `head -c <length>`, which ends its
//! input after exactly the bytes sent, while the stream stays open until
//! the exit status arrives.

use super::pod_spec::CONTAINER;
use crate::runner::{CommandOutput, CommandRunner, READER_GONE, STREAM_CHUNK};
use crate::session::{Session, SessionSpec};
use crate::{InfraError, Result};
use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{Api, AttachParams, AttachedProcess};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// How long the exec stream may take to open.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// Buffers between the WebSocket and the readers: big enough that a
/// binary copied in does not crawl through kube's 1 KiB default.
const BUFFER: usize = 1 << 20;

/// Runs commands in one pod's container.
#[derive(Clone)]
pub struct PodRunner {
    api: Api<Pod>,
    pod: String,
}

impl PodRunner {
    pub fn new(api: Api<Pod>, pod: String) -> Self {
        Self { api, pod }
    }

    pub fn pod(&self) -> &str {
        &self.pod
    }

    async fn open(&self, argv: Vec<String>, stdin: bool) -> Result<AttachedProcess> {
        self.exec(argv, stdin, false).await
    }

    /// An exec with stdin, on a pseudo-terminal (stdout only: a terminal
    /// has one output) when `tty`.
    pub(super) async fn open_session(
        &self,
        argv: Vec<String>,
        tty: bool,
    ) -> Result<AttachedProcess> {
        self.exec(argv, true, tty).await
    }

    async fn exec(&self, argv: Vec<String>, stdin: bool, tty: bool) -> Result<AttachedProcess> {
        let params = AttachParams {
            container: Some(CONTAINER.to_owned()),
            stdin,
            stdout: true,
            stderr: !tty,
            tty,
            max_stdin_buf_size: Some(BUFFER),
            max_stdout_buf_size: Some(BUFFER),
            max_stderr_buf_size: Some(BUFFER),
        };
        match tokio::time::timeout(OPEN_TIMEOUT, self.api.exec(&self.pod, argv, &params)).await {
            Ok(Ok(process)) => Ok(process),
            Ok(Err(err)) => Err(InfraError::Command(format!(
                "cannot run a command in pod {}: {}",
                self.pod,
                super::kube_message(&err)
            ))),
            Err(_) => Err(InfraError::Command(format!(
                "pod {} did not accept a command within {}s",
                self.pod,
                OPEN_TIMEOUT.as_secs()
            ))),
        }
    }
}

/// `argv` reading exactly `length` bytes of stdin (see the module's note).
pub fn counted_stdin(argv: &[String], length: usize) -> Vec<String> {
    let mut wrapped = vec![
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        r#"n=$1; shift; head -c "$n" | "$@""#.to_owned(),
        "sh".to_owned(),
        length.to_string(),
    ];
    wrapped.extend_from_slice(argv);
    wrapped
}

/// The exit code a finished exec's status reports; `Err` with the API
/// server's message when the command never ran (no such program).
pub fn exit_code(status: &Status) -> std::result::Result<i32, String> {
    if status.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    let code = status
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|causes| {
            causes
                .iter()
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
        })
        .and_then(|c| c.message.as_deref())
        .and_then(|m| m.trim().parse().ok());
    match code {
        Some(code) => Ok(code),
        None => Err(status
            .message
            .clone()
            .unwrap_or_else(|| "the command failed without an exit code".to_owned())),
    }
}

async fn read_all(reader: Option<impl AsyncRead + Unpin>) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Some(mut reader) = reader {
        let _ = reader.read_to_end(&mut bytes).await;
    }
    bytes
}

#[async_trait]
impl CommandRunner for PodRunner {
    async fn run(&self, argv: &[String], stdin: Option<Vec<u8>>) -> Result<CommandOutput> {
        let command = match &stdin {
            Some(bytes) => counted_stdin(argv, bytes.len()),
            None => argv.to_vec(),
        };
        let mut process = self.open(command, stdin.is_some()).await?;
        let status = process.take_status();
        let (stdout, stderr) = (process.stdout(), process.stderr());
        let writer = process.stdin();
        let feed = async move {
            // Held (not dropped) until the command ends: see the module's note.
            let mut writer = writer;
            if let (Some(w), Some(bytes)) = (writer.as_mut(), stdin) {
                let _ = w.write_all(&bytes).await;
                let _ = w.flush().await;
            }
            writer
        };
        let (out, err, status, _writer) = tokio::join!(
            read_all(stdout),
            read_all(stderr),
            async {
                match status {
                    Some(status) => status.await,
                    None => None,
                }
            },
            feed
        );
        let Some(status) = status else {
            return Err(InfraError::Command(format!(
                "the command in pod {} ended without an exit status (the pod or its \
                 connection went away): {}",
                self.pod,
                String::from_utf8_lossy(&err).trim()
            )));
        };
        let mut stderr = String::from_utf8_lossy(&err).into_owned();
        let code = match exit_code(&status) {
            Ok(code) => code,
            Err(message) => {
                stderr.push_str(&message);
                -1
            }
        };
        Ok(CommandOutput {
            code,
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr,
        })
    }

    async fn stream(&self, argv: &[String], out: mpsc::Sender<Vec<u8>>) -> Result<i32> {
        let mut process = self.open(argv.to_vec(), false).await?;
        let status = process.take_status();
        let mut stdout = process.stdout();
        let stderr = process.stderr();
        let drain = tokio::spawn(read_all(stderr));
        if let Some(stdout) = stdout.as_mut() {
            let mut buf = vec![0; STREAM_CHUNK];
            loop {
                let read = tokio::select! {
                    read = stdout.read(&mut buf) => read,
                    () = out.closed() => {
                        // Closing the stream ends the command's output;
                        // it stops at its next write.
                        process.abort();
                        return Ok(READER_GONE);
                    }
                };
                match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if out.send(buf[..n].to_vec()).await.is_err() {
                            process.abort();
                            return Ok(READER_GONE);
                        }
                    }
                }
            }
        }
        let status = match status {
            Some(status) => status.await,
            None => None,
        };
        let stderr = drain.await.unwrap_or_default();
        let Some(status) = status else {
            return Err(InfraError::Command(format!(
                "the command in pod {} ended without an exit status (the pod or its \
                 connection went away): {}",
                self.pod,
                String::from_utf8_lossy(&stderr).trim()
            )));
        };
        match exit_code(&status) {
            Ok(code) => Ok(code),
            Err(message) => Err(InfraError::Command(format!(
                "cannot run {} in pod {}: {message}",
                argv.first().map_or("", String::as_str),
                self.pod
            ))),
        }
    }

    async fn session(&self, spec: SessionSpec) -> Result<Session> {
        super::session::open(self, spec).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};

    #[test]
    fn exit_codes_come_from_the_status_causes() {
        let ok = Status {
            status: Some("Success".into()),
            ..Status::default()
        };
        assert_eq!(exit_code(&ok), Ok(0));
        let failed = Status {
            status: Some("Failure".into()),
            reason: Some("NonZeroExitCode".into()),
            details: Some(StatusDetails {
                causes: Some(vec![StatusCause {
                    reason: Some("ExitCode".into()),
                    message: Some("3".into()),
                    ..StatusCause::default()
                }]),
                ..StatusDetails::default()
            }),
            ..Status::default()
        };
        assert_eq!(exit_code(&failed), Ok(3));
        let missing = Status {
            status: Some("Failure".into()),
            message: Some("executable file not found".into()),
            ..Status::default()
        };
        assert_eq!(exit_code(&missing), Err("executable file not found".into()));
    }

    #[test]
    fn input_is_counted_so_stdin_never_closes_the_stream() {
        let argv = counted_stdin(&["cat".to_owned(), "-n".to_owned()], 12);
        assert_eq!(argv[..2], ["/bin/sh".to_owned(), "-c".to_owned()]);
        assert_eq!(argv[3..], ["sh", "12", "cat", "-n"]);
    }
}
