//! `sky cost-report`: the clusters this server holds, each with what it
//! runs on, when it was launched and how long it has been up. The machines
//! are your own, so every price is 0.
//!
//! A cluster torn down leaves no row behind yet, so the report covers the
//! clusters that exist (UP, STOPPED or INIT), not torn-down history.

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
    let clusters = ctx.store.list_clusters(owner).await.map_err(internal)?;
    let now = crate::executor::now();
    let cutoff = body.days.map(|days| now - f64::from(days) * DAY_SECONDS);
    let records: Vec<Value> = clusters
        .iter()
        .filter(|cluster| cutoff.is_none_or(|cutoff| last_active(cluster, now) >= cutoff))
        .filter(|cluster| wanted(cluster, &body))
        .map(|cluster| record(cluster, now))
        .collect();
    Ok(Value::Array(records))
}

/// When the cluster was last up: now for a running one.
fn last_active(cluster: &ClusterRecord, now: f64) -> f64 {
    match cluster.status {
        ClusterStatus::Up => now,
        _ => cluster.status_updated_at,
    }
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

fn record(cluster: &ClusterRecord, now: f64) -> Value {
    let handle: Option<Handle> = serde_json::from_value(cluster.handle.clone()).ok();
    let infra = infra_display(&cluster.infra);
    let launched_at = cluster.launched_at.unwrap_or(cluster.status_updated_at);
    // Up since launch, or until it was stopped.
    let until = match cluster.status {
        ClusterStatus::Up => now,
        _ => cluster.status_updated_at.max(launched_at),
    };
    let end: Value = match cluster.status {
        ClusterStatus::Up => Value::Null,
        _ => json!(until as i64),
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
        "status": cluster.status.as_str(),
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
