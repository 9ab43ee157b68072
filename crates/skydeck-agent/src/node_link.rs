//! Head → worker without SSH (Kubernetes pods): each worker runs
//! `skydeck agent node-serve` on its pod IP, and the head's agent starts
//! `skydeck agent node-connect` where it would start `ssh`. The link
//! carries exactly what the SSH channel carries for `remote`: node-exec's
//! stdin one way, its stdout and stderr back, so the phase, heartbeat and
//! lost-worker logic is the same.
//!
//! Who may run commands: only a peer that knows the cluster's secret (made
//! by the server, a file on every node). The worker sends a fresh nonce;
//! the head answers sha256(nonce ‖ secret), so the secret itself never
//! crosses the network. The link is not encrypted: it carries the job's
//! environment as SSH would, so the pod network is trusted to be the
//! cluster's (as Kubernetes assumes; a NetworkPolicy can confine it).
//!
//! Frames from the worker: one kind byte, a big-endian u32 length, the
//! bytes. The worker also beats every second, so the head notices a worker
//! that vanished (a deleted pod's address stops answering, with no reset)
//! within the heartbeat window instead of TCP's minutes.

use crate::cluster::NodeTcp;
use anyhow::{Context, bail, ensure};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

pub(crate) const CONNECT: &str = "node-connect";

const OUT: u8 = 1;
const ERR: u8 = 2;
const EXIT: u8 = 3;
const BEAT: u8 = 4;
const BEAT_EVERY: Duration = Duration::from_secs(1);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Beats missed in a row before the head gives the worker up.
const MISSED_BEATS: u32 = 4;
const GREETING: &str = "skydeck-node";

/// The exit code of `node-connect` when the link failed or was lost (as
/// ssh's own 255).
const LINK_FAILED: u8 = 255;

fn read_secret(path: &Path) -> anyhow::Result<String> {
    let secret = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the cluster secret {}", path.display()))?;
    let secret = secret.trim().to_owned();
    ensure!(
        secret.len() >= 32,
        "the cluster secret {} is too short",
        path.display()
    );
    Ok(secret)
}

fn answer(nonce: &str, secret: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(nonce.as_bytes());
    hash.update(secret.as_bytes());
    format!("{:x}", hash.finalize())
}

/// Equal in time whatever the first differing byte (the answer is a
/// secret's proof).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

fn nonce() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .context("cannot read /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `node-connect` for a worker, as the head's agent starts it.
pub(crate) fn connect_command(
    tcp: &NodeTcp,
    alive: Duration,
) -> std::io::Result<tokio::process::Command> {
    let mut command = tokio::process::Command::new(std::env::current_exe()?);
    command
        .arg("agent")
        .arg(CONNECT)
        .arg("--host")
        .arg(&tcp.host)
        .arg("--port")
        .arg(tcp.port.to_string())
        .arg("--secret-file")
        .arg(&tcp.secret_file)
        .arg("--alive-secs")
        .arg(alive.as_secs().max(1).to_string());
    Ok(command)
}

/// Reads one line of at most 200 bytes.
async fn read_line(reader: &mut (impl AsyncBufReadExt + Unpin)) -> anyhow::Result<String> {
    let mut line = Vec::new();
    let mut limited = reader.take(200);
    limited.read_until(b'\n', &mut line).await?;
    ensure!(line.ends_with(b"\n"), "the peer's line was cut short");
    Ok(String::from_utf8_lossy(&line).trim().to_owned())
}

/// `skydeck agent node-serve`: runs until killed, a node-exec per
/// authenticated connection.
pub(crate) async fn serve(listen: SocketAddr, secret_file: PathBuf) -> anyhow::Result<ExitCode> {
    // Checked now, read again for every connection: a relaunch writes a
    // new secret without restarting this server.
    read_secret(&secret_file)?;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    // The address really bound (port 0 picks one): for whoever started us.
    let bound = listener.local_addr()?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {bound}")?;
        out.flush()?;
    }
    tracing::info!(%bound, "serving the head's agent");
    loop {
        let (stream, peer) = listener.accept().await?;
        let secret_file = secret_file.clone();
        tokio::spawn(async move {
            let served = match read_secret(&secret_file) {
                Ok(secret) => serve_one(stream, &secret).await,
                Err(err) => Err(err),
            };
            if let Err(err) = served {
                tracing::warn!(%peer, "a link from the head failed: {err:#}");
            }
        });
    }
}

async fn serve_one(stream: TcpStream, secret: &str) -> anyhow::Result<()> {
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let nonce = nonce()?;
    write
        .write_all(format!("{GREETING} {nonce}\n").as_bytes())
        .await?;
    let proof = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_line(&mut read))
        .await
        .context("no answer to the greeting")??;
    if !same(&proof, &answer(&nonce, secret)) {
        write.write_all(b"denied\n").await?;
        bail!("a peer that does not know the cluster secret was refused");
    }
    write.write_all(b"ok\n").await?;

    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .arg("agent")
        .arg(crate::node_exec::SUBCOMMAND)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start node-exec")?;
    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        bail!("node-exec's pipes are missing");
    };
    // The head's bytes go to node-exec's stdin; the head closing (or the
    // link dying) closes it, which stops the node's processes.
    let input = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut read, &mut stdin).await;
    });
    let (frames, mut outgoing) = mpsc::channel::<(u8, Vec<u8>)>(16);
    let pumps = [
        tokio::spawn(pump(stdout, OUT, frames.clone())),
        tokio::spawn(pump(stderr, ERR, frames.clone())),
    ];
    let beats = {
        let frames = frames.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(BEAT_EVERY).await;
                if frames.send((BEAT, Vec::new())).await.is_err() {
                    return;
                }
            }
        })
    };
    let writer = tokio::spawn(async move {
        while let Some((kind, bytes)) = outgoing.recv().await {
            if write_frame(&mut write, kind, &bytes).await.is_err() {
                return;
            }
        }
        let _ = write.shutdown().await;
    });
    let status = child.wait().await?;
    for pump in pumps {
        let _ = pump.await;
    }
    beats.abort();
    let code = crate::runner::exit_code(Ok(status));
    let _ = frames.send((EXIT, code.to_be_bytes().to_vec())).await;
    drop(frames);
    let _ = writer.await;
    input.abort();
    Ok(())
}

async fn pump(mut from: impl AsyncRead + Unpin, kind: u8, to: mpsc::Sender<(u8, Vec<u8>)>) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.send((kind, buffer[..n].to_vec())).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn write_frame(
    to: &mut (impl AsyncWriteExt + Unpin),
    kind: u8,
    bytes: &[u8],
) -> std::io::Result<()> {
    let length = u32::try_from(bytes.len()).map_err(std::io::Error::other)?;
    let mut frame = Vec::with_capacity(5 + bytes.len());
    frame.push(kind);
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(bytes);
    to.write_all(&frame).await?;
    to.flush().await
}

/// `skydeck agent node-connect`: the head's end. Exits with node-exec's
/// code, or 255 (saying why on stderr) when the link fails or goes quiet.
pub(crate) async fn connect(
    host: &str,
    port: u16,
    secret_file: &Path,
    alive: Duration,
) -> anyhow::Result<ExitCode> {
    match link(host, port, secret_file, alive).await {
        Ok(code) => Ok(ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX))),
        Err(err) => {
            eprintln!("skydeck agent {CONNECT} to {host}:{port}: {err:#}");
            Ok(ExitCode::from(LINK_FAILED))
        }
    }
}

async fn link(host: &str, port: u16, secret_file: &Path, alive: Duration) -> anyhow::Result<i32> {
    let secret = read_secret(secret_file)?;
    let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, TcpStream::connect((host, port)))
        .await
        .context("the worker's agent did not answer within 10s")?
        .context("cannot reach the worker's agent")?;
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let greeting = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_line(&mut read))
        .await
        .context("the worker's agent sent no greeting")??;
    let nonce = greeting
        .strip_prefix(GREETING)
        .map(str::trim)
        .filter(|n| n.len() == 64)
        .with_context(|| format!("{greeting:?} is not a Skydeck worker's greeting"))?;
    write
        .write_all(format!("{}\n", answer(nonce, &secret)).as_bytes())
        .await?;
    let verdict = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_line(&mut read))
        .await
        .context("the worker's agent did not answer the proof")??;
    ensure!(
        verdict == "ok",
        "the worker refused the cluster secret: it belongs to another cluster"
    );
    let input = tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let _ = tokio::io::copy(&mut stdin, &mut write).await;
        // The head closed: so does the worker's node-exec.
        let _ = write.shutdown().await;
    });
    let silence = alive.max(BEAT_EVERY) * MISSED_BEATS;
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    let result = loop {
        let mut header = [0u8; 5];
        match tokio::time::timeout(silence, read.read_exact(&mut header)).await {
            Err(_) => {
                break Err(anyhow::anyhow!(
                    "no word from the worker for {}s: it is gone",
                    silence.as_secs()
                ));
            }
            Ok(Err(err)) => {
                break Err(anyhow::anyhow!(
                    "the connection closed before the worker's exit status ({err})"
                ));
            }
            Ok(Ok(_)) => {}
        }
        let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let mut bytes = vec![0u8; length];
        if let Err(err) = read.read_exact(&mut bytes).await {
            break Err(anyhow::anyhow!("the connection broke mid-frame ({err})"));
        }
        match header[0] {
            OUT => {
                let _ = stdout.write_all(&bytes).await;
                let _ = stdout.flush().await;
            }
            ERR => {
                let _ = stderr.write_all(&bytes).await;
                let _ = stderr.flush().await;
            }
            EXIT => {
                let code: [u8; 4] = bytes
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .context("a short exit frame")?;
                break Ok(i32::from_be_bytes(code));
            }
            _ => {}
        }
    };
    input.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proof_binds_the_nonce_and_the_secret() {
        let secret = "s".repeat(40);
        let one = answer("n1", &secret);
        assert!(same(&one, &answer("n1", &secret)));
        assert!(!same(&one, &answer("n2", &secret)));
        assert!(!same(&one, &answer("n1", &"t".repeat(40))));
        assert!(!same(&one, &one[1..]));
    }
}
