//! The managed-jobs controller, inside the server.
//!
//! SkyPilot runs a controller process per managed job on a controller VM
//! (or in its API server, in "consolidation mode"). Here a job is a row
//! in the database and, while it is not done, one tokio task on the one
//! server that holds its lease: the task launches the job's cluster,
//! follows its log, relaunches it when the cluster is lost, restarts the
//! user's code on failure within `max_restarts_on_errors`, runs a
//! pipeline's tasks in order, and tears each cluster down.
//!
//! Every step is written to the database before and after it acts, and
//! every act is safe to repeat (a launch is keyed by job, task and
//! attempt; a teardown of a cluster that is gone is a no-op), so a server
//! killed at any moment leaves jobs that the next holder of their lease,
//! this server restarted or another on the same database, carries on.

mod drive;
pub mod files;
mod placement;

pub use drive::{aggregate_status, cluster_name};

use crate::executor::{Executor, now};
use skydeck_store::Store;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The most jobs one server drives at once; the rest wait for a slot (or
/// for another server).
const MAX_DRIVEN: u32 = 10_000;

/// The managed jobs this server drives, and what wakes its controller.
pub struct Driving {
    files: files::JobFiles,
    /// How long a lease lasts without renewal: a server that stops renewing
    /// (it died) loses its jobs to another after this long.
    lease: Duration,
    /// Each job driven here, with what stops its driver.
    jobs: Mutex<HashMap<i64, CancellationToken>>,
    wake: Notify,
    stopping: CancellationToken,
}

impl Driving {
    pub fn new(dir: PathBuf, lease: Duration) -> Self {
        Self {
            files: files::JobFiles::new(dir),
            lease,
            jobs: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            stopping: CancellationToken::new(),
        }
    }

    pub fn files(&self) -> &files::JobFiles {
        &self.files
    }

    /// Looks for jobs to drive now (one was submitted) rather than at the
    /// next renewal.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Stops driving (the server is shutting down) and gives the leases
    /// up, so that another server carries the jobs on at once.
    pub async fn stop(&self, store: &dyn Store, server_id: &str) {
        self.stopping.cancel();
        let driven: Vec<CancellationToken> = self
            .jobs
            .lock()
            .expect("jobs lock")
            .drain()
            .map(|(_, stop)| stop)
            .collect();
        for stop in driven {
            stop.cancel();
        }
        if let Err(err) = store.release_managed_jobs(server_id).await {
            tracing::warn!(error = %err, "cannot release the managed jobs' leases");
        }
    }

    /// How many jobs this server drives now.
    pub fn driven(&self) -> usize {
        self.jobs.lock().expect("jobs lock").len()
    }
}

/// The controller loop: takes and renews leases, starts a driver for each
/// job newly held and stops the driver of each job whose lease was lost.
pub async fn control(executor: Weak<Executor>) {
    let Some(executor) = executor.upgrade() else {
        return;
    };
    let driving = &executor.managed;
    let renew_every = driving.lease / 3;
    loop {
        if driving.stopping.is_cancelled() {
            return;
        }
        let at = now();
        let claimed = executor
            .store()
            .claim_managed_jobs(
                executor.server_id(),
                at,
                at + driving.lease.as_secs_f64(),
                MAX_DRIVEN,
            )
            .await;
        match claimed {
            Ok(held) => adopt(&executor, held),
            Err(err) => tracing::warn!(error = %err, "cannot renew the managed jobs' leases"),
        }
        tokio::select! {
            () = tokio::time::sleep(renew_every) => {}
            () = driving.wake.notified() => {}
            () = driving.stopping.cancelled() => return,
        }
    }
}

/// Starts drivers for the jobs in `held` not driven here yet; stops those
/// driven here that are no longer held.
fn adopt(executor: &Arc<Executor>, held: Vec<i64>) {
    let driving = &executor.managed;
    let mut jobs = driving.jobs.lock().expect("jobs lock");
    jobs.retain(|job_id, stop| {
        let keep = held.contains(job_id);
        if !keep {
            tracing::warn!(
                job_id,
                "lost the lease of a managed job; another server drives it"
            );
            stop.cancel();
        }
        keep
    });
    for job_id in held {
        if jobs.contains_key(&job_id) {
            continue;
        }
        let stop = CancellationToken::new();
        jobs.insert(job_id, stop.clone());
        let executor = executor.clone();
        tokio::spawn(async move {
            drive::run(&executor, job_id, stop.clone()).await;
            // A driver that was stopped had its entry removed already (and
            // a new driver may hold the job's entry now).
            if !stop.is_cancelled() {
                executor
                    .managed
                    .jobs
                    .lock()
                    .expect("jobs lock")
                    .remove(&job_id);
            }
        });
    }
}
