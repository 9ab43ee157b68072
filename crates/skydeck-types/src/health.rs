//! The `/api/health` answer, in the shape SkyPilot's client validates.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Healthy,
    Unhealthy,
    VersionMismatch,
    NeedsAuth,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthUser {
    pub id: String,
    pub name: String,
}

/// Fields the official client reads are required; the rest only feed
/// dashboards. `skydeck_version` is ours: the client ignores unknown keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthResponse {
    pub status: HealthStatus,
    pub api_version: String,
    pub version: String,
    pub version_on_disk: String,
    pub commit: String,
    pub basic_auth_enabled: bool,
    pub user: Option<HealthUser>,
    pub service_account_token_enabled: bool,
    pub ingress_basic_auth_enabled: bool,
    pub external_proxy_auth_enabled: bool,
    pub latest_version: Option<String>,
    pub telemetry_enabled: bool,
    pub restrict_config_to_admins: bool,
    #[serde(default)]
    pub skydeck_version: Option<String>,
}
