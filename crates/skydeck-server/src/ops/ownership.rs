//! Who may act on a cluster, checked inside each operation.
//!
//! The HTTP handler checks the owner when it accepts a request (a fast
//! 403), but the request runs later, by which time the name may have been
//! taken: every operation looks again at the row it acts on, and launch
//! takes a new name with one atomic claim (`Store::claim_cluster`).

use super::{RequestContext, internal};
use crate::skypilot::exception;
use skydeck_store::ClusterRecord;
use skydeck_types::RequestError;

/// The error for a cluster another user owns.
pub fn not_owner(name: &str) -> RequestError {
    RequestError::new(
        exception::PERMISSION_DENIED,
        format!("Cluster {name:?} belongs to another user; only they or an admin can use it."),
    )
}

/// Refuses `cluster` unless the requester owns it or may act for everyone.
pub async fn check_owner(
    ctx: &RequestContext,
    cluster: &ClusterRecord,
) -> Result<(), RequestError> {
    if cluster.user_id == ctx.user_id || ctx.sees_all_users().await? {
        return Ok(());
    }
    Err(not_owner(&cluster.name))
}

/// The cluster `name` if it exists and the requester may act on it.
pub async fn owned_cluster(
    ctx: &RequestContext,
    name: &str,
) -> Result<Option<ClusterRecord>, RequestError> {
    let Some(cluster) = ctx.store.get_cluster(name).await.map_err(internal)? else {
        return Ok(None);
    };
    check_owner(ctx, &cluster).await?;
    Ok(Some(cluster))
}
