//! Breaking and mending one test SSH host (scripts/ssh-hosts-ctl.sh), and
//! running a command on a host outside anything Skydeck set up.

use super::ssh_hosts::TestHosts;
use std::path::Path;

/// scripts/ssh-hosts-ctl.sh on one host: `cut`, `restore`, `stop`,
/// `start` or `reboot`.
pub fn ctl(hosts: &TestHosts, host: &str, action: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/ssh-hosts-ctl.sh");
    let status = std::process::Command::new("bash")
        .arg(script)
        .arg(&hosts.dir)
        .args([host, action])
        .status()
        .expect("run ssh-hosts-ctl.sh");
    assert!(status.success(), "ssh-hosts-ctl.sh {host} {action} failed");
}

/// Mends a host whatever the test's outcome: its link up, its sshd
/// running.
pub struct Mend<'a>(pub &'a TestHosts, pub &'static str);

impl Drop for Mend<'_> {
    fn drop(&mut self) {
        ctl(self.0, self.1, "restore");
        ctl(self.0, self.1, "start");
    }
}

/// Runs `line` on test host `host` with the tests' own key.
pub fn on_host(hosts: &TestHosts, host: &str, line: &str) -> String {
    let out = std::process::Command::new("ssh")
        .arg("-F")
        .arg(&hosts.ssh_config)
        .args([host, line])
        .output()
        .unwrap();
    assert!(out.status.success(), "{line} on {host}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
