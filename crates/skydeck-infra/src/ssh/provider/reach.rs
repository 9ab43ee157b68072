//! Whether a host answers, within a bound: a host cut off holds a command
//! on a kept connection until ssh's keepalives give up (a minute), and a
//! status check or a teardown must not wait that long to say which host
//! is lost.

use crate::runner::CommandRunner;
use crate::{InfraError, Result};
use std::future::Future;
use std::time::Duration;

/// How long a host has to answer a check. A command over a kept
/// connection takes milliseconds; a new connection, a handshake or two.
pub(super) const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// `work` on `host`, or an error naming the host when it fails or takes
/// longer than [`ANSWER_WITHIN`].
pub(super) async fn answered<T>(host: &str, work: impl Future<Output = Result<T>>) -> Result<T> {
    match tokio::time::timeout(ANSWER_WITHIN, work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(InfraError::Command(format!(
            "host {host} is unreachable: {err}"
        ))),
        Err(_) => Err(InfraError::Command(format!(
            "host {host} is unreachable: no answer within {}s (its network is down, or it hangs)",
            ANSWER_WITHIN.as_secs()
        ))),
    }
}

/// Whether `runner`'s host runs a command at all, within [`ANSWER_WITHIN`].
pub(super) async fn probe(host: &str, runner: &dyn CommandRunner) -> Result<()> {
    answered(host, async {
        let out = runner.run(&["true".to_owned()], None).await?;
        if out.success() {
            Ok(())
        } else {
            Err(InfraError::Command(format!(
                "`true` exited with {}: {}",
                out.code,
                out.stderr.trim()
            )))
        }
    })
    .await
}
