//! Where a task's next attempt goes, after its cluster was lost or its
//! code restarted: SkyPilot's recovery strategies, for the places our
//! infrastructures have. A task on a bare `ssh` may go to any SSH Node
//! Pool and one on a bare `kubernetes` to any allowed context, so those
//! are the "regions" a strategy chooses among; a task pinned to one place
//! (`ssh/<pool>`, `kubernetes/<context>`, `local`) has nowhere else to go.

use crate::clusters::ssh_pools::infra_of;
use crate::ops::RequestContext;
use crate::ssh_pools::{check::pool_states, placement_pool};
use skydeck_types::managed_jobs::RecoveryStrategy;
use skydeck_types::task::Resources;

/// The places a later attempt tries, once each and in order, before the
/// task's own choice (which waits for resources): empty to go straight to
/// the task's own.
///
/// - EAGER_NEXT_REGION: every other place first, in the task's own order,
///   and the place just lost last.
/// - FAILOVER: the place just lost first, as SkyPilot relaunches in the
///   same region before failing over, then every other place.
pub fn try_order(
    strategy: RecoveryStrategy,
    asked: &str,
    previous: Option<&str>,
    candidates: &[String],
) -> Vec<String> {
    let Some(previous) = previous else {
        return Vec::new();
    };
    if !is_open_choice(asked) || !crate::clusters::ssh_pools::infra_fits(asked, previous) {
        return Vec::new();
    }
    let others = candidates
        .iter()
        .filter(|candidate| candidate.as_str() != previous)
        .cloned();
    match strategy {
        RecoveryStrategy::Failover => std::iter::once(previous.to_owned()).chain(others).collect(),
        RecoveryStrategy::EagerNextRegion => {
            others.chain(std::iter::once(previous.to_owned())).collect()
        }
    }
}

/// True for the infrastructures that leave the place to the server.
fn is_open_choice(asked: &str) -> bool {
    matches!(asked, "ssh" | "kubernetes")
}

/// The places a task with `resources` may go to in `ctx`'s workspace, in
/// the order a launch would try them; empty when it is pinned to one.
pub async fn candidates(ctx: &RequestContext, resources: &Resources) -> Vec<String> {
    match infra_of(resources).as_str() {
        "ssh" => match pool_states(
            ctx.infra.home(),
            ctx.store.as_ref(),
            &ctx.config,
            &ctx.workspace,
        )
        .await
        {
            Ok(states) => states
                .iter()
                .filter(|state| state.enabled.is_ok())
                .map(|state| placement_pool(&state.name))
                .collect(),
            Err(err) => {
                tracing::debug!(error = %err, "cannot list SSH Node Pools for a recovery");
                Vec::new()
            }
        },
        "kubernetes" => ctx
            .infra
            .kube()
            .allowed(&ctx.config, &ctx.workspace)
            .into_iter()
            .map(|context| format!("kubernetes/{context}"))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn places(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn eager_next_region_tries_the_lost_place_last() {
        let pools = places(&["ssh/a", "ssh/b", "ssh/c"]);
        let order =
            |previous| try_order(RecoveryStrategy::EagerNextRegion, "ssh", previous, &pools);
        assert_eq!(order(Some("ssh/a")), places(&["ssh/b", "ssh/c", "ssh/a"]));
        assert_eq!(order(Some("ssh/b")), places(&["ssh/a", "ssh/c", "ssh/b"]));
        // Never launched: the task's own choice.
        assert!(order(None).is_empty());
    }

    #[test]
    fn failover_tries_the_same_place_first() {
        let contexts = places(&["kubernetes/x", "kubernetes/y"]);
        assert_eq!(
            try_order(
                RecoveryStrategy::Failover,
                "kubernetes",
                Some("kubernetes/y"),
                &contexts
            ),
            places(&["kubernetes/y", "kubernetes/x"])
        );
    }

    #[test]
    fn a_task_pinned_to_one_place_stays_there() {
        let pools = places(&["ssh/a", "ssh/b"]);
        for asked in ["ssh/a", "local", "kubernetes/x"] {
            for strategy in [
                RecoveryStrategy::EagerNextRegion,
                RecoveryStrategy::Failover,
            ] {
                assert!(try_order(strategy, asked, Some("ssh/a"), &pools).is_empty());
            }
        }
        // A previous place of another kind (the task was changed): no order.
        assert!(try_order(RecoveryStrategy::Failover, "ssh", Some("local"), &pools).is_empty());
    }
}
