//! Running the API server: in this process, or in the background with a pid
//! file and a log file under the state directory.

use crate::cli::StartArgs;
use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use skydeck_server::Server;
use skydeck_server::config::{Paths, ServerConfig};
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// What a running server writes to `server.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ServerFile {
    pub pid: u32,
    pub url: String,
}

impl ServerFile {
    pub fn read(paths: &Paths) -> Option<Self> {
        let text = std::fs::read_to_string(paths.server_info()).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// Serves until SIGTERM or SIGINT, then drains and returns.
pub async fn run_foreground(paths: Paths, args: &StartArgs) -> anyhow::Result<()> {
    init_tracing();
    // `local` jobs run as this server's user. Dumpable, the server would let
    // them read its environment (the database URL), memory and open files
    // through /proc and ptrace; jobs are dumpable again once they exec.
    nix::sys::prctl::set_dumpable(false).context("cannot make the server non-dumpable")?;
    let stop = stop_signal()?;
    let mut config = ServerConfig::from_env(paths.clone())?;
    config.auth = args.auth.settings(config.auth)?;
    let host = args.bind_host();
    config
        .auth
        .check_exposure(host, args.auth.insecure_no_auth)?;
    let listener = tokio::net::TcpListener::bind((host, args.port))
        .await
        .with_context(|| format!("cannot listen on {host}:{}", args.port))?;
    let address = listener.local_addr()?;
    // Bound before the server opens, so a taken port fails the start.
    let metrics_listener = match args.metrics {
        true => Some(
            tokio::net::TcpListener::bind((host, args.metrics_port))
                .await
                .with_context(|| {
                    format!("cannot listen for metrics on {host}:{}", args.metrics_port)
                })?,
        ),
        false => None,
    };
    let server = Server::open(config).await?;
    server.state().auth.check_someone_can_sign_in().await?;
    if let Some(listener) = metrics_listener {
        let address = listener.local_addr()?;
        tracing::info!(%address, "serving metrics");
        println!(
            "Skydeck metrics at http://{}/metrics",
            display_host(address)
        );
        server.serve_metrics(listener);
    }
    let url = format!("http://{}", display_host(address));
    let file = ServerFile {
        pid: std::process::id(),
        url: url.clone(),
    };
    std::fs::write(paths.server_info(), serde_json::to_string(&file)?)?;
    tracing::info!(%address, "listening");
    // Scripts and tests read this line to learn the port: its last word is
    // the URL to reach the server from this machine.
    println!("{}", listening_line(address));
    std::io::stdout().flush()?;
    let result = server.serve(listener, stop).await;
    if ServerFile::read(&paths).is_some_and(|f| f.pid == std::process::id()) {
        let _ = std::fs::remove_file(paths.server_info());
    }
    result
}

/// What the server says once it listens. An all-interfaces bind names
/// itself as such: a log that said 127.0.0.1 there would hide that the
/// server is reachable from every network the machine is on.
fn listening_line(address: std::net::SocketAddr) -> String {
    let url = format!("http://{}", display_host(address));
    if address.ip().is_unspecified() {
        format!(
            "Skydeck API server listening on every address ({address}), \
             port {}; from this machine: {url}",
            address.port()
        )
    } else {
        format!("Skydeck API server listening on {url}")
    }
}

/// `host:port` a client on this machine uses for a bound address; an
/// all-interfaces bind is reached through loopback.
fn display_host(address: std::net::SocketAddr) -> String {
    if address.ip().is_unspecified() {
        format!("127.0.0.1:{}", address.port())
    } else {
        address.to_string()
    }
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is
/// called, not when the future is first polled: a signal that arrives while
/// the server opens, or just after it says it listens, must drain it rather
/// than kill it with the default action.
fn stop_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

/// The server that owns this state directory, if it is alive.
pub fn running_server(paths: &Paths) -> Option<ServerFile> {
    ServerFile::read(paths).filter(|file| pid_alive(file.pid))
}

/// Starts the server in the background and returns its URL once it answers.
pub async fn start_background(paths: &Paths, args: &StartArgs) -> anyhow::Result<String> {
    if let Some(running) = running_server(paths) {
        return Ok(running.url);
    }
    std::fs::create_dir_all(&paths.home)
        .with_context(|| format!("cannot create {}", paths.home.display()))?;
    let log_path = paths.server_log();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let exe = std::env::current_exe().context("cannot find the skydeck binary")?;
    let mut command = std::process::Command::new(exe);
    command
        .args(["api", "start", "--foreground", "--host", args.bind_host()])
        .args(["--port", &args.port.to_string()])
        .args(args.auth.to_args())
        .args(
            args.metrics
                .then(|| {
                    [
                        "--metrics".to_owned(),
                        "--metrics-port".to_owned(),
                        args.metrics_port.to_string(),
                    ]
                })
                .into_iter()
                .flatten(),
        )
        .env(skydeck_server::config::ENV_HOME, &paths.home)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // Its own process group: a Ctrl-C at this terminal must not stop it.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command.spawn().context("cannot start the API server")?;
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut delay = Duration::from_millis(5);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "the API server exited at start ({status}); its log {} says:\n{}",
                log_path.display(),
                tail(&log_path, 20)
            );
        }
        if let Some(file) = ServerFile::read(paths).filter(|f| f.pid == pid) {
            let client = skydeck_client::Client::new(&file.url, None)?;
            if client.health().await.is_ok() {
                return Ok(file.url);
            }
        }
        if Instant::now() > deadline {
            bail!(
                "the API server (pid {pid}) did not answer within a minute; see {}",
                log_path.display()
            );
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(200));
    }
}

/// Stops the server of this state directory with SIGTERM and waits for it to
/// drain. Returns false when none was running.
pub async fn stop(paths: &Paths) -> anyhow::Result<bool> {
    let Some(file) = ServerFile::read(paths) else {
        return Ok(false);
    };
    if !pid_alive(file.pid) {
        let _ = std::fs::remove_file(paths.server_info());
        return Ok(false);
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(file.pid)?);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
        .with_context(|| format!("cannot signal the API server (pid {})", file.pid))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while pid_alive(file.pid) {
        if Instant::now() > deadline {
            bail!(
                "the API server (pid {}) is still draining after 2 minutes; see {}",
                file.pid,
                paths.server_log().display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = std::fs::remove_file(paths.server_info());
    Ok(true)
}

fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // A zombie still answers kill(0); check /proc for its state too.
    let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
    alive
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| stat.split_whitespace().nth(2) == Some("Z"))
}

fn tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::listening_line;

    #[test]
    fn the_start_line_names_the_real_bind_address() {
        assert_eq!(
            listening_line("127.0.0.1:46580".parse().unwrap()),
            "Skydeck API server listening on http://127.0.0.1:46580"
        );
        assert_eq!(
            listening_line("10.1.2.3:8080".parse().unwrap()),
            "Skydeck API server listening on http://10.1.2.3:8080"
        );
        assert_eq!(
            listening_line("0.0.0.0:46580".parse().unwrap()),
            "Skydeck API server listening on every address (0.0.0.0:46580), port 46580; \
             from this machine: http://127.0.0.1:46580"
        );
        assert_eq!(
            listening_line("[::]:46580".parse().unwrap()),
            "Skydeck API server listening on every address ([::]:46580), port 46580; \
             from this machine: http://127.0.0.1:46580"
        );
    }
}
