//! Signalling processes: job process groups and the daemon.
//!
//! Every node process of a job leads its own process group, so one signal to
//! the group also reaches whatever the job started in the background.

use crate::paths::ClusterDir;
use crate::state::NodeProc;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use std::time::Duration;
use tokio::time::Instant;

/// How long a job gets between SIGTERM and SIGKILL.
pub(crate) const KILL_GRACE: Duration = Duration::from_secs(3);
const POLL: Duration = Duration::from_millis(50);
/// SIGKILL is not instant either; past this, stop waiting and move on.
const KILL_SETTLE: Duration = Duration::from_secs(2);

/// Identifies this boot of the machine: a recorded pgid is only worth a
/// signal on the boot that recorded it.
pub(crate) fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|id| id.trim().to_owned())
}

/// Stops the recorded groups of a job (see `terminate_groups`), skipping
/// those recorded on another boot, whose numbers may now be anyone's.
/// The environment variable every job process carries, naming its job
/// uniquely on this machine (cluster directory and job id).
pub(crate) const JOB_MARKER_VAR: &str = "SKYDECK_AGENT_JOB";

pub(crate) fn job_marker(dir: &ClusterDir, job_id: u64) -> String {
    format!("{}#{job_id}", dir.root().display())
}

/// The process groups of processes carrying `marker` in their environment.
/// A daemon killed between starting a job's processes and recording their
/// groups leaves jobs with no groups on record; this finds them anyway.
pub(crate) fn groups_with_marker(marker: &str) -> Vec<i32> {
    let wanted = format!("{JOB_MARKER_VAR}={marker}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut groups: Vec<i32> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
                environ
                    .split(|b| *b == 0)
                    .any(|var| var == wanted.as_bytes())
            })
        })
        .filter_map(|pid| nix::unistd::getpgid(Some(Pid::from_raw(pid))).ok())
        .map(Pid::as_raw)
        .collect();
    groups.sort_unstable();
    groups.dedup();
    groups
}

pub(crate) async fn kill_recorded(procs: &[NodeProc]) {
    let boot = boot_id();
    let pgids: Vec<i32> = procs
        .iter()
        .filter(|proc| proc.boot_id == boot)
        .map(|proc| proc.pgid)
        .collect();
    terminate_groups(&pgids, KILL_GRACE).await;
}

/// SIGTERM to each group, SIGKILL to what is still running after `grace`;
/// returns once the groups are gone (or SIGKILL has had time to land).
pub(crate) async fn terminate_groups(pgids: &[i32], grace: Duration) {
    // 0 and 1 would mean our own group and init's: never valid job groups.
    let mut alive: Vec<i32> = pgids
        .iter()
        .copied()
        .filter(|&pgid| pgid > 1 && group_alive(pgid))
        .collect();
    for &pgid in &alive {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
    }
    let mut deadline = Instant::now() + grace;
    let mut killed = false;
    loop {
        alive.retain(|&pgid| group_alive(pgid));
        if alive.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            if killed {
                tracing::warn!(?alive, "process groups survive SIGKILL");
                return;
            }
            for &pgid in &alive {
                let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
            }
            killed = true;
            deadline = Instant::now() + KILL_SETTLE;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Whether any member of the group still runs. Zombies do not count: they
/// are dead, only not yet reaped by a parent that may not be us.
pub(crate) fn group_alive(pgid: i32) -> bool {
    if killpg(Pid::from_raw(pgid), None).is_err() {
        return false;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .any(|pid| proc_stat(pid).is_some_and(|stat| stat.pgrp == pgid && !stat.is_dead()))
}

/// Whether `pid` runs (and is not a zombie).
pub(crate) fn pid_alive(pid: i32) -> bool {
    pid > 0
        && kill(Pid::from_raw(pid), None).is_ok()
        && proc_stat(pid).is_none_or(|stat| !stat.is_dead())
}

struct ProcStat {
    state: char,
    pgrp: i32,
}

impl ProcStat {
    fn is_dead(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

fn proc_stat(pid: i32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start
    // after the last ')'.
    let mut fields = text[text.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some(ProcStat { state, pgrp })
}

/// The pid of this cluster's daemon, if one runs.
pub(crate) fn live_daemon(dir: &ClusterDir) -> Option<i32> {
    let pid = recorded_daemon_pid(dir)?;
    (pid > 1 && pid_alive(pid) && looks_like_daemon(pid)).then_some(pid)
}

pub(crate) fn recorded_daemon_pid(dir: &ClusterDir) -> Option<i32> {
    std::fs::read_to_string(dir.daemon_pid())
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A daemon killed with -9 leaves its pid file behind, and the pid may have
/// been reused since: SIGUSR1's default action would kill that stranger.
fn looks_like_daemon(pid: i32) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => cmdline.split(|&byte| byte == 0).any(|arg| arg == b"daemon"),
        // Without /proc (not Linux) the pid file is all there is to go by.
        Err(_) => !std::path::Path::new("/proc/self").exists(),
    }
}

/// Asks the daemon to look at the state now rather than at its next poll.
pub(crate) fn wake_daemon(dir: &ClusterDir) {
    if let Some(pid) = live_daemon(dir) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGUSR1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[tokio::test]
    async fn terminating_a_group_kills_its_background_children() {
        let temp = tempfile::tempdir().unwrap();
        let child_pid = temp.path().join("child.pid");
        let mut leader = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "trap '' TERM; sleep 1000 & echo $! > {}; wait",
                child_pid.display()
            ))
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = leader.id() as i32;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let grandchild: i32 = loop {
            if let Some(pid) = std::fs::read_to_string(&child_pid)
                .ok()
                .and_then(|text| text.trim().parse().ok())
            {
                break pid;
            }
            assert!(std::time::Instant::now() < deadline, "child never started");
            tokio::time::sleep(POLL).await;
        };
        assert!(group_alive(pgid));
        // The leader ignores SIGTERM: only the SIGKILL after the grace ends it.
        terminate_groups(&[pgid], Duration::from_millis(200)).await;
        leader.wait().unwrap();
        assert!(!group_alive(pgid));
        assert!(!pid_alive(grandchild));
    }

    #[test]
    fn our_own_group_is_never_a_target() {
        assert!(!pid_alive(0));
        assert!(pid_alive(std::process::id() as i32));
    }
}
