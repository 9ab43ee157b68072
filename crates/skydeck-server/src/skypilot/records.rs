//! Cluster records and handles in the shapes the official client decodes
//! (`StatusResponse`, the dict form of `CloudVmRayResourceHandle`).
//!
//! The client rebuilds a dict's `launched_resources` with `Resources(...)`,
//! which only accepts clouds from its own registry, and `local` is not one,
//! so launch answers send it as `null`. Status records need it: the client
//! shows INFRA from its cloud and RESOURCES (the record's `resources_str`)
//! only when it is set, so they carry the handle as a pickle
//! (`handle_pickle`), with the head IP also at the top level for clients
//! that read JSON.

use serde_json::{Value, json};
use skydeck_agent::protocol::ClusterJobRecord;
use skydeck_infra::Handle;
use skydeck_store::{ClusterRecord, ManagedJob, ManagedTask};

/// The name the INFRA column shows for an infrastructure kind.
pub fn infra_display(kind: &str) -> String {
    match kind {
        "local" => "Local".to_owned(),
        ssh if ssh.starts_with("ssh/") => format!("SSH ({})", &ssh[4..]),
        "kubernetes" => "Kubernetes".to_owned(),
        kube if kube.starts_with("kubernetes/") => format!("Kubernetes ({})", &kube[11..]),
        other => other.to_owned(),
    }
}

pub fn handle_dict(cluster: &ClusterRecord, handle: Option<&Handle>) -> Value {
    let ips: Option<Vec<[String; 2]>> = handle.map(|h| {
        h.nodes
            .iter()
            .map(|n| [n.ip.clone(), n.ip.clone()])
            .collect()
    });
    let ports: Option<Vec<u16>> = handle.map(|h| vec![22; h.nodes.len()]);
    json!({
        "cluster_name": cluster.name,
        "cluster_name_on_cloud": format!("{}-{}", cluster.name, cluster.user_id),
        "cluster_yaml": null,
        "launched_nodes": cluster.num_nodes,
        "launched_resources": null,
        "stable_internal_external_ips": ips,
        "stable_ssh_ports": ports,
        "docker_user": null,
        "is_grpc_enabled": false,
        "ssh_user": null,
    })
}

/// `1x(cpus=2, mem=8, H100:1)`: what the RESOURCES column would show.
pub fn resources_str(cluster: &ClusterRecord, handle: Option<&Handle>) -> String {
    let Some(handle) = handle else {
        return "-".to_owned();
    };
    let capacity = &handle.capacity;
    let mut parts = vec![
        format!("cpus={}", trim_float(capacity.cpus)),
        format!("mem={}", trim_float(capacity.memory_gb.round())),
    ];
    for (name, count) in &capacity.accelerators {
        parts.push(format!("{name}:{}", trim_float(*count)));
    }
    format!("{}x({})", cluster.num_nodes, parts.join(", "))
}

/// SkyPilot's Kubernetes instance type for one pod
/// (`KubernetesInstanceType.name`): `4CPU--16GB`, then `--<GPU>:<n>` when
/// it has GPUs; numbers as `format_float` writes them (`0.5CPU--2GB`).
pub fn kube_instance_type(capacity: &skydeck_infra::Capacity) -> String {
    let number = |value: f64| {
        if value.fract() == 0.0 {
            format!("{value:.0}")
        } else {
            format!("{value:.1}")
        }
    };
    let mut name = format!(
        "{}CPU--{}GB",
        number(capacity.cpus),
        number(capacity.memory_gb)
    );
    if let Some((gpu, count)) = capacity.accelerators.iter().find(|(_, n)| **n > 0.0) {
        name.push_str(&format!("--{}:{}", gpu.replace(' ', "_"), number(*count)));
    }
    name
}

fn trim_float(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value}")
    }
}

/// One `sky status` record.
pub fn status_record(cluster: &ClusterRecord, user_name: Option<&str>) -> Value {
    let handle: Option<Handle> = serde_json::from_value(cluster.handle.clone()).ok();
    let resources = resources_str(cluster, handle.as_ref());
    let infra = infra_display(&cluster.infra);
    let (cloud, region) = cloud_and_region(&cluster.infra);
    let kube_context = cluster.infra.strip_prefix("kubernetes/");
    let instance_type = handle
        .as_ref()
        .filter(|_| kube_context.is_some())
        .map(|h| kube_instance_type(&h.capacity));
    let handle_value = handle.as_ref().map(|h| {
        super::handle_pickle::status_handle_with_type(
            &handle_dict(cluster, Some(h)),
            &infra,
            instance_type.as_deref(),
        )
    });
    let head_ip = handle
        .as_ref()
        .and_then(|h| h.nodes.first())
        .map(|n| n.ip.clone());
    json!({
        "name": cluster.name,
        "launched_at": cluster.launched_at.map_or(0, |t| t as i64),
        "status": cluster.status.as_str(),
        "autostop": cluster.autostop_minutes,
        "to_down": cluster.autostop_down,
        "cluster_hash": cluster.cluster_hash,
        "cluster_ever_up": cluster.ever_up,
        "status_updated_at": cluster.status_updated_at as i64,
        "user_hash": cluster.user_id,
        "user_name": user_name.unwrap_or(&cluster.user_id),
        "workspace": cluster.workspace,
        "is_managed": false,
        "nodes": cluster.num_nodes,
        "last_use": cluster.last_use,
        "last_event": null,
        "labels": {},
        "metadata": {},
        "resources_str": resources,
        "resources_str_full": resources,
        "credentials": null,
        "infra": infra,
        "head_ip": head_ip,
        // SkyPilot's dashboard draws INFRA from these (and fails on a
        // null cloud); the CLI reads the pickled handle.
        "cloud": cloud,
        "region": region,
        "cpus": handle.as_ref().map(|h| trim_float(h.capacity.cpus)),
        "memory": handle.as_ref().map(|h| trim_float(h.capacity.memory_gb.round())),
        "accelerators": handle
            .as_ref()
            .filter(|h| !h.capacity.accelerators.is_empty())
            .map(|h| {
                h.capacity
                    .accelerators
                    .iter()
                    .map(|(name, count)| format!("{name}:{}", trim_float(*count)))
                    .collect::<Vec<_>>()
                    .join(", ")
            }),
        "handle": handle_value,
    })
}

/// Adds what the server's checks found to a status record as SkyPilot's
/// does: `last_event`, and for an INIT cluster a check flipped,
/// `init_kind: "unhealthy"` with `init_status_reason` (the client then
/// shows UNHEALTHY).
pub fn with_health(record: &mut Value, cluster: &ClusterRecord, event: Option<&str>) {
    let Some(event) = event else { return };
    record["last_event"] = json!(event);
    if cluster.status == skydeck_store::ClusterStatus::Init
        && event.starts_with(crate::clusters::health::ABNORMAL)
    {
        record["init_kind"] = json!("unhealthy");
        record["init_status_reason"] = json!(event);
    }
}

/// What SkyPilot's job table stores for a task without a `name:`; the
/// client's `ClusterJobRecord` requires a string there and rejects the whole
/// queue otherwise.
pub const UNNAMED_JOB: &str = "-";

/// `sky queue` rows as the client decodes them.
pub fn job_records(jobs: Vec<ClusterJobRecord>) -> Vec<ClusterJobRecord> {
    jobs.into_iter()
        .map(|mut job| {
            job.job_name.get_or_insert_with(|| UNNAMED_JOB.to_owned());
            job
        })
        .collect()
}

/// One task's row, in the shape of SkyPilot's `ManagedJobRecord`. Numbers
/// are always numbers and `metadata` a mapping: the client's renderer
/// fails on nulls there.
pub fn managed_job_record(
    job: &ManagedJob,
    task: &ManagedTask,
    user_name: Option<&str>,
    at: f64,
) -> Value {
    let infra = task.infra.as_deref();
    let (cloud, region) = match infra {
        Some(infra) => cloud_and_region(infra),
        None => (None, None),
    };
    json!({
        "job_id": job.job_id,
        "_job_id": job.job_id,
        "task_id": task.task_id,
        "job_name": job.name,
        "task_name": task.task_name,
        "workspace": job.workspace,
        "resources": task.resources,
        "submitted_at": job.submitted_at,
        "start_at": task.start_at,
        "end_at": task.end_at,
        "job_duration": task.job_duration(at),
        "recovery_count": task.recovery_count,
        "status": task.status.as_str(),
        "schedule_state": task.schedule_state.as_str(),
        "pool": null,
        "pool_hash": null,
        "is_primary_in_job_group": null,
        "root_job_id": null,
        "parent_job_id": null,
        "parent_task_id": null,
        "dynamic_task_index": null,
        "infra": infra.map_or_else(|| "-".to_owned(), infra_display),
        "cloud": cloud,
        "region": region,
        "zone": null,
        "cluster_resources": task.resources,
        "cluster_resources_full": task.resources,
        "current_cluster_name": task.cluster_name,
        "job_id_on_pool_cluster": task.cluster_job_id,
        "details": null,
        "failure_reason": task.failure_reason,
        "metadata": {},
        "user_name": user_name,
        "user_hash": job.user_id,
        "entrypoint": job.entrypoint,
    })
}

/// SkyPilot's `cloud` and `region` of a record for an infra string.
fn cloud_and_region(infra: &str) -> (Option<String>, Option<String>) {
    match infra.split_once('/') {
        Some(("ssh", pool)) => (Some("SSH".into()), Some(format!("ssh-{pool}"))),
        Some(("kubernetes", context)) => (Some("Kubernetes".into()), Some(context.to_owned())),
        _ if infra == "local" => (Some("Local".into()), None),
        _ if infra == "kubernetes" => (Some("Kubernetes".into()), None),
        _ => (Some(infra.to_owned()), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_instance_types_are_skypilots() {
        let mut capacity = skydeck_infra::Capacity {
            cpus: 4.0,
            memory_gb: 16.0,
            ..Default::default()
        };
        assert_eq!(kube_instance_type(&capacity), "4CPU--16GB");
        capacity.accelerators.insert("H100".into(), 1.0);
        assert_eq!(kube_instance_type(&capacity), "4CPU--16GB--H100:1");
        capacity.cpus = 0.5;
        capacity.memory_gb = 2.5;
        assert_eq!(kube_instance_type(&capacity), "0.5CPU--2.5GB--H100:1");
        assert_eq!(
            infra_display("kubernetes/in-cluster"),
            "Kubernetes (in-cluster)"
        );
    }
}
