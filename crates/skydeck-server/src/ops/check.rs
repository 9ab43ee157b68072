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
    if let Some(wanted) = &wanted {
        for name in wanted {
            if !infra::known().iter().any(|i| i.name == name) {
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
        }
    }
    let workspace = body.workspace.unwrap_or_else(|| "default".to_owned());
    Ok(serde_json::json!({ workspace: enabled }))
}
