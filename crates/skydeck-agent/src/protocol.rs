//! The documents the server and the agent exchange: the job spec `submit`
//! reads, and what the subcommands print. Everything a caller of
//! `skydeck agent …` parses is defined here.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A job to run on the cluster: the stdin of `submit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// Submitting twice with the same key yields one job (the server retries
    /// a launch after a crash).
    pub idempotency_key: String,
    #[serde(default)]
    pub name: Option<String>,
    pub username: String,
    pub user_hash: String,
    #[serde(default)]
    pub setup: Option<String>,
    #[serde(default)]
    pub run: Option<String>,
    #[serde(default = "one")]
    pub num_nodes: usize,
    #[serde(default)]
    pub envs: BTreeMap<String, String>,
    /// Kept only in `jobs/<id>/secrets.json` (mode 0600) while the job lives.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    #[serde(default)]
    pub demand: Demand,
    /// SkyPilot's display string, e.g. `1x[CPU:0.5]`; computed from the
    /// demand when empty.
    #[serde(default)]
    pub resources_str: String,
    #[serde(default)]
    pub task_id: Option<String>,
}

fn one() -> usize {
    1
}

/// What a job needs on each of its nodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Demand {
    #[serde(default)]
    pub cpus: f64,
    #[serde(default)]
    pub memory_gb: f64,
    #[serde(default)]
    pub accelerators: BTreeMap<String, f64>,
}

impl JobSpec {
    /// Rejects what no cluster could run, so `submit` fails with a reason
    /// instead of queueing a job that breaks later.
    pub fn validate(&self) -> anyhow::Result<()> {
        use anyhow::ensure;
        ensure!(
            !self.idempotency_key.is_empty(),
            "idempotency_key must not be empty"
        );
        ensure!(self.num_nodes >= 1, "num_nodes must be at least 1");
        let amounts = [
            ("cpus", self.demand.cpus),
            ("memory_gb", self.demand.memory_gb),
        ]
        .into_iter()
        .chain(
            self.demand
                .accelerators
                .iter()
                .map(|(name, count)| (name.as_str(), *count)),
        );
        for (what, amount) in amounts {
            ensure!(
                amount.is_finite() && amount >= 0.0,
                "demand {what} must be a non-negative number, got {amount}"
            );
        }
        for (key, value) in self.envs.iter().chain(&self.secrets) {
            ensure!(
                !key.is_empty() && !key.contains(['=', '\0']),
                "invalid environment variable name {key:?}"
            );
            ensure!(
                !value.contains('\0'),
                "environment variable {key} contains a NUL byte"
            );
        }
        Ok(())
    }

    /// The RESOURCES column of `sky queue`.
    pub fn resources_display(&self) -> String {
        if !self.resources_str.is_empty() {
            return self.resources_str.clone();
        }
        let mut parts = vec![format!("CPU:{}", self.demand.cpus)];
        parts.extend(
            self.demand
                .accelerators
                .iter()
                .map(|(name, count)| format!("{name}:{count}")),
        );
        format!("{}x[{}]", self.num_nodes, parts.join(", "))
    }
}

/// SkyPilot's job statuses, spelled as SkyPilot spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    Init,
    Pending,
    SettingUp,
    Running,
    Succeeded,
    Failed,
    FailedSetup,
    FailedDriver,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Init => "INIT",
            Self::Pending => "PENDING",
            Self::SettingUp => "SETTING_UP",
            Self::Running => "RUNNING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::FailedSetup => "FAILED_SETUP",
            Self::FailedDriver => "FAILED_DRIVER",
            Self::Cancelled => "CANCELLED",
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(
            self,
            Self::Succeeded
                | Self::Failed
                | Self::FailedSetup
                | Self::FailedDriver
                | Self::Cancelled
        )
    }

    /// Has processes (or is about to): holds resources on its nodes.
    pub fn is_active(self) -> bool {
        matches!(self, Self::SettingUp | Self::Running)
    }

    /// SkyPilot's `JobExitCode`, the exit status of `logs`.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Succeeded => exit_code::SUCCEEDED,
            Self::Failed | Self::FailedSetup | Self::FailedDriver => exit_code::FAILED,
            Self::Cancelled => exit_code::CANCELLED,
            Self::Init | Self::Pending | Self::SettingUp | Self::Running => exit_code::NOT_FINISHED,
        }
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Exit statuses of `logs` (SkyPilot's `JobExitCode`).
pub mod exit_code {
    pub const SUCCEEDED: u8 = 0;
    pub const FAILED: u8 = 100;
    pub const NOT_FINISHED: u8 = 101;
    pub const NOT_FOUND: u8 = 102;
    pub const CANCELLED: u8 = 103;
}

/// The last line of a failed job's log, as SkyPilot writes it: which phase
/// failed and each node's exit code. Managed jobs read the codes back from
/// it ([`failure_codes`]) for `recover_on_exit_codes`.
pub fn failure_line(job_id: u64, setup: bool, codes: &[i32]) -> String {
    let what = if setup { "'s setup" } else { "" };
    format!("ERROR: Job {job_id}{what} failed with return code list: {codes:?}")
}

/// The exit codes in the last [`failure_line`] of `log`, if it has one.
pub fn failure_codes(log: &str) -> Option<Vec<i32>> {
    const MARK: &str = "failed with return code list: [";
    let line = log.lines().rev().find(|line| line.contains(MARK))?;
    let list = line.split(MARK).nth(1)?.split(']').next()?;
    list.split(',')
        .map(str::trim)
        .filter(|code| !code.is_empty())
        .map(|code| code.parse().ok())
        .collect()
}

/// One row of `queue`: exactly SkyPilot's `ClusterJobRecord`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterJobRecord {
    pub job_id: u64,
    pub job_name: Option<String>,
    pub username: String,
    pub user_hash: String,
    pub submitted_at: f64,
    pub start_at: Option<f64>,
    pub end_at: Option<f64>,
    pub resources: String,
    pub status: JobStatus,
    pub log_path: String,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub links: BTreeMap<String, String>,
}

/// `submit`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmitReply {
    pub job_id: u64,
}

/// `cancel`'s answer: the jobs this call moved to CANCELLED.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancelReply {
    pub cancelled: Vec<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AutostopSetting {
    pub idle_minutes: u32,
    pub down: bool,
}

/// `autostop`'s answer: the setting now in force (null: none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutostopReply {
    pub autostop: Option<AutostopSetting>,
}

/// `status`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentStatus {
    pub daemon_pid: Option<i32>,
    pub daemon_alive: bool,
    pub autostop: Option<AutostopSetting>,
    /// Counts by status; statuses with no job are left out.
    pub jobs: BTreeMap<JobStatus, usize>,
    /// Unix seconds; null while a job is queued or running.
    pub idle_since: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AutostopAction {
    Stop,
    Down,
}

/// `agent/autostop.json`: the daemon's last word before it exits idle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutostopFile {
    pub action: AutostopAction,
    pub at: f64,
}

#[cfg(test)]
mod tests {
    #[test]
    fn failure_lines_give_back_their_codes() {
        use super::{failure_codes, failure_line};
        let log = format!("out\n{}\n", failure_line(4, false, &[3, 143]));
        assert_eq!(failure_codes(&log), Some(vec![3, 143]));
        assert_eq!(failure_codes(&failure_line(1, true, &[1])), Some(vec![1]));
        assert_eq!(failure_codes("all fine\n"), None);
        assert_eq!(failure_codes("failed with return code list: [x]"), None);
    }

    use super::*;

    #[test]
    fn statuses_are_spelled_as_skypilot_spells_them() {
        let json = serde_json::to_string(&[JobStatus::SettingUp, JobStatus::FailedDriver]).unwrap();
        assert_eq!(json, r#"["SETTING_UP","FAILED_DRIVER"]"#);
        for status in [
            JobStatus::Init,
            JobStatus::Cancelled,
            JobStatus::FailedSetup,
        ] {
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{status}\"")
            );
        }
    }

    #[test]
    fn status_counts_round_trip_with_statuses_as_keys() {
        let status = AgentStatus {
            daemon_pid: Some(7),
            daemon_alive: true,
            autostop: None,
            jobs: BTreeMap::from([(JobStatus::Running, 1), (JobStatus::Succeeded, 2)]),
            idle_since: None,
        };
        let json = serde_json::to_string(&status).unwrap();
        assert!(
            json.contains(r#""jobs":{"RUNNING":1,"SUCCEEDED":2}"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<AgentStatus>(&json).unwrap(), status);
    }

    #[test]
    fn a_minimal_spec_gets_defaults_and_a_resources_string() {
        let spec: JobSpec = serde_json::from_str(
            r#"{"idempotency_key":"k","username":"u","user_hash":"h",
                "demand":{"cpus":0.5,"accelerators":{"H100":1}}}"#,
        )
        .unwrap();
        assert_eq!(spec.num_nodes, 1);
        spec.validate().unwrap();
        assert_eq!(spec.resources_display(), "1x[CPU:0.5, H100:1]");
    }

    #[test]
    fn validation_names_the_bad_field() {
        let mut spec: JobSpec =
            serde_json::from_str(r#"{"idempotency_key":"k","username":"u","user_hash":"h"}"#)
                .unwrap();
        spec.envs.insert("A=B".into(), "x".into());
        let err = spec.validate().unwrap_err().to_string();
        assert!(err.contains("A=B"), "{err}");
        spec.envs.clear();
        spec.num_nodes = 0;
        assert!(
            spec.validate()
                .unwrap_err()
                .to_string()
                .contains("num_nodes")
        );
    }
}
