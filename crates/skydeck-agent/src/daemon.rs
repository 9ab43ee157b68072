//! The daemon: one per cluster directory. It settles what a dead predecessor
//! left running, starts queued jobs as resources free up, and stops the
//! cluster's jobs (SIGTERM) or itself (autostop).

use crate::cluster::ClusterInfo;
use crate::fsutil::{now, remove_if_exists, write_atomic};
use crate::jobs::finish;
use crate::paths::ClusterDir;
use crate::process::{
    KILL_GRACE, groups_with_marker, job_marker, kill_recorded, recorded_daemon_pid,
    terminate_groups,
};
use crate::protocol::{AutostopAction, AutostopFile, JobStatus};
use crate::schedule;
use crate::state::{AgentState, JobRecord, StateStore};
use crate::supervisor::{JobContext, supervise};
use anyhow::Context;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The fallback for a missed wake-up (SIGUSR1).
const POLL: Duration = Duration::from_millis(500);
/// Seconds in an autostop "minute"; tests make it short.
const AUTOSTOP_UNIT_VAR: &str = "SKYDECK_AGENT_AUTOSTOP_UNIT_SECS";

pub(crate) async fn run(dir: ClusterDir) -> anyhow::Result<ExitCode> {
    let agent_dir = dir.agent_dir();
    std::fs::create_dir_all(&agent_dir)
        .with_context(|| format!("cannot create {}", agent_dir.display()))?;
    let Some(_lock) = lock_daemon(&dir)? else {
        let pid = recorded_daemon_pid(&dir).map_or("unknown".to_owned(), |pid| pid.to_string());
        println!(
            "An agent daemon is already running for {} (pid {pid}).",
            dir.root().display()
        );
        return Ok(ExitCode::SUCCESS);
    };
    let cluster = ClusterInfo::load(&dir.cluster_file())?;
    let autostop_unit = autostop_unit()?;
    // Handlers first: a `submit` may signal as soon as the pid file exists.
    let signals = Signals::install()?;
    write_atomic(
        &dir.daemon_pid(),
        format!("{}\n", std::process::id()).as_bytes(),
        0o644,
    )?;
    // A decision of the previous life; this one starts afresh.
    remove_if_exists(&dir.autostop_file())?;
    let ctx = Arc::new(JobContext {
        store: StateStore::new(dir.clone()),
        dir: dir.clone(),
        cluster,
    });
    tracing::info!(pid = std::process::id(), dir = %dir.root().display(), "agent daemon starting");
    let result = async {
        reconcile(&ctx).await?;
        ctx.store.update(|state| {
            state.daemon_started_at = Some(now());
            Ok(())
        })?;
        Daemon::new(ctx, autostop_unit).serve(signals).await
    }
    .await;
    if recorded_daemon_pid(&dir) == Some(std::process::id() as i32) {
        remove_if_exists(&dir.daemon_pid())?;
    }
    result
}

/// Held for the daemon's whole life; None if another daemon holds it.
fn lock_daemon(dir: &ClusterDir) -> anyhow::Result<Option<Flock<File>>> {
    let path = dir.daemon_lock();
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, errno)) => Err(errno).with_context(|| format!("cannot lock {}", path.display())),
    }
}

fn autostop_unit() -> anyhow::Result<Duration> {
    match std::env::var(AUTOSTOP_UNIT_VAR) {
        Ok(text) => text
            .parse::<f64>()
            .ok()
            .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
            .with_context(|| format!("{AUTOSTOP_UNIT_VAR}={text:?} is not a number of seconds")),
        Err(_) => Ok(Duration::from_secs(60)),
    }
}

/// Jobs left SETTING_UP or RUNNING by a daemon that died: nothing watches
/// their processes any more, so stop them and fail the jobs.
async fn reconcile(ctx: &JobContext) -> anyhow::Result<()> {
    let orphans: Vec<_> = ctx
        .store
        .read()?
        .jobs
        .into_iter()
        .filter(|job| job.status.is_active())
        .collect();
    // All at once: one grace period, however many jobs.
    let procs: Vec<_> = orphans.iter().flat_map(|job| job.procs.clone()).collect();
    kill_recorded(&procs).await;
    // Processes started after the last record was written are found by
    // the marker in their environment.
    let unrecorded: Vec<i32> = orphans
        .iter()
        .flat_map(|job| groups_with_marker(&job_marker(&ctx.dir, job.job_id)))
        .collect();
    terminate_groups(&unrecorded, KILL_GRACE).await;
    for job in orphans {
        let note = format!(
            "ERROR: the agent restarted and job {}'s driver was lost; its processes were stopped.",
            job.job_id
        );
        finish(
            &ctx.dir,
            &ctx.store,
            job.job_id,
            JobStatus::FailedDriver,
            Some(&note),
        )?;
    }
    Ok(())
}

/// Stops a job whose supervisor is gone and fails it.
async fn settle_lost(ctx: &JobContext, job_id: u64, note: &str) {
    let procs = match ctx.store.read() {
        Ok(state) => state
            .job(job_id)
            .map(|job| job.procs.clone())
            .unwrap_or_default(),
        Err(err) => {
            tracing::error!(job_id, "{err:#}");
            Vec::new()
        }
    };
    kill_recorded(&procs).await;
    if let Err(err) = finish(
        &ctx.dir,
        &ctx.store,
        job_id,
        JobStatus::FailedDriver,
        Some(note),
    ) {
        tracing::error!(job_id, "cannot record the job's end: {err:#}");
    }
}

struct Signals {
    terminate: Signal,
    interrupt: Signal,
    wake: Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            wake: signal(SignalKind::user_defined1())?,
        })
    }
}

struct RunningJob {
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

struct Daemon {
    ctx: Arc<JobContext>,
    autostop_unit: Duration,
    /// Cancelled when the daemon stops; every job's token is its child.
    stopping: CancellationToken,
    jobs: HashMap<u64, RunningJob>,
    job_ended: Arc<Notify>,
    last_error: Option<String>,
}

impl Daemon {
    fn new(ctx: Arc<JobContext>, autostop_unit: Duration) -> Self {
        Self {
            ctx,
            autostop_unit,
            stopping: CancellationToken::new(),
            jobs: HashMap::new(),
            job_ended: Arc::new(Notify::new()),
            last_error: None,
        }
    }

    async fn serve(mut self, mut signals: Signals) -> anyhow::Result<ExitCode> {
        loop {
            match self.tick() {
                Ok(Some(action)) => {
                    tracing::info!(?action, "idle past the autostop limit; exiting");
                    break;
                }
                Ok(None) => self.last_error = None,
                // The state may be fixed from outside; say it once, retry.
                Err(err) => {
                    let message = format!("{err:#}");
                    if self.last_error.as_ref() != Some(&message) {
                        tracing::error!("{message}");
                        self.last_error = Some(message);
                    }
                }
            }
            tokio::select! {
                _ = signals.terminate.recv() => {
                    tracing::info!("SIGTERM: cancelling running jobs and exiting");
                    break;
                }
                _ = signals.interrupt.recv() => {
                    tracing::info!("SIGINT: cancelling running jobs and exiting");
                    break;
                }
                _ = signals.wake.recv() => {}
                () = self.job_ended.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
        self.stopping.cancel();
        for (_, job) in self.jobs.drain() {
            let _ = job.handle.await;
        }
        Ok(ExitCode::SUCCESS)
    }

    /// One look at the state: follow cancellations, start what fits, and
    /// decide on autostop. Some(action) means: exit now.
    fn tick(&mut self) -> anyhow::Result<Option<AutostopAction>> {
        self.jobs.retain(|_, job| !job.handle.is_finished());
        let state = self.ctx.store.read()?;
        for (job_id, job) in &self.jobs {
            if state
                .job(*job_id)
                .is_none_or(|record| record.status.is_finished())
            {
                job.cancel.cancel();
            }
        }
        if state
            .jobs
            .iter()
            .any(|job| job.status == JobStatus::Pending)
        {
            self.schedule()?;
        }
        if self.jobs.is_empty() && self.autostop_due(&state, now()).is_some() {
            return self.fire_autostop();
        }
        Ok(None)
    }

    fn schedule(&mut self) -> anyhow::Result<()> {
        let busy: HashSet<u64> = self.jobs.keys().copied().collect();
        let (ctx, now) = (self.ctx.clone(), now());
        let (started, rejected) = ctx.store.update(|state| {
            let plan = schedule::plan(&state.jobs, &busy, &ctx.cluster);
            let mut started = Vec::new();
            for job_id in plan.start {
                if let Some(job) = state.job_mut(job_id) {
                    job.status = if job.setup.is_some() {
                        JobStatus::SettingUp
                    } else {
                        JobStatus::Running
                    };
                    job.start_at = Some(now);
                    started.push(job.clone());
                }
            }
            Ok((started, plan.reject))
        })?;
        // Jobs now marked as started get their supervisors before anything
        // else can fail, or they would sit RUNNING with nobody watching.
        for job in started {
            self.start(job);
        }
        for (job_id, reason) in rejected {
            let note = format!("ERROR: Job {job_id} cannot run on this cluster: {reason}.");
            let result = finish(
                &ctx.dir,
                &ctx.store,
                job_id,
                JobStatus::FailedSetup,
                Some(&note),
            );
            if let Err(err) = result {
                tracing::error!(job_id, "cannot fail a job that cannot run: {err:#}");
            }
        }
        Ok(())
    }

    fn start(&mut self, job: JobRecord) {
        let (ctx, job_id) = (self.ctx.clone(), job.job_id);
        let cancel = self.stopping.child_token();
        let ended = self.job_ended.clone();
        let run = supervise(ctx.clone(), job, cancel.clone(), self.stopping.clone());
        let handle = tokio::spawn(async move {
            if let Err(err) = tokio::spawn(run).await {
                // A bug in the supervisor: settle the job rather than leave
                // it RUNNING with nobody watching.
                let note = format!("ERROR: the agent failed while running job {job_id}: {err}");
                settle_lost(&ctx, job_id, &note).await;
            }
            ended.notify_one();
        });
        self.jobs.insert(job_id, RunningJob { cancel, handle });
    }

    fn autostop_due(&self, state: &AgentState, now: f64) -> Option<AutostopAction> {
        let autostop = state.autostop?;
        let idle_for = now - state.idle_since()?;
        let limit = self.autostop_unit.as_secs_f64() * f64::from(autostop.setting.idle_minutes);
        (idle_for >= limit).then_some(if autostop.setting.down {
            AutostopAction::Down
        } else {
            AutostopAction::Stop
        })
    }

    /// Decides again under the state lock, so that a job submitted since
    /// the last look keeps the cluster up.
    fn fire_autostop(&self) -> anyhow::Result<Option<AutostopAction>> {
        self.ctx.store.update(|state| {
            let at = now();
            let Some(action) = self.autostop_due(state, at) else {
                return Ok(None);
            };
            let file = AutostopFile { action, at };
            write_atomic(
                &self.ctx.dir.autostop_file(),
                &serde_json::to_vec(&file)?,
                0o644,
            )?;
            Ok(Some(action))
        })
    }
}
