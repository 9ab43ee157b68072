//! `sky cost-report`: the clusters this server holds and those it held
//! (the cluster history), each with what it ran on, when it was launched
//! and how long it was up. The machines are your own, so every price is 0.
//!
//! As in SkyPilot: a cluster that exists (UP, STOPPED or INIT) is always
//! listed; a torn-down one (status `null`, which the client shows as
//! TERMINATED) when it ended within the `days` asked; newest launch first.

use super::{OpResult, RequestContext, internal};
use crate::skypilot::records::infra_display;
use crate::skypilot::resources_pickle::{CostResources, cost_resources};
use serde_json::{Value, json};
use skydeck_infra::Handle;
use skydeck_store::{ClusterRecord, ClusterStatus};
use skydeck_types::listing_bodies::CostReportBody;

const DAY_SECONDS: f64 = 24.0 * 3600.0;

pub async fn cost_report(ctx: &RequestContext, body: CostReportBody) -> OpResult {
    let owner = if ctx.sees_all_users().await? {
        None
    } else {
        Some(ctx.user_id.as_str())
    };
    let now = crate::executor::now();
    let cutoff = body.days.map(|days| now - f64::from(days) * DAY_SECONDS);
    let existing = ctx.store.list_clusters(owner).await.map_err(internal)?;
    let ended = ctx
        .store
        .list_ended_clusters(owner, cutoff)
        .await
        .map_err(internal)?;
    let mut rows: Vec<(&ClusterRecord, Option<f64>)> = existing
        .iter()
        .map(|cluster| (cluster, None))
        .chain(ended.iter().map(|e| (&e.cluster, Some(e.ended_at))))
        .filter(|(cluster, _)| wanted(cluster, &body))
        .collect();
    rows.sort_by(|a, b| launched_at(b.0).total_cmp(&launched_at(a.0)));
    let records = rows
        .into_iter()
        .map(|(cluster, ended_at)| record(cluster, now, ended_at))
        .collect();
    Ok(Value::Array(records))
}

fn launched_at(cluster: &ClusterRecord) -> f64 {
    cluster.launched_at.unwrap_or(cluster.status_updated_at)
}

fn wanted(cluster: &ClusterRecord, body: &CostReportBody) -> bool {
    let by_hash = body
        .cluster_hashes
        .as_ref()
        .map(|hashes| hashes.contains(&cluster.cluster_hash));
    let by_name = body
        .cluster_names
        .as_ref()
        .map(|names| names.contains(&cluster.name));
    match (by_hash, by_name) {
        (None, None) => true,
        (hash, name) => hash.unwrap_or(false) || name.unwrap_or(false),
    }
}

/// One row of the report; `ended_at` is when a torn-down cluster ended
/// (`None` for one that exists).
fn record(cluster: &ClusterRecord, now: f64, ended_at: Option<f64>) -> Value {
    let handle: Option<Handle> = serde_json::from_value(cluster.handle.clone()).ok();
    let infra = infra_display(&cluster.infra);
    let launched_at = launched_at(cluster);
    // Up since launch, until now, its teardown, or when it was stopped.
    let running = ended_at.is_none() && cluster.status == ClusterStatus::Up;
    let until = match cluster.status {
        ClusterStatus::Up => ended_at.unwrap_or(now),
        _ => cluster.status_updated_at.max(launched_at),
    };
    let end: Value = if running {
        Value::Null
    } else {
        json!(until as i64)
    };
    let status: Value = match ended_at {
        Some(_) => Value::Null,
        None => json!(cluster.status.as_str()),
    };
    let cpus = handle.as_ref().map(|h| trim_float(h.capacity.cpus));
    let memory = handle
        .as_ref()
        .map(|h| trim_float(h.capacity.memory_gb.round()));
    let no_accelerators = Default::default();
    let accelerators = handle
        .as_ref()
        .map_or(&no_accelerators, |h| &h.capacity.accelerators);
    let shown = shown(&infra, cpus.as_deref(), memory.as_deref(), accelerators);
    let resources = cost_resources(&CostResources {
        infra: &infra,
        shown: &shown,
        cpus: cpus.clone(),
        memory_gb: memory.clone(),
        accelerators,
    });
    json!({
        "name": cluster.name,
        "status": status,
        "launched_at": launched_at as i64,
        "duration": (until - launched_at).max(0.0) as i64,
        "last_use": cluster.last_use.clone().unwrap_or_default(),
        "num_nodes": cluster.num_nodes,
        "resources": resources,
        "cluster_hash": cluster.cluster_hash,
        "usage_intervals": [[launched_at as i64, end]],
        "total_cost": 0.0,
        "user_hash": cluster.user_id,
        "workspace": cluster.workspace,
        "cloud": infra,
        "region": null,
        "cpus": cpus,
        "memory": memory,
        "accelerators": (!accelerators.is_empty()).then(|| accelerator_list(accelerators)),
        "resources_str": shown,
        "resources_str_full": shown,
        "infra": infra,
    })
}

/// `Local(cpus=4, mem=8, H100:1)`, as the report's RESOURCES column shows
/// it after the node count.
fn shown(
    infra: &str,
    cpus: Option<&str>,
    memory: Option<&str>,
    accelerators: &std::collections::BTreeMap<String, f64>,
) -> String {
    let mut parts = Vec::new();
    if let Some(cpus) = cpus {
        parts.push(format!("cpus={cpus}"));
    }
    if let Some(memory) = memory {
        parts.push(format!("mem={memory}"));
    }
    if !accelerators.is_empty() {
        parts.push(accelerator_list(accelerators));
    }
    format!("{infra}({})", parts.join(", "))
}

fn accelerator_list(accelerators: &std::collections::BTreeMap<String, f64>) -> String {
    accelerators
        .iter()
        .map(|(name, count)| format!("{name}:{}", trim_float(*count)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn trim_float(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_resources_read_like_skypilots() {
        let gpus = std::collections::BTreeMap::from([("H100".to_owned(), 2.0)]);
        assert_eq!(
            shown("Local", Some("4"), Some("8"), &gpus),
            "Local(cpus=4, mem=8, H100:2)"
        );
        assert_eq!(shown("Local", None, None, &Default::default()), "Local()");
    }
}
