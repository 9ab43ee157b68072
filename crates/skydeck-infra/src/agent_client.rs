//! How the server talks to a cluster's agent: by running `skydeck agent …`
//! on the head node through its [`CommandRunner`], with JSON in and out.
//! The same path works for a sandbox on this machine and a node over SSH.
//! Every document is one of the agent's own `protocol` types.

use crate::{CommandRunner, InfraError, Result};
use serde::de::DeserializeOwned;
use skydeck_agent::protocol::{
    AgentStatus, AutostopReply, CancelReply, ClusterJobRecord, JobSpec, JobStatus, SubmitReply,
};
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct AgentClient {
    runner: Arc<dyn CommandRunner>,
    /// The `skydeck` binary on the head node.
    program: String,
    cluster_dir: String,
}

/// How `logs` reads a job's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogFollow {
    pub follow: bool,
    /// Only the last N lines; 0 for all.
    pub tail: u64,
}

impl AgentClient {
    pub fn new(runner: Arc<dyn CommandRunner>, program: String, cluster_dir: String) -> Self {
        Self {
            runner,
            program,
            cluster_dir,
        }
    }

    fn argv(&self, subcommand: &str, extra: &[String]) -> Vec<String> {
        let mut argv = vec![
            self.program.clone(),
            "agent".to_owned(),
            subcommand.to_owned(),
            "--cluster-dir".to_owned(),
            self.cluster_dir.clone(),
        ];
        argv.extend_from_slice(extra);
        argv
    }

    async fn call<T: DeserializeOwned>(
        &self,
        subcommand: &str,
        extra: &[String],
        stdin: Option<Vec<u8>>,
    ) -> Result<T> {
        let output = self
            .runner
            .run(&self.argv(subcommand, extra), stdin)
            .await?;
        if !output.success() {
            return Err(InfraError::Command(format!(
                "the cluster's agent failed ({subcommand}): {}",
                output.stderr.trim()
            )));
        }
        serde_json::from_str(&output.stdout).map_err(|err| {
            InfraError::Command(format!(
                "the cluster's agent answered {subcommand} with something unreadable ({err}): {}",
                output.stdout.trim()
            ))
        })
    }

    /// Queues a job (idempotent by the spec's `idempotency_key`); returns its id.
    pub async fn submit(&self, spec: &JobSpec) -> Result<u64> {
        let stdin = serde_json::to_vec(spec)
            .map_err(|err| InfraError::Command(format!("cannot encode the job: {err}")))?;
        let answer: SubmitReply = self.call("submit", &[], Some(stdin)).await?;
        Ok(answer.job_id)
    }

    /// Job records, newest first.
    pub async fn queue(
        &self,
        user_hash: Option<&str>,
        skip_finished: bool,
    ) -> Result<Vec<ClusterJobRecord>> {
        let mut extra = Vec::new();
        match user_hash {
            Some(user) => extra.extend(["--user-hash".to_owned(), user.to_owned()]),
            None => extra.push("--all-users".to_owned()),
        }
        if skip_finished {
            extra.push("--skip-finished".to_owned());
        }
        self.call("queue", &extra, None).await
    }

    /// Cancels jobs: the given ids, or all (`all`), or else the newest
    /// unfinished one. Returns the ids cancelled.
    pub async fn cancel(
        &self,
        ids: &[u64],
        all: bool,
        user_hash: Option<&str>,
    ) -> Result<Vec<u64>> {
        let mut extra = Vec::new();
        if all {
            extra.push("--all".to_owned());
        } else if !ids.is_empty() {
            extra.push("--job-ids".to_owned());
            extra.push(join_ids(ids));
        }
        if let Some(user) = user_hash {
            extra.extend(["--user-hash".to_owned(), user.to_owned()]);
        }
        let answer: CancelReply = self.call("cancel", &extra, None).await?;
        Ok(answer.cancelled)
    }

    /// The status of each job asked for (None: no such job); the newest job
    /// when `ids` is empty, nothing when there is none.
    pub async fn job_status(&self, ids: &[u64]) -> Result<BTreeMap<String, Option<JobStatus>>> {
        let extra = if ids.is_empty() {
            Vec::new()
        } else {
            vec!["--job-ids".to_owned(), join_ids(ids)]
        };
        self.call("job-status", &extra, None).await
    }

    /// Sets autostop (`minutes < 0` turns it off).
    pub async fn autostop(&self, minutes: i64, down: bool) -> Result<AutostopReply> {
        let mut extra = vec![format!("--idle-minutes={minutes}")];
        if down {
            extra.push("--down".to_owned());
        }
        self.call("autostop", &extra, None).await
    }

    pub async fn status(&self) -> Result<AgentStatus> {
        self.call("status", &[], None).await
    }

    /// Streams a job's log to `out` as the raw bytes the job wrote, in
    /// bounded pieces; returns SkyPilot's job exit code (0 succeeded, 100
    /// failed, 101 not finished, 102 no such job, 103 cancelled). Dropping
    /// `out`'s receiver stops following.
    pub async fn logs(
        &self,
        job_id: Option<u64>,
        how: LogFollow,
        out: tokio::sync::mpsc::Sender<Vec<u8>>,
    ) -> Result<i32> {
        let mut extra = Vec::new();
        if let Some(id) = job_id {
            extra.extend(["--job-id".to_owned(), id.to_string()]);
        }
        if how.follow {
            extra.push("--follow".to_owned());
        }
        extra.extend(["--tail".to_owned(), how.tail.to_string()]);
        self.runner.stream(&self.argv("logs", &extra), out).await
    }
}

fn join_ids(ids: &[u64]) -> String {
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}
