//! A worker's share of a phase, run from the head over SSH: the head's agent
//! starts `AGENT agent node-exec` on the worker (see `node_exec`) with the
//! system `ssh`, the cluster's key and the host keys the server recorded,
//! and nothing else (no user config, no agent, no host key learnt on the
//! way).
//!
//! The channel carries, from the head: one JSON line (the node's command
//! and environment: values never land on a command line or in a file), then
//! a newline every `alive` interval, the heartbeat; closing it stops the
//! node's processes. Back: the node's output (stdout and stderr merged,
//! raw) on stdout; on stderr, `node-exec`'s reports (its shell's pid, then
//! its exit code) among whatever ssh itself has to say. A phase that ends
//! without the exit report lost its worker: the job fails as FAILED_DRIVER.

use crate::cluster::{NodeInfo, NodeSsh, NodeTcp};
use crate::node_exec::{self, NodeExecRequest};
use crate::process::JOB_MARKER_VAR;
use crate::runner::{
    DRAIN_TIMEOUT, NodeCommand, NodeExit, NodeProcess, exit_code, line_prefix, pump,
};
use std::fs::File;
use std::io::Write;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStderr, ChildStdin};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Seconds between heartbeats (and ssh keepalives); tests make it short.
const ALIVE_VAR: &str = "SKYDECK_AGENT_SSH_ALIVE_SECS";
const DEFAULT_ALIVE: Duration = Duration::from_secs(5);
/// Keepalives (or heartbeats) missed in a row before an end gives up on
/// the other.
const MISSED_BEATS: u32 = 3;
const CONNECT_TIMEOUT_SECS: u32 = 10;
/// ssh's complaints kept to explain a lost worker.
const KEPT_LINES: usize = 20;

/// The heartbeat interval: `SKYDECK_AGENT_SSH_ALIVE_SECS` (whole seconds,
/// as ssh's keepalive takes them) or 5 s.
pub(crate) fn alive_interval() -> Duration {
    std::env::var(ALIVE_VAR)
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
        .filter(|secs| *secs > 0)
        .map_or(DEFAULT_ALIVE, Duration::from_secs)
}

/// How the head reaches a worker: the system `ssh`, or `skydeck agent
/// node-connect` to the worker's own agent (see `node_link`). Either is a
/// local child process carrying node-exec's stdin, stdout and stderr, so
/// everything below is the same for both.
#[derive(Debug, Clone)]
pub(crate) enum Reach {
    Ssh(NodeSsh),
    Tcp(NodeTcp),
}

impl Reach {
    pub(crate) fn of(node: &NodeInfo) -> Option<Self> {
        match (&node.ssh, &node.tcp) {
            (Some(ssh), _) => Some(Self::Ssh(ssh.clone())),
            (None, Some(tcp)) => Some(Self::Tcp(tcp.clone())),
            (None, None) => None,
        }
    }

    fn target(&self, rank: usize) -> String {
        match self {
            Self::Ssh(ssh) => format!("{rank} ({}@{}:{})", ssh.user, ssh.host, ssh.port),
            Self::Tcp(tcp) => format!("{rank} ({}:{})", tcp.host, tcp.port),
        }
    }

    /// What carries the phase, for messages.
    fn link(&self) -> &'static str {
        match self {
            Self::Ssh(_) => "the SSH connection",
            Self::Tcp(_) => "the connection to its agent",
        }
    }

    fn command(&self, alive: Duration) -> std::io::Result<tokio::process::Command> {
        match self {
            Self::Ssh(ssh) => Ok(ssh_command(ssh, alive)),
            Self::Tcp(tcp) => crate::node_link::connect_command(tcp, alive),
        }
    }
}

/// The worker's side of a running phase, read when its `ssh` exits.
pub(crate) struct RemoteLink {
    reports: JoinHandle<Reports>,
    heartbeat: JoinHandle<()>,
    target: String,
    link: &'static str,
}

#[derive(Default)]
struct Reports {
    exit: Option<i32>,
    /// What ssh (or node-exec, failing) printed, last lines only.
    said: Vec<String>,
}

impl RemoteLink {
    pub(crate) async fn end(self, status: std::io::Result<ExitStatus>) -> NodeExit {
        self.heartbeat.abort();
        let code = exit_code(status);
        let reports = match tokio::time::timeout(DRAIN_TIMEOUT, self.reports).await {
            Ok(Ok(reports)) => reports,
            _ => Reports::default(),
        };
        match reports.exit {
            Some(exit) => NodeExit::Code(exit),
            None => NodeExit::Lost {
                code,
                reason: format!(
                    "lost the worker {}: {} ended without its exit status{}",
                    self.target,
                    self.link,
                    explain(&reports.said)
                ),
            },
        }
    }
}

/// Starts the node's phase on its host; returns once the worker's shell
/// runs (or with why it could not start).
pub(crate) async fn spawn_remote(
    script: &str,
    node: &NodeCommand,
    reach: &Reach,
    log: &Arc<File>,
    alive: Duration,
) -> std::io::Result<NodeProcess> {
    let target = reach.target(node.rank);
    let marker = node
        .env
        .iter()
        .find(|(name, _)| name == JOB_MARKER_VAR)
        .map(|(_, value)| value.clone())
        .unwrap_or_default();
    let mut command = reach.command(alive)?;
    command
        // The marker lets a restarted daemon find this ssh too.
        .env(JOB_MARKER_VAR, marker)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command.spawn()?;
    let pid = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .ok_or_else(|| std::io::Error::other("the new ssh has no pid"))?;
    let (mut stdin, stdout, stderr) =
        match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
            (Some(stdin), Some(stdout), Some(stderr)) => (stdin, stdout, stderr),
            _ => return Err(std::io::Error::other("ssh's pipes are missing")),
        };
    let (started_tx, started) = oneshot::channel();
    let reports = tokio::spawn(read_reports(stderr, node.rank, log.clone(), started_tx));
    let request = NodeExecRequest {
        command: script.to_owned(),
        phase: node.phase,
        workdir: node.workdir.clone(),
        script_file: node.script_file.clone(),
        env: node.env.clone(),
        silence_limit_secs: Some((alive * (MISSED_BEATS + 1)).as_secs_f64()),
    };
    let mut line = serde_json::to_vec(&request).map_err(std::io::Error::other)?;
    line.push(b'\n');
    // A connection that fails leaves this write broken: its reason is what
    // ssh says, below.
    let sent = stdin.write_all(&line).await;
    let remote_pid = match started.await {
        Ok(remote_pid) if sent.is_ok() => remote_pid,
        _ => {
            let _ = child.start_kill();
            let status = child.wait().await;
            let said = match tokio::time::timeout(DRAIN_TIMEOUT, reports).await {
                Ok(Ok(reports)) => reports.said,
                _ => Vec::new(),
            };
            return Err(std::io::Error::other(start_failure(
                &target,
                reach,
                exit_code(status),
                &said,
            )));
        }
    };
    let output = pump(
        stdout,
        line_prefix(node.rank, remote_pid),
        log.clone(),
        true,
    );
    Ok(NodeProcess {
        rank: node.rank,
        pid,
        child,
        pumps: vec![tokio::spawn(output)],
        remote: Some(RemoteLink {
            reports,
            heartbeat: tokio::spawn(heartbeat(stdin, alive)),
            target,
            link: reach.link(),
        }),
    })
}

/// `ssh` as the contract with the provider says: only the cluster's key,
/// only the recorded host keys, never a question.
fn ssh_command(ssh: &NodeSsh, alive: Duration) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("ssh");
    command.arg("-T").arg("-F").arg("/dev/null");
    let options = [
        "BatchMode=yes".to_owned(),
        "StrictHostKeyChecking=yes".to_owned(),
        format!("UserKnownHostsFile={}", ssh_path(&ssh.known_hosts)),
        "GlobalKnownHostsFile=/dev/null".to_owned(),
        "IdentitiesOnly=yes".to_owned(),
        "IdentityAgent=none".to_owned(),
        "ControlMaster=no".to_owned(),
        "ControlPath=none".to_owned(),
        "LogLevel=ERROR".to_owned(),
        format!("ConnectTimeout={CONNECT_TIMEOUT_SECS}"),
        format!("ServerAliveInterval={}", alive.as_secs().max(1)),
        format!("ServerAliveCountMax={MISSED_BEATS}"),
    ];
    for option in options {
        command.arg("-o").arg(option);
    }
    command
        .arg("-i")
        .arg(&ssh.identity_file)
        .arg("-p")
        .arg(ssh.port.to_string())
        .arg("-l")
        .arg(&ssh.user)
        .arg("--")
        .arg(&ssh.host)
        .arg(format!(
            "exec {} agent {}",
            shell_quote(&ssh.agent.display().to_string()),
            node_exec::SUBCOMMAND
        ));
    command
}

/// A path inside an `-o` option: ssh splits those at spaces unless quoted.
fn ssh_path(path: &std::path::Path) -> String {
    format!("\"{}\"", path.display())
}

/// A single-quoted word for the remote login shell.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

async fn heartbeat(mut stdin: ChildStdin, alive: Duration) {
    loop {
        tokio::time::sleep(alive).await;
        if stdin.write_all(b"\n").await.is_err() || stdin.flush().await.is_err() {
            return;
        }
    }
}

/// Reads ssh's stderr: node-exec's reports, and anything else, which goes
/// to the log once the node runs (before that, into the start error).
async fn read_reports(
    stderr: ChildStderr,
    rank: usize,
    log: Arc<File>,
    started: oneshot::Sender<i32>,
) -> Reports {
    let mut started = Some(started);
    let mut prefix: Option<String> = None;
    let mut reports = Reports::default();
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return reports,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
        match node_exec::Report::parse(&text) {
            Some(node_exec::Report::Started { pid }) => {
                prefix = Some(line_prefix(rank, pid));
                if let Some(started) = started.take() {
                    let _ = started.send(pid);
                }
            }
            Some(node_exec::Report::Exit { code }) => reports.exit = Some(code),
            None => {
                if let Some(prefix) = &prefix
                    && let Err(err) = (&*log).write_all(format!("{prefix}{text}\n").as_bytes())
                {
                    tracing::warn!(%err, "cannot write a job's log");
                }
                if reports.said.len() == KEPT_LINES {
                    reports.said.remove(0);
                }
                reports.said.push(text);
            }
        }
    }
}

fn start_failure(target: &str, reach: &Reach, code: i32, said: &[String]) -> String {
    let Reach::Ssh(ssh) = reach else {
        return format!(
            "cannot start the job on worker {target} through its agent (exit {code}){}",
            explain(said)
        );
    };
    let key_changed = said.iter().any(|line| {
        line.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
            || line.contains("Host key verification failed")
    });
    if key_changed {
        return format!(
            "refused to reach worker {target}: its host key is not the one recorded in {} \
             (the host was reinstalled or re-keyed, or someone is intercepting the connection); \
             if the new key is expected, record it again (`skydeck ssh up` for the pool) \
             and relaunch",
            ssh.known_hosts.display()
        );
    }
    format!(
        "cannot start the job on worker {target} over SSH (ssh exited with {code}){}",
        explain(said)
    )
}

fn explain(said: &[String]) -> String {
    let said: Vec<&str> = said
        .iter()
        .map(|line| line.trim())
        .filter(|line| !line.is_empty() && !line.starts_with("@@@"))
        .collect();
    if said.is_empty() {
        String::new()
    } else {
        format!(": {}", said.join(" / "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_path_is_one_word_for_the_remote_shell() {
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
    }

    #[test]
    fn a_changed_host_key_is_named_as_such() {
        let ssh = NodeSsh {
            host: "10.0.0.2".into(),
            port: 22,
            user: "root".into(),
            identity_file: "/k".into(),
            known_hosts: "/kh".into(),
            agent: "/a".into(),
        };
        let said = [
            "@@@@@@@@@@@".to_owned(),
            "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @".to_owned(),
            "Host key verification failed.".to_owned(),
        ];
        let ssh = Reach::Ssh(ssh);
        let message = start_failure("1 (root@10.0.0.2:22)", &ssh, 255, &said);
        assert!(
            message.contains("host key is not the one recorded in /kh"),
            "{message}"
        );
        let other = start_failure("1", &ssh, 255, &["Connection refused".to_owned()]);
        assert!(
            other.ends_with("(ssh exited with 255): Connection refused"),
            "{other}"
        );
    }
}
