//! Listings of things this server does not have yet (SkyPilot storage,
//! volumes, v1 managed-job queues): correct empty answers, so `sky storage
//! ls` and `sky volumes ls` print their empty tables instead of failing.

use super::{OpResult, RequestContext};

pub async fn storage_ls(_ctx: &RequestContext) -> OpResult {
    Ok(serde_json::json!([]))
}

pub async fn volume_list(_ctx: &RequestContext) -> OpResult {
    Ok(serde_json::json!([]))
}

/// `sky.jobs.queue` (the client's v1 call): a list of jobs, and there are
/// none until managed jobs exist.
pub async fn jobs_queue_v1(_ctx: &RequestContext) -> OpResult {
    Ok(serde_json::json!([]))
}
