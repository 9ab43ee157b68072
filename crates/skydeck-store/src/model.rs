use skydeck_types::managed_jobs::{ManagedJobStatus, ScheduleState};
use skydeck_types::{RequestError, RequestStatus, ScheduleType};

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: String,
    pub name: String,
    pub created_at: f64,
    /// Set when the user is created; changed only by [`Store::set_user_role`].
    ///
    /// [`Store::set_user_role`]: crate::Store::set_user_role
    pub role: Role,
}

/// What a user may do: an admin sees and acts on everything, a user on
/// their own requests and clusters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Role {
    Admin,
    #[default]
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "admin" => Ok(Role::Admin),
            "user" => Ok(Role::User),
            other => Err(format!("unknown role {other:?}: expected admin or user")),
        }
    }
}

/// A service-account token as stored: never the secret, only its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    /// Public: shown in listings and used to revoke.
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// SHA-256 of the token, hex.
    pub hash: String,
    pub created_at: f64,
    pub expires_at: Option<f64>,
    pub last_used_at: Option<f64>,
    pub revoked_at: Option<f64>,
}

impl TokenRecord {
    /// Whether the token lets its holder in at `now`.
    pub fn is_valid_at(&self, now: f64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| now < at)
    }
}

/// A request as it is accepted, before any server runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRequest {
    pub id: String,
    /// SkyPilot's request name, e.g. `sky.status`.
    pub name: String,
    /// The client command that made it, for `api status -v`.
    pub entrypoint: String,
    pub body: serde_json::Value,
    pub schedule_type: ScheduleType,
    pub user_id: String,
    pub cluster_name: Option<String>,
    pub created_at: f64,
    /// The workspace it acts in (`default` unless the client chose one).
    pub workspace: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    pub id: String,
    pub name: String,
    pub entrypoint: String,
    pub body: serde_json::Value,
    pub status: RequestStatus,
    pub schedule_type: ScheduleType,
    pub user_id: String,
    pub cluster_name: Option<String>,
    pub created_at: f64,
    pub started_at: Option<f64>,
    pub finished_at: Option<f64>,
    pub return_value: Option<serde_json::Value>,
    pub error: Option<RequestError>,
    pub status_msg: Option<String>,
    /// The API server process running it, while RUNNING.
    pub server_id: Option<String>,
    /// How many times a server has started it (more than one after a resume).
    pub attempts: i64,
    pub workspace: String,
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded(serde_json::Value),
    Failed(RequestError),
}

/// Which requests `list_requests` returns. Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestFilter {
    pub statuses: Option<Vec<RequestStatus>>,
    pub user_id: Option<String>,
    pub cluster_name: Option<String>,
    pub schedule_type: Option<ScheduleType>,
    /// Case-insensitive text in the request's name, command, cluster or
    /// its user's name.
    pub text: Option<String>,
    pub limit: Option<u32>,
    /// Newest-first requests to skip (for pages).
    pub offset: Option<u32>,
}

/// One API server process sharing the database.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerInfo {
    pub id: String,
    pub hostname: String,
    pub pid: i64,
    pub started_at: f64,
    pub heartbeat_at: f64,
}

/// A cluster's status, as SkyPilot names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClusterStatus {
    /// Being provisioned, or in a state the server has not confirmed.
    Init,
    Up,
    Stopped,
}

impl ClusterStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Init => "INIT",
            Self::Up => "UP",
            Self::Stopped => "STOPPED",
        }
    }
}

impl std::fmt::Display for ClusterStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ClusterStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "INIT" => Ok(Self::Init),
            "UP" => Ok(Self::Up),
            "STOPPED" => Ok(Self::Stopped),
            other => Err(format!("unknown cluster status {other:?}")),
        }
    }
}

/// A cluster the server launched.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterRecord {
    pub name: String,
    pub status: ClusterStatus,
    /// The user who launched it.
    pub user_id: String,
    pub workspace: String,
    /// The infrastructure kind (`local`, …).
    pub infra: String,
    /// A random id of this incarnation: a cluster torn down and launched
    /// again under the same name gets a new one.
    pub cluster_hash: String,
    pub launched_at: Option<f64>,
    pub status_updated_at: f64,
    pub num_nodes: i64,
    /// What each node was given (cpus, memory, accelerators, ports), as the
    /// provider reported it.
    pub resources: serde_json::Value,
    /// What the provider needs to reach the cluster again (its nodes and
    /// their addresses); opaque to the store.
    pub handle: serde_json::Value,
    /// Idle minutes before autostop; negative when off.
    pub autostop_minutes: i64,
    /// Autostop tears the cluster down instead of stopping it.
    pub autostop_down: bool,
    /// Whether it was ever UP (a failed first launch never was).
    pub ever_up: bool,
    /// The command that last used it, for `status -v`.
    pub last_use: Option<String>,
}

/// A cluster that was torn down: its fields as they last were, and when it
/// ended. One per incarnation (`cluster.cluster_hash`).
#[derive(Debug, Clone, PartialEq)]
pub struct EndedCluster {
    pub cluster: ClusterRecord,
    pub ended_at: f64,
}

/// The server config as stored for every replica to read.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredConfig {
    pub yaml: String,
    pub version: i64,
    pub updated_at: f64,
    pub updated_by: Option<String>,
}

/// Which managed jobs a page of them is taken from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ManagedJobFilter {
    /// One user's jobs only.
    pub user_id: Option<String>,
    /// Only jobs in these workspaces; `None` for any.
    pub workspaces: Option<Vec<String>>,
    /// Only jobs not done.
    pub active_only: bool,
}

/// One page of managed jobs, and what the whole selection holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ManagedJobPage {
    /// Newest first, with their tasks.
    pub jobs: Vec<ManagedJob>,
    /// Jobs in the selection.
    pub total: u64,
    /// The selection's tasks, counted by status.
    pub status_counts: Vec<(ManagedJobStatus, u64)>,
}

/// A managed job as accepted, before the store gives it its id.
#[derive(Debug, Clone, PartialEq)]
pub struct NewManagedJob {
    /// The request that submits it; a job per request.
    pub request_id: String,
    pub name: String,
    pub user_id: String,
    pub workspace: String,
    /// The tasks, secrets included: every relaunch needs them.
    pub dag_yaml: String,
    pub file_mounts_blob: Option<String>,
    pub entrypoint: String,
    pub submitted_at: f64,
    /// Name and requested resources of each task, in order.
    pub tasks: Vec<(String, String)>,
}

/// A managed job and its tasks (without its YAML: see
/// [`Store::managed_job_dag`](crate::Store::managed_job_dag)).
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedJob {
    pub job_id: i64,
    pub name: String,
    pub user_id: String,
    pub workspace: String,
    pub file_mounts_blob: Option<String>,
    pub entrypoint: String,
    pub submitted_at: f64,
    pub cancel_requested: bool,
    /// Every task ended and the job's clusters are gone: no server drives
    /// it any more.
    pub done: bool,
    pub lease_owner: Option<String>,
    pub lease_until: Option<f64>,
    /// By `task_id`.
    pub tasks: Vec<ManagedTask>,
}

/// One task of a managed job: where the controller is with it.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedTask {
    pub job_id: i64,
    pub task_id: i64,
    pub task_name: String,
    pub resources: String,
    pub status: ManagedJobStatus,
    pub schedule_state: ScheduleState,
    pub start_at: Option<f64>,
    pub end_at: Option<f64>,
    /// Seconds run in attempts that ended.
    pub run_seconds: f64,
    /// When the current attempt's job started running.
    pub last_started_at: Option<f64>,
    pub recovery_count: i64,
    pub restarts: i64,
    pub attempt: i64,
    pub cluster_name: Option<String>,
    pub cluster_job_id: Option<i64>,
    pub infra: Option<String>,
    pub failure_reason: Option<String>,
}

impl ManagedTask {
    /// How long the task has run, over every attempt, at `now`.
    pub fn job_duration(&self, now: f64) -> f64 {
        let current = match (self.last_started_at, self.status) {
            (Some(started), ManagedJobStatus::Running) => (now - started).max(0.0),
            _ => 0.0,
        };
        self.run_seconds + current
    }
}
