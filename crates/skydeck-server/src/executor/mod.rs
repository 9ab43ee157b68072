//! The request executor: runs accepted requests on two bounded pools.
//!
//! The database is the queue. Handlers insert a PENDING row and wake a pool;
//! each pool claims the oldest PENDING row of its kind (atomically, so
//! replicas sharing PostgreSQL never run one request twice), runs it, and
//! records the outcome. Waking is only a shortcut: pools also poll, so
//! requests accepted by another replica or before a restart still run.

mod finished;
mod live;
mod recovery;

use finished::RecentlyFinished;

use crate::config::ServerConfig;
use crate::ops::{self, Op, RequestContext};
use crate::request_log::{LogDir, RequestLog};
use crate::signals::Signals;
use crate::skypilot::exception;
use futures_util::FutureExt;
use skydeck_store::{NewRequest, Outcome, RequestRecord, Store, StoreError};
use skydeck_types::{RequestError, RequestStatus, ScheduleType};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// How often an idle pool looks for requests it was not woken for.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Seconds since the Unix epoch, as SkyPilot stores times.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

struct Running {
    cancel: CancellationToken,
}

struct Pool {
    /// One permit per worker: held by a running request, and by the pool's
    /// claim loop while it looks for work.
    permits: Arc<Semaphore>,
    wake: Notify,
    /// Stops this pool's running requests (they go back to PENDING).
    interrupt: CancellationToken,
}

pub struct Executor {
    store: Arc<dyn Store>,
    server_id: String,
    logs: LogDir,
    signals: Arc<Signals>,
    running: Mutex<HashMap<String, Running>>,
    finished: RecentlyFinished,
    live: live::Unattached,
    long: Pool,
    short: Pool,
    stop_claiming: CancellationToken,
    tasks: TaskTracker,
    hold: HashSet<String>,
    infra: Arc<crate::clusters::Infra>,
    /// Only one server may use the database (SQLite): every other server
    /// row is a dead predecessor.
    exclusive: bool,
    peer_timeout: Duration,
    auth_enabled: bool,
    live_config: Arc<crate::live_config::LiveConfig>,
    policy_timeout: Duration,
    metrics: Arc<crate::metrics::Metrics>,
    /// Managed jobs this server drives (see `managed_jobs/`).
    pub(crate) managed: crate::managed_jobs::Driving,
}

impl Executor {
    pub fn new(
        services: &crate::state::Services,
        server_id: String,
        config: &ServerConfig,
        signals: Arc<Signals>,
        exclusive: bool,
    ) -> std::io::Result<Arc<Self>> {
        let crate::state::Services {
            store,
            infra,
            live_config,
            metrics,
        } = services.clone();
        let pool = |workers| Pool {
            permits: Arc::new(Semaphore::new(workers)),
            wake: Notify::new(),
            interrupt: CancellationToken::new(),
        };
        Ok(Arc::new(Self {
            store,
            server_id,
            logs: LogDir::new(config.paths.request_logs())?,
            signals,
            running: Mutex::new(HashMap::new()),
            finished: RecentlyFinished::default(),
            live: live::Unattached::default(),
            long: pool(config.long_workers),
            short: pool(config.short_workers),
            stop_claiming: CancellationToken::new(),
            tasks: TaskTracker::new(),
            hold: config.hold_requests.clone(),
            infra,
            exclusive,
            peer_timeout: config.peer_timeout,
            auth_enabled: config.auth.is_enabled(),
            live_config,
            policy_timeout: config.admin_policy_timeout,
            metrics,
            managed: crate::managed_jobs::Driving::new(
                config.paths.managed_jobs(),
                config.peer_timeout,
            ),
        }))
    }

    pub fn server_id(&self) -> &str {
        &self.server_id
    }

    pub fn logs(&self) -> &LogDir {
        &self.logs
    }

    /// The server config, for the operation that replaces it.
    pub fn live_config(&self) -> &Arc<crate::live_config::LiveConfig> {
        &self.live_config
    }

    pub fn signals(&self) -> &Arc<Signals> {
        &self.signals
    }

    fn pool(&self, schedule: ScheduleType) -> &Pool {
        match schedule {
            ScheduleType::Long => &self.long,
            ScheduleType::Short => &self.short,
        }
    }

    /// Starts both pools and the managed-jobs controller.
    pub fn start(self: &Arc<Self>) {
        for schedule in [ScheduleType::Long, ScheduleType::Short] {
            let executor = self.clone();
            tokio::spawn(async move { executor.pool_loop(schedule).await });
        }
        tokio::spawn(crate::managed_jobs::control(Arc::downgrade(self)));
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn infra(&self) -> &Arc<crate::clusters::Infra> {
        &self.infra
    }

    /// What an operation run on the server's own behalf works with: as if
    /// `user_id` had sent request `id` in `workspace`, logging to `log`.
    pub(crate) fn context(
        self: &Arc<Self>,
        id: &str,
        user_id: &str,
        workspace: &str,
        log: Arc<RequestLog>,
    ) -> RequestContext {
        RequestContext {
            id: id.to_owned(),
            user_id: user_id.to_owned(),
            log,
            store: self.store.clone(),
            infra: self.infra.clone(),
            executor: Arc::downgrade(self),
            auth_enabled: self.auth_enabled,
            config: self.live_config.get(),
            workspace: workspace.to_owned(),
            policy_timeout: self.policy_timeout,
        }
    }

    /// Accepts a request: once this returns, the request is durable.
    ///
    /// Where a worker is free, the request skips the queue. An operation
    /// that answers at once runs right here and is stored finished, so
    /// accepting and answering it costs one write; any other is stored
    /// RUNNING, claimed by this server in the same write. Otherwise it is
    /// stored PENDING for the pool's loop, which claims whatever is PENDING
    /// as soon as a worker frees up — so the fast paths only ever jump a
    /// queue that is empty here.
    ///
    /// A request that follows a reader (a job log) skips the pools
    /// altogether: see `live.rs`.
    pub async fn submit(self: &Arc<Self>, request: NewRequest) -> Result<(), StoreError> {
        if Op::from_name(&request.name).is_some_and(Op::runs_live) {
            return self.submit_live(request).await;
        }
        let pool = self.pool(request.schedule_type);
        let permit = if self.stop_claiming.is_cancelled() {
            None
        } else {
            pool.permits.clone().try_acquire_owned().ok()
        };
        let Some(permit) = permit else {
            self.store.insert_request(&request).await?;
            pool.wake.notify_one();
            return Ok(());
        };
        let at_once = Op::from_name(&request.name)
            .is_some_and(|op| op.answers_at_once_for(&request.body))
            && !self.hold.contains(&request.name);
        if at_once {
            let log = Arc::new(RequestLog::new(
                &self.logs,
                &request.id,
                self.signals.clone(),
            ));
            let started_at = now();
            let outcome = self
                .perform(
                    &request.id,
                    &request.name,
                    &request.user_id,
                    &request.workspace,
                    request.body.clone(),
                    log,
                )
                .await;
            let record = self
                .store
                .insert_finished_request(&request, started_at, &outcome, now())
                .await?;
            drop(permit);
            self.remember_finished(record);
            return Ok(());
        }
        let record = self
            .store
            .insert_running_request(&request, &self.server_id, now())
            .await?;
        self.register_running(&record.id);
        self.spawn_run(record, permit);
        Ok(())
    }

    /// True while this process runs the request.
    pub fn is_running_here(&self, id: &str) -> bool {
        self.running.lock().expect("running lock").contains_key(id)
    }

    /// Cancels a PENDING or RUNNING request; returns the status it had.
    pub async fn cancel(&self, id: &str) -> Result<Option<RequestStatus>, StoreError> {
        let previous = self.store.cancel_request(id, now()).await?;
        if previous.is_some() {
            self.interrupt_local(id);
            self.signals.notify(id);
            // Cancellations are rare; reading the row back for its name and
            // age keeps the cancel query itself simple.
            if let Ok(Some(record)) = self.store.get_request(id).await {
                self.count_finished(&record);
            }
        }
        Ok(previous)
    }

    /// Forgets requests deleted from the store (retention), so that they
    /// are not answered from memory either.
    pub fn forget_finished(&self, ids: &[String]) {
        for id in ids {
            self.finished.remove(id);
        }
    }

    /// Keeps a finished request for waiting clients and counts it.
    fn remember_finished(&self, record: RequestRecord) {
        self.count_finished(&record);
        self.finished.insert(record);
    }

    fn count_finished(&self, record: &RequestRecord) {
        let ended = record.finished_at.unwrap_or_else(now);
        self.metrics
            .observe_request(&record.name, record.status, ended - record.created_at);
    }

    fn interrupt_local(&self, id: &str) {
        if let Some(running) = self.running.lock().expect("running lock").get(id) {
            running.cancel.cancel();
        }
    }

    /// Waits until the request has finished. Ends early only when the
    /// request does not exist or the server is shutting down.
    pub async fn wait_finished(
        &self,
        id: &str,
        shutdown: &CancellationToken,
    ) -> Result<WaitResult, StoreError> {
        loop {
            let subscription = self.signals.subscribe(id);
            let notified = subscription.notified();
            if let Some(record) = self.finished.get(id) {
                return Ok(WaitResult::Finished(Box::new(RequestRecord::clone(
                    &record,
                ))));
            }
            // Running here, it notifies when it ends and its record is then
            // in `finished` (or, if cancelled, in the database): no need to
            // read the row now. `run` fills `finished` before it leaves
            // `running`, so one of the two checks sees a request that just
            // ended.
            if self.is_running_here(id) {
                tokio::select! {
                    _ = notified => {}
                    _ = shutdown.cancelled() => return Ok(WaitResult::ShuttingDown),
                }
                continue;
            }
            let Some(record) = self.store.get_request(id).await? else {
                return Ok(WaitResult::Missing);
            };
            if record.status.is_finished() {
                return Ok(WaitResult::Finished(Box::new(record)));
            }
            // The poll covers requests run by another replica, whose
            // completion this process is not told about.
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
                _ = shutdown.cancelled() => return Ok(WaitResult::ShuttingDown),
            }
        }
    }

    async fn pool_loop(self: Arc<Self>, schedule: ScheduleType) {
        let permits = self.pool(schedule).permits.clone();
        loop {
            let permit = tokio::select! {
                permit = permits.clone().acquire_owned() => permit.expect("never closed"),
                _ = self.stop_claiming.cancelled() => return,
            };
            let Some(request) = self.next_request(schedule).await else {
                return;
            };
            self.spawn_run(request, permit);
        }
    }

    /// Registers a claimed request before anyone can look, so that a cancel
    /// arriving now finds it here.
    fn register_running(&self, id: &str) {
        self.running.lock().expect("running lock").insert(
            id.to_owned(),
            Running {
                cancel: CancellationToken::new(),
            },
        );
    }

    fn spawn_run(self: &Arc<Self>, request: RequestRecord, permit: OwnedSemaphorePermit) {
        let span =
            tracing::info_span!("request", request.id = %request.id, request.name = %request.name);
        let executor = self.clone();
        self.tasks
            .spawn(async move { executor.run(request, permit).await }.instrument(span));
    }

    /// Claims the next request of the pool, waiting for one; `None` once the
    /// server stops.
    async fn next_request(&self, schedule: ScheduleType) -> Option<RequestRecord> {
        let pool = self.pool(schedule);
        loop {
            if self.stop_claiming.is_cancelled() {
                return None;
            }
            match self
                .store
                .claim_next(schedule, &self.server_id, now())
                .await
            {
                Ok(Some(request)) => {
                    self.register_running(&request.id);
                    return Some(request);
                }
                Ok(None) => {}
                Err(err) => tracing::warn!(pool = %schedule, error = %err, "cannot claim requests"),
            }
            tokio::select! {
                _ = pool.wake.notified() => {}
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
                _ = self.stop_claiming.cancelled() => return None,
            }
        }
    }

    /// The token that cancels running request `id` (a fresh one if it is
    /// no longer registered as running).
    fn cancel_token(&self, id: &str) -> CancellationToken {
        self.running
            .lock()
            .expect("running lock")
            .get(id)
            .map(|r| r.cancel.clone())
            .unwrap_or_default()
    }

    async fn run(self: Arc<Self>, request: RequestRecord, _permit: OwnedSemaphorePermit) {
        let id = request.id.clone();
        let cancel = self.cancel_token(&id);
        let log = Arc::new(RequestLog::new(&self.logs, &id, self.signals.clone()));
        let interrupt = &self.pool(request.schedule_type).interrupt;
        let work = self.perform(
            &id,
            &request.name,
            &request.user_id,
            &request.workspace,
            request.body,
            log.clone(),
        );
        // Dropping `work` is what stops it.
        let outcome = tokio::select! {
            outcome = work => Some(outcome),
            _ = cancel.cancelled() => None,
            _ = interrupt.cancelled() => {
                self.requeue(&id, &log, "The API server stopped while this request ran; it resumes when a server starts.").await;
                None
            }
        };
        if let Some(outcome) = outcome {
            self.record_outcome(&id, &outcome).await;
        }
        self.running.lock().expect("running lock").remove(&id);
        self.signals.notify(&id);
    }

    /// Runs the operation a request names to its end. A panic becomes a
    /// failure of the request (and one log line), never a dead server.
    async fn perform(
        self: &Arc<Self>,
        id: &str,
        name: &str,
        user_id: &str,
        workspace: &str,
        body: serde_json::Value,
        log: Arc<RequestLog>,
    ) -> Outcome {
        let Some(op) = Op::from_name(name) else {
            return Outcome::Failed(RequestError::new(
                exception::NOT_SUPPORTED,
                format!(
                    "This API server does not know the request {name:?}; it may have been \
                     submitted to a newer Skydeck."
                ),
            ));
        };
        let ctx = self.context(id, user_id, workspace, log);
        let hold = self.hold.contains(name);
        let tool = crate::client_tool::of_body(&body);
        let work = std::panic::AssertUnwindSafe(async move {
            if hold {
                ctx.log.line("Held by SKYDECK_TEST_HOLD_REQUESTS.");
                std::future::pending::<()>().await;
            }
            ops::execute(op, &ctx, body).await
        });
        match work.catch_unwind().await {
            Ok(Ok(value)) => Outcome::Succeeded(value),
            // Hints name the commands of the tool the request came from.
            Ok(Err(error)) => Outcome::Failed(RequestError {
                message: tool.render(&error.message),
                ..error
            }),
            Err(panic) => {
                tracing::error!(request.id = %id, panic = panic_message(&*panic), "request panicked");
                Outcome::Failed(RequestError::new(
                    exception::RUNTIME_ERROR,
                    "The request failed with an internal error; the API server log has the details.",
                ))
            }
        }
    }

    async fn record_outcome(&self, id: &str, outcome: &Outcome) {
        // Retried because losing an outcome would leave the request RUNNING
        // until the next restart settles it.
        for attempt in 1..=5u32 {
            match self
                .store
                .finish_request(id, &self.server_id, outcome, now())
                .await
            {
                Ok(Some(record)) => {
                    self.remember_finished(record);
                    return;
                }
                // Cancelled meanwhile: the cancellation stands.
                Ok(None) => return,
                Err(err) => {
                    tracing::warn!(request.id = %id, attempt, error = %err, "cannot record outcome");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
            }
        }
        tracing::error!(request.id = %id, "giving up recording the outcome; the next start settles it");
    }

    async fn requeue(&self, id: &str, log: &RequestLog, note: &str) {
        match self.store.requeue_request(id, &self.server_id, note).await {
            Ok(true) => log.line(note),
            Ok(false) => {}
            Err(err) => tracing::warn!(request.id = %id, error = %err, "cannot requeue request"),
        }
    }

    /// Stops intake and drains: short requests get `grace` to finish, long
    /// ones go back to PENDING at once (their handlers resume). Whatever is
    /// still running after `grace` is requeued too.
    pub async fn shutdown(&self, grace: Duration) {
        self.stop_claiming.cancel();
        self.managed
            .stop(self.store.as_ref(), &self.server_id)
            .await;
        self.long.interrupt.cancel();
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("short requests still running after the grace period; requeueing them");
            self.short.interrupt.cancel();
            self.tasks.wait().await;
        }
    }

    /// Ids of requests this process runs now.
    pub fn running_ids(&self) -> Vec<String> {
        self.running
            .lock()
            .expect("running lock")
            .keys()
            .cloned()
            .collect()
    }

    /// Stops local work on requests another replica cancelled.
    pub async fn apply_remote_cancellations(&self) -> Result<(), StoreError> {
        let ids = self.running_ids();
        if ids.is_empty() {
            return Ok(());
        }
        for (id, status) in self.store.request_statuses(&ids).await? {
            if status == RequestStatus::Cancelled {
                self.interrupt_local(&id);
                self.signals.notify(&id);
            }
        }
        Ok(())
    }
}

/// The text a panic was raised with, when it has one.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// What waiting for a request ended with.
pub enum WaitResult {
    Finished(Box<RequestRecord>),
    Missing,
    ShuttingDown,
}
