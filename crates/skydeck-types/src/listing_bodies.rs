//! Bodies of the catalog and history listings (`sky show-gpus`,
//! `sky cost-report`), as the official client sends them.

use crate::bodies::BaseBody;
use serde::{Deserialize, Serialize};

/// The clouds a listing is limited to: the client sends one name or a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CloudFilter {
    One(String),
    Many(Vec<String>),
}

impl CloudFilter {
    /// Whether `name` (an infrastructure name such as `local`) is among the
    /// clouds asked for, ignoring case as SkyPilot does.
    pub fn admits(&self, name: &str) -> bool {
        match self {
            CloudFilter::One(one) => one.eq_ignore_ascii_case(name),
            CloudFilter::Many(many) => many.iter().any(|c| c.eq_ignore_ascii_case(name)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListAcceleratorsBody {
    #[serde(flatten)]
    pub base: BaseBody,
    pub gpus_only: bool,
    pub name_filter: Option<String>,
    pub region_filter: Option<String>,
    pub quantity_filter: Option<u32>,
    pub clouds: Option<CloudFilter>,
    pub all_regions: bool,
    pub require_price: bool,
    pub case_sensitive: bool,
}

impl Default for ListAcceleratorsBody {
    fn default() -> Self {
        Self {
            base: BaseBody::default(),
            gpus_only: true,
            name_filter: None,
            region_filter: None,
            quantity_filter: None,
            clouds: None,
            all_regions: false,
            require_price: true,
            case_sensitive: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListAcceleratorCountsBody {
    #[serde(flatten)]
    pub base: BaseBody,
    pub gpus_only: bool,
    pub name_filter: Option<String>,
    pub region_filter: Option<String>,
    pub quantity_filter: Option<u32>,
    pub clouds: Option<CloudFilter>,
}

impl Default for ListAcceleratorCountsBody {
    fn default() -> Self {
        Self {
            base: BaseBody::default(),
            gpus_only: true,
            name_filter: None,
            region_filter: None,
            quantity_filter: None,
            clouds: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CostReportBody {
    #[serde(flatten)]
    pub base: BaseBody,
    /// Clusters launched within this many days; `None` for all of them.
    pub days: Option<u32>,
    pub cluster_hashes: Option<Vec<String>>,
    pub cluster_names: Option<Vec<String>>,
}

impl Default for CostReportBody {
    fn default() -> Self {
        Self {
            base: BaseBody::default(),
            days: Some(30),
            cluster_hashes: None,
            cluster_names: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_read_what_the_client_sends() {
        let body: ListAcceleratorCountsBody =
            serde_json::from_str(r#"{"gpus_only": true, "clouds": ["aws", "Local"]}"#).unwrap();
        assert!(body.clouds.unwrap().admits("local"));
        let body: ListAcceleratorsBody = serde_json::from_str(
            r#"{"name_filter": "h100", "clouds": "local", "case_sensitive": false}"#,
        )
        .unwrap();
        assert!(body.clouds.unwrap().admits("local"));
        assert!(!body.case_sensitive);
        let body: CostReportBody = serde_json::from_str(r#"{"days": null}"#).unwrap();
        assert_eq!(body.days, None);
        let body: CostReportBody = serde_json::from_str("{}").unwrap();
        assert_eq!(body.days, Some(30));
        assert!(serde_json::from_str::<CostReportBody>(r#"{"days": -1}"#).is_err());
        assert!(
            serde_json::from_str::<ListAcceleratorsBody>(r#"{"quantity_filter": -2}"#).is_err()
        );
    }
}

/// `POST /realtime_kubernetes_gpu_availability` (`sky show-gpus --infra
/// k8s`): the GPUs of one context, or of every allowed one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RealtimeGpuAvailabilityBody {
    #[serde(flatten)]
    pub base: BaseBody,
    pub context: Option<String>,
    pub name_filter: Option<String>,
    pub quantity_filter: Option<u32>,
    /// SSH node pools' contexts instead of Kubernetes ones.
    pub is_ssh: Option<bool>,
}

/// `POST /kubernetes_node_info`: the nodes of one context.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KubernetesNodeInfoBody {
    #[serde(flatten)]
    pub base: BaseBody,
    pub context: Option<String>,
}
