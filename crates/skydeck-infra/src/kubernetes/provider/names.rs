//! What a cluster is called on Kubernetes: SkyPilot's name on the cloud
//! (`make_cluster_name_on_cloud`, capped at 42 characters so that port
//! service names fit in 63) and its pods' names, so users' `kubectl`
//! habits and label selectors keep working.

use crate::ClusterName;
use sha2::{Digest, Sha256};

/// Kubernetes' cap on a cluster's name on the cloud (SkyPilot's
/// `_MAX_CLUSTER_NAME_LEN_LIMIT`).
const MAX_NAME_ON_CLOUD: usize = 42;
/// Skydeck's own label: the cluster's display name, which a cleanup
/// without a handle (so without the user hash) finds pods by.
pub const SKYDECK_CLUSTER_LABEL: &str = "skydeck.io/cluster";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNames {
    /// The name users gave (`skypilot-cluster-name` annotation).
    pub display: String,
    /// The same as a label value (a `ClusterName` already is one).
    pub display_label: String,
    /// `<lower name>-<user hash[..8]>`: the pods' prefix and the value of
    /// `skypilot-cluster-name`.
    pub on_cloud: String,
    /// Who launched it (the user hash: the agent's records know no more).
    pub user: String,
    pub user_label: String,
}

impl ClusterNames {
    pub fn new(name: &ClusterName, user_hash: &str) -> Self {
        let display = name.as_str().to_owned();
        let base: String = display
            .chars()
            .map(|c| match c {
                '.' | '_' => '-',
                c => c.to_ascii_lowercase(),
            })
            .collect();
        let short: String = user_hash
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(8)
            .collect::<String>()
            .to_ascii_lowercase();
        let suffix = if short.is_empty() {
            String::new()
        } else {
            format!("-{short}")
        };
        let on_cloud = if base.len() + suffix.len() <= MAX_NAME_ON_CLOUD {
            format!("{base}{suffix}")
        } else {
            // SkyPilot adds 4 characters of the display name's md5; a
            // sha256's do the same job (two long names stay apart).
            let hash = format!("{:x}", Sha256::digest(display.as_bytes()));
            let keep = MAX_NAME_ON_CLOUD - 4 - 1 - suffix.len();
            let cut = base[..keep].trim_end_matches('-');
            format!("{cut}-{}{suffix}", &hash[..4])
        };
        let user_label = label_value(user_hash);
        Self {
            display_label: display.clone(),
            display,
            on_cloud,
            user: user_hash.to_owned(),
            user_label,
        }
    }

    /// Node `rank`'s pod: `<noc>-head`, `<noc>-worker<rank>`.
    pub fn pod(&self, rank: usize) -> String {
        if rank == 0 {
            format!("{}-head", self.on_cloud)
        } else {
            format!("{}-worker{rank}", self.on_cloud)
        }
    }

    /// Selects every pod of the cluster.
    pub fn selector(&self) -> String {
        format!("skypilot-cluster-name={}", self.on_cloud)
    }
}

/// `text` as a label value: letters, digits, `-_.`, alphanumeric at both
/// ends, at most 63 characters.
fn label_value(text: &str) -> String {
    let kept: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    kept.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_on_the_cloud_are_skypilots() {
        let names = ClusterNames::new(&ClusterName::new("My_Cluster.dev").unwrap(), "fcd1e5cf99");
        assert_eq!(names.on_cloud, "my-cluster-dev-fcd1e5cf");
        assert_eq!(names.pod(0), "my-cluster-dev-fcd1e5cf-head");
        assert_eq!(names.pod(3), "my-cluster-dev-fcd1e5cf-worker3");
        assert_eq!(
            names.selector(),
            "skypilot-cluster-name=my-cluster-dev-fcd1e5cf"
        );
    }

    #[test]
    fn long_names_are_cut_to_42_and_stay_apart() {
        let long = |s: &str| ClusterName::new(format!("a{}{s}", "b".repeat(50))).unwrap();
        let one = ClusterNames::new(&long("x"), "abcdef12");
        let two = ClusterNames::new(&long("y"), "abcdef12");
        assert_eq!(one.on_cloud.len(), 42, "{}", one.on_cloud);
        assert!(one.on_cloud.ends_with("-abcdef12"));
        assert_ne!(one.on_cloud, two.on_cloud);
    }

    #[test]
    fn label_values_are_valid() {
        assert_eq!(label_value("a b/c"), "a-b-c");
        assert_eq!(label_value("-x-"), "x");
    }
}
