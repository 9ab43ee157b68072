//! One phase (setup or run) of a job: a `bash -c` per node, each in its own
//! process group, output copied line by line into the job's log.

use crate::process::terminate_groups;
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
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) struct NodeCommand {
    pub rank: usize,
    pub workdir: PathBuf,
    pub env: Vec<(String, String)>,
}

pub(crate) struct NodeProcess {
    pub rank: usize,
    /// Also the process group id: the process leads its own group.
    pub pid: i32,
    child: Child,
    pumps: Vec<JoinHandle<()>>,
}

#[derive(Debug, PartialEq)]
pub(crate) enum PhaseEnd {
    Succeeded,
    /// Exit codes by rank (128 + n for a process killed by signal n).
    Failed(Vec<i32>),
    Cancelled,
}

/// Multi-node jobs tag each line with its node, as SkyPilot does.
pub(crate) fn line_prefix(rank: usize, pid: i32) -> String {
    if rank == 0 {
        format!("(head, rank=0, pid={pid}) ")
    } else {
        format!("(worker{rank}, rank={rank}, pid={pid}) ")
    }
}

pub(crate) fn spawn_node(
    script: &str,
    node: &NodeCommand,
    log: &Arc<File>,
    prefixed: bool,
) -> std::io::Result<NodeProcess> {
    let mut child = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(&node.workdir)
        .envs(node.env.iter().map(|(key, value)| (key, value)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let pid = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .ok_or_else(|| std::io::Error::other("the new process has no pid"))?;
    let prefix = if prefixed {
        line_prefix(node.rank, pid)
    } else {
        String::new()
    };
    let mut pumps = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        pumps.push(tokio::spawn(pump(stdout, prefix.clone(), log.clone())));
    }
    if let Some(stderr) = child.stderr.take() {
        pumps.push(tokio::spawn(pump(stderr, prefix, log.clone())));
    }
    Ok(NodeProcess {
        rank: node.rank,
        pid,
        child,
        pumps,
    })
}

async fn pump(stream: impl AsyncRead + Unpin, prefix: String, log: Arc<File>) {
    let mut reader = BufReader::new(stream);
    let mut line = prefix.clone().into_bytes();
    loop {
        line.truncate(prefix.len());
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
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
        let mut child = node.child;
        waits.spawn(async move { (index, child.wait().await) });
    }
    let (mut failed, mut cancelled) = (false, false);
    loop {
        tokio::select! {
            next = waits.join_next() => {
                let Some(joined) = next else { break };
                let (index, code) = match joined {
                    Ok((index, Ok(status))) => {
                        (index, status.code().or(status.signal().map(|signal| 128 + signal)).unwrap_or(-1))
                    }
                    Ok((index, Err(err))) => {
                        tracing::warn!(%err, "cannot wait for a node process");
                        (index, -1)
                    }
                    Err(err) => {
                        tracing::warn!(%err, "a node waiter failed");
                        continue;
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
    } else if failed {
        PhaseEnd::Failed(codes)
    } else {
        PhaseEnd::Succeeded
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
            workdir: dir.to_owned(),
            env: vec![("GREETING".into(), "hi".into())],
        }
    }

    #[tokio::test]
    async fn output_is_logged_with_node_prefixes() {
        let temp = tempfile::tempdir().unwrap();
        let log_path = temp.path().join("run.log");
        let log = Arc::new(crate::fsutil::open_append(&log_path).unwrap());
        let nodes = (0..2)
            .map(|rank| {
                spawn_node(
                    "echo $GREETING; echo oops >&2; printf tail",
                    &node(rank, temp.path()),
                    &log,
                    true,
                )
                .unwrap()
            })
            .collect::<Vec<_>>();
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
            spawn_node("exec sleep 1000", &node(0, temp.path()), &log, false).unwrap(),
            spawn_node("exit 3", &node(1, temp.path()), &log, false).unwrap(),
        ];
        let end = wait_phase(nodes, &CancellationToken::new(), Duration::from_secs(1)).await;
        assert_eq!(end, PhaseEnd::Failed(vec![128 + 15, 3]));
    }
}
