//! One phase (setup or run) of a job: a bash per node (see `shell`), each
//! leading its own process group, its stdout and stderr one pipe copied line
//! by line into the job's log, so the log keeps the order they were written.

use crate::env::Phase;
use crate::process::terminate_groups;
use crate::remote::RemoteLink;
use crate::shell;
use std::fs::File;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Child;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

/// A process that escaped its group (setsid) can hold a log pipe open
/// forever; past this, the phase stops waiting for its output.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) struct NodeCommand {
    pub rank: usize,
    pub phase: Phase,
    pub workdir: PathBuf,
    /// Where the node's wrapped script is written for bash to read.
    pub script_file: PathBuf,
    pub env: Vec<(String, String)>,
}

pub(crate) struct NodeProcess {
    pub rank: usize,
    /// Also the process group id: the process leads its own group (bash
    /// here, or the `ssh` that reaches a worker).
    pub pid: i32,
    pub child: Child,
    pub pumps: Vec<JoinHandle<()>>,
    /// How to read a worker's end; `None` for a node on this machine.
    pub remote: Option<RemoteLink>,
}

/// How one node's process ended.
pub(crate) enum NodeExit {
    /// Its exit code (128 + n for a process killed by signal n).
    Code(i32),
    /// The worker's status never came back: the connection or the worker's
    /// agent died. `code` is the local `ssh`'s.
    Lost { code: i32, reason: String },
}

#[derive(Debug, PartialEq)]
pub(crate) enum PhaseEnd {
    Succeeded,
    /// Exit codes by rank (128 + n for a process killed by signal n).
    Failed(Vec<i32>),
    Cancelled,
    /// A worker was lost mid-phase (why); the others were stopped.
    Lost(String),
}

/// Multi-node jobs tag each line with its node, as SkyPilot does.
pub(crate) fn line_prefix(rank: usize, pid: i32) -> String {
    if rank == 0 {
        format!("(head, rank=0, pid={pid}) ")
    } else {
        format!("(worker{rank}, rank={rank}, pid={pid}) ")
    }
}

/// How long a new process may take to become a session leader.
const SESSION_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) async fn spawn_node(
    script: &str,
    node: &NodeCommand,
    log: &Arc<File>,
    prefixed: bool,
) -> std::io::Result<NodeProcess> {
    let shell = start_shell(script, node).await?;
    let prefix = if prefixed {
        line_prefix(node.rank, shell.pid)
    } else {
        String::new()
    };
    let pumps = vec![tokio::spawn(pump(
        shell.output,
        prefix,
        log.clone(),
        shell.interactive,
    ))];
    Ok(NodeProcess {
        rank: node.rank,
        pid: shell.pid,
        child: shell.child,
        pumps,
        remote: None,
    })
}

/// A node's bash, started and leading its own process group.
pub(crate) struct Shell {
    pub child: Child,
    /// Also the process group id.
    pub pid: i32,
    /// Its stdout and stderr, one pipe.
    pub output: tokio::net::unix::pipe::Receiver,
    /// Whether the first lines may be bash's startup noise.
    pub interactive: bool,
}

/// Writes the node's wrapped script and starts bash on it (see `shell`),
/// with `node.env` on top of our own environment. Used on the head for
/// its own nodes and by `node-exec` on a worker.
pub(crate) async fn start_shell(script: &str, node: &NodeCommand) -> std::io::Result<Shell> {
    let restore = node
        .env
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| *name != "HOME");
    write_script(
        &node.script_file,
        &shell::wrap(script, node.phase, &node.workdir, restore),
    )?;
    let launch = shell::launch(&node.script_file);
    let (output, writer) = std::io::pipe()?;
    let mut command = tokio::process::Command::new(&launch.program);
    command
        .args(&launch.args)
        .current_dir(&node.workdir)
        .envs(node.env.iter().map(|(key, value)| (key, value)))
        .stdin(Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer);
    if !launch.new_session {
        command.process_group(0);
    }
    let spawned = command.spawn();
    // Our copies of the pipe's write end go with the command: the log pump
    // sees the end of the output once the node's processes are gone.
    drop(command);
    let mut child = spawned?;
    let pid = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .ok_or_else(|| std::io::Error::other("the new process has no pid"))?;
    if launch.new_session {
        await_own_session(&mut child, pid).await?;
    }
    let output = tokio::net::unix::pipe::Receiver::from_owned_fd(output.into())?;
    Ok(Shell {
        child,
        pid,
        output,
        interactive: launch.interactive,
    })
}

/// Only the job's user reads it: the script holds the task's commands.
fn write_script(path: &std::path::Path, script: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?
        .write_all(script.as_bytes())
}

/// `setsid` makes the process a session and group leader only once it
/// runs; until then a signal to its group would reach nothing, and a
/// `cancel` arriving then would miss the job.
async fn await_own_session(child: &mut Child, pid: i32) -> std::io::Result<()> {
    let started = std::time::Instant::now();
    loop {
        let own = nix::unistd::getsid(Some(nix::unistd::Pid::from_raw(pid)))
            .is_ok_and(|sid| sid.as_raw() == pid);
        if own || child.try_wait()?.is_some() {
            return Ok(());
        }
        if started.elapsed() > SESSION_TIMEOUT {
            // Not a group of its own yet: only the process itself can be
            // stopped, and it must not run on unwatched.
            let _ = child.start_kill();
            return Err(std::io::Error::other(
                "the job's shell did not start a session of its own",
            ));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

pub(crate) async fn pump(
    stream: impl AsyncRead + Unpin,
    prefix: String,
    log: Arc<File>,
    interactive: bool,
) {
    let mut reader = BufReader::new(stream);
    let mut line = prefix.clone().into_bytes();
    let mut starting = interactive;
    loop {
        line.truncate(prefix.len());
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if starting && shell::is_startup_noise(&line[prefix.len()..]) {
                    continue;
                }
                starting = false;
                if !line.ends_with(b"\n") {
                    line.push(b'\n');
                }
                // One write per line: the file is opened O_APPEND, so lines
                // from several nodes and processes never interleave.
                if let Err(err) = (&*log).write_all(&line) {
                    tracing::warn!(%err, "cannot write a job's log");
                }
            }
        }
    }
}

/// Waits until every node is done. The first failure stops the other nodes;
/// `cancel` stops them all. Whatever a node left running in its group is
/// stopped when the phase ends, as SkyPilot does.
pub(crate) async fn wait_phase(
    nodes: Vec<NodeProcess>,
    cancel: &CancellationToken,
    grace: Duration,
) -> PhaseEnd {
    let pgids: Vec<i32> = nodes.iter().map(|node| node.pid).collect();
    let mut codes = vec![0; nodes.len()];
    let mut pumps = Vec::new();
    let mut waits = JoinSet::new();
    for (index, node) in nodes.into_iter().enumerate() {
        pumps.extend(node.pumps);
        let (mut child, remote) = (node.child, node.remote);
        waits.spawn(async move {
            let status = child.wait().await;
            let exit = match remote {
                None => NodeExit::Code(exit_code(status)),
                Some(link) => link.end(status).await,
            };
            (index, exit)
        });
    }
    let (mut failed, mut cancelled, mut lost) = (false, false, None);
    loop {
        tokio::select! {
            next = waits.join_next() => {
                let Some(joined) = next else { break };
                let (index, exit) = match joined {
                    Ok(ended) => ended,
                    Err(err) => {
                        tracing::warn!(%err, "a node waiter failed");
                        continue;
                    }
                };
                let code = match exit {
                    NodeExit::Code(code) => code,
                    NodeExit::Lost { code, reason } => {
                        // Only a loss we did not cause ourselves counts.
                        if !failed && !cancelled {
                            tracing::warn!(index, "{reason}");
                            lost = Some(reason);
                        }
                        code
                    }
                };
                codes[index] = code;
                if code != 0 && !failed && !cancelled {
                    failed = true;
                    terminate_groups(&pgids, grace).await;
                }
            }
            () = cancel.cancelled(), if !cancelled => {
                cancelled = true;
                terminate_groups(&pgids, grace).await;
            }
        }
    }
    terminate_groups(&pgids, grace).await;
    drain(pumps).await;
    if cancelled {
        PhaseEnd::Cancelled
    } else if let Some(reason) = lost {
        PhaseEnd::Lost(reason)
    } else if failed {
        PhaseEnd::Failed(codes)
    } else {
        PhaseEnd::Succeeded
    }
}

/// 128 + n for a process killed by signal n, as shells report it.
pub(crate) fn exit_code(status: std::io::Result<std::process::ExitStatus>) -> i32 {
    match status {
        Ok(status) => status
            .code()
            .or(status.signal().map(|signal| 128 + signal))
            .unwrap_or(-1),
        Err(err) => {
            tracing::warn!(%err, "cannot wait for a node process");
            -1
        }
    }
}

async fn drain(pumps: Vec<JoinHandle<()>>) {
    let aborts: Vec<_> = pumps.iter().map(JoinHandle::abort_handle).collect();
    let all = async {
        for pump in pumps {
            let _ = pump.await;
        }
    };
    if tokio::time::timeout(DRAIN_TIMEOUT, all).await.is_err() {
        tracing::warn!("a job's output pipe stays open after its processes ended; not waiting");
        aborts.iter().for_each(tokio::task::AbortHandle::abort);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(rank: usize, dir: &std::path::Path) -> NodeCommand {
        NodeCommand {
            rank,
            phase: Phase::Run,
            workdir: dir.to_owned(),
            script_file: dir.join(format!("run-{rank}.sh")),
            env: vec![("GREETING".into(), "hi".into())],
        }
    }

    #[tokio::test]
    async fn output_is_logged_with_node_prefixes() {
        let temp = tempfile::tempdir().unwrap();
        let log_path = temp.path().join("run.log");
        let log = Arc::new(crate::fsutil::open_append(&log_path).unwrap());
        let mut nodes = Vec::new();
        for rank in 0..2 {
            let script = "echo $GREETING; echo oops >&2; printf tail";
            nodes.push(
                spawn_node(script, &node(rank, temp.path()), &log, true)
                    .await
                    .unwrap(),
            );
        }
        let pids: Vec<i32> = nodes.iter().map(|node| node.pid).collect();
        let end = wait_phase(nodes, &CancellationToken::new(), Duration::from_secs(1)).await;
        assert_eq!(end, PhaseEnd::Succeeded);
        let text = std::fs::read_to_string(&log_path).unwrap();
        for (rank, pid) in pids.iter().enumerate() {
            let prefix = line_prefix(rank, *pid);
            for line in ["hi", "oops", "tail"] {
                assert!(text.contains(&format!("{prefix}{line}\n")), "{text}");
            }
        }
    }

    #[tokio::test]
    async fn one_failing_node_stops_the_others() {
        let temp = tempfile::tempdir().unwrap();
        let log = Arc::new(crate::fsutil::open_append(&temp.path().join("run.log")).unwrap());
        let nodes = vec![
            spawn_node("exec sleep 1000", &node(0, temp.path()), &log, false)
                .await
                .unwrap(),
            spawn_node("exit 3", &node(1, temp.path()), &log, false)
                .await
                .unwrap(),
        ];
        let end = wait_phase(nodes, &CancellationToken::new(), Duration::from_secs(1)).await;
        assert_eq!(end, PhaseEnd::Failed(vec![128 + 15, 3]));
    }
}
