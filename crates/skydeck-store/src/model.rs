use skydeck_types::{RequestError, RequestStatus, ScheduleType};

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: String,
    pub name: String,
    pub created_at: f64,
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
    pub limit: Option<u32>,
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
