//! Managed jobs: the statuses, schedule states and recovery settings as
//! SkyPilot 0.14.1 names them, and the bodies of the `/jobs/*` requests.

use crate::bodies::BaseBody;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// SkyPilot's `ManagedJobStatus`, per task. The official client refuses a
/// record whose status is not one of these exact strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ManagedJobStatus {
    Pending,
    /// Only in old databases; parsed, never set.
    Submitted,
    Starting,
    Running,
    WindingDown,
    Recovering,
    Cancelling,
    Succeeded,
    Cancelled,
    Failed,
    FailedSetup,
    FailedPrechecks,
    FailedNoResource,
    FailedController,
}

impl ManagedJobStatus {
    pub const ALL: [ManagedJobStatus; 14] = [
        Self::Pending,
        Self::Submitted,
        Self::Starting,
        Self::Running,
        Self::WindingDown,
        Self::Recovering,
        Self::Cancelling,
        Self::Succeeded,
        Self::Cancelled,
        Self::Failed,
        Self::FailedSetup,
        Self::FailedPrechecks,
        Self::FailedNoResource,
        Self::FailedController,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Submitted => "SUBMITTED",
            Self::Starting => "STARTING",
            Self::Running => "RUNNING",
            Self::WindingDown => "WINDING_DOWN",
            Self::Recovering => "RECOVERING",
            Self::Cancelling => "CANCELLING",
            Self::Succeeded => "SUCCEEDED",
            Self::Cancelled => "CANCELLED",
            Self::Failed => "FAILED",
            Self::FailedSetup => "FAILED_SETUP",
            Self::FailedPrechecks => "FAILED_PRECHECKS",
            Self::FailedNoResource => "FAILED_NO_RESOURCE",
            Self::FailedController => "FAILED_CONTROLLER",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded
                | Self::Cancelled
                | Self::Failed
                | Self::FailedSetup
                | Self::FailedPrechecks
                | Self::FailedNoResource
                | Self::FailedController
        )
    }

    pub fn is_failure(self) -> bool {
        self.is_terminal() && !matches!(self, Self::Succeeded | Self::Cancelled)
    }

    /// SkyPilot's `JobExitCode` for a job that ended (or not) in this
    /// status: what `sky jobs logs` and `sky jobs launch` exit with.
    pub fn exit_code(self) -> i32 {
        match self {
            Self::Succeeded => 0,
            Self::Cancelled => 103,
            status if status.is_failure() => 100,
            _ => 101,
        }
    }
}

impl fmt::Display for ManagedJobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ManagedJobStatus {
    type Err = UnknownValue;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| {
                UnknownValue::new("managed job status", text, Self::ALL.map(Self::as_str))
            })
    }
}

/// SkyPilot's `ManagedJobScheduleState`: where a job is in the
/// controller's hands (shown by `sky jobs queue -v`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ScheduleState {
    Inactive,
    Waiting,
    AliveWaiting,
    Launching,
    AliveBackoff,
    Alive,
    Done,
}

impl ScheduleState {
    pub const ALL: [ScheduleState; 7] = [
        Self::Inactive,
        Self::Waiting,
        Self::AliveWaiting,
        Self::Launching,
        Self::AliveBackoff,
        Self::Alive,
        Self::Done,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inactive => "INACTIVE",
            Self::Waiting => "WAITING",
            Self::AliveWaiting => "ALIVE_WAITING",
            Self::Launching => "LAUNCHING",
            Self::AliveBackoff => "ALIVE_BACKOFF",
            Self::Alive => "ALIVE",
            Self::Done => "DONE",
        }
    }
}

impl FromStr for ScheduleState {
    type Err = UnknownValue;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or_else(|| UnknownValue::new("schedule state", text, Self::ALL.map(Self::as_str)))
    }
}

/// A word that is not one of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownValue {
    what: &'static str,
    given: String,
    allowed: Vec<&'static str>,
}

impl UnknownValue {
    fn new<const N: usize>(what: &'static str, given: &str, allowed: [&'static str; N]) -> Self {
        Self {
            what,
            given: given.chars().take(64).collect(),
            allowed: allowed.to_vec(),
        }
    }
}

impl fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a {}; use one of {}",
            self.given,
            self.what,
            self.allowed.join(", ")
        )
    }
}

impl std::error::Error for UnknownValue {}

/// How a job whose cluster was lost is brought back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecoveryStrategy {
    /// Tear the cluster down and launch anywhere the task allows, the lost
    /// place last.
    #[default]
    EagerNextRegion,
    /// Launch again in the same place first.
    Failover,
}

impl RecoveryStrategy {
    /// The name a task gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryStrategy::EagerNextRegion => "EAGER_NEXT_REGION",
            RecoveryStrategy::Failover => "FAILOVER",
        }
    }
}

/// A task's `resources.job_recovery`, read: a strategy name, or a mapping
/// with `strategy`, `max_restarts_on_errors` and `recover_on_exit_codes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecovery {
    pub strategy: RecoveryStrategy,
    /// How often a failure of the user's code on a healthy cluster is
    /// retried.
    pub max_restarts_on_errors: u32,
    /// Exit codes that restart the job without counting against
    /// `max_restarts_on_errors`.
    pub recover_on_exit_codes: Vec<u8>,
}

/// The most restarts a job may ask for: enough for any real use, and a
/// bound on the work one job can cause.
pub const MAX_RESTARTS_ON_ERRORS: u32 = 1_000;

impl JobRecovery {
    /// Reads `job_recovery` as a task gives it (`None` when absent).
    pub fn parse(value: Option<&serde_json::Value>) -> Result<Self, String> {
        use serde_json::Value;
        let Some(value) = value else {
            return Ok(Self::default());
        };
        let strategy = |value: &Value| -> Result<RecoveryStrategy, String> {
            match value {
                Value::Null => Ok(RecoveryStrategy::default()),
                Value::String(name) => match name.to_ascii_uppercase().as_str() {
                    "EAGER_NEXT_REGION" => Ok(RecoveryStrategy::EagerNextRegion),
                    "FAILOVER" => Ok(RecoveryStrategy::Failover),
                    _ => Err(format!(
                        "job_recovery.strategy {name:?} is not a recovery strategy; use \
                         EAGER_NEXT_REGION or FAILOVER"
                    )),
                },
                other => Err(format!(
                    "job_recovery.strategy must be a name such as EAGER_NEXT_REGION, not {other}"
                )),
            }
        };
        match value {
            Value::Null => Ok(Self::default()),
            Value::String(_) => Ok(Self {
                strategy: strategy(value)?,
                ..Self::default()
            }),
            Value::Object(fields) => {
                if let Some(unknown) = fields.keys().find(|key| {
                    ![
                        "strategy",
                        "max_restarts_on_errors",
                        "recover_on_exit_codes",
                    ]
                    .contains(&key.as_str())
                }) {
                    return Err(format!(
                        "job_recovery has no field {unknown:?}; its fields are strategy, \
                         max_restarts_on_errors and recover_on_exit_codes"
                    ));
                }
                let max_restarts_on_errors = match fields.get("max_restarts_on_errors") {
                    None | Some(Value::Null) => 0,
                    Some(Value::Number(n)) => n
                        .as_u64()
                        .filter(|n| *n <= u64::from(MAX_RESTARTS_ON_ERRORS))
                        .map(|n| n as u32)
                        .ok_or_else(|| {
                            format!(
                                "job_recovery.max_restarts_on_errors must be a whole number \
                                 from 0 to {MAX_RESTARTS_ON_ERRORS}, not {n}"
                            )
                        })?,
                    Some(other) => {
                        return Err(format!(
                            "job_recovery.max_restarts_on_errors must be a whole number, not {other}"
                        ));
                    }
                };
                let exit_code = |value: &Value| -> Result<u8, String> {
                    value
                        .as_u64()
                        .and_then(|n| u8::try_from(n).ok())
                        .ok_or_else(|| {
                            format!(
                                "job_recovery.recover_on_exit_codes holds exit codes from 0 to \
                                 255, not {value}"
                            )
                        })
                };
                let recover_on_exit_codes = match fields.get("recover_on_exit_codes") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(codes)) if codes.len() <= 256 => {
                        codes.iter().map(exit_code).collect::<Result<_, _>>()?
                    }
                    Some(Value::Array(_)) => {
                        return Err(
                            "job_recovery.recover_on_exit_codes lists at most 256 codes".into()
                        );
                    }
                    Some(code) => vec![exit_code(code)?],
                };
                Ok(Self {
                    strategy: strategy(fields.get("strategy").unwrap_or(&Value::Null))?,
                    max_restarts_on_errors,
                    recover_on_exit_codes,
                })
            }
            other => Err(format!(
                "job_recovery must be a strategy name or a mapping, not {other}"
            )),
        }
    }
}

/// `POST /jobs/launch`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobsLaunchBody {
    #[serde(flatten)]
    pub base: BaseBody,
    /// The job's tasks as one multi-document YAML (a header naming the job,
    /// then one document per task).
    pub task: String,
    pub name: Option<crate::names::JobName>,
    pub pool: Option<String>,
    pub num_jobs: Option<u32>,
    pub file_mounts_blob_id: Option<crate::names::BlobId>,
}

/// `POST /jobs/cancel`: exactly one of `job_ids` (non-empty), `name`, `all`
/// or `all_users` selects the jobs. The client sends `job_ids: []` with the
/// other selectors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobsCancelBody {
    #[serde(flatten)]
    pub base: BaseBody,
    pub name: Option<crate::names::JobName>,
    #[serde(deserialize_with = "crate::job_ids::optional")]
    pub job_ids: Option<Vec<u64>>,
    pub all: bool,
    pub all_users: bool,
    pub pool: Option<String>,
}

/// Which jobs a cancel names, read from a [`JobsCancelBody`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelSelector {
    Ids(Vec<u64>),
    Name(crate::names::JobName),
    /// The caller's jobs.
    All,
    /// Everyone's jobs.
    AllUsers,
}

/// At most this many ids in one cancel.
pub const MAX_CANCEL_IDS: usize = 10_000;

impl JobsCancelBody {
    pub fn selector(&self) -> Result<CancelSelector, String> {
        let ids = self.job_ids.clone().unwrap_or_default();
        let mut chosen = Vec::new();
        if !ids.is_empty() {
            if ids.len() > MAX_CANCEL_IDS {
                return Err(format!("Cancel at most {MAX_CANCEL_IDS} jobs at once."));
            }
            chosen.push(CancelSelector::Ids(ids));
        }
        if let Some(name) = &self.name {
            chosen.push(CancelSelector::Name(name.clone()));
        }
        if self.all {
            chosen.push(CancelSelector::All);
        }
        if self.all_users {
            chosen.push(CancelSelector::AllUsers);
        }
        if self.pool.is_some() {
            return Err(
                "Pools are not supported by this server; cancel jobs by ID or name.".into(),
            );
        }
        match chosen.len() {
            1 => Ok(chosen.pop().expect("one")),
            0 => Err("Say which jobs to cancel: job IDs, --name, --all or --all-users.".into()),
            _ => Err(
                "Give only one of job IDs, --name, --all and --all-users to say which jobs to \
                 cancel."
                    .into(),
            ),
        }
    }
}

/// A task of a job, by index or by name (`sky jobs logs 3 1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TaskSelector {
    Index(u32),
    Name(String),
}

/// `POST /jobs/logs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobsLogsBody {
    #[serde(flatten)]
    pub base: BaseBody,
    pub name: Option<crate::names::JobName>,
    #[serde(deserialize_with = "crate::job_ids::optional_one")]
    pub job_id: Option<u64>,
    pub follow: bool,
    pub controller: bool,
    pub refresh: bool,
    /// The last N lines; none, 0 or negative for all.
    pub tail: Option<i64>,
    pub task: Option<TaskSelector>,
}

impl Default for JobsLogsBody {
    fn default() -> Self {
        Self {
            base: BaseBody::default(),
            name: None,
            job_id: None,
            follow: true,
            controller: false,
            refresh: false,
            tail: None,
            task: None,
        }
    }
}

/// `POST /jobs/download_logs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobsDownloadLogsBody {
    #[serde(flatten)]
    pub base: BaseBody,
    pub name: Option<crate::names::JobName>,
    #[serde(deserialize_with = "crate::job_ids::optional_one")]
    pub job_id: Option<u64>,
    pub refresh: bool,
    pub controller: bool,
    pub local_dir: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statuses_round_trip_and_order_terminal_last() {
        for status in ManagedJobStatus::ALL {
            assert_eq!(status.as_str().parse::<ManagedJobStatus>(), Ok(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                json!(status.as_str())
            );
        }
        assert!("running".parse::<ManagedJobStatus>().is_err());
        assert!(ManagedJobStatus::Succeeded.is_terminal());
        assert!(!ManagedJobStatus::Succeeded.is_failure());
        assert!(ManagedJobStatus::FailedSetup.is_failure());
        assert!(!ManagedJobStatus::Recovering.is_terminal());
        assert_eq!(ManagedJobStatus::Failed.exit_code(), 100);
        assert_eq!(ManagedJobStatus::Running.exit_code(), 101);
        assert_eq!(ManagedJobStatus::Cancelled.exit_code(), 103);
    }

    #[test]
    fn job_recovery_reads_every_spelling_and_refuses_nonsense() {
        assert_eq!(JobRecovery::parse(None), Ok(JobRecovery::default()));
        assert_eq!(
            JobRecovery::parse(Some(&json!("failover")))
                .unwrap()
                .strategy,
            RecoveryStrategy::Failover
        );
        let full = JobRecovery::parse(Some(&json!({
            "strategy": "EAGER_NEXT_REGION",
            "max_restarts_on_errors": 3,
            "recover_on_exit_codes": [33, 34],
        })))
        .unwrap();
        assert_eq!(full.max_restarts_on_errors, 3);
        assert_eq!(full.recover_on_exit_codes, vec![33, 34]);
        let one = JobRecovery::parse(Some(&json!({"recover_on_exit_codes": 7}))).unwrap();
        assert_eq!(one.recover_on_exit_codes, vec![7]);
        for bad in [
            json!("SOMETIMES"),
            json!({"max_restarts_on_errors": -1}),
            json!({"max_restarts_on_errors": 1e9}),
            json!({"recover_on_exit_codes": [256]}),
            json!({"retries": 2}),
            json!(7),
        ] {
            assert!(JobRecovery::parse(Some(&bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn cancel_takes_exactly_one_selector_and_reads_empty_ids_as_none() {
        let body =
            |value: serde_json::Value| -> JobsCancelBody { serde_json::from_value(value).unwrap() };
        assert_eq!(
            body(json!({"job_ids": [3]})).selector(),
            Ok(CancelSelector::Ids(vec![3]))
        );
        assert_eq!(
            body(json!({"job_ids": [], "name": "train"})).selector(),
            Ok(CancelSelector::Name(
                crate::names::JobName::new("train").unwrap()
            ))
        );
        // A name is parsed: none empty, none with control characters.
        for bad in [json!(""), json!("a\u{7}b")] {
            assert!(serde_json::from_value::<JobsCancelBody>(json!({ "name": bad })).is_err());
        }
        assert_eq!(
            body(json!({"job_ids": [], "all": true})).selector(),
            Ok(CancelSelector::All)
        );
        assert_eq!(
            body(json!({"job_ids": [], "all_users": true})).selector(),
            Ok(CancelSelector::AllUsers)
        );
        assert!(body(json!({"job_ids": []})).selector().is_err());
        assert!(
            body(json!({"job_ids": [1], "all": true}))
                .selector()
                .is_err()
        );
    }

    #[test]
    fn logs_default_to_following_and_take_a_task_by_index_or_name() {
        let body: JobsLogsBody = serde_json::from_value(json!({"job_id": 2, "task": 1})).unwrap();
        assert!(body.follow);
        assert_eq!(body.task, Some(TaskSelector::Index(1)));
        let body: JobsLogsBody = serde_json::from_value(json!({"task": "eval"})).unwrap();
        assert_eq!(body.task, Some(TaskSelector::Name("eval".into())));
    }
}
