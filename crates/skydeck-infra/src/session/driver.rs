//! The one task that owns a session's program: relays input to it and its
//! output out, kills it when nobody reads any more, and reports its exit.

use super::{Session, SessionInput, SessionOutput, TtySize};
use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, oneshot};

/// Where a session's input goes.
#[async_trait]
pub(crate) trait Input: Send {
    async fn write(&mut self, data: &[u8]) -> std::io::Result<()>;
    /// The client's input ended.
    async fn eof(&mut self);
    fn resize(&mut self, size: TtySize);
}

/// The program of a session.
#[async_trait]
pub(crate) trait Process: Send {
    async fn wait(&mut self) -> crate::Result<i32>;
    /// Kills the program and whatever it started.
    async fn kill(&mut self);
}

pub(crate) type Reader = Box<dyn AsyncRead + Send + Unpin>;

/// Enough messages in flight to keep a busy program streaming, few enough
/// that a slow client holds back the program (pipes fill, it waits)
/// instead of the server's memory growing.
const QUEUE: usize = 16;
const CHUNK: usize = 32 * 1024;

pub(crate) fn drive(
    input: Box<dyn Input>,
    stdout: Reader,
    stderr: Option<Reader>,
    process: Box<dyn Process>,
) -> Session {
    let (input_tx, input_rx) = mpsc::channel(QUEUE);
    let (output_tx, output_rx) = mpsc::channel(QUEUE);
    let (exit_tx, exit_rx) = oneshot::channel();
    tokio::spawn(run(
        input, input_rx, stdout, stderr, process, output_tx, exit_tx,
    ));
    Session {
        input: input_tx,
        output: output_rx,
        exit: exit_rx,
    }
}

async fn run(
    input: Box<dyn Input>,
    input_rx: mpsc::Receiver<SessionInput>,
    stdout: Reader,
    stderr: Option<Reader>,
    mut process: Box<dyn Process>,
    output: mpsc::Sender<SessionOutput>,
    exit: oneshot::Sender<crate::Result<i32>>,
) {
    let feeding = tokio::spawn(feed(input, input_rx));
    let pumps = async {
        let err = async {
            match stderr {
                Some(reader) => pump(reader, &output, SessionOutput::Stderr).await,
                None => true,
            }
        };
        let (out, err) = tokio::join!(pump(stdout, &output, SessionOutput::Stdout), err);
        out && err
    };
    // A silent program is killed too once its reader left, not only one
    // whose output finds nobody to take it.
    let delivered = tokio::select! {
        delivered = pumps => delivered,
        () = output.closed() => false,
    };
    let code = if delivered {
        tokio::select! {
            code = process.wait() => Some(code),
            () = output.closed() => None,
        }
    } else {
        None
    };
    feeding.abort();
    match code {
        Some(code) => {
            drop(output);
            let _ = exit.send(code);
        }
        None => process.kill().await,
    }
}

async fn feed(mut input: Box<dyn Input>, mut messages: mpsc::Receiver<SessionInput>) {
    let mut open = true;
    while let Some(message) = messages.recv().await {
        match message {
            SessionInput::Data(data) if open => open = input.write(&data).await.is_ok(),
            SessionInput::Data(_) => {}
            SessionInput::Eof if open => {
                input.eof().await;
                open = false;
            }
            SessionInput::Eof => {}
            SessionInput::Resize(size) => input.resize(size),
        }
    }
    if open {
        input.eof().await;
    }
}

/// Copies `reader` to `output` until its end (true) or until nobody reads
/// the output any more (false).
async fn pump(
    mut reader: Reader,
    output: &mpsc::Sender<SessionOutput>,
    wrap: fn(Vec<u8>) -> SessionOutput,
) -> bool {
    let mut buf = vec![0; CHUNK];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return true,
            Ok(n) => {
                if output.send(wrap(buf[..n].to_vec())).await.is_err() {
                    return false;
                }
            }
        }
    }
}
