//! Requests of SkyPilot features this server does not have yet. The official
//! client sends them like any other; each is accepted and fails at once with
//! a `NotSupportedError`, which the client prints as one line (no traceback)
//! and exits non-zero.

use crate::skypilot::exception;
use skydeck_types::RequestError;

/// One SkyPilot request this server refuses: its request name and the
/// feature it belongs to, as the message names it.
pub struct Refused {
    pub name: &'static str,
    feature: Feature,
    /// The exception the client gets: `NotSupportedError`, unless the
    /// client's own code path expects another (see [`REFUSED`]).
    kind: &'static str,
}

#[derive(Clone, Copy)]
enum Feature {
    ManagedJobs,
    Pools,
    Services,
    Storage,
    Volumes,
    Kubernetes,
    Slurm,
    LocalKubernetes,
    WorkspaceEditing,
    Recipes,
    ClusterEvents,
    DebugDumps,
}

impl Feature {
    fn sentence(self) -> &'static str {
        match self {
            Feature::ManagedJobs => {
                "waiting on or listing the events of managed jobs yet; follow a job with \
                 `sky jobs logs` instead"
            }
            Feature::Pools => "pools (`sky jobs pool`) yet",
            Feature::Services => "SkyServe services (`sky serve`) yet",
            Feature::Storage => "SkyPilot storage (`sky storage`) yet",
            Feature::Volumes => "volumes (`sky volumes`) yet",
            Feature::Kubernetes => "Kubernetes infrastructure yet",
            Feature::Slurm => "Slurm infrastructure yet",
            Feature::LocalKubernetes => "local Kubernetes clusters (`sky local`) yet",
            Feature::WorkspaceEditing => {
                "editing workspaces through the API yet; set `workspaces` in the server's \
                 config (`skydeck config`) instead"
            }
            Feature::Recipes => "recipes yet",
            Feature::ClusterEvents => "cluster event history yet",
            Feature::DebugDumps => "debug dumps yet; the API server log has the details",
        }
    }
}

const fn refused(name: &'static str, feature: Feature) -> Refused {
    Refused {
        name,
        feature,
        kind: exception::NOT_SUPPORTED,
    }
}

/// Every refused request, by SkyPilot's request name.
pub const REFUSED: &[Refused] = &[
    refused("sky.jobs.wait", Feature::ManagedJobs),
    refused("sky.jobs.events", Feature::ManagedJobs),
    refused("sky.jobs.pool_apply", Feature::Pools),
    refused("sky.jobs.pool_down", Feature::Pools),
    refused("sky.jobs.pool_logs", Feature::Pools),
    refused("sky.jobs.pool_sync_down_logs", Feature::Pools),
    refused("sky.serve.up", Feature::Services),
    refused("sky.serve.update", Feature::Services),
    refused("sky.serve.down", Feature::Services),
    refused("sky.serve.terminate_replica", Feature::Services),
    refused("sky.serve.logs", Feature::Services),
    refused("sky.serve.sync_down_logs", Feature::Services),
    refused("sky.storage_delete", Feature::Storage),
    refused("sky.volume_apply", Feature::Volumes),
    refused("sky.volume_delete", Feature::Volumes),
    refused("sky.kubernetes_label_gpus", Feature::Kubernetes),
    refused("sky.status_kubernetes", Feature::Kubernetes),
    refused("sky.all_contexts", Feature::Kubernetes),
    refused("sky.realtime_slurm_gpu_availability", Feature::Slurm),
    refused("sky.slurm_cluster_names", Feature::Slurm),
    refused("sky.local_up", Feature::LocalKubernetes),
    refused("sky.local_down", Feature::LocalKubernetes),
    refused("sky.workspaces.update", Feature::WorkspaceEditing),
    refused("sky.workspaces.create", Feature::WorkspaceEditing),
    refused("sky.workspaces.delete", Feature::WorkspaceEditing),
    refused("sky.workspaces.batch_add_users", Feature::WorkspaceEditing),
    refused(
        "sky.workspaces.batch_remove_users",
        Feature::WorkspaceEditing,
    ),
    refused("sky.recipes.list", Feature::Recipes),
    refused("sky.recipes.get", Feature::Recipes),
    refused("sky.recipes.create", Feature::Recipes),
    refused("sky.recipes.update", Feature::Recipes),
    refused("sky.recipes.delete", Feature::Recipes),
    refused("sky.recipes.pin", Feature::Recipes),
    refused("sky.cluster_events", Feature::ClusterEvents),
    refused("sky.create_debug_dump", Feature::DebugDumps),
];

/// The refused request called `name`, if it is one.
pub fn find(name: &str) -> Option<&'static Refused> {
    REFUSED.iter().find(|refused| refused.name == name)
}

/// The failure of the refused request called `name`.
pub fn refuse(name: &str) -> RequestError {
    match find(name) {
        Some(refused) => refused.error(),
        None => RequestError::new(
            exception::NOT_SUPPORTED,
            format!("This API server (Skydeck) does not support the request {name:?} yet."),
        ),
    }
}

impl Refused {
    /// The one line the client prints.
    pub fn message(&self) -> String {
        format!(
            "This API server (Skydeck) does not support {}.",
            self.feature.sentence()
        )
    }

    pub fn error(&self) -> RequestError {
        RequestError::new(self.kind, self.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_skypilot_names_and_messages_are_one_line() {
        let mut seen = std::collections::HashSet::new();
        for refused in REFUSED {
            assert!(refused.name.starts_with("sky."), "{}", refused.name);
            assert!(seen.insert(refused.name), "{} twice", refused.name);
            assert!(!refused.message().contains('\n'), "{}", refused.name);
            assert!(super::super::Op::from_name(refused.name).is_some());
        }
    }
}
