//! Wire types shared by the Skydeck server and its clients.
//!
//! Everything here is plain data with serde derives: no async runtime, no
//! database and no HTTP client, so the CLI and tests can depend on it cheaply.
//! The shapes follow what the official SkyPilot 0.14.1 client sends and
//! accepts; the server's `skypilot` adapter owns the few places where the wire
//! needs more than serde (pickled error envelopes, double-encoded values).

pub mod bodies;
pub mod client_tool;
pub mod command_line;
pub mod config;
pub mod glob;
pub mod health;
pub mod job_ids;
pub mod limits;
pub mod listing_bodies;
pub mod managed_jobs;
pub mod names;
pub mod placement;
pub mod request;
pub mod ssh_node_pools;
pub mod ssh_session;
pub mod task;
pub mod version;

pub use client_tool::ClientTool;
pub use health::{HealthResponse, HealthStatus, HealthUser};
pub use request::{RequestError, RequestPayload, RequestStatus, ScheduleType};
