//! Where everything lives under a cluster directory.

use anyhow::Context;
use std::path::{Path, PathBuf};

/// A cluster's directory: `cluster.json` (the provider's), `agent/` (the
/// agent's state, lock, pid and log), `jobs/<id>/` (each job's log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDir {
    root: PathBuf,
}

impl ClusterDir {
    /// Resolves `root` to an absolute path, so the log paths the agent hands
    /// out stay valid wherever the reader runs.
    pub fn open(root: &Path) -> anyhow::Result<Self> {
        let root = std::fs::canonicalize(root)
            .with_context(|| format!("cluster directory {} does not exist", root.display()))?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn cluster_file(&self) -> PathBuf {
        self.root.join("cluster.json")
    }

    pub fn agent_dir(&self) -> PathBuf {
        self.root.join("agent")
    }

    pub fn state_file(&self) -> PathBuf {
        self.agent_dir().join("state.json")
    }

    pub fn state_lock(&self) -> PathBuf {
        self.agent_dir().join("state.lock")
    }

    pub fn daemon_lock(&self) -> PathBuf {
        self.agent_dir().join("daemon.lock")
    }

    pub fn daemon_pid(&self) -> PathBuf {
        self.agent_dir().join("daemon.pid")
    }

    /// Where the provider sends the daemon's stdout and stderr.
    pub fn daemon_log(&self) -> PathBuf {
        self.agent_dir().join("daemon.log")
    }

    pub fn autostop_file(&self) -> PathBuf {
        self.agent_dir().join("autostop.json")
    }

    pub fn job_dir(&self, job_id: u64) -> PathBuf {
        self.root.join("jobs").join(job_id.to_string())
    }

    pub fn job_log(&self, job_id: u64) -> PathBuf {
        self.job_dir(job_id).join("run.log")
    }

    /// The wrapped script bash runs for one phase (`setup`, `run`) on one node.
    pub fn job_script(&self, job_id: u64, phase: &str, rank: usize) -> PathBuf {
        self.job_dir(job_id).join(format!("{phase}-{rank}.sh"))
    }

    pub fn job_secrets(&self, job_id: u64) -> PathBuf {
        self.job_dir(job_id).join("secrets.json")
    }
}
