//! What ssh's failures mean, said so that the reader knows what to do.

use super::target::SshTarget;
use crate::InfraError;
use std::path::Path;

/// Turns a failed master connection into a message that names the cause
/// and the fix.
pub(super) fn connect_error(
    target: &SshTarget,
    known_hosts: &Path,
    error: &openssh::Error,
) -> InfraError {
    let detail = match error {
        openssh::Error::Connect(io) => io.to_string(),
        other => format!("{other}"),
    };
    let via = if target.jump.is_empty() {
        String::new()
    } else {
        let hops: Vec<&str> = target.jump.iter().map(|h| h.as_str()).collect();
        format!(" (through {})", hops.join(", "))
    };
    if detail.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") {
        let offending = detail
            .lines()
            .find_map(|l| {
                l.split_once("Offending ")
                    .and_then(|(_, rest)| rest.split_once(" key in "))
            })
            .map(|(_, at)| at.trim().to_owned());
        let remove = match offending {
            Some(at) => format!("remove line {at} (file:line)"),
            None => format!("remove the host's line from {}", known_hosts.display()),
        };
        // The name the key is recorded under: the address an alias's
        // HostName gives (`ssh-keygen -R ALIAS` would find nothing).
        let recorded = detail
            .lines()
            .find_map(|l| {
                l.split_once("Host key for ")
                    .and_then(|(_, rest)| rest.split_once(" has changed"))
                    .map(|(host, _)| host.trim().to_owned())
            })
            .filter(|h| !h.is_empty() && !h.contains(char::is_whitespace))
            .unwrap_or_else(|| target.host.to_string());
        return InfraError::Refused(format!(
            "the host key of {target}{via} changed since this pool first recorded it: \
             the host was reinstalled, or something is in between. If the change is \
             expected, {remove}, or run `ssh-keygen -R {recorded} -f {}`, and connect again",
            known_hosts.display()
        ));
    }
    let last = detail
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_owned();
    if detail.contains("Permission denied") {
        let key = match &target.identity_file {
            Some(key) => format!("the key {}", key.display()),
            None => "the keys from the SSH config and agent".to_owned(),
        };
        return InfraError::Command(format!(
            "{target}{via} refused {key} ({last}): add its public key to the user's \
             ~/.ssh/authorized_keys on the host, or give the pool the right identity_file"
        ));
    }
    InfraError::Command(format!("cannot reach {target}{via}: {last}"))
}
