//! `agent/state.json`: the job queue and the autostop setting, shared by the
//! daemon and the short-lived subcommands.

use crate::fsutil::{now, write_atomic};
use crate::paths::ClusterDir;
use crate::protocol::{AutostopSetting, ClusterJobRecord, Demand, JobSpec, JobStatus};
use anyhow::Context;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct AgentState {
    pub next_job_id: u64,
    /// In submission order, so ids ascend.
    pub jobs: Vec<JobRecord>,
    pub autostop: Option<Autostop>,
    /// When the current (or last) daemon started: one of the moments idle
    /// time counts from.
    pub daemon_started_at: Option<f64>,
}

impl Default for AgentState {
    fn default() -> Self {
        Self {
            next_job_id: 1,
            jobs: Vec::new(),
            autostop: None,
            daemon_started_at: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct Autostop {
    #[serde(flatten)]
    pub setting: AutostopSetting,
    pub set_at: f64,
}

/// A job as the agent keeps it: the spec minus its secrets, plus its
/// lifecycle and the process groups to kill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct JobRecord {
    pub job_id: u64,
    pub idempotency_key: String,
    pub job_name: Option<String>,
    pub username: String,
    pub user_hash: String,
    pub submitted_at: f64,
    pub start_at: Option<f64>,
    pub end_at: Option<f64>,
    pub resources: String,
    pub status: JobStatus,
    pub setup: Option<String>,
    pub run: Option<String>,
    pub num_nodes: usize,
    pub envs: BTreeMap<String, String>,
    pub demand: Demand,
    pub task_id: Option<String>,
    /// The live phase's node processes, each its own process group; kept
    /// here so `cancel` and a restarted daemon can kill them.
    #[serde(default)]
    pub procs: Vec<NodeProc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct NodeProc {
    pub rank: usize,
    pub pgid: i32,
    /// A pgid means nothing after a reboot; see `process::kill_groups`.
    pub boot_id: Option<String>,
}

impl JobRecord {
    /// Splits the secrets off: they never reach the state file.
    pub fn new(job_id: u64, spec: JobSpec) -> (Self, BTreeMap<String, String>) {
        let resources = spec.resources_display();
        let JobSpec {
            idempotency_key,
            name,
            username,
            user_hash,
            setup,
            run,
            num_nodes,
            envs,
            secrets,
            demand,
            resources_str: _,
            task_id,
        } = spec;
        let record = Self {
            job_id,
            idempotency_key,
            job_name: name,
            username,
            user_hash,
            submitted_at: now(),
            start_at: None,
            end_at: None,
            resources,
            status: JobStatus::Pending,
            setup,
            run,
            num_nodes,
            envs,
            demand,
            task_id,
            procs: Vec::new(),
        };
        (record, secrets)
    }

    pub fn to_cluster_record(&self, dir: &ClusterDir) -> ClusterJobRecord {
        ClusterJobRecord {
            job_id: self.job_id,
            job_name: self.job_name.clone(),
            username: self.username.clone(),
            user_hash: self.user_hash.clone(),
            submitted_at: self.submitted_at,
            start_at: self.start_at,
            end_at: self.end_at,
            resources: self.resources.clone(),
            status: self.status,
            log_path: dir.job_log(self.job_id).display().to_string(),
            metadata: serde_json::Map::new(),
            links: BTreeMap::new(),
        }
    }

    /// Moves an unfinished job to a final status. False when someone else
    /// (a `cancel`) finished it first: a later result must not overwrite it.
    pub fn finish(&mut self, status: JobStatus) -> bool {
        if self.status.is_finished() {
            return false;
        }
        self.status = status;
        self.end_at = Some(now());
        true
    }
}

impl AgentState {
    pub fn job(&self, job_id: u64) -> Option<&JobRecord> {
        self.jobs.iter().find(|job| job.job_id == job_id)
    }

    pub fn job_mut(&mut self, job_id: u64) -> Option<&mut JobRecord> {
        self.jobs.iter_mut().find(|job| job.job_id == job_id)
    }

    pub fn newest(&self) -> Option<&JobRecord> {
        self.jobs.last()
    }

    /// Since when nothing has been queued or running; None while something is.
    pub fn idle_since(&self) -> Option<f64> {
        if self.jobs.iter().any(|job| !job.status.is_finished()) {
            return None;
        }
        let moments = self
            .jobs
            .iter()
            .flat_map(|job| [Some(job.submitted_at), job.end_at]);
        moments
            .chain([self.autostop.map(|a| a.set_at), self.daemon_started_at])
            .flatten()
            .reduce(f64::max)
    }
}

/// Read-modify-write access to the state file under `agent/state.lock`.
#[derive(Debug, Clone)]
pub(crate) struct StateStore {
    dir: ClusterDir,
}

impl StateStore {
    pub fn new(dir: ClusterDir) -> Self {
        Self { dir }
    }

    /// A consistent snapshot; needs no lock because writers replace the file
    /// atomically.
    pub fn read(&self) -> anyhow::Result<AgentState> {
        let path = self.dir.state_file();
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("{} is not a valid agent state", path.display())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(AgentState::default()),
            Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Runs `change` on the current state with every other writer shut out,
    /// and saves the result if it differs. Keep `change` short: others wait.
    pub fn update<R>(
        &self,
        change: impl FnOnce(&mut AgentState) -> anyhow::Result<R>,
    ) -> anyhow::Result<R> {
        let _lock = self.lock()?;
        let before = self.read()?;
        let mut state = before.clone();
        let result = change(&mut state)?;
        if state != before {
            let bytes = serde_json::to_vec_pretty(&state)?;
            write_atomic(&self.dir.state_file(), &bytes, 0o644)?;
        }
        Ok(result)
    }

    fn lock(&self) -> anyhow::Result<Flock<File>> {
        let path = self.dir.state_lock();
        std::fs::create_dir_all(self.dir.agent_dir())
            .with_context(|| format!("cannot create {}", self.dir.agent_dir().display()))?;
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        loop {
            match Flock::lock(file, FlockArg::LockExclusive) {
                Ok(lock) => return Ok(lock),
                Err((returned, Errno::EINTR)) => file = returned,
                Err((_, errno)) => {
                    return Err(errno).with_context(|| format!("cannot lock {}", path.display()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(key: &str) -> JobSpec {
        serde_json::from_value(serde_json::json!({
            "idempotency_key": key, "username": "u", "user_hash": "h",
            "run": "true", "secrets": {"TOKEN": "hunter2"}
        }))
        .unwrap()
    }

    #[test]
    fn updates_persist_and_secrets_stay_out() {
        let temp = tempfile::tempdir().unwrap();
        let store = StateStore::new(ClusterDir::open(temp.path()).unwrap());
        store
            .update(|state| {
                let (record, secrets) = JobRecord::new(1, spec("a"));
                assert_eq!(secrets["TOKEN"], "hunter2");
                state.jobs.push(record);
                Ok(())
            })
            .unwrap();
        let text = std::fs::read_to_string(temp.path().join("agent/state.json")).unwrap();
        assert!(!text.contains("hunter2"));
        assert_eq!(store.read().unwrap().jobs[0].status, JobStatus::Pending);
    }

    #[test]
    fn a_failed_change_writes_nothing() {
        let temp = tempfile::tempdir().unwrap();
        let store = StateStore::new(ClusterDir::open(temp.path()).unwrap());
        let result: anyhow::Result<()> = store.update(|state| {
            state.next_job_id = 7;
            anyhow::bail!("no")
        });
        assert!(result.is_err());
        assert_eq!(store.read().unwrap().next_job_id, 1);
    }

    #[test]
    fn a_cancelled_job_keeps_its_status() {
        let (mut job, _) = JobRecord::new(1, spec("a"));
        assert!(job.finish(JobStatus::Cancelled));
        assert!(!job.finish(JobStatus::Succeeded));
        assert_eq!(job.status, JobStatus::Cancelled);
    }

    #[test]
    fn idle_since_is_the_latest_moment_and_none_while_busy() {
        let mut state = AgentState {
            daemon_started_at: Some(10.0),
            ..AgentState::default()
        };
        assert_eq!(state.idle_since(), Some(10.0));
        let (mut job, _) = JobRecord::new(1, spec("a"));
        job.submitted_at = 20.0;
        state.jobs.push(job);
        assert_eq!(state.idle_since(), None);
        state.jobs[0].status = JobStatus::Succeeded;
        state.jobs[0].end_at = Some(30.0);
        assert_eq!(state.idle_since(), Some(30.0));
    }
}
