//! The environment a job's processes see: SkyPilot's variables on top of
//! the job's envs and secrets.

use crate::cluster::ClusterInfo;
use crate::state::JobRecord;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Phase {
    Setup,
    Run,
}

impl Phase {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Setup => "setup",
            Self::Run => "run",
        }
    }
}

/// `SKYPILOT_CLUSTER_INFO`, keys in SkyPilot's order.
#[derive(Serialize)]
struct ClusterInfoVar<'a> {
    cluster_name: &'a str,
    cloud: &'a str,
    region: Option<&'a str>,
    zone: Option<&'a str>,
    num_nodes: usize,
}

/// Later entries win; SkyPilot's own variables come last so a job cannot
/// accidentally shadow them.
pub(crate) fn node_env(
    cluster: &ClusterInfo,
    job: &JobRecord,
    rank: usize,
    phase: Phase,
    secrets: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let nodes = &cluster.nodes[..job.num_nodes];
    let ips = nodes
        .iter()
        .map(|node| node.ip.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let info = ClusterInfoVar {
        cluster_name: &cluster.name,
        cloud: &cluster.cloud,
        region: cluster.region.as_deref(),
        zone: cluster.zone.as_deref(),
        num_nodes: cluster.num_nodes,
    };
    let gpus: f64 = job.demand.accelerators.values().sum();
    let mut env: Vec<(String, String)> = job
        .envs
        .iter()
        .chain(secrets)
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let (rank_var, ips_var) = match phase {
        Phase::Setup => ("SKYPILOT_SETUP_NODE_RANK", "SKYPILOT_SETUP_NODE_IPS"),
        Phase::Run => ("SKYPILOT_NODE_RANK", "SKYPILOT_NODE_IPS"),
    };
    // Placement's GPUs for the node, so that clusters sharing a machine
    // never share a GPU.
    if let Some(gpus) = &nodes[rank].gpus {
        let list: Vec<String> = gpus.iter().map(u32::to_string).collect();
        env.push(("CUDA_VISIBLE_DEVICES".to_owned(), list.join(",")));
    }
    env.extend([
        ("HOME".to_owned(), nodes[rank].dir.display().to_string()),
        (rank_var.to_owned(), rank.to_string()),
        (ips_var.to_owned(), ips),
        ("SKYPILOT_NUM_NODES".to_owned(), job.num_nodes.to_string()),
        ("SKYPILOT_TASK_ID".to_owned(), task_id(cluster, job)),
        // SkyPilot rounds fractional GPUs up.
        (
            "SKYPILOT_NUM_GPUS_PER_NODE".to_owned(),
            (gpus.ceil() as u64).to_string(),
        ),
        ("SKYPILOT_USER".to_owned(), job.username.clone()),
        (
            "SKYPILOT_CLUSTER_INFO".to_owned(),
            serde_json::to_string(&info).expect("plain strings and numbers serialize"),
        ),
    ]);
    if phase == Phase::Setup {
        env.push((
            "SKYPILOT_SETUP_NUM_GPUS_PER_NODE".to_owned(),
            (gpus.ceil() as u64).to_string(),
        ));
    }
    env
}

/// The server's task id, or one in SkyPilot's format
/// (`sky-2026-11-22-10-00-00-123456_<cluster>_<job id>`) from the submit time.
fn task_id(cluster: &ClusterInfo, job: &JobRecord) -> String {
    if let Some(id) = &job.task_id {
        return id.clone();
    }
    format!(
        "sky-{}_{}_{}",
        utc_timestamp(job.submitted_at),
        cluster.name,
        job.job_id
    )
}

/// `YYYY-MM-DD-HH-MM-SS-ffffff` in UTC (Hinnant's civil-from-days).
fn utc_timestamp(unix_secs: f64) -> String {
    let micros = (unix_secs * 1e6).round() as i64;
    let (secs, micros) = (micros.div_euclid(1_000_000), micros.rem_euclid(1_000_000));
    let (days, secs_of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}-{:02}-{:02}-{:02}-{micros:06}",
        secs_of_day / 3600,
        secs_of_day % 3600 / 60,
        secs_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_skypilots_task_id_format() {
        assert_eq!(utc_timestamp(0.0), "1970-01-01-00-00-00-000000");
        // 2026-11-22T10:00:00.123456Z
        assert_eq!(
            utc_timestamp(1_795_341_600.123_456),
            "2026-11-22-10-00-00-123456"
        );
        // A leap day.
        assert_eq!(utc_timestamp(951_782_400.0), "2000-02-29-00-00-00-000000");
    }
}
