//! One managed job's driver: a loop that reads the job from the database,
//! takes the next step for its first unfinished task, and writes where it
//! got to. See `mod.rs` for why every step may be repeated.

use super::placement;
use crate::executor::{Executor, now};
use crate::ops::RequestContext;
use crate::request_log::{LogDir, RequestLog};
use skydeck_agent::protocol::JobStatus;
use skydeck_infra::LogFollow;
use skydeck_store::{ClusterStatus, ManagedJob, ManagedTask, StoreError};
use skydeck_types::RequestError;
use skydeck_types::bodies::{BaseBody, LaunchBody, StopOrDownBody};
use skydeck_types::managed_jobs::{JobRecovery, ManagedJobStatus as Status, ScheduleState};
use skydeck_types::names::{BlobId, ClusterName};
use skydeck_types::task::{EnvValue, TaskDag, parse_dag};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How often a driver looks for a cancel while it waits on a launch or a
/// job.
const CANCEL_POLL: Duration = Duration::from_secs(1);
/// The wait before trying a step again after the database or the
/// infrastructure failed it.
const RETRY_AFTER: Duration = Duration::from_secs(5);
/// Failed attempts at reading a running job's state, on a cluster that
/// looks healthy, before the cluster counts as lost.
const MONITOR_ERRORS: u32 = 5;

/// Why a driver stops or pauses a step.
enum Halt {
    /// Another server holds the lease now: leave the job to it.
    LeaseLost,
    /// The job is done, or gone from the database.
    Done,
    /// A step failed for a reason that may pass: try again later.
    Retry(String),
}

impl From<StoreError> for Halt {
    fn from(err: StoreError) -> Self {
        Halt::Retry(format!("the database: {err}"))
    }
}

type Step<T = ()> = Result<T, Halt>;

/// Drives job `job_id` until it is done, its lease is lost, or `stop`.
pub(super) async fn run(executor: &Arc<Executor>, job_id: i64, stop: CancellationToken) {
    let Some(driver) = Driver::new(executor, job_id) else {
        return;
    };
    tokio::select! {
        () = stop.cancelled() => {}
        () = driver.drive() => {}
    }
}

struct Driver {
    executor: Arc<Executor>,
    job_id: i64,
    /// The controller's log of this job (`sky jobs logs --controller`).
    log: Arc<RequestLog>,
    dag: tokio::sync::OnceCell<TaskDag>,
}

impl Driver {
    fn new(executor: &Arc<Executor>, job_id: i64) -> Option<Self> {
        let dir = match LogDir::new(executor.managed.files().job_dir(job_id)) {
            Ok(dir) => dir,
            Err(err) => {
                tracing::error!(job_id, error = %err, "cannot make the managed job's log folder");
                return None;
            }
        };
        let log = Arc::new(RequestLog::new(
            &dir,
            "controller",
            executor.signals().clone(),
        ));
        Some(Self {
            executor: executor.clone(),
            job_id,
            log,
            dag: tokio::sync::OnceCell::new(),
        })
    }

    fn say(&self, line: &str) {
        self.log.line(line);
    }

    async fn drive(&self) {
        loop {
            match self.step().await {
                Ok(()) => {}
                Err(Halt::Done) => return,
                Err(Halt::LeaseLost) => {
                    tracing::info!(job_id = self.job_id, "managed job's lease lost");
                    return;
                }
                Err(Halt::Retry(reason)) => {
                    tracing::warn!(job_id = self.job_id, %reason, "managed job step failed; retrying");
                    self.say(&format!(
                        "A step failed ({reason}); trying again in {}s.",
                        RETRY_AFTER.as_secs()
                    ));
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            }
        }
    }

    async fn job(&self) -> Step<ManagedJob> {
        match self.executor.store().get_managed_job(self.job_id).await? {
            Some(job) if !job.done => Ok(job),
            _ => Err(Halt::Done),
        }
    }

    /// One step of the job's first unfinished task.
    async fn step(&self) -> Step {
        let job = self.job().await?;
        let Some(task) = job.tasks.iter().find(|t| !t.status.is_terminal()).cloned() else {
            return self.finish(&job).await;
        };
        // Each step is boxed: a driver waits in one step for as long as a
        // job runs, and its task would otherwise be as large as the largest
        // step (a launch), for every job, all the time.
        if job.cancel_requested {
            return Box::pin(self.cancel(&job, task)).await;
        }
        match task.status {
            Status::Pending | Status::Submitted | Status::Starting | Status::Recovering => {
                Box::pin(self.launch(&job, task)).await
            }
            Status::Running | Status::WindingDown => Box::pin(self.monitor(&job, task)).await,
            Status::Cancelling => Box::pin(self.cancel(&job, task)).await,
            // Terminal statuses were skipped above.
            _ => Ok(()),
        }
    }

    /// Writes a task's progress, while this server holds the lease.
    async fn save(&self, task: &ManagedTask) -> Step {
        let store = self.executor.store();
        if store
            .update_managed_task(self.executor.server_id(), task)
            .await?
        {
            Ok(())
        } else {
            Err(Halt::LeaseLost)
        }
    }

    /// A context for the operations run for the job, as its owner.
    fn context(&self, job: &ManagedJob, id: String) -> RequestContext {
        self.executor
            .context(&id, &job.user_id, &job.workspace, self.log.clone())
    }

    async fn dag(&self) -> Step<&TaskDag> {
        self.dag
            .get_or_try_init(|| async {
                let text = self
                    .executor
                    .store()
                    .managed_job_dag(self.job_id)
                    .await?
                    .ok_or(Halt::Done)?;
                // Checked when the job was accepted; a failure here means the
                // row was changed underneath us.
                tokio::task::spawn_blocking(move || parse_dag(&text))
                    .await
                    .map_err(|err| Halt::Retry(err.to_string()))?
                    .map_err(|err| Halt::Retry(format!("the job's tasks do not parse: {err}")))
            })
            .await
    }

    /// The task as the job gave it.
    async fn spec(&self, task: &ManagedTask) -> Step<skydeck_types::task::TaskSpec> {
        self.dag()
            .await?
            .tasks
            .get(task.task_id as usize)
            .cloned()
            .ok_or_else(|| Halt::Retry(format!("the job has no task {}", task.task_id)))
    }

    /// The task's YAML with the variables SkyPilot gives a managed task,
    /// and on `infra` when given (a recovery's first try).
    async fn task_yaml(
        &self,
        job: &ManagedJob,
        task: &ManagedTask,
        infra: Option<&str>,
    ) -> Step<String> {
        let mut spec = self.spec(task).await?;
        if let Some(infra) = infra {
            spec.resources.infra = Some(infra.to_owned());
        }
        let ids: Vec<String> = job.tasks.iter().map(|t| global_task_id(job, t)).collect();
        let envs = [
            ("SKYPILOT_TASK_ID", global_task_id(job, task)),
            ("SKYPILOT_TASK_IDS", ids.join("\n")),
            ("SKYPILOT_MANAGED_JOB_ID", job.job_id.to_string()),
            ("SKYPILOT_JOB_RANK", "0".to_owned()),
            ("SKYPILOT_NUM_JOBS", "1".to_owned()),
        ];
        for (name, value) in envs {
            spec.envs.insert(name.to_owned(), EnvValue::Set(value));
        }
        Ok(spec.to_yaml())
    }

    async fn recovery(&self, task: &ManagedTask) -> Step<JobRecovery> {
        let dag = self.dag().await?;
        let spec = dag.tasks.get(task.task_id as usize);
        JobRecovery::parse(spec.and_then(|s| s.resources.job_recovery.as_ref()))
            .map_err(Halt::Retry)
    }

    /// Launches the task's cluster and submits its job: attempt 1 for a
    /// pending task, the recorded attempt again for one whose launch was
    /// interrupted, the next after a loss or a restart.
    async fn launch(&self, job: &ManagedJob, mut task: ManagedTask) -> Step {
        if matches!(task.status, Status::Pending | Status::Submitted) {
            let name = cluster_name(job, &task);
            // A cluster under the name before the job ever launched is
            // someone's own: never take it over.
            if self
                .executor
                .store()
                .get_cluster(name.as_str())
                .await?
                .is_some()
            {
                let reason = format!(
                    "A cluster named {name} exists already; the job's cluster needs that name. \
                     Tear it down (`sky down {name}`) or launch the job under another name."
                );
                return self
                    .end_task(job, task, Status::FailedPrechecks, Some(reason))
                    .await;
            }
            task.status = Status::Starting;
            task.attempt = 1;
            task.cluster_name = Some(name.into_string());
            task.schedule_state = ScheduleState::Launching;
            self.save(&task).await?;
        }
        let Some(name) = task.cluster_name.clone() else {
            return Err(Halt::Retry("the task has no cluster name".into()));
        };
        // The name may have been taken while the job had no cluster (after
        // a teardown): never launch onto another user's cluster, even for
        // an admin's job.
        if let Some(other) = self.executor.store().get_cluster(&name).await?
            && other.user_id != job.user_id
        {
            let reason = format!(
                "Another user's cluster took the name {name} while the job was between \
                 clusters; the job cannot go on under it."
            );
            task.cluster_name = None;
            return self
                .end_task(job, task, Status::FailedNoResource, Some(reason))
                .await;
        }
        let cluster = ClusterName::new(name.clone()).map_err(|err| Halt::Retry(err.to_string()))?;
        self.say(&format!(
            "Launching task {} ({}) on cluster {name}, attempt {}.",
            task.task_id, task.task_name, task.attempt
        ));
        // The job is submitted under this key: a launch repeated after a
        // crash finds the job the first one submitted.
        let key = format!("managed-{}-{}-{}", job.job_id, task.task_id, task.attempt);
        let ctx = self.context(job, key);
        let mut launched = None;
        let order = self.try_order(&ctx, &task).await?;
        if !order.is_empty() {
            self.say(&format!(
                "It was on {}; trying {} ({} recovery).",
                task.infra.as_deref().unwrap_or("-"),
                order.join(", then "),
                self.recovery(&task).await?.strategy.as_str(),
            ));
        }
        for place in &order {
            let body = self
                .launch_body(job, &task, &cluster, Some(place), false)
                .await?;
            let tried = tokio::select! {
                tried = Box::pin(crate::ops::clusters::launch(&ctx, body)) => tried,
                () = self.cancel_requested() => return Ok(()),
            };
            match tried {
                Ok(value) => {
                    launched = Some(value);
                    break;
                }
                Err(err) => self.say(&format!("{place} did not take it: {}", err.message)),
            }
        }
        let value = match launched {
            Some(value) => value,
            None => {
                // Resources that cannot be had now are waited for, as
                // SkyPilot's controller retries its launch until it works.
                let body = self.launch_body(job, &task, &cluster, None, true).await?;
                let launched = tokio::select! {
                    launched = Box::pin(crate::ops::clusters::launch(&ctx, body)) => launched,
                    () = self.cancel_requested() => return Ok(()),
                };
                match launched {
                    Ok(value) => value,
                    Err(err) => {
                        let status = if task.attempt <= 1 {
                            Status::FailedPrechecks
                        } else {
                            Status::FailedNoResource
                        };
                        self.say(&format!("The launch failed: {}", err.message));
                        return self.end_task(job, task, status, Some(err.message)).await;
                    }
                }
            }
        };
        let record = self.executor.store().get_cluster(&name).await?;
        task.infra = record.map(|r| r.infra);
        let started = now();
        task.start_at.get_or_insert(started);
        task.last_started_at = Some(started);
        task.schedule_state = ScheduleState::Alive;
        match value.get("job_id").and_then(serde_json::Value::as_i64) {
            Some(id) => {
                task.cluster_job_id = Some(id);
                task.status = Status::Running;
                self.save(&task).await
            }
            // A task with nothing to run is done once its cluster is up.
            None => {
                task.status = Status::Running;
                self.end_task(job, task, Status::Succeeded, None).await
            }
        }
    }

    /// Where a later attempt tries, in order, by the task's recovery
    /// strategy (see `placement.rs`); empty for a first attempt or a task
    /// pinned to one place.
    async fn try_order(&self, ctx: &RequestContext, task: &ManagedTask) -> Step<Vec<String>> {
        if task.attempt <= 1 || task.infra.is_none() {
            return Ok(Vec::new());
        }
        let spec = self.spec(task).await?;
        let asked = crate::clusters::ssh_pools::infra_of(&spec.resources);
        let candidates = placement::candidates(ctx, &spec.resources).await;
        let strategy = self.recovery(task).await?.strategy;
        Ok(placement::try_order(
            strategy,
            &asked,
            task.infra.as_deref(),
            &candidates,
        ))
    }

    async fn launch_body(
        &self,
        job: &ManagedJob,
        task: &ManagedTask,
        cluster: &ClusterName,
        infra: Option<&str>,
        retry_until_up: bool,
    ) -> Step<LaunchBody> {
        Ok(LaunchBody {
            base: BaseBody::default(),
            task: self.task_yaml(job, task, infra).await?,
            cluster_name: Some(cluster.clone()),
            retry_until_up,
            file_mounts_blob_id: job
                .file_mounts_blob
                .as_deref()
                .and_then(|id| BlobId::new(id).ok()),
            ..LaunchBody::default()
        })
    }

    /// Follows the task's job into this attempt's log file until it ends,
    /// then decides: done, restart, recover or fail.
    async fn monitor(&self, job: &ManagedJob, task: ManagedTask) -> Step {
        let (Some(name), Some(cluster_job)) = (task.cluster_name.clone(), task.cluster_job_id)
        else {
            return self
                .lost(job, task, "the task's job was never recorded")
                .await;
        };
        let store = self.executor.store();
        let Some(record) = store.get_cluster(&name).await? else {
            return self.lost(job, task, "its cluster is gone").await;
        };
        let infra = self.executor.infra();
        let agent = match infra.agent(&record) {
            Ok(agent) => agent,
            Err(err) => return self.lost(job, task, &err.message).await,
        };
        let path =
            self.executor
                .managed
                .files()
                .attempt_log(job.job_id, task.task_id, task.attempt);
        let mut errors = 0;
        let status = loop {
            let followed = tokio::select! {
                followed = follow_into(&agent, cluster_job as u64, &path) => followed,
                () = self.cancel_requested() => return Ok(()),
            };
            let status = match followed {
                Ok(_) => agent
                    .job_status(&[cluster_job as u64])
                    .await
                    .map(|statuses| statuses.into_values().next().flatten()),
                Err(err) => Err(err),
            };
            match status {
                Ok(Some(status)) if status.is_finished() => break status,
                // The follow ended early (the agent restarted): follow again,
                // after a pause, so an agent that keeps ending it is not
                // spun on.
                Ok(_) => tokio::time::sleep(CANCEL_POLL).await,
                Err(err) => {
                    // Unreachable: the cluster is lost, or the agent hiccuped.
                    if !self.cluster_healthy(&record).await {
                        return self.lost(job, task, &err.to_string()).await;
                    }
                    errors += 1;
                    if errors >= MONITOR_ERRORS {
                        return self.lost(job, task, &err.to_string()).await;
                    }
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            }
        };
        match status {
            JobStatus::Succeeded => self.end_task(job, task, Status::Succeeded, None).await,
            // Not cancelled through the managed job (that stops the driver
            // before the job ends): the cluster's agent stopped it, as it
            // does when its machine shuts down, or someone cancelled it on
            // the cluster. Either way the job did not finish; run it again.
            JobStatus::Cancelled => {
                self.lost(job, task, "its job was stopped on the cluster")
                    .await
            }
            failed => {
                // A driver that failed because a node went away is a loss,
                // not the user's error.
                if !self.cluster_healthy(&record).await {
                    return self
                        .lost(
                            job,
                            task,
                            &format!("the job ended {failed:?} and the cluster is unhealthy"),
                        )
                        .await;
                }
                self.user_failure(job, task, failed).await
            }
        }
    }

    /// Whether the cluster still looks UP after asking its infrastructure.
    async fn cluster_healthy(&self, record: &skydeck_store::ClusterRecord) -> bool {
        let store = self.executor.store();
        let reconcile =
            crate::ops::clusters::reconcile(store.as_ref(), self.executor.infra(), record);
        match Box::pin(reconcile).await {
            Ok(Some(now)) => {
                now.status == ClusterStatus::Up && !self.executor.infra().health.is_unhealthy(&now)
            }
            Ok(None) => false,
            Err(_) => false,
        }
    }

    /// The user's code failed on a healthy cluster: restart while
    /// `max_restarts_on_errors` allows, else the task fails.
    async fn user_failure(
        &self,
        job: &ManagedJob,
        mut task: ManagedTask,
        failed: JobStatus,
    ) -> Step {
        let recovery = self.recovery(&task).await?;
        let status = if failed == JobStatus::FailedSetup {
            Status::FailedSetup
        } else {
            Status::Failed
        };
        // An exit code the task names recovers without counting.
        let codes = self.exit_codes(job, &task).await;
        if let Some(code) = codes.iter().find(|code| {
            u8::try_from(**code).is_ok_and(|c| recovery.recover_on_exit_codes.contains(&c))
        }) {
            let line = format!(
                "User program exited with code {code}, which is in recover_on_exit_codes; \
                 restarting it."
            );
            self.say(&line);
            self.append_to_attempt(job, &task, &line).await;
            return self.relaunch(job, task).await;
        }
        if task.restarts < i64::from(recovery.max_restarts_on_errors) {
            task.restarts += 1;
            let line = format!(
                "User program crashed ({status}). Restarting it, as max_restarts_on_errors is \
                 set to {} [{}/{}].",
                recovery.max_restarts_on_errors, task.restarts, recovery.max_restarts_on_errors
            );
            self.say(&line);
            self.append_to_attempt(job, &task, &line).await;
            return self.relaunch(job, task).await;
        }
        let reason = format!(
            "Job {} (user program failure). To see the details, run: sky jobs logs \
             --controller {}",
            if status == Status::FailedSetup {
                "setup failed"
            } else {
                "failed"
            },
            job.job_id
        );
        self.say(&format!("User program crashed ({status}); not restarting."));
        self.end_task(job, task, status, Some(reason)).await
    }

    /// The nodes' exit codes of the attempt that just failed, from the last
    /// line the agent wrote to its log.
    async fn exit_codes(&self, job: &ManagedJob, task: &ManagedTask) -> Vec<i32> {
        const TAIL: u64 = 4096;
        let path =
            self.executor
                .managed
                .files()
                .attempt_log(job.job_id, task.task_id, task.attempt);
        let read = async {
            use tokio::io::{AsyncReadExt, AsyncSeekExt};
            let mut file = tokio::fs::File::open(&path).await?;
            let len = file.metadata().await?.len();
            file.seek(std::io::SeekFrom::Start(len.saturating_sub(TAIL)))
                .await?;
            let mut tail = Vec::new();
            file.read_to_end(&mut tail).await?;
            std::io::Result::Ok(String::from_utf8_lossy(&tail).into_owned())
        };
        match read.await {
            Ok(tail) => skydeck_agent::protocol::failure_codes(&tail).unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    /// The task's cluster is lost (preempted, its host gone, its agent
    /// gone): tear down what is left and launch again.
    async fn lost(&self, job: &ManagedJob, mut task: ManagedTask, why: &str) -> Step {
        let line = format!("The job cluster is preempted or failed ({why}). Recovering...");
        self.say(&line);
        self.append_to_attempt(job, &task, &line).await;
        task.recovery_count += 1;
        self.relaunch(job, task).await
    }

    /// Tears the cluster down and records the next attempt, RECOVERING.
    async fn relaunch(&self, job: &ManagedJob, mut task: ManagedTask) -> Step {
        if let Some(name) = &task.cluster_name {
            self.clean_up(job, name).await?;
        }
        if let Some(started) = task.last_started_at.take() {
            task.run_seconds += (now() - started).max(0.0);
        }
        task.status = Status::Recovering;
        task.schedule_state = ScheduleState::AliveWaiting;
        task.cluster_job_id = None;
        task.attempt += 1;
        self.save(&task).await
    }

    /// Ends the task in `status`, tears its cluster down and, unless it
    /// succeeded, cancels the tasks after it.
    async fn end_task(
        &self,
        job: &ManagedJob,
        mut task: ManagedTask,
        status: Status,
        reason: Option<String>,
    ) -> Step {
        if let Some(name) = &task.cluster_name {
            self.clean_up(job, name).await?;
        }
        let ended = now();
        if let Some(started) = task.last_started_at.take() {
            task.run_seconds += (ended - started).max(0.0);
        }
        task.status = status;
        task.schedule_state = ScheduleState::Done;
        task.end_at = Some(ended);
        task.failure_reason = reason;
        self.save(&task).await?;
        self.say(&format!(
            "Task {} ({}) ended: {status}.",
            task.task_id, task.task_name
        ));
        if status != Status::Succeeded {
            for later in job.tasks.iter().filter(|t| t.task_id > task.task_id) {
                if !later.status.is_terminal() {
                    let mut later = later.clone();
                    later.status = Status::Cancelled;
                    later.schedule_state = ScheduleState::Done;
                    later.end_at = Some(ended);
                    self.save(&later).await?;
                }
            }
        }
        Ok(())
    }

    /// Cancel asked: stop the task, tear its cluster down, and cancel it and
    /// every task after it.
    async fn cancel(&self, job: &ManagedJob, mut task: ManagedTask) -> Step {
        if task.status != Status::Cancelling {
            self.say("Cancelling the job...");
            task.status = Status::Cancelling;
            self.save(&task).await?;
        }
        self.end_task(job, task, Status::Cancelled, None).await
    }

    /// Every task ended: make sure no cluster of the job is left, then the
    /// job is done.
    async fn finish(&self, job: &ManagedJob) -> Step {
        for task in &job.tasks {
            if let Some(name) = &task.cluster_name {
                self.clean_up(job, name).await?;
            }
        }
        let store = self.executor.store();
        if !store
            .finish_managed_job(self.executor.server_id(), job.job_id)
            .await?
        {
            return Err(Halt::LeaseLost);
        }
        let status = aggregate_status(job);
        self.say(&format!("Managed job {} finished: {status}.", job.job_id));
        Err(Halt::Done)
    }

    /// Tears cluster `name` down if it exists.
    /// Tears the job's cluster down. A host that is gone cannot be
    /// cleaned, and the job must not wait for it to come back: the
    /// cluster's record then goes anyway, as with `down --purge`.
    async fn clean_up(&self, job: &ManagedJob, name: &str) -> Step {
        match self.tear_down(job, name, false).await {
            Err(Halt::Retry(why)) => {
                self.say(&format!(
                    "Could not clean up all of {name} ({why}); forgetting it and going on."
                ));
                self.tear_down(job, name, true).await
            }
            done => done,
        }
    }

    async fn tear_down(&self, job: &ManagedJob, name: &str, purge: bool) -> Step {
        let store = self.executor.store();
        match store.get_cluster(name).await? {
            None => return Ok(()),
            // Only the job owner's cluster is the job's to tear down.
            Some(other) if other.user_id != job.user_id => {
                self.say(&format!(
                    "Cluster {name} belongs to another user now; leaving it alone."
                ));
                return Ok(());
            }
            Some(_) => {}
        }
        let cluster = ClusterName::new(name).map_err(|err| Halt::Retry(err.to_string()))?;
        let ctx = self.context(job, format!("managed-{}-down", job.job_id));
        let body = StopOrDownBody {
            base: BaseBody::default(),
            cluster_name: cluster,
            purge,
            graceful: false,
            graceful_timeout: None,
        };
        match Box::pin(crate::ops::clusters::down(&ctx, body)).await {
            Ok(_) => Ok(()),
            Err(err) if store.get_cluster(name).await?.is_none() => {
                tracing::debug!(cluster = name, error = %err.message, "gone meanwhile");
                Ok(())
            }
            Err(err) => Err(Halt::Retry(format!("tearing down {name}: {}", err.message))),
        }
    }

    /// Resolves once a cancel of the job is recorded (by any server).
    async fn cancel_requested(&self) {
        loop {
            tokio::time::sleep(CANCEL_POLL).await;
            match self.executor.store().get_managed_job(self.job_id).await {
                Ok(Some(job)) if job.cancel_requested || job.done => return,
                Ok(Some(_)) => {}
                Ok(None) => return,
                Err(err) => tracing::debug!(error = %err, "cannot check for a cancel"),
            }
        }
    }

    /// Adds a line to the end of the task's current attempt log, where the
    /// reader of the job's log sees why the next attempt follows.
    async fn append_to_attempt(&self, job: &ManagedJob, task: &ManagedTask, line: &str) {
        let path = self.executor.managed.files().attempt_log(
            job.job_id,
            task.task_id,
            task.attempt.max(1),
        );
        let append = async {
            let mut file = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .await?;
            file.write_all(format!("{line}\n").as_bytes()).await
        };
        if let Err(err) = append.await {
            tracing::warn!(path = %path.display(), error = %err, "cannot write the attempt log");
        }
    }
}

/// Writes job `job`'s log, followed to its end, into `path` (from the
/// start: a follow repeated after a crash rewrites the same bytes).
async fn follow_into(
    agent: &skydeck_infra::AgentClient,
    job: u64,
    path: &std::path::Path,
) -> Result<i32, skydeck_infra::InfraError> {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(8);
    let follow = agent.logs(
        Some(job),
        LogFollow {
            follow: true,
            tail: 0,
        },
        tx,
    );
    let write = async {
        let mut file = tokio::fs::File::create(path).await?;
        while let Some(chunk) = rx.recv().await {
            file.write_all(&chunk).await?;
            file.flush().await?;
        }
        file.sync_data().await
    };
    let (code, written) = tokio::join!(follow, write);
    if let Err(err) = written {
        tracing::warn!(path = %path.display(), error = %err, "cannot write the attempt log");
    }
    code
}

/// The job's status as SkyPilot shows one row for it: the first task that
/// did not succeed, else SUCCEEDED.
pub fn aggregate_status(job: &ManagedJob) -> Status {
    job.tasks
        .iter()
        .map(|t| t.status)
        .find(|s| *s != Status::Succeeded)
        .unwrap_or(Status::Succeeded)
}

/// The cluster a task runs on: `<task name, 25 characters>-<job id>`, as
/// SkyPilot names them, made a valid cluster name.
pub fn cluster_name(job: &ManagedJob, task: &ManagedTask) -> ClusterName {
    let mut base: String = task
        .task_name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(25)
        .collect();
    base = base.trim_matches('-').to_owned();
    if !base.starts_with(|c: char| c.is_ascii_lowercase()) {
        base = format!("job-{base}");
    }
    let name = if job.tasks.len() > 1 {
        format!(
            "{}-{}-{}",
            base.trim_end_matches('-'),
            job.job_id,
            task.task_id
        )
    } else {
        format!("{}-{}", base.trim_end_matches('-'), job.job_id)
    };
    ClusterName::new(name).unwrap_or_else(|_| {
        ClusterName::new(format!("job-{}-{}", job.job_id, task.task_id))
            .expect("letters, digits and '-'")
    })
}

/// `SKYPILOT_TASK_ID`: stable across recoveries, for checkpoint paths.
fn global_task_id(job: &ManagedJob, task: &ManagedTask) -> String {
    let name = if job.tasks.len() > 1 {
        format!("{}_{}", job.name, task.task_name)
    } else {
        job.name.clone()
    };
    let stamp = chrono_like(job.submitted_at);
    format!("sky-managed-{stamp}_{name}_{}-{}", job.job_id, task.task_id)
}

/// A submission time as SkyPilot stamps run ids: `YYYY-MM-DD-HH-MM-SS-micros`.
fn chrono_like(at: f64) -> String {
    let secs = at.max(0.0) as i64;
    let micros = ((at.max(0.0) - secs as f64) * 1e6) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}-{:02}-{:02}-{:02}-{micros:06}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a calendar date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

impl From<RequestError> for Halt {
    fn from(err: RequestError) -> Self {
        Halt::Retry(err.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_stamps_are_calendar_dates() {
        assert_eq!(chrono_like(0.0), "1970-01-01-00-00-00-000000");
        assert_eq!(chrono_like(1_700_000_000.5), "2023-11-14-22-13-20-500000");
        assert_eq!(chrono_like(951_782_400.0), "2000-02-29-00-00-00-000000");
    }
}
