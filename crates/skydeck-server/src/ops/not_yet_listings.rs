//! Listings of things this server does not have yet (SkyPilot storage,
//! volumes): correct empty answers, so `sky storage
//! ls` and `sky volumes ls` print their empty tables instead of failing.

use super::{OpResult, RequestContext};

pub async fn storage_ls(_ctx: &RequestContext) -> OpResult {
    Ok(serde_json::json!([]))
}

pub async fn volume_list(_ctx: &RequestContext) -> OpResult {
    Ok(serde_json::json!([]))
}
