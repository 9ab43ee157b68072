//! Settling requests whose server died.
//!
//! A RUNNING request belongs to one server. When that server is gone (killed,
//! crashed, its node lost) the request is either resumed — put back to
//! PENDING, because its handler is idempotent — or failed with a reason that
//! says the server restarted. Nothing stays RUNNING forever.

use super::{Executor, now};
use crate::ops::{OnRestart, Op};
use crate::request_log::RequestLog;
use crate::skypilot::exception;
use skydeck_store::{Outcome, RequestFilter, ServerInfo, StoreError};
use skydeck_types::{RequestError, RequestStatus};
use std::collections::HashSet;

/// A request resumed this many times is failed instead: something in it
/// probably kills the server.
const MAX_ATTEMPTS: i64 = 3;

impl Executor {
    /// Whether `server` still runs, judged from this process.
    fn is_alive(&self, server: &ServerInfo, me: &ServerInfo) -> bool {
        if server.id == me.id {
            return true;
        }
        if self.exclusive {
            return false;
        }
        if now() - server.heartbeat_at > self.peer_timeout.as_secs_f64() {
            return false;
        }
        if server.hostname == me.hostname {
            // Same machine: the pid tells at once. Our own pid under another
            // id is a previous incarnation (a container restarted in place).
            return server.pid != me.pid && pid_alive(server.pid);
        }
        true
    }

    /// Finds RUNNING requests whose server is gone and resumes or fails them.
    /// Returns how many were settled.
    pub async fn settle_orphans(&self, me: &ServerInfo) -> Result<usize, StoreError> {
        let servers = self.store.list_servers().await?;
        let mut live: HashSet<String> = HashSet::from([me.id.clone()]);
        for server in &servers {
            if self.is_alive(server, me) {
                live.insert(server.id.clone());
            } else {
                tracing::info!(server.id = %server.id, server.pid = server.pid, "removing a dead API server");
                self.store.remove_server(&server.id).await?;
            }
        }
        let running = self
            .store
            .list_requests(&RequestFilter {
                statuses: Some(vec![RequestStatus::Running]),
                ..Default::default()
            })
            .await?;
        let mut settled = 0;
        for request in running {
            let Some(owner) = request.server_id.as_deref() else {
                continue;
            };
            if live.contains(owner) {
                continue;
            }
            let log = RequestLog::new(&self.logs, &request.id, self.signals.clone());
            let resumable = Op::from_name(&request.name)
                .is_some_and(|op| op.on_restart() == OnRestart::Resume)
                && request.attempts < MAX_ATTEMPTS;
            let done = if resumable {
                let note = "The API server restarted while this request ran; resuming it.";
                let requeued = self.store.requeue_request(&request.id, owner, note).await?;
                if requeued {
                    log.line(note);
                }
                requeued
            } else {
                let error = RequestError::new(
                    exception::REQUEST_INTERRUPTED,
                    format!(
                        "Request {:?} was interrupted by an API server restart and will not be \
                         resumed. Please re-submit the original request.",
                        request.id
                    ),
                );
                log.line(&error.message);
                self.store
                    .finish_request(&request.id, owner, &Outcome::Failed(error), now())
                    .await?
                    .is_some()
            };
            if done {
                tracing::info!(request.id = %request.id, request.name = %request.name, resumed = resumable, "settled a request of a dead server");
                self.signals.notify(&request.id);
                settled += 1;
            }
        }
        if settled > 0 {
            self.long.wake.notify_one();
            self.short.wake.notify_one();
        }
        Ok(settled)
    }
}

fn pid_alive(pid: i64) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    }
}
