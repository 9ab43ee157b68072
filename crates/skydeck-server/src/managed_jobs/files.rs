//! Where a managed job's logs live on the server: one folder per job with
//! the controller's log and one run log per attempt of each task, so that
//! logs outlive the clusters and read back the same after a restart.

use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct JobFiles {
    dir: PathBuf,
}

impl JobFiles {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The folder of job `job_id` (ids come from the database: integers,
    /// never a path).
    pub fn job_dir(&self, job_id: i64) -> PathBuf {
        self.dir.join(job_id.to_string())
    }

    /// What the controller did for the job: launches, losses, restarts.
    pub fn controller_log(&self, job_id: i64) -> PathBuf {
        self.job_dir(job_id).join("controller.log")
    }

    /// The run log of one attempt (from 1) of one task.
    pub fn attempt_log(&self, job_id: i64, task_id: i64, attempt: i64) -> PathBuf {
        self.job_dir(job_id)
            .join(format!("task-{task_id}-attempt-{attempt}.log"))
    }
}
