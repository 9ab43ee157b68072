//! Which queued jobs start now.
//!
//! A job runs on the cluster's first `num_nodes` nodes and starts when its
//! per-node demand fits beside what running jobs hold there. Jobs are looked
//! at in submission order; one that does not fit yet does not hold back a
//! later, smaller one that does (backfill, as SkyPilot's Ray-based scheduler
//! behaves). The price: a large job can wait for as long as small ones keep
//! the nodes busy.

use crate::cluster::{Capacity, ClusterInfo};
use crate::protocol::{Demand, JobStatus};
use crate::state::JobRecord;
use std::collections::{BTreeMap, HashSet};

/// Slack for float sums such as 0.1 + 0.2.
const EPSILON: f64 = 1e-9;

#[derive(Debug, Default, PartialEq)]
pub(crate) struct Plan {
    pub start: Vec<u64>,
    /// Jobs that cannot run on this cluster whatever else runs, with why.
    pub reject: Vec<(u64, String)>,
}

/// `busy`: jobs whose processes the daemon is still stopping; their
/// resources are not free yet even if their status says so.
pub(crate) fn plan(jobs: &[JobRecord], busy: &HashSet<u64>, cluster: &ClusterInfo) -> Plan {
    let mut used = vec![Capacity::default(); cluster.num_nodes];
    for job in jobs {
        if job.status.is_active() || busy.contains(&job.job_id) {
            take(&mut used, &job.demand, job.num_nodes);
        }
    }
    let mut plan = Plan::default();
    for job in jobs.iter().filter(|job| job.status == JobStatus::Pending) {
        if let Some(reason) = never_fits(&job.demand, job.num_nodes, cluster) {
            plan.reject.push((job.job_id, reason));
        } else if used[..job.num_nodes]
            .iter()
            .all(|node| fits(&job.demand, node, &cluster.capacity))
        {
            take(&mut used, &job.demand, job.num_nodes);
            plan.start.push(job.job_id);
        }
    }
    plan
}

fn never_fits(demand: &Demand, num_nodes: usize, cluster: &ClusterInfo) -> Option<String> {
    if num_nodes > cluster.num_nodes {
        return Some(format!(
            "the job asks for {num_nodes} nodes but cluster {} has {}",
            cluster.name, cluster.num_nodes
        ));
    }
    let capacity = &cluster.capacity;
    if !fits(demand, &Capacity::default(), capacity) {
        return Some(format!(
            "the job asks for {} per node but each node of cluster {} has {}",
            describe(demand.cpus, demand.memory_gb, &demand.accelerators),
            cluster.name,
            describe(capacity.cpus, capacity.memory_gb, &capacity.accelerators)
        ));
    }
    None
}

fn fits(demand: &Demand, used: &Capacity, capacity: &Capacity) -> bool {
    let within = |want: f64, used: f64, have: f64| want <= EPSILON || used + want <= have + EPSILON;
    within(demand.cpus, used.cpus, capacity.cpus)
        && within(demand.memory_gb, used.memory_gb, capacity.memory_gb)
        && demand.accelerators.iter().all(|(name, &want)| {
            within(
                want,
                used.accelerators.get(name).copied().unwrap_or(0.0),
                capacity.accelerators.get(name).copied().unwrap_or(0.0),
            )
        })
}

fn take(used: &mut [Capacity], demand: &Demand, num_nodes: usize) {
    for node in used.iter_mut().take(num_nodes) {
        node.cpus += demand.cpus;
        node.memory_gb += demand.memory_gb;
        for (name, count) in &demand.accelerators {
            *node.accelerators.entry(name.clone()).or_default() += count;
        }
    }
}

fn describe(cpus: f64, memory_gb: f64, accelerators: &BTreeMap<String, f64>) -> String {
    let mut parts = vec![format!("{cpus} CPUs"), format!("{memory_gb} GB memory")];
    parts.extend(
        accelerators
            .iter()
            .map(|(name, count)| format!("{count} {name}")),
    );
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::JobSpec;

    fn cluster() -> ClusterInfo {
        serde_json::from_value(serde_json::json!({
            "name": "c1", "num_nodes": 2, "cloud": "local",
            "nodes": [{"rank": 0, "ip": "127.0.0.1", "dir": "/n/0"},
                      {"rank": 1, "ip": "127.0.0.2", "dir": "/n/1"}],
            "capacity": {"cpus": 2.0, "memory_gb": 8.0, "accelerators": {"H100": 1}}
        }))
        .unwrap()
    }

    fn job(id: u64, status: JobStatus, num_nodes: usize, demand: serde_json::Value) -> JobRecord {
        let spec: JobSpec = serde_json::from_value(serde_json::json!({
            "idempotency_key": id.to_string(), "username": "u", "user_hash": "h",
            "num_nodes": num_nodes, "demand": demand
        }))
        .unwrap();
        let (mut record, _) = JobRecord::new(id, spec);
        record.status = status;
        record
    }

    #[test]
    fn a_gpu_held_by_a_running_job_is_not_given_twice() {
        let gpu = serde_json::json!({"cpus": 0.5, "accelerators": {"H100": 1}});
        let jobs = [
            job(1, JobStatus::Running, 1, gpu.clone()),
            job(2, JobStatus::Pending, 1, gpu.clone()),
        ];
        assert_eq!(plan(&jobs, &HashSet::new(), &cluster()), Plan::default());
        let jobs = [
            job(1, JobStatus::Succeeded, 1, gpu.clone()),
            job(2, JobStatus::Pending, 1, gpu.clone()),
            job(3, JobStatus::Pending, 1, gpu.clone()),
        ];
        assert_eq!(plan(&jobs, &HashSet::new(), &cluster()).start, vec![2]);
        // Still being stopped: its GPU is not free yet.
        assert!(
            plan(&jobs, &HashSet::from([1]), &cluster())
                .start
                .is_empty()
        );
    }

    #[test]
    fn a_smaller_later_job_starts_beside_a_waiting_one() {
        let jobs = [
            job(1, JobStatus::Running, 1, serde_json::json!({"cpus": 1.5})),
            job(2, JobStatus::Pending, 1, serde_json::json!({"cpus": 1})),
            job(3, JobStatus::Pending, 2, serde_json::json!({"cpus": 0.5})),
        ];
        assert_eq!(plan(&jobs, &HashSet::new(), &cluster()).start, vec![3]);
    }

    #[test]
    fn what_can_never_fit_is_rejected_with_a_reason() {
        let jobs = [
            job(1, JobStatus::Pending, 3, serde_json::json!({})),
            job(
                2,
                JobStatus::Pending,
                1,
                serde_json::json!({"accelerators": {"A100": 1}}),
            ),
            job(
                3,
                JobStatus::Pending,
                1,
                serde_json::json!({"cpus": 0.1, "accelerators": {"H100": 1}}),
            ),
        ];
        let plan = plan(&jobs, &HashSet::new(), &cluster());
        assert_eq!(plan.start, vec![3]);
        assert_eq!(plan.reject.len(), 2);
        assert!(plan.reject[0].1.contains("3 nodes"), "{}", plan.reject[0].1);
        assert!(plan.reject[1].1.contains("1 A100"), "{}", plan.reject[1].1);
    }
}
