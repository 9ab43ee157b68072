//! Starting, probing and stopping one `skydeck` server process.

use crate::http::{Conn, Method};
use anyhow::{Context, bail};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// The one line the server prints on stdout once its socket is bound.
const LISTENING_PREFIX: &str = "Skydeck API server listening on http://";

/// Generous: a cold first start on a loaded CI box can be slow, and a
/// benchmark that gives up too early reports nothing useful.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// SIGTERM first so we measure (and exercise) the graceful path; SIGKILL
/// only if the server does not finish within this.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How long a single health probe may take before it counts as failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A running server with its private state directory.
pub struct Server {
    child: Child,
    pid: u32,
    pub addr: SocketAddr,
    scratch: Scratch,
}

/// Time from spawn to the listening line, and to the first 200 from
/// `/api/health`.
#[derive(Debug, Clone, Copy)]
pub struct StartTimes {
    pub listening: Duration,
    pub healthy: Duration,
}

/// How the server ended when asked to stop.
#[derive(Debug, Clone)]
pub struct Stop {
    pub took: Duration,
    pub graceful: bool,
    pub exit: String,
}

/// Resident memory of the server process, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

impl Server {
    /// Spawns the server with a fresh `SKYDECK_HOME`, learns its address from
    /// the listening line and waits for the first healthy answer.
    pub async fn start(binary: &Path) -> anyhow::Result<(Self, StartTimes)> {
        Self::start_with_env(binary, &[]).await
    }

    /// [`Server::start`] with extra environment variables (set after ours
    /// are cleared).
    pub async fn start_with_env(
        binary: &Path,
        envs: &[(&str, String)],
    ) -> anyhow::Result<(Self, StartTimes)> {
        let scratch = Scratch::create()?;
        let mut command = server_command(binary, &scratch)?;
        for (name, value) in envs {
            command.env(name, value);
        }
        let spawned = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot run {}", binary.display()))?;
        let deadline = spawned + START_DEADLINE;
        let pid = child.id().context("the server exited at once")?;
        let stdout = child.stdout.take().context("no stdout pipe")?;

        let mut lines = BufReader::new(stdout).lines();
        let addr = match read_listening_addr(&mut lines, deadline).await {
            Ok(addr) => addr,
            Err(err) => return Err(start_failure(child, &scratch, err).await),
        };
        let listening = spawned.elapsed();
        // Keep draining stdout: a server that logs there must never block
        // on a full pipe in the middle of a measurement.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        let mut server = Self {
            child,
            pid,
            addr,
            scratch,
        };
        if let Err(err) = server.wait_healthy(deadline).await {
            let Self { child, scratch, .. } = server;
            return Err(start_failure(child, &scratch, err).await);
        }
        let healthy = spawned.elapsed();
        Ok((server, StartTimes { listening, healthy }))
    }

    /// Retries `/api/health` in a tight loop: the listening line says the
    /// socket is bound, but the router may still be coming up behind it.
    async fn wait_healthy(&mut self, deadline: Instant) -> anyhow::Result<()> {
        let mut last_problem = String::from("no attempt made");
        let mut conn = None;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("the server exited with {status} before answering /api/health");
            }
            if conn.is_none() {
                match Conn::connect(self.addr).await {
                    Ok(fresh) => conn = Some(fresh),
                    Err(err) => last_problem = format!("connect: {err:#}"),
                }
            }
            if let Some(open) = conn.as_mut() {
                match open
                    .send(Method::Get, "/api/health", None, PROBE_TIMEOUT)
                    .await
                {
                    Ok(reply) if reply.status == 200 => return Ok(()),
                    Ok(reply) => last_problem = reply.describe("GET /api/health"),
                    Err(err) => {
                        last_problem = err.to_string();
                        conn = None;
                    }
                }
            }
            // A short pause (tokio's timer resolution) keeps the retry loop
            // from stealing a whole core from the server it is waiting for.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        bail!("no 200 from /api/health within {START_DEADLINE:?}; last: {last_problem}")
    }

    /// A few sequential health calls on one connection; any non-200 is an
    /// error because the server is supposed to be up.
    pub async fn health_calls(&self, count: usize) -> anyhow::Result<()> {
        let mut conn = Conn::connect(self.addr).await?;
        for _ in 0..count {
            let reply = conn
                .send(Method::Get, "/api/health", None, PROBE_TIMEOUT)
                .await?;
            if reply.status != 200 {
                bail!("{}", reply.describe("GET /api/health"));
            }
        }
        Ok(())
    }

    pub fn memory(&self) -> anyhow::Result<Memory> {
        read_memory(self.pid)
    }

    /// CPU the server has used so far, its own and that of the children it
    /// has reaped (the short `skydeck agent …` commands it runs per call).
    pub fn cpu(&self) -> anyhow::Result<CpuTimes> {
        read_cpu(self.pid)
    }

    /// The server's `SKYDECK_HOME`, where its clusters' directories are.
    pub fn home(&self) -> PathBuf {
        self.scratch.home()
    }

    /// A connection to the server's own SQLite database, for writing a
    /// large state beside it (SQLite takes a second writer; it waits its
    /// turn).
    pub async fn state_db(&self) -> anyhow::Result<sqlx::SqliteConnection> {
        use sqlx::Connection;
        let path = self.home().join("state.db");
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .with_context(|| format!("open {}", path.display()))?;
        sqlx::query("PRAGMA busy_timeout = 10000")
            .execute(&mut conn)
            .await?;
        Ok(conn)
    }

    /// SIGTERM, wait up to [`STOP_GRACE`], then SIGKILL. Removes the state
    /// directory once the process is gone.
    pub async fn stop(&mut self) -> anyhow::Result<Stop> {
        let started = Instant::now();
        send_sigterm(self.pid).await?;
        let (graceful, status) = match tokio::time::timeout(STOP_GRACE, self.child.wait()).await {
            Ok(status) => (true, status?),
            Err(_) => {
                self.child.kill().await?;
                (false, self.child.wait().await?)
            }
        };
        let took = started.elapsed();
        self.scratch.remove();
        Ok(Stop {
            took,
            graceful,
            exit: status.to_string(),
        })
    }
}

/// The server command: `SKYDECK_*` variables from our own environment are
/// dropped so a developer's database URL or test hooks cannot leak into the
/// measurement; stderr goes to a file we can show if start-up fails.
fn server_command(binary: &Path, scratch: &Scratch) -> anyhow::Result<Command> {
    let mut command = Command::new(binary);
    command.args([
        "api",
        "start",
        "--foreground",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
    ]);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SKYDECK_") {
            command.env_remove(name);
        }
    }
    let stderr = std::fs::File::create(scratch.stderr_log())
        .context("cannot create the server's stderr log")?;
    command
        .env("SKYDECK_HOME", scratch.home())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        // If the benchmark itself fails half-way, no server outlives it.
        .kill_on_drop(true);
    Ok(command)
}

/// Reads stdout line by line until the listening line; only 127.0.0.1 is
/// accepted because the benchmark must never talk to anything else.
async fn read_listening_addr(
    lines: &mut Lines<BufReader<ChildStdout>>,
    deadline: Instant,
) -> anyhow::Result<SocketAddr> {
    loop {
        let line = tokio::time::timeout_at(deadline.into(), lines.next_line())
            .await
            .map_err(|_| anyhow::anyhow!("no listening line within {START_DEADLINE:?}"))?
            .context("cannot read the server's stdout")?
            .context("the server closed stdout without printing its listening line")?;
        let Some(rest) = line.trim_end().strip_prefix(LISTENING_PREFIX) else {
            continue;
        };
        let addr: SocketAddr = rest
            .trim_end_matches('/')
            .parse()
            .with_context(|| format!("cannot parse the address in {line:?}"))?;
        if addr.ip() != Ipv4Addr::LOCALHOST {
            bail!("the server says it listens on {addr}, not on 127.0.0.1");
        }
        return Ok(addr);
    }
}

/// Stops a server that failed to start and adds how it exited and the tail
/// of its stderr to the error: that is where it explains why.
async fn start_failure(mut child: Child, scratch: &Scratch, err: anyhow::Error) -> anyhow::Error {
    let exited = match child.try_wait() {
        Ok(Some(status)) => format!(" (the server exited: {status})"),
        _ => {
            let _ = child.kill().await;
            String::new()
        }
    };
    let stderr = std::fs::read_to_string(scratch.stderr_log()).unwrap_or_default();
    let lines: Vec<&str> = stderr.lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    if tail.is_empty() {
        anyhow::anyhow!("{err:#}{exited}; its stderr was empty")
    } else {
        anyhow::anyhow!("{err:#}{exited}; the end of its stderr:\n{tail}")
    }
}

/// `kill -TERM <pid>`: the crate forbids unsafe code, and spawning `kill`
/// avoids a libc/nix dependency for one signal.
async fn send_sigterm(pid: u32) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .await
        .context("cannot run `kill`")?;
    if !status.success() {
        bail!("`kill -TERM {pid}` failed: {status}");
    }
    Ok(())
}

pub(crate) fn read_memory(pid: u32) -> anyhow::Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    Ok(Memory {
        rss_kib: status_field_kib(&text, "VmRSS:")
            .with_context(|| format!("no VmRSS in {path}"))?,
        hwm_kib: status_field_kib(&text, "VmHWM:")
            .with_context(|| format!("no VmHWM in {path}"))?,
    })
}

/// Seconds of CPU from `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTimes {
    /// user + system time of the process itself.
    pub own_s: f64,
    /// user + system time of its children that it has waited for.
    pub children_s: f64,
}

impl CpuTimes {
    pub fn since(self, earlier: CpuTimes) -> CpuTimes {
        CpuTimes {
            own_s: self.own_s - earlier.own_s,
            children_s: self.children_s - earlier.children_s,
        }
    }
}

/// Linux reports these times in clock ticks of `USER_HZ`, which is 100 on
/// every mainstream architecture; reading it properly needs `sysconf` (libc).
const CLOCK_TICKS_PER_S: f64 = 100.0;

pub(crate) fn read_cpu(pid: u32) -> anyhow::Result<CpuTimes> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_stat_cpu(&text).with_context(|| format!("cannot parse {path}"))
}

/// Fields 14–17 of `stat` (utime, stime, cutime, cstime), counted after the
/// `(comm)` field, which may itself contain spaces and parentheses.
fn parse_stat_cpu(text: &str) -> Option<CpuTimes> {
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let [utime, stime, cutime, cstime] = fields[..] else {
        return None;
    };
    Some(CpuTimes {
        own_s: (utime + stime) / CLOCK_TICKS_PER_S,
        children_s: (cutime + cstime) / CLOCK_TICKS_PER_S,
    })
}

/// Parses a `Name:   1234 kB` line of `/proc/<pid>/status`.
fn status_field_kib(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|line| line.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

/// A uniquely named directory under the system temp dir holding the
/// server's `SKYDECK_HOME` and its stderr log; removed when dropped.
struct Scratch {
    root: PathBuf,
}

impl Scratch {
    fn create() -> anyhow::Result<Self> {
        static SEQUENCE: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |t| t.subsec_nanos());
        let name = format!(
            "skydeck-bench-{}-{}-{nanos}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );
        let root = std::env::temp_dir().join(name);
        // create_dir (not create_dir_all) fails if the name is taken, so two
        // runs can never share a state directory.
        std::fs::create_dir(&root).with_context(|| format!("cannot create {}", root.display()))?;
        let scratch = Self { root };
        std::fs::create_dir(scratch.home())
            .with_context(|| format!("cannot create {}", scratch.home().display()))?;
        Ok(scratch)
    }

    fn home(&self) -> PathBuf {
        self.root.join("home")
    }

    fn stderr_log(&self) -> PathBuf {
        self.root.join("server-stderr.log")
    }

    fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.remove();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_status_fields_are_read_in_kib() {
        let text = "Name:\tskydeck\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_field_kib(text, "VmRSS:"), Some(10240));
        assert_eq!(status_field_kib(text, "VmHWM:"), Some(20480));
        assert_eq!(status_field_kib(text, "VmSwap:"), None);
    }

    #[test]
    fn cpu_times_are_read_after_the_command_name() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
        // majflt cmajflt utime stime cutime cstime ...
        let text = "42 (sky deck) S 1 42 42 0 -1 0 10 0 0 0 150 50 300 100 20 0";
        let cpu = parse_stat_cpu(text).unwrap();
        assert!((cpu.own_s - 2.0).abs() < 1e-9);
        assert!((cpu.children_s - 4.0).abs() < 1e-9);
    }
}
