//! The page shell every dashboard page shares, and small pieces of markup.

use super::Viewer;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

/// The sections in the navigation bar: (path from the root, label).
const SECTIONS: &[(&str, &str)] = &[
    ("clusters", "Clusters"),
    ("jobs", "Managed jobs"),
    ("requests", "Requests"),
    ("infra", "Infrastructure"),
    ("workspaces", "Workspaces"),
    ("users", "Users"),
    ("config", "Config"),
];

/// Sections only admins may open.
const ADMIN_SECTIONS: &[&str] = &["users", "config"];

/// A whole page. `depth` is how many path segments the page sits below
/// `/dashboard/` beyond the first (`clusters` is 0, `clusters/dev` is 1):
/// it sets `<base>` so that every relative link starts at the root.
pub fn page(viewer: &Viewer, depth: usize, section: &str, title: &str, body: Markup) -> Response {
    let base = if depth == 0 {
        "./".to_owned()
    } else {
        "../".repeat(depth)
    };
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                base href=(base);
                // For scripts that post on the viewer's behalf.
                meta name="csrf-token" content=(viewer.csrf_token());
                title { (title) " · Skydeck" }
                link rel="stylesheet" href="static/dashboard.css";
                script src="static/dashboard.js" defer {}
            }
            body {
                header.top {
                    a.brand href="clusters" { "Skydeck" }
                    nav {
                        @for (path, label) in SECTIONS {
                            @if !ADMIN_SECTIONS.contains(path) || viewer.admin {
                                a href=(path) class=[(section == *path).then_some("current")] { (label) }
                            }
                        }
                    }
                    span.who {
                        (viewer.user_name)
                        @if viewer.admin { " (admin)" }
                    }
                    @if viewer.state.auth.settings().is_enabled() {
                        form.action method="post" action="logout" {
                            input type="hidden" name="csrf" value=(viewer.csrf_token());
                            button.logout type="submit" { "Log out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    };
    Html(markup.into_string()).into_response()
}

/// A page without navigation, for someone not logged in (one level
/// below the root, as `/dashboard/login`).
pub fn bare(title: &str, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                base href="./";
                title { (title) " · Skydeck" }
                link rel="stylesheet" href="static/dashboard.css";
            }
            body {
                header.top { a.brand href="clusters" { "Skydeck" } }
                main.narrow { (body) }
            }
        }
    };
    Html(markup.into_string()).into_response()
}

/// A page that says what went wrong, with the right status.
pub fn error_page(viewer: &Viewer, depth: usize, status: StatusCode, message: &str) -> Response {
    let mut response = page(
        viewer,
        depth,
        "",
        status.canonical_reason().unwrap_or("Error"),
        html! {
            h1 { (status.canonical_reason().unwrap_or("Error")) }
            p.error { (message) }
            p { a href="clusters" { "Back to the clusters" } }
        },
    );
    *response.status_mut() = status;
    response
}

/// A button that posts `action` (relative to the root) with the viewer's
/// token, after the browser confirms `question`.
pub fn action_button(viewer: &Viewer, action: &str, label: &str, question: &str) -> Markup {
    html! {
        form.action method="post" action=(action) data-confirm=(question) {
            input type="hidden" name="csrf" value=(viewer.csrf_token());
            button type="submit" { (label) }
        }
    }
}

/// A time as "3 min ago" (relative to `now`), blank when unknown.
pub fn ago(at: Option<f64>, now: f64) -> String {
    let Some(at) = at.filter(|at| *at > 0.0) else {
        return "-".to_owned();
    };
    let seconds = (now - at).max(0.0) as u64;
    match seconds {
        0..60 => format!("{seconds} s ago"),
        60..3600 => format!("{} min ago", seconds / 60),
        3600..86400 => format!("{} h ago", seconds / 3600),
        _ => format!("{} d ago", seconds / 86400),
    }
}

/// A CSS class for a status word, so that every table colours it alike.
pub fn status_class(status: &str) -> &'static str {
    match status {
        "UP" | "RUNNING" | "SUCCEEDED" => "ok",
        "INIT" | "PENDING" | "STARTING" | "RECOVERING" | "SUBMITTED" | "CANCELLING" | "WAITING" => {
            "busy"
        }
        "STOPPED" | "CANCELLED" => "idle",
        _ => "bad",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_naturally() {
        let now = 1.0e6;
        assert_eq!(ago(None, now), "-");
        assert_eq!(ago(Some(0.0), now), "-");
        assert_eq!(ago(Some(now - 5.0), now), "5 s ago");
        assert_eq!(ago(Some(now - 180.0), now), "3 min ago");
        assert_eq!(ago(Some(now - 7300.0), now), "2 h ago");
        assert_eq!(ago(Some(now - 3.0 * 86400.0), now), "3 d ago");
    }
}
