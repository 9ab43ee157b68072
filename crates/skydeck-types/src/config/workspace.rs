//! `workspaces`: who may use each workspace and which infrastructure it
//! leaves out.

use super::error::{ConfigError, child, closest};
use super::shape::is_infra_name;
use crate::names::WorkspaceName;
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, BTreeSet};

/// The workspace every config has, listed or not.
pub const DEFAULT_WORKSPACE: &str = "default";

/// One workspace, as `workspaces.<name>` sets it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workspace {
    /// Only `allowed_users` (and admins) may use it.
    pub private: bool,
    /// User names or ids; read only when `private`.
    pub allowed_users: Vec<String>,
    /// Infrastructure kinds set to `disabled: true` here, lower case
    /// (`k8s` is stored as `kubernetes`).
    pub disabled_infra: BTreeSet<String>,
    /// `kubernetes.allowed_contexts`; `None` when unset or `all`.
    pub kubernetes_allowed_contexts: Option<Vec<String>>,
}

impl Workspace {
    /// Whether this user may use the workspace: admins always, everyone
    /// when it is not private, otherwise the users it lists by name or id.
    pub fn admits(&self, user_id: &str, user_name: &str, is_admin: bool) -> bool {
        is_admin
            || !self.private
            || self
                .allowed_users
                .iter()
                .any(|allowed| allowed == user_id || allowed == user_name)
    }

    /// Whether `infra_kind` (canonical, lower case) is disabled here.
    pub fn disables(&self, infra_kind: &str) -> bool {
        self.disabled_infra.contains(infra_kind)
    }

    /// Reads one workspace that already passed the schema check.
    fn from_json(value: &Map<String, Json>) -> Self {
        let strings = |value: Option<&Json>| -> Option<Vec<String>> {
            value?.as_array().map(|items| {
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
        };
        let disabled_infra = value
            .iter()
            .filter(|(key, section)| {
                is_infra_name(key) && section.get("disabled").and_then(Json::as_bool) == Some(true)
            })
            .map(|(key, _)| canonical_infra(key))
            .collect();
        Self {
            private: value
                .get("private")
                .and_then(Json::as_bool)
                .unwrap_or(false),
            allowed_users: strings(value.get("allowed_users")).unwrap_or_default(),
            disabled_infra,
            // `allowed_contexts: all` leaves the contexts unrestricted.
            kubernetes_allowed_contexts: strings(
                value
                    .get("kubernetes")
                    .and_then(|k| k.get("allowed_contexts")),
            ),
        }
    }
}

/// An infrastructure name as Skydeck compares them: lower case, `k8s`
/// spelled `kubernetes`.
pub(crate) fn canonical_infra(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    if lower == "k8s" {
        "kubernetes".to_owned()
    } else {
        lower
    }
}

/// Reads `workspaces` (already checked against the schema), adding the
/// default workspace when the config does not list it.
pub(crate) fn read_workspaces(
    value: Option<&Json>,
) -> Result<BTreeMap<String, Workspace>, ConfigError> {
    let mut workspaces = BTreeMap::new();
    if let Some(Json::Object(map)) = value {
        for (name, workspace) in map {
            check_name(name)?;
            let empty = Map::new();
            let fields = workspace.as_object().unwrap_or(&empty);
            workspaces.insert(name.clone(), Workspace::from_json(fields));
        }
    }
    workspaces.entry(DEFAULT_WORKSPACE.to_owned()).or_default();
    Ok(workspaces)
}

/// Workspace names follow [`WorkspaceName`]'s rule (SkyPilot's, bounded):
/// names end up in labels and paths.
fn check_name(name: &str) -> Result<(), ConfigError> {
    WorkspaceName::new(name)
        .map(drop)
        .map_err(|err| ConfigError::new(&child("workspaces", name), err.to_string()))
}

/// Checks that `active_workspace` names a workspace the config has.
pub(crate) fn check_active(
    key: &str,
    active: &str,
    workspaces: &BTreeMap<String, Workspace>,
) -> Result<(), ConfigError> {
    if workspaces.contains_key(active) {
        return Ok(());
    }
    let names: Vec<&str> = workspaces.keys().map(String::as_str).collect();
    let mut message = format!(
        "workspace {active:?} is not defined under workspaces (defined: {})",
        names.join(", ")
    );
    if let Some(near) = closest(active, names.iter().copied()) {
        message.push_str(&format!("; did you mean `{near}`?"));
    } else {
        message.push_str(&format!("; add it under workspaces: ({active}: {{}})"));
    }
    Err(ConfigError::new(key, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(value: Json) -> Result<BTreeMap<String, Workspace>, ConfigError> {
        read_workspaces(Some(&value))
    }

    #[test]
    fn reads_the_skypilot_shape() {
        let workspaces = read(json!({
            "team-a": {"private": true, "allowed_users": ["alice", "u-123"],
                       "aws": {"disabled": true}, "k8s": {"disabled": true}, "gcp": {"disabled": false},
                       "kubernetes": {"allowed_contexts": ["ctx1"]}},
            "open": {"kubernetes": {"allowed_contexts": "all"}},
        }))
        .unwrap();
        let team = &workspaces["team-a"];
        assert!(team.private);
        assert_eq!(team.allowed_users, ["alice", "u-123"]);
        assert_eq!(
            team.disabled_infra
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            ["aws", "kubernetes"]
        );
        assert_eq!(
            team.kubernetes_allowed_contexts.as_deref(),
            Some(&["ctx1".to_owned()][..])
        );
        assert_eq!(workspaces["open"].kubernetes_allowed_contexts, None);
        assert_eq!(workspaces[DEFAULT_WORKSPACE], Workspace::default());
    }

    #[test]
    fn admission() {
        let private = Workspace {
            private: true,
            allowed_users: vec!["alice".into(), "u-42".into()],
            ..Workspace::default()
        };
        assert!(private.admits("u-1", "alice", false), "by name");
        assert!(private.admits("u-42", "bob", false), "by id");
        assert!(!private.admits("u-2", "carol", false));
        assert!(private.admits("u-2", "carol", true), "admins always");
        let open = Workspace {
            allowed_users: vec!["alice".into()],
            ..Workspace::default()
        };
        assert!(
            open.admits("u-2", "carol", false),
            "allowed_users only matters when private"
        );
    }

    #[test]
    fn names_follow_skypilot_rule() {
        for good in ["default", "team-a", "Team_2", "9lives"] {
            read(json!({good: {}})).unwrap();
        }
        let too_long = "w".repeat(64);
        for bad in ["-team", "team a", "team.a", "_x", "équipe", "..", &too_long] {
            let error = read(json!({bad: {}})).unwrap_err();
            assert_eq!(error.path, format!("workspaces.{bad}"));
            assert!(error.message.contains(WorkspaceName::RULE), "{error}");
        }
    }

    #[test]
    fn active_workspace_must_exist() {
        let workspaces = read(json!({"team-a": {}})).unwrap();
        check_active("active_workspace", "team-a", &workspaces).unwrap();
        check_active("active_workspace", "default", &workspaces).unwrap();
        let error = check_active("active_workspace", "team-b", &workspaces).unwrap_err();
        assert_eq!(
            error.to_string(),
            "config key `active_workspace`: workspace \"team-b\" is not defined under workspaces \
             (defined: default, team-a); did you mean `team-a`?"
        );
    }
}
