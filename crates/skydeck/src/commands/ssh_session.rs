//! `skydeck ssh CLUSTER [-- CMD…]`: a shell (on a pseudo-terminal) or a
//! command (on pipes, stdout and stderr apart, the exit code passed on) on
//! the cluster's head node, through the API server.

use crate::cli::SshArgs;
use skydeck_client::Client;
use skydeck_client::session::Terminal;
use skydeck_types::ssh_session::{Decoder, Frame};
use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;

/// The exit status when the session itself failed (ssh's own).
const SESSION_FAILED: u8 = 255;

pub async fn ssh(client: &Client, args: &SshArgs) -> anyhow::Result<ExitCode> {
    let Some(cluster) = args.cluster() else {
        anyhow::bail!("name a cluster: skydeck ssh CLUSTER [-- COMMAND…]");
    };
    let interactive = args.command.is_empty();
    let terminal = if interactive {
        if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
            anyhow::bail!(
                "an interactive shell needs a terminal; to run a command, name it: \
                 skydeck ssh {cluster} -- COMMAND…"
            );
        }
        let (cols, rows) = window_size();
        Some(Terminal {
            cols,
            rows,
            term: std::env::var("TERM").ok(),
        })
    } else {
        None
    };
    // A signal that would end the command ends the session instead, so the
    // terminal is restored on the way out (in a shell, ^C is a key: raw
    // mode sends it to the remote side). Caught from the start, so none
    // ends the command between the program's start and the relay's.
    let stops = [
        SignalKind::terminate(),
        SignalKind::hangup(),
        SignalKind::interrupt(),
    ]
    .map(|kind| signal(kind).ok());
    let stream = match client
        .open_session(cluster, &args.command, terminal.as_ref())
        .await
    {
        Ok(stream) => stream,
        Err(err) => return super::failed(err),
    };
    let raw = if interactive {
        Some(RawMode::enter()?)
    } else {
        None
    };
    let end = relay(stream, interactive, stops).await;
    // Back to a cooked terminal before anything more is printed.
    drop(raw);
    Ok(match end {
        End::Exit(code) => ExitCode::from((code & 0xff) as u8),
        End::Signal(number) => ExitCode::from(128 + number),
        End::Failed(message) => {
            eprintln!("{message}");
            ExitCode::from(SESSION_FAILED)
        }
    })
}

enum End {
    Exit(i32),
    Failed(String),
    /// This command was told to stop by signal N.
    Signal(u8),
}

/// The next delivery of a signal, or never where none could be set up.
async fn next(signal: &mut Option<Signal>) -> Option<()> {
    match signal {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}

async fn relay(
    stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
    interactive: bool,
    stops: [Option<Signal>; 3],
) -> End {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (frames, mut to_send) = mpsc::channel::<Frame>(16);
    read_stdin(frames.clone(), interactive);
    // Written on a task of its own, so input the remote program does not
    // read yet never holds up its output.
    let writing = tokio::spawn(async move {
        while let Some(frame) = to_send.recv().await {
            if writer.write_all(&frame.encode()).await.is_err() {
                break;
            }
        }
    });
    let mut resizes = interactive
        .then(|| signal(SignalKind::window_change()).ok())
        .flatten();
    let [mut term, mut hup, mut int] = stops;
    let mut decoder = Decoder::default();
    let mut buf = vec![0; 32 * 1024];
    let end = loop {
        tokio::select! {
            read = reader.read(&mut buf) => {
                let n = match read {
                    Ok(0) => break End::Failed("the API server closed the session".to_owned()),
                    Err(err) => break End::Failed(format!("the session's connection failed: {err}")),
                    Ok(n) => n,
                };
                decoder.push(&buf[..n]);
                if let Some(end) = show(&mut decoder) {
                    break end;
                }
            }
            Some(()) = next(&mut term) => break End::Signal(15),
            Some(()) = next(&mut hup) => break End::Signal(1),
            Some(()) = next(&mut int) => break End::Signal(2),
            Some(()) = next(&mut resizes) => {
                let (cols, rows) = window_size();
                let _ = frames.try_send(Frame::Resize { cols, rows });
            }
        }
    };
    writing.abort();
    end
}

/// Prints the whole frames received so far; the end, once it came.
fn show(decoder: &mut Decoder) -> Option<End> {
    loop {
        match decoder.next_frame() {
            Ok(Some(Frame::Stdout(data))) => write_out(&mut std::io::stdout(), &data),
            Ok(Some(Frame::Stderr(data))) => write_out(&mut std::io::stderr(), &data),
            Ok(Some(Frame::Exit(code))) => return Some(End::Exit(code)),
            Ok(Some(Frame::Error(message))) => return Some(End::Failed(message)),
            Ok(Some(_)) => {}
            Ok(None) => return None,
            Err(err) => return Some(End::Failed(format!("the session's stream broke: {err}"))),
        }
    }
}

fn write_out(out: &mut dyn Write, data: &[u8]) {
    let _ = out.write_all(data);
    let _ = out.flush();
}

/// Reads stdin on a thread of its own, never joined: a read blocked on a
/// terminal must not keep the command from exiting once the session ends
/// (tokio's stdin would hold up the runtime's shutdown).
fn read_stdin(frames: mpsc::Sender<Frame>, interactive: bool) {
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0; 16 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if frames
                        .blocking_send(Frame::Stdin(buf[..n].to_vec()))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
        // On a terminal the user ends input with ^D, which travels as data.
        if !interactive {
            let _ = frames.blocking_send(Frame::StdinEof);
        }
    });
}

fn window_size() -> (u16, u16) {
    match rustix::termios::tcgetwinsize(std::io::stdout()) {
        Ok(size) if size.ws_col > 0 && size.ws_row > 0 => (size.ws_col, size.ws_row),
        _ => (80, 24),
    }
}

/// The terminal in raw mode (every key goes to the remote side as typed,
/// ^C included) until dropped, which restores it on every way out.
struct RawMode(rustix::termios::Termios);

impl RawMode {
    fn enter() -> anyhow::Result<Self> {
        let stdin = std::io::stdin();
        let saved = rustix::termios::tcgetattr(&stdin)?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw)?;
        Ok(Self(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.0,
        );
    }
}
