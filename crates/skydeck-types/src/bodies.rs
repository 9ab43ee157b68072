//! Request bodies of the operations, as the official client sends them.
//!
//! Every body carries SkyPilot's base fields (`env_vars`, `entrypoint`, …).
//! Unknown fields are ignored, as pydantic does on the Python server, so a
//! newer client's extra fields never break an older server.

use crate::names::ClusterName;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Fields every SkyPilot request body carries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BaseBody {
    pub env_vars: BTreeMap<String, String>,
    pub entrypoint: String,
    pub entrypoint_command: String,
    pub using_remote_api_server: bool,
    pub override_skypilot_config: Option<serde_json::Value>,
}

impl BaseBody {
    /// The caller's user hash, as the client reports it when auth is off.
    pub fn user_id(&self) -> Option<&str> {
        self.env_vars
            .get("SKYPILOT_USER_ID")
            .map(String::as_str)
            .filter(|id| !id.is_empty())
    }

    /// The command the user typed, for `status`'s COMMAND column: the
    /// client's full command line when it sends one.
    pub fn command_line(&self) -> &str {
        if self.entrypoint_command.is_empty() {
            &self.entrypoint
        } else {
            &self.entrypoint_command
        }
    }

    /// The workspace the client chose (`active_workspace` in its config,
    /// which the client sends as an override of the server's).
    pub fn active_workspace(&self) -> Option<&str> {
        self.override_skypilot_config
            .as_ref()?
            .get("active_workspace")?
            .as_str()
            .filter(|name| !name.is_empty())
    }

    /// The caller's local user name, as the client reports it.
    pub fn user_name(&self) -> Option<&str> {
        self.env_vars
            .get("SKYPILOT_USER")
            .map(String::as_str)
            .filter(|name| !name.is_empty())
    }
}

/// How hard `status` should look at the real infrastructure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RefreshMode {
    #[default]
    None,
    Auto,
    Force,
}

/// `refresh` was a boolean before SkyPilot 0.10; accept both spellings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RefreshArg {
    Mode(RefreshMode),
    Flag(bool),
}

impl Default for RefreshArg {
    fn default() -> Self {
        Self::Mode(RefreshMode::None)
    }
}

impl RefreshArg {
    pub fn mode(self) -> RefreshMode {
        match self {
            Self::Mode(mode) => mode,
            Self::Flag(true) => RefreshMode::Force,
            Self::Flag(false) => RefreshMode::None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatusBody {
    #[serde(flatten)]
    pub base: BaseBody,
    /// Names or glob patterns, bounded in length and number.
    #[serde(deserialize_with = "crate::glob::deserialize_patterns")]
    pub cluster_names: Option<Vec<crate::glob::GlobPattern>>,
    pub refresh: RefreshArg,
    pub all_users: bool,
    pub include_credentials: bool,
    pub summary_response: bool,
    pub include_handle: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckBody {
    #[serde(flatten)]
    pub base: BaseBody,
    pub clouds: Option<Vec<String>>,
    pub verbose: bool,
    pub workspace: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobsQueueBody {
    #[serde(flatten)]
    pub base: BaseBody,
    pub refresh: bool,
    pub skip_finished: bool,
    pub all_users: bool,
    #[serde(deserialize_with = "crate::job_ids::optional")]
    pub job_ids: Option<Vec<u64>>,
    /// Substrings of the user name, workspace, job name and infra.
    pub user_match: Option<String>,
    pub workspace_match: Option<String>,
    pub name_match: Option<String>,
    pub infra_match: Option<String>,
    /// Pages of `limit` jobs, from 1.
    pub page: Option<u64>,
    pub limit: Option<u64>,
    pub statuses: Option<Vec<crate::managed_jobs::ManagedJobStatus>>,
    pub fields: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServeStatusBody {
    #[serde(flatten)]
    pub base: BaseBody,
    pub service_names: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PoolStatusBody {
    #[serde(flatten)]
    pub base: BaseBody,
    pub pool_names: Option<Vec<String>>,
}

/// `POST /api/cancel`. `request_ids: None` means every request of the user
/// (or of everyone when `user_id` is also `None`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiCancelBody {
    #[serde(flatten)]
    pub base: BaseBody,
    pub request_ids: Option<Vec<crate::names::RequestIdPrefix>>,
    pub user_id: Option<String>,
}

/// Query of the GET scheduling endpoints (`/enabled_clouds`, `/workspaces`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EnabledCloudsQuery {
    pub workspace: Option<String>,
    pub expand: Option<String>,
}

/// `GET /users/me/workspace`, answered directly (not a request).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserWorkspace {
    pub workspace: String,
    pub source: Option<String>,
    pub note: Option<String>,
    pub preferred: Option<String>,
    pub accessible: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_body_accepts_the_official_clients_body_and_ignores_extras() {
        let body: StatusBody = serde_json::from_value(serde_json::json!({
            "env_vars": {"SKYPILOT_USER_ID": "abcd1234", "SKYPILOT_USER": "alice"},
            "entrypoint": "sky.client.cli.command.status",
            "cluster_names": null, "refresh": "AUTO", "all_users": true,
            "a_field_from_the_future": 1
        }))
        .unwrap();
        assert_eq!(body.base.user_id(), Some("abcd1234"));
        assert_eq!(body.refresh.mode(), RefreshMode::Auto);
        assert!(body.all_users);
    }

    #[test]
    fn legacy_boolean_refresh_means_force() {
        let body: StatusBody = serde_json::from_str(r#"{"refresh": true}"#).unwrap();
        assert_eq!(body.refresh.mode(), RefreshMode::Force);
    }

    #[test]
    fn cluster_names_in_bodies_follow_the_rule() {
        let body: StopOrDownBody = serde_json::from_str(r#"{"cluster_name": "c1"}"#).unwrap();
        assert_eq!(body.cluster_name, "c1");
        for bad in [r#""../x""#, r#""/etc""#, r#""a/b""#, r#""""#, "null"] {
            let text = format!(r#"{{"cluster_name": {bad}}}"#);
            assert!(
                serde_json::from_str::<StopOrDownBody>(&text).is_err(),
                "{bad}"
            );
            assert!(serde_json::from_str::<LogsBody>(&text).is_err(), "{bad}");
        }
        let err = serde_json::from_str::<EndpointsBody>(r#"{"cluster": ".."}"#).unwrap_err();
        assert!(crate::names::is_name_error(&err.to_string()), "{err}");
        // A body that must name a cluster and does not is refused.
        assert!(serde_json::from_str::<QueueBody>("{}").is_err());
        // Launch's name is optional (a generated one), but checked if given.
        let launch: LaunchBody = serde_json::from_str("{}").unwrap();
        assert!(launch.cluster_name.is_none());
        assert!(serde_json::from_str::<LaunchBody>(r#"{"cluster_name": ".."}"#).is_err());
    }

    #[test]
    fn autostop_without_minutes_turns_autostop_off() {
        let body: AutostopBody = serde_json::from_str(r#"{"cluster_name": "c1"}"#).unwrap();
        assert_eq!(body.idle_minutes, -1);
        let name = crate::names::ClusterName::new("c1").unwrap();
        assert_eq!(AutostopBody::new(name).idle_minutes, -1);
    }

    #[test]
    fn a_wrong_type_is_rejected() {
        assert!(serde_json::from_str::<StatusBody>(r#"{"all_users": "yes"}"#).is_err());
    }
}

/// `/launch`. `task` is the dag YAML the client dumps (a header document
/// with the dag's name, then the task).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LaunchBody {
    #[serde(flatten)]
    pub base: BaseBody,
    pub task: String,
    pub cluster_name: Option<ClusterName>,
    pub retry_until_up: bool,
    pub idle_minutes_to_autostop: Option<i64>,
    pub dryrun: bool,
    pub down: bool,
    pub no_setup: bool,
    pub fast: bool,
    pub file_mounts_blob_id: Option<crate::names::BlobId>,
    pub include_credentials: bool,
}

/// `/exec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecBody {
    #[serde(flatten)]
    pub base: BaseBody,
    #[serde(default)]
    pub task: String,
    pub cluster_name: ClusterName,
    #[serde(default)]
    pub dryrun: bool,
    #[serde(default)]
    pub down: bool,
    #[serde(default)]
    pub file_mounts_blob_id: Option<crate::names::BlobId>,
}

impl ExecBody {
    /// A body for `cluster` with every other field at its default.
    pub fn new(cluster: ClusterName) -> Self {
        Self {
            base: Default::default(),
            task: Default::default(),
            cluster_name: cluster,
            dryrun: Default::default(),
            down: Default::default(),
            file_mounts_blob_id: Default::default(),
        }
    }
}

/// `/stop` and `/down`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StopOrDownBody {
    #[serde(flatten)]
    pub base: BaseBody,
    pub cluster_name: ClusterName,
    #[serde(default)]
    pub purge: bool,
    #[serde(default)]
    pub graceful: bool,
    #[serde(default)]
    pub graceful_timeout: Option<i64>,
}

impl StopOrDownBody {
    /// A body for `cluster` with every other field at its default.
    pub fn new(cluster: ClusterName) -> Self {
        Self {
            base: Default::default(),
            cluster_name: cluster,
            purge: Default::default(),
            graceful: Default::default(),
            graceful_timeout: Default::default(),
        }
    }
}

/// `/start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartBody {
    #[serde(flatten)]
    pub base: BaseBody,
    pub cluster_name: ClusterName,
    #[serde(default)]
    pub idle_minutes_to_autostop: Option<i64>,
    #[serde(default)]
    pub retry_until_up: bool,
    #[serde(default)]
    pub down: bool,
    #[serde(default)]
    pub force: bool,
}

impl StartBody {
    /// A body for `cluster` with every other field at its default.
    pub fn new(cluster: ClusterName) -> Self {
        Self {
            base: Default::default(),
            cluster_name: cluster,
            idle_minutes_to_autostop: Default::default(),
            retry_until_up: Default::default(),
            down: Default::default(),
            force: Default::default(),
        }
    }
}

/// `/autostop`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutostopBody {
    #[serde(flatten)]
    pub base: BaseBody,
    pub cluster_name: ClusterName,
    /// Negative turns autostop off.
    #[serde(default = "autostop_off")]
    pub idle_minutes: i64,
    #[serde(default)]
    pub down: bool,
}

impl AutostopBody {
    /// A body for `cluster` with every other field at its default.
    pub fn new(cluster: ClusterName) -> Self {
        Self {
            base: Default::default(),
            cluster_name: cluster,
            idle_minutes: autostop_off(),
            down: Default::default(),
        }
    }
}

/// Autostop off, when a body names no minutes.
fn autostop_off() -> i64 {
    -1
}

/// `/queue`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueBody {
    #[serde(flatten)]
    pub base: BaseBody,
    pub cluster_name: ClusterName,
    #[serde(default)]
    pub skip_finished: bool,
    #[serde(default)]
    pub all_users: bool,
}

impl QueueBody {
    /// A body for `cluster` with every other field at its default.
    pub fn new(cluster: ClusterName) -> Self {
        Self {
            base: Default::default(),
            cluster_name: cluster,
            skip_finished: Default::default(),
            all_users: Default::default(),
        }
    }
}

/// `/cancel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancelBody {
    #[serde(flatten)]
    pub base: BaseBody,
    pub cluster_name: ClusterName,
    #[serde(default, deserialize_with = "crate::job_ids::optional")]
    pub job_ids: Option<Vec<u64>>,
    #[serde(default)]
    pub all: bool,
    #[serde(default)]
    pub all_users: bool,
}

impl CancelBody {
    /// A body for `cluster` with every other field at its default.
    pub fn new(cluster: ClusterName) -> Self {
        Self {
            base: Default::default(),
            cluster_name: cluster,
            job_ids: Default::default(),
            all: Default::default(),
            all_users: Default::default(),
        }
    }
}

/// `/logs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogsBody {
    #[serde(flatten)]
    pub base: BaseBody,
    pub cluster_name: ClusterName,
    #[serde(default, deserialize_with = "crate::job_ids::optional_one")]
    pub job_id: Option<u64>,
    #[serde(default)]
    pub follow: bool,
    #[serde(default)]
    pub tail: u64,
}

impl LogsBody {
    /// A body for `cluster` with every other field at its default.
    pub fn new(cluster: ClusterName) -> Self {
        Self {
            base: Default::default(),
            cluster_name: cluster,
            job_id: Default::default(),
            follow: Default::default(),
            tail: Default::default(),
        }
    }
}

/// `/download_logs`: copy job logs to the API server for `/download`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DownloadLogsBody {
    #[serde(flatten)]
    pub base: BaseBody,
    pub cluster_name: ClusterName,
    /// None: the newest job.
    #[serde(default)]
    pub job_ids: Option<Vec<String>>,
    /// Where SkyPilot's own server would put them; the server chooses.
    #[serde(default)]
    pub local_dir: Option<String>,
}

impl DownloadLogsBody {
    /// A body for `cluster` with every other field at its default.
    pub fn new(cluster: ClusterName) -> Self {
        Self {
            base: Default::default(),
            cluster_name: cluster,
            job_ids: Default::default(),
            local_dir: Default::default(),
        }
    }
}

/// `/download`: a zip of folders `/download_logs` prepared.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DownloadBody {
    #[serde(flatten)]
    pub base: BaseBody,
    pub folder_paths: Vec<String>,
}

/// `/job_status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatusBody {
    #[serde(flatten)]
    pub base: BaseBody,
    pub cluster_name: ClusterName,
    #[serde(default, deserialize_with = "crate::job_ids::optional")]
    pub job_ids: Option<Vec<u64>>,
}

impl JobStatusBody {
    /// A body for `cluster` with every other field at its default.
    pub fn new(cluster: ClusterName) -> Self {
        Self {
            base: Default::default(),
            cluster_name: cluster,
            job_ids: Default::default(),
        }
    }
}

/// `/endpoints`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointsBody {
    #[serde(flatten)]
    pub base: BaseBody,
    pub cluster: ClusterName,
    #[serde(default)]
    pub port: Option<serde_json::Value>,
}

impl EndpointsBody {
    /// A body for `cluster` with every other field at its default.
    pub fn new(cluster: ClusterName) -> Self {
        Self {
            base: Default::default(),
            cluster,
            port: Default::default(),
        }
    }
}

/// `/validate`: checked synchronously, before the client uploads files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ValidateBody {
    #[serde(flatten)]
    pub base: BaseBody,
    pub dag: String,
    pub request_options: Option<serde_json::Value>,
}

/// `/optimize`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OptimizeBody {
    #[serde(flatten)]
    pub base: BaseBody,
    pub dag: String,
    pub minimize: serde_json::Value,
    pub request_options: Option<serde_json::Value>,
}
