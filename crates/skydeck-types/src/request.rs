//! Requests: the durable unit of work the API server executes.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where a request is in its life. The order matters: everything after
/// `Running` is final, as in SkyPilot's `RequestStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RequestStatus {
    Pending,
    Waiting,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl RequestStatus {
    pub const ALL: [RequestStatus; 6] = [
        Self::Pending,
        Self::Waiting,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
    ];

    /// True once the request can no longer change.
    pub fn is_finished(self) -> bool {
        self > Self::Running
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Waiting => "WAITING",
            Self::Running => "RUNNING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Cancelled => "CANCELLED",
        }
    }
}

impl fmt::Display for RequestStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a string that names no request status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownStatus(pub String);

impl fmt::Display for UnknownStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown request status {:?}", self.0)
    }
}

impl std::error::Error for UnknownStatus {}

impl FromStr for RequestStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// Which worker pool runs a request: `Long` for work that provisions or runs
/// jobs, `Short` for quick reads, so a burst of launches never starves
/// `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleType {
    Long,
    Short,
}

impl ScheduleType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Long => "long",
            Self::Short => "short",
        }
    }
}

impl fmt::Display for ScheduleType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ScheduleType {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "long" => Ok(Self::Long),
            "short" => Ok(Self::Short),
            other => Err(UnknownStatus(other.to_owned())),
        }
    }
}

/// Why a request failed: an exception type the SkyPilot client knows (see
/// `sky.exceptions`) and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestError {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
}

impl RequestError {
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// A request as `/api/get` and `/api/status` carry it (SkyPilot's
/// `RequestPayload`). `return_value` and `error` are JSON documents encoded a
/// second time as strings, because that is what the official client parses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestPayload {
    pub request_id: String,
    pub name: String,
    pub entrypoint: String,
    pub request_body: String,
    pub status: RequestStatus,
    pub created_at: f64,
    pub user_id: String,
    #[serde(default)]
    pub user_name: Option<String>,
    pub return_value: String,
    pub error: String,
    pub pid: Option<i64>,
    pub schedule_type: ScheduleType,
    #[serde(default)]
    pub cluster_name: Option<String>,
    #[serde(default)]
    pub status_msg: Option<String>,
    #[serde(default)]
    pub should_retry: bool,
    #[serde(default)]
    pub finished_at: Option<f64>,
}

/// The error half of an `error` string: the envelope also carries a pickled
/// copy for the Python client, which Rust clients ignore.
#[derive(Debug, Clone, Deserialize)]
struct ErrorEnvelope {
    #[serde(rename = "type")]
    kind: String,
    message: String,
}

impl RequestPayload {
    /// The decoded return value (`null` when there is none).
    pub fn return_value(&self) -> serde_json::Result<serde_json::Value> {
        serde_json::from_str(&self.return_value)
    }

    /// The decoded error, if the request has one.
    pub fn error(&self) -> Option<RequestError> {
        let envelope: Option<ErrorEnvelope> = serde_json::from_str(&self.error).ok()?;
        envelope.map(|e| RequestError::new(e.kind, e.message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_after_running_are_finished() {
        let finished: Vec<_> = RequestStatus::ALL
            .into_iter()
            .filter(|s| s.is_finished())
            .collect();
        assert_eq!(
            finished,
            [
                RequestStatus::Succeeded,
                RequestStatus::Failed,
                RequestStatus::Cancelled
            ]
        );
    }

    #[test]
    fn status_round_trips_through_its_wire_name() {
        for status in RequestStatus::ALL {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
            assert_eq!(status.as_str().parse::<RequestStatus>().unwrap(), status);
        }
        assert!("DONE".parse::<RequestStatus>().is_err());
    }

    #[test]
    fn payload_decodes_double_encoded_values() {
        let payload = RequestPayload {
            request_id: "r".into(),
            name: "sky.status".into(),
            entrypoint: String::new(),
            request_body: String::new(),
            status: RequestStatus::Failed,
            created_at: 1.0,
            user_id: "u".into(),
            user_name: None,
            return_value: "[1, 2]".into(),
            error: r#"{"object": "x", "type": "ValueError", "message": "bad"}"#.into(),
            pid: None,
            schedule_type: ScheduleType::Short,
            cluster_name: None,
            status_msg: None,
            should_retry: false,
            finished_at: None,
        };
        assert_eq!(payload.return_value().unwrap(), serde_json::json!([1, 2]));
        assert_eq!(
            payload.error(),
            Some(RequestError::new("ValueError", "bad"))
        );
    }
}
