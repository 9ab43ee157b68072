//! Protocol versions and the header names that carry them.

/// The SkyPilot API version Skydeck speaks. The official client gates
/// features on this number (uploads v2 at 41, workspaces at 53, …), so it must
/// match what the server really implements.
pub const API_VERSION: u32 = 62;

/// Clients older than this get a `version_mismatch` answer, as SkyPilot's own
/// server does.
pub const MIN_COMPATIBLE_API_VERSION: u32 = 24;

/// The SkyPilot release whose protocol we implement. Reported in
/// `X-SkyPilot-Version` because the official client compares it with its own.
pub const SKYPILOT_COMPAT_VERSION: &str = "0.14.1";

/// Skydeck's own version, reported beside the compatibility version.
pub const SKYDECK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Request statuses newer than this client version may not see `WAITING`.
pub const MIN_WAITING_STATUS_API_VERSION: u32 = 55;

pub const HEADER_API_VERSION: &str = "x-skypilot-api-version";
pub const HEADER_VERSION: &str = "x-skypilot-version";
pub const HEADER_REQUEST_ID: &str = "x-skypilot-request-id";
pub const HEADER_STREAM_REQUEST_ID: &str = "x-skypilot-stream-request-id";
