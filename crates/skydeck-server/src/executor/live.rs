//! Requests that run for a reader connected now: a followed job log.
//!
//! As SkyPilot runs its log requests outside its worker pools, these take
//! no worker: a hundred people following logs never hold up a launch. Each
//! runs in its own task, counted (the `skydeck_log_follows` gauge), with
//! its output going straight to the reader's HTTP response. When the reader
//! goes away — whatever killed it — the response's channel closes and the
//! request is cancelled at once, which stops the follow on the cluster.

use super::{Executor, now};
use crate::request_log::RequestLog;
use crate::skypilot::exception;
use bytes::Bytes;
use skydeck_store::{NewRequest, Outcome, StoreError};
use skydeck_types::RequestError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

/// How long a live request waits for its reader to attach. The handler
/// that accepted it attaches at once; this only bounds a handler that
/// failed in between.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(30);

/// Pieces of output a live request may send ahead of its reader.
const AHEAD: usize = 16;

/// Outputs of live requests not yet taken by their HTTP response.
#[derive(Default)]
pub(super) struct Unattached {
    outputs: Mutex<HashMap<String, Waiting>>,
}

/// A live request's output, and how to tell the request it was taken.
struct Waiting {
    output: mpsc::Receiver<Bytes>,
    attached: oneshot::Sender<()>,
}

impl Executor {
    /// Starts `request` now, outside the pools; its output waits for
    /// [`Executor::attach_live`].
    pub(super) async fn submit_live(
        self: &Arc<Self>,
        request: NewRequest,
    ) -> Result<(), StoreError> {
        let record = self
            .store
            .insert_running_request(&request, &self.server_id, now())
            .await?;
        self.register_running(&record.id);
        let (output, reader) = mpsc::channel(AHEAD);
        let (attached, on_attach) = oneshot::channel();
        self.live.outputs.lock().expect("live lock").insert(
            record.id.clone(),
            Waiting {
                output: reader,
                attached,
            },
        );
        let span =
            tracing::info_span!("request", request.id = %record.id, request.name = %record.name);
        let executor = self.clone();
        self.tasks.spawn(
            async move {
                let id = record.id.clone();
                let attached = tokio::time::timeout(ATTACH_TIMEOUT, on_attach).await;
                if !matches!(attached, Ok(Ok(()))) {
                    executor.live.outputs.lock().expect("live lock").remove(&id);
                    drop(output);
                    executor.settle_abandoned(&id).await;
                    return;
                }
                executor.run_live(record, output).await;
            }
            .instrument(span),
        );
        Ok(())
    }

    /// The output of live request `id`, for the one response that streams
    /// it; `None` if it is not a live request of this process (or was
    /// taken already).
    pub fn attach_live(&self, id: &str) -> Option<mpsc::Receiver<Bytes>> {
        let waiting = self.live.outputs.lock().expect("live lock").remove(id)?;
        let _ = waiting.attached.send(());
        Some(waiting.output)
    }

    async fn run_live(
        self: Arc<Self>,
        request: skydeck_store::RequestRecord,
        output: mpsc::Sender<Bytes>,
    ) {
        let _counted = crate::metrics::GaugeGuard::new(self.metrics.log_follows());
        let id = request.id.clone();
        let cancel = self.cancel_token(&id);
        let reader = output.clone();
        // A log read once to its end is also kept, for a second reader of
        // the same request (see `request_log.rs`).
        let once = request.body.get("follow") == Some(&serde_json::Value::Bool(false));
        let log = Arc::new(RequestLog::live(
            &self.logs,
            &id,
            self.signals.clone(),
            output,
            once,
        ));
        let work = self.perform(
            &id,
            &request.name,
            &request.user_id,
            &request.workspace,
            request.body,
            log,
        );
        // Dropping `work` is what stops it (and the command it runs).
        let outcome = tokio::select! {
            outcome = work => Some(outcome),
            () = cancel.cancelled() => None,
            () = reader.closed() => {
                tracing::debug!(request.id = %id, "the reader left; cancelling");
                if let Err(err) = self.cancel(&id).await {
                    tracing::warn!(request.id = %id, error = %err, "cannot cancel a request whose reader left");
                }
                None
            }
            () = self.stop_claiming.cancelled() => Some(Outcome::Failed(RequestError::new(
                exception::RUNTIME_ERROR,
                "The API server stopped while following this log; run the command again.",
            ))),
        };
        if let Some(outcome) = outcome {
            self.record_outcome(&id, &outcome).await;
        }
        self.running.lock().expect("running lock").remove(&id);
        // The reader's stream ends once `reader` (the last sender) is
        // dropped, after the outcome is recorded and visible.
        drop(reader);
        self.signals.notify(&id);
    }

    /// A live request nobody attached to: cancelled, so it is not left
    /// RUNNING.
    async fn settle_abandoned(&self, id: &str) {
        tracing::warn!(request.id = %id, "no reader attached to a live request; cancelling it");
        if let Err(err) = self.cancel(id).await {
            tracing::warn!(request.id = %id, error = %err, "cannot cancel an abandoned request");
        }
        self.running.lock().expect("running lock").remove(id);
        self.signals.notify(id);
    }
}
