//! The server config, edited in the browser (admins only): the same YAML
//! `skydeck config` shows, secrets redacted, validated and saved whole
//! through the same `LiveConfig::replace` as `POST /api/config`. A
//! mistake is shown at its key, with the text as it was sent.

use super::Viewer;
use super::csrf;
use super::layout;
use crate::live_config::ReplaceError;
use axum::Form;
use axum::extract::OriginalUri;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

/// `/dashboard/config` is one level below the root, and
/// `/dashboard/settings/config` (SkyPilot's address) two.
fn depth(uri: &OriginalUri) -> usize {
    if uri.path().ends_with("/settings/config") {
        1
    } else {
        0
    }
}

pub async fn page(viewer: Viewer, uri: OriginalUri) -> Response {
    let depth = depth(&uri);
    if let Err(err) = viewer.caller.require_admin("read the server config") {
        return layout::error_page(&viewer, depth, StatusCode::FORBIDDEN, &err.message());
    }
    let text = current_yaml(&viewer);
    editor(&viewer, depth, &text, Outcome::Shown)
}

#[derive(Debug, Deserialize)]
pub struct SaveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    config: String,
}

pub async fn save(
    viewer: Viewer,
    uri: OriginalUri,
    headers: HeaderMap,
    Form(form): Form<SaveForm>,
) -> Response {
    let depth = depth(&uri);
    if let Err(err) = viewer.caller.require_admin("change the server config") {
        return layout::error_page(&viewer, depth, StatusCode::FORBIDDEN, &err.message());
    }
    if csrf::check(
        &headers,
        &viewer.state.dashboard_secret,
        &viewer.user_id,
        &form.csrf,
    )
    .is_err()
    {
        return layout::error_page(
            &viewer,
            depth,
            StatusCode::FORBIDDEN,
            "This form was sent from another site or is out of date; reload the page. Nothing was saved.",
        );
    }
    let value: serde_json::Value = match serde_yaml_ng::from_str(&form.config) {
        Ok(serde_json::Value::Null) => serde_json::json!({}),
        Ok(value) => value,
        Err(err) => {
            let line = err.location().map(|l| l.line());
            return editor(
                &viewer,
                depth,
                &form.config,
                Outcome::Invalid {
                    key: String::new(),
                    line,
                    message: format!("This is not valid YAML: {err}"),
                },
            );
        }
    };
    match viewer
        .state
        .live_config
        .replace(value, &viewer.user_name)
        .await
    {
        Ok(_) => editor(&viewer, depth, &current_yaml(&viewer), Outcome::Saved),
        Err(ReplaceError::Invalid(err)) => {
            let line = line_of(&form.config, &err.path);
            editor(
                &viewer,
                depth,
                &form.config,
                Outcome::Invalid {
                    key: err.path.clone(),
                    line,
                    message: err.message.clone(),
                },
            )
        }
        Err(ReplaceError::Failed(err)) => layout::error_page(
            &viewer,
            depth,
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("The config could not be saved: {err:#}"),
        ),
    }
}

fn current_yaml(viewer: &Viewer) -> String {
    let config = viewer.state.live_config.get().redacted_json();
    if config.as_object().is_some_and(serde_json::Map::is_empty) {
        return String::new();
    }
    serde_yaml_ng::to_string(&config).unwrap_or_default()
}

/// What happened to the config on this visit.
enum Outcome {
    Shown,
    Saved,
    /// Refused: at `key` (empty for the whole), on `line` of the text.
    Invalid {
        key: String,
        line: Option<usize>,
        message: String,
    },
}

fn editor(viewer: &Viewer, depth: usize, text: &str, outcome: Outcome) -> Response {
    let live = &viewer.state.live_config;
    let action = if depth == 1 {
        "settings/config"
    } else {
        "config"
    };
    let status = match outcome {
        Outcome::Invalid { .. } => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    let body = html! {
        h1 { "Server config" }
        p.muted {
            "Version " (live.version()) ", kept in " (live.source().as_str())
            ". Secrets show as <redacted>; leave them so and they are kept."
        }
        @match &outcome {
            Outcome::Saved => { p.notice #saved { "Saved: version " (live.version()) " is in use." } }
            Outcome::Invalid { key, line, message } => {
                p.error #config-error data-line=[line] {
                    "Not saved. "
                    @if !key.is_empty() { code { (key) } ": " }
                    (message)
                    @if let Some(line) = line { " (line " (line) ")" }
                }
            }
            Outcome::Shown => {}
        }
        form method="post" action=(action) {
            input type="hidden" name="csrf" value=(viewer.csrf_token());
            textarea.config name="config" spellcheck="false" { (text) }
            p { button type="submit" { "Save" } }
        }
    };
    let mut response = layout::page(viewer, depth, "config", "Server config", body);
    *response.status_mut() = status;
    response
}

/// The line (from 1) of `text` where the key at `path` (`a.b[2].c`) is
/// written, found by following the keys down the indentation; `None` when
/// it cannot be told.
fn line_of(text: &str, path: &str) -> Option<usize> {
    let keys: Vec<&str> = path
        .split('.')
        .map(|part| part.split('[').next().unwrap_or(part))
        .filter(|key| !key.is_empty())
        .collect();
    let mut found = None;
    let mut min_indent = 0;
    let mut from = 0;
    let lines: Vec<&str> = text.lines().collect();
    for key in keys {
        let at = lines.iter().enumerate().skip(from).find(|(_, line)| {
            let indent = line.len() - line.trim_start().len();
            let trimmed = line.trim_start().trim_start_matches("- ");
            indent >= min_indent
                && (trimmed.starts_with(&format!("{key}:"))
                    || trimmed.starts_with(&format!("\"{key}\":")))
        })?;
        found = Some(at.0 + 1);
        min_indent = at.1.len() - at.1.trim_start().len() + 1;
        from = at.0 + 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::line_of;

    #[test]
    fn a_key_is_found_down_its_path() {
        let text = "workspaces:\n  default: {}\n  team:\n    private: maybe\nadmin_policy: x\n";
        assert_eq!(line_of(text, "workspaces.team.private"), Some(4));
        assert_eq!(line_of(text, "admin_policy"), Some(5));
        assert_eq!(line_of(text, "nowhere.at_all"), None);
        assert_eq!(line_of(text, ""), None);
    }
}
