//! The `infra` field: `cloud[/region[/zone]]`, `kubernetes[/context]`,
//! `ssh/<pool>`, `slurm/<cluster>`, `local`, and `*` wildcards.

use super::error::{FieldPath, TaskError, did_you_mean};
use super::yaml::quote;
use std::fmt;
use std::str::FromStr;

/// Every infrastructure kind a task may name: SkyPilot 0.14's clouds plus
/// Skydeck's `local` (this machine).
pub const INFRA_KINDS: &[&str] = &[
    "local",
    "aws",
    "azure",
    "gcp",
    "ibm",
    "lambda",
    "scp",
    "oci",
    "kubernetes",
    "runpod",
    "vast",
    "vsphere",
    "cudo",
    "fluidstack",
    "paperspace",
    "primeintellect",
    "do",
    "nebius",
    "ssh",
    "slurm",
    "hyperbolic",
    "seeweb",
    "shadeform",
    "yotta",
    "mithril",
    "verda",
];

/// A kind as written (`K8s`, `AWS`) in its canonical spelling, if known.
pub(crate) fn canonical_kind(kind: &str) -> Option<&'static str> {
    let lower = kind.trim().to_ascii_lowercase();
    if lower == "k8s" {
        return Some("kubernetes");
    }
    INFRA_KINDS.iter().copied().find(|k| *k == lower)
}

/// The error for a kind that names no known infrastructure.
pub(crate) fn unknown_kind(path: &FieldPath, written: &str, kind: &str) -> TaskError {
    let error = TaskError::invalid(
        path,
        &quote(written),
        &format!("{}, or \"*\" for any", known_kinds_phrase()),
    );
    match did_you_mean(&kind.to_ascii_lowercase(), INFRA_KINDS) {
        Some(suggestion) => error.with_suggestion(suggestion),
        None => error,
    }
}

fn known_kinds_phrase() -> &'static str {
    "an infrastructure such as local, kubernetes[/context], ssh/<pool>, slurm/<cluster> \
     or <cloud>[/<region>[/<zone>]]"
}

/// A parsed `infra` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Infra {
    /// `local`, `kubernetes`, `aws`, `ssh`, `slurm`…; `None` for `*` (any).
    pub kind: Option<String>,
    /// The region; for `kubernetes` the context, for `ssh` the node pool,
    /// for `slurm` the cluster. `None` when not given or `*`.
    pub region: Option<String>,
    /// The zone; `None` when not given or `*`.
    pub zone: Option<String>,
}

impl Infra {
    /// Reads `infra` as SkyPilot's schema pattern allows it.
    pub(crate) fn parse_at(text: &str, path: &FieldPath) -> Result<Self, TaskError> {
        let invalid = || TaskError::invalid(path, &quote(text), known_kinds_phrase());
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(invalid());
        }
        let (kind, rest) = match trimmed.split_once('/') {
            Some((kind, rest)) => (kind, Some(rest)),
            None => (trimmed, None),
        };
        let kind = if kind == "*" {
            None
        } else {
            Some(canonical_kind(kind).ok_or_else(|| unknown_kind(path, text, kind))?)
        };
        let wildcard = |part: &str| (part != "*").then(|| part.to_owned());
        let Some(rest) = rest else {
            return Ok(Self {
                kind: kind.map(str::to_owned),
                region: None,
                zone: None,
            });
        };
        // A Kubernetes context may itself contain slashes (EKS ARNs).
        if kind == Some("kubernetes") {
            if rest.is_empty() {
                return Err(invalid());
            }
            return Ok(Self {
                kind: kind.map(str::to_owned),
                region: Some(rest.to_owned()),
                zone: None,
            });
        }
        let parts: Vec<&str> = rest.split('/').collect();
        if parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
            return Err(invalid());
        }
        Ok(Self {
            kind: kind.map(str::to_owned),
            region: wildcard(parts[0]),
            zone: parts.get(1).and_then(|zone| wildcard(zone)),
        })
    }
}

impl FromStr for Infra {
    type Err = TaskError;

    fn from_str(s: &str) -> Result<Self, TaskError> {
        Self::parse_at(s, &FieldPath::root())
    }
}

impl fmt::Display for Infra {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.as_deref().unwrap_or("*"))?;
        match (&self.region, &self.zone) {
            (None, None) => Ok(()),
            (region, None) => write!(f, "/{}", region.as_deref().unwrap_or("*")),
            (region, Some(zone)) => write!(f, "/{}/{zone}", region.as_deref().unwrap_or("*")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infra(s: &str) -> Infra {
        s.parse().unwrap()
    }

    #[test]
    fn kinds_regions_and_zones() {
        assert_eq!(infra("local").kind.as_deref(), Some("local"));
        assert_eq!(infra("k8s").kind.as_deref(), Some("kubernetes"));
        assert_eq!(infra("AWS").kind.as_deref(), Some("aws"));
        let aws = infra("aws/us-east-1/us-east-1a");
        assert_eq!(aws.region.as_deref(), Some("us-east-1"));
        assert_eq!(aws.zone.as_deref(), Some("us-east-1a"));
        assert_eq!(infra("ssh/pool").region.as_deref(), Some("pool"));
        assert_eq!(infra("slurm/cluster").region.as_deref(), Some("cluster"));
        let context = infra("k8s/arn:aws:eks:us-east-1:1234:cluster/my-cluster");
        assert_eq!(
            context.region.as_deref(),
            Some("arn:aws:eks:us-east-1:1234:cluster/my-cluster")
        );
    }

    #[test]
    fn wildcards() {
        assert_eq!(infra("*").kind, None);
        let any_cloud = infra("*/us-east-1");
        assert_eq!(
            (any_cloud.kind, any_cloud.region.as_deref()),
            (None, Some("us-east-1"))
        );
        let any_region = infra("aws/*/us-east-1a");
        assert_eq!(any_region.region, None);
        assert_eq!(any_region.to_string(), "aws/*/us-east-1a");
    }

    #[test]
    fn unknown_kinds_suggest_the_nearest() {
        let error = "kubernets/ctx".parse::<Infra>().unwrap_err();
        assert_eq!(error.suggestion(), Some("did you mean \"kubernetes\"?"));
        assert!(
            "nowhere"
                .parse::<Infra>()
                .unwrap_err()
                .suggestion()
                .is_none()
        );
        assert!("aws/a/b/c".parse::<Infra>().is_err());
        assert!("aws//b".parse::<Infra>().is_err());
        assert!("".parse::<Infra>().is_err());
    }
}
