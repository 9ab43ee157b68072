//! `api cancel`: cancels requests by id prefix, or all of them.

use super::{OpResult, RequestContext, internal};
use skydeck_store::RequestFilter;
use skydeck_types::RequestStatus;
use skydeck_types::bodies::ApiCancelBody;

pub async fn cancel(ctx: &RequestContext, mut body: ApiCancelBody) -> OpResult {
    let executor = ctx.executor()?;
    // Only admins (or anyone, without auth) cancel other users' requests.
    if !ctx.sees_all_users().await? {
        body.user_id = Some(ctx.user_id.clone());
    }
    let candidates: Vec<String> = match &body.request_ids {
        Some(prefixes) => {
            let mut ids = Vec::new();
            for prefix in prefixes {
                let matches = ctx
                    .store
                    .request_ids_with_prefix(prefix, body.user_id.as_deref(), 1000)
                    .await
                    .map_err(internal)?;
                if matches.is_empty() {
                    ctx.log
                        .line(&format!("No request matches {:?}.", prefix.as_str()));
                }
                ids.extend(matches);
            }
            ids
        }
        None => ctx
            .store
            .list_requests(&RequestFilter {
                statuses: Some(vec![
                    RequestStatus::Pending,
                    RequestStatus::Waiting,
                    RequestStatus::Running,
                ]),
                user_id: body.user_id.clone(),
                ..Default::default()
            })
            .await
            .map_err(internal)?
            .into_iter()
            .map(|r| r.id)
            .collect(),
    };
    let mut cancelled = Vec::new();
    for id in candidates {
        // Never cancel ourselves: `--all` would otherwise match this request.
        if id == ctx.id || cancelled.contains(&id) {
            continue;
        }
        if executor.cancel(&id).await.map_err(internal)?.is_some() {
            ctx.log.line(&format!("Cancelled request {id}."));
            cancelled.push(id);
        }
    }
    Ok(serde_json::json!(cancelled))
}
