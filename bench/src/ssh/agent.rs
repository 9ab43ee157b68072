//! A cluster's agent on a test host, seen from this machine: the hosts
//! share its filesystem (all but /root and /tmp, which are the host's
//! directory here) and their PID namespaces are children of this one, so
//! the daemon's state file and CPU can be read without asking the host.

use super::hosts::TestHost;
use crate::clusters::jobs::AgentView;

/// Where cluster `cluster`'s agent keeps its state on `host`, and its
/// daemon's pid here, when it can be found.
pub fn view(host: &TestHost, cluster: &str) -> AgentView {
    let dir = host
        .dir
        .join("root/.skydeck/clusters")
        .join(cluster)
        .join("agent");
    let daemon = std::fs::read_to_string(dir.join("daemon.pid"))
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok())
        .and_then(|inner| daemon_here(inner, cluster));
    AgentView {
        daemon,
        state_file: Some(dir.join("state.json")),
    }
}

/// The pid, in this namespace, of the `skydeck agent daemon` of `cluster`
/// whose pid in its own namespace is `inner`; none unless exactly one
/// process fits.
fn daemon_here(inner: u32, cluster: &str) -> Option<u32> {
    let suffix = format!("/.skydeck/clusters/{cluster}");
    let found: Vec<u32> = std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            innermost_pid(&status) == Some(inner) && is_daemon_of(&cmdline, &suffix)
        })
        .collect();
    match found[..] {
        [pid] => Some(pid),
        _ => None,
    }
}

/// The last field of `NSpid:` in `/proc/<pid>/status`: the pid in the
/// process's own namespace.
fn innermost_pid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("NSpid:"))?
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

/// `… agent daemon --cluster-dir <home>/.skydeck/clusters/<cluster>`.
fn is_daemon_of(cmdline: &[u8], dir_suffix: &str) -> bool {
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let has = |word: &[u8]| args.contains(&word);
    let dir = args
        .iter()
        .position(|a| *a == b"--cluster-dir")
        .and_then(|i| args.get(i + 1));
    has(b"agent")
        && has(b"daemon")
        && dir.is_some_and(|d| String::from_utf8_lossy(d).ends_with(dir_suffix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pid_inside_the_namespace_is_the_last_nspid_field() {
        assert_eq!(
            innermost_pid("Name:\tskydeck\nNSpid:\t4242\t17\n"),
            Some(17)
        );
        assert_eq!(innermost_pid("NSpid:\t99\n"), Some(99));
        assert_eq!(innermost_pid("Name:\tx\n"), None);
    }

    #[test]
    fn only_the_clusters_own_daemon_counts() {
        let cmd = b"/root/.skydeck/clusters/c/bin/skydeck\0agent\0daemon\0--cluster-dir\0/root/.skydeck/clusters/c\0";
        assert!(is_daemon_of(cmd, "/.skydeck/clusters/c"));
        assert!(!is_daemon_of(cmd, "/.skydeck/clusters/other"));
        let submit = b"skydeck\0agent\0submit\0--cluster-dir\0/root/.skydeck/clusters/c\0";
        assert!(!is_daemon_of(submit, "/.skydeck/clusters/c"));
    }
}
