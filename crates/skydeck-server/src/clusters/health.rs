//! What the server last found wrong (or right again) with each cluster when
//! it checked it: a host that does not answer, an agent that was gone. The
//! status record carries it as SkyPilot's does (`last_event`, and for a
//! cluster flipped to INIT, `init_kind: unhealthy` with the reason), so
//! `sky status` shows UNHEALTHY and `sky status -v` the reason.
//!
//! Kept in memory, keyed by the cluster's incarnation (`cluster_hash`): the
//! status itself is in the database, and the next check (every
//! `CLUSTER_CHECK_INTERVAL`, or `status --refresh`) finds the reason again
//! after a restart or on another replica.

use skydeck_store::ClusterRecord;
use std::collections::HashMap;
use std::sync::Mutex;

/// SkyPilot's prefix for the reason a refresh flipped a cluster to INIT;
/// the client tells "unhealthy" from "launching" by it.
pub const ABNORMAL: &str = "Cluster is abnormal because";

#[derive(Default)]
pub struct ClusterHealth {
    /// Cluster name → (cluster_hash, event).
    events: Mutex<HashMap<String, (String, String)>>,
}

impl ClusterHealth {
    /// Records that `cluster` is unhealthy because of `reason` (which
    /// names the hosts and what they said).
    pub fn unhealthy(&self, cluster: &ClusterRecord, reason: &str) {
        self.record(cluster, format!("{ABNORMAL} {reason}"));
    }

    /// Records something the server did about `cluster` (restarted its
    /// agent, saw every host answer again).
    pub fn record(&self, cluster: &ClusterRecord, event: String) {
        self.lock()
            .insert(cluster.name.clone(), (cluster.cluster_hash.clone(), event));
    }

    /// The last event of this incarnation of `cluster`.
    pub fn last_event(&self, cluster: &ClusterRecord) -> Option<String> {
        self.lock()
            .get(&cluster.name)
            .filter(|(hash, _)| *hash == cluster.cluster_hash)
            .map(|(_, event)| event.clone())
    }

    /// Whether the last event of `cluster` says it is unhealthy.
    pub fn is_unhealthy(&self, cluster: &ClusterRecord) -> bool {
        self.last_event(cluster)
            .is_some_and(|event| event.starts_with(ABNORMAL))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, String)>> {
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skydeck_store::ClusterStatus;

    fn cluster(hash: &str) -> ClusterRecord {
        ClusterRecord {
            name: "c".to_owned(),
            status: ClusterStatus::Up,
            user_id: "u".to_owned(),
            workspace: "default".to_owned(),
            infra: "ssh/p".to_owned(),
            cluster_hash: hash.to_owned(),
            launched_at: None,
            status_updated_at: 0.0,
            num_nodes: 1,
            resources: serde_json::Value::Null,
            handle: serde_json::Value::Null,
            autostop_minutes: -1,
            autostop_down: false,
            ever_up: true,
            last_use: None,
        }
    }

    #[test]
    fn an_event_belongs_to_one_incarnation_of_a_cluster() {
        let health = ClusterHealth::default();
        health.unhealthy(&cluster("one"), "host h5 is unreachable");
        assert!(health.is_unhealthy(&cluster("one")));
        assert_eq!(
            health.last_event(&cluster("one")).unwrap(),
            "Cluster is abnormal because host h5 is unreachable"
        );
        // Torn down and launched again under the same name: a new cluster.
        assert_eq!(health.last_event(&cluster("two")), None);
        health.record(&cluster("one"), "every host answers again".to_owned());
        assert!(!health.is_unhealthy(&cluster("one")));
    }
}
