//! `check`: which infrastructure this server can launch on, and why not.

use super::{OpResult, RequestContext};
use crate::infra;
use skydeck_types::bodies::CheckBody;

pub async fn check(ctx: &RequestContext, body: CheckBody) -> OpResult {
    let log = &ctx.log;
    log.line("Checking infrastructure available to Skydeck.");
    let wanted: Option<Vec<String>> = body
        .clouds
        .map(|clouds| clouds.iter().map(|c| c.to_ascii_lowercase()).collect());
    let mut enabled = serde_json::Map::new();
    for infra in infra::known() {
        if let Some(wanted) = &wanted
            && !wanted.iter().any(|w| w == infra.name)
        {
            continue;
        }
        match (infra.probe)() {
            Ok(detail) => {
                log.line(&format!("  {}: enabled [compute]", infra.display_name));
                if body.verbose {
                    log.line(&format!("    {detail}"));
                }
                enabled.insert(
                    infra.display_name.to_owned(),
                    serde_json::json!(["compute"]),
                );
            }
            Err(reason) => {
                log.line(&format!("  {}: disabled", infra.display_name));
                log.line(&format!("    Reason: {reason}"));
            }
        }
    }
    let workspace = body.workspace.unwrap_or_else(|| ctx.workspace.clone());
    let ssh_wanted = wanted.as_ref().is_none_or(|w| w.iter().any(|n| n == "ssh"));
    let mut ssh_pools = Vec::new();
    if ssh_wanted {
        ssh_pools = check_ssh(ctx, &workspace).await;
        if !ssh_pools.is_empty() {
            enabled.insert("SSH".to_owned(), serde_json::json!(["compute"]));
        }
    }
    let kube_wanted = wanted
        .as_ref()
        .is_none_or(|w| w.iter().any(|n| n == "kubernetes" || n == "k8s"));
    let mut kube_contexts = Vec::new();
    if kube_wanted {
        kube_contexts = check_kubernetes(ctx, &workspace).await;
        if !kube_contexts.is_empty() {
            enabled.insert("Kubernetes".to_owned(), serde_json::json!(["compute"]));
        }
    }
    if let Some(wanted) = &wanted {
        for name in wanted {
            if !matches!(name.as_str(), "ssh" | "kubernetes" | "k8s")
                && !infra::known().iter().any(|i| i.name == name)
            {
                log.line(&format!("  {name}: disabled"));
                log.line(&format!(
                    "    Reason: Skydeck does not support {name:?} yet; supported: {}.",
                    infra::known()
                        .iter()
                        .map(|i| i.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    log.line("");
    if enabled.is_empty() {
        log.line("No infrastructure is enabled.");
    } else {
        log.line("Enabled infra:");
        for name in enabled.keys() {
            log.line(&format!("  {name} [compute]"));
            let places = match name.as_str() {
                "SSH" => ssh_pools.clone(),
                // The infra names a task takes (`--infra kubernetes/<ctx>`).
                "Kubernetes" => kube_contexts
                    .iter()
                    .map(|c| format!("kubernetes/{c}"))
                    .collect(),
                _ => Vec::new(),
            };
            for (i, place) in places.iter().enumerate() {
                log.line(&format!("    {} {place}", branch(i, places.len())));
            }
        }
    }
    Ok(serde_json::json!({ workspace: enabled }))
}

/// The SSH section, as SkyPilot prints it: `SSH` enabled when any pool
/// is set up, each pool of the file beneath with its state. Returns the
/// enabled pools.
async fn check_ssh(ctx: &RequestContext, workspace: &str) -> Vec<String> {
    let log = &ctx.log;
    let states = crate::ssh_pools::check::pool_states(
        ctx.infra.home(),
        ctx.store.as_ref(),
        &ctx.config,
        workspace,
    )
    .await;
    let states = match states {
        Ok(states) => states,
        Err(reason) => {
            log.line("  SSH: disabled");
            log.line(&format!("    Reason: {reason}"));
            return Vec::new();
        }
    };
    if states.is_empty() {
        log.line("  SSH: disabled");
        log.line(
            "    Reason: No SSH Node Pools are defined: write them in \
             ~/.skydeck/ssh_node_pools.yaml (or ~/.sky/ssh_node_pools.yaml), then run `sky ssh up`.",
        );
        return Vec::new();
    }
    let up: Vec<String> = states
        .iter()
        .filter(|s| s.enabled.is_ok())
        .map(|s| s.name.to_string())
        .collect();
    if up.is_empty() {
        log.line("  SSH: disabled");
        log.line(
            "    Reason: No SSH Node Pools are up. Run `sky ssh up` to set up Node Pools \
             from ~/.sky/ssh_node_pools.yaml.",
        );
    } else {
        log.line("  SSH: enabled [compute]");
    }
    log.line("    SSH Node Pools:");
    for (i, state) in states.iter().enumerate() {
        let branch = if i + 1 == states.len() {
            "└──"
        } else {
            "├──"
        };
        match &state.enabled {
            Ok(()) => log.line(&format!("    {branch} {}: enabled.", state.name)),
            Err(reason) => log.line(&format!(
                "    {branch} {}: disabled. Reason: {reason}",
                state.name
            )),
        }
    }
    up
}

/// The tree branch of item `i` of `len`.
fn branch(i: usize, len: usize) -> &'static str {
    if i + 1 == len {
        "└──"
    } else {
        "├──"
    }
}

/// The Kubernetes section, as SkyPilot prints it: `Kubernetes` enabled
/// when any allowed context answers, each allowed context beneath with its
/// state. Returns the usable contexts.
async fn check_kubernetes(ctx: &RequestContext, workspace: &str) -> Vec<String> {
    let log = &ctx.log;
    let kube = ctx.infra.kube();
    let states = kube.states(&ctx.config, workspace).await;
    if states.is_empty() {
        log.line("  Kubernetes: disabled");
        log.line(&format!("    Reason: {}", kube.none_reason()));
        return Vec::new();
    }
    let usable: Vec<String> = states
        .iter()
        .filter(|s| s.enabled.is_ok())
        .map(|s| s.name.clone())
        .collect();
    if usable.is_empty() {
        log.line("  Kubernetes: disabled");
    } else {
        log.line("  Kubernetes: enabled [compute]");
    }
    log.line("    Allowed contexts:");
    for (i, state) in states.iter().enumerate() {
        let branch = branch(i, states.len());
        match &state.enabled {
            Ok(detail) => log.line(&format!("    {branch} {}: enabled. ({detail})", state.name)),
            Err(reason) => log.line(&format!(
                "    {branch} {}: disabled. Reason: {reason}",
                state.name
            )),
        }
    }
    usable
}
