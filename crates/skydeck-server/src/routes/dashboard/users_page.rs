//! Users, roles and tokens, for admins: who may use the server, with
//! which role, and every service-account token and dashboard session
//! (revocable here). Changes go through the API's own handlers, so the
//! rules (`skydeck users`, `skydeck tokens`) are checked in one place.

use super::super::users::{self, RevokeTokenBody, UpdateBody};
use super::actions::{ActionForm, refusal};
use super::layout::{self, action_button, ago};
use super::{Viewer, listing, redirect};
use crate::auth::session::SESSION_TOKEN_NAME;
use crate::executor::now;
use crate::extract::ApiJson;
use axum::Form;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;
use skydeck_store::{Role, TokenRecord};
use skydeck_types::names::UserName;
use std::collections::HashMap;

/// What each role may do, as the server enforces it.
const ROLES: &[(Role, &str)] = &[
    (
        Role::Admin,
        "Sees and acts on every user's clusters, jobs and requests; manages users, roles and \
         tokens; reads and edits the server config; uses every workspace.",
    ),
    (
        Role::User,
        "Launches and manages their own clusters and jobs in the workspaces that admit them; \
         creates and revokes their own tokens.",
    ),
];

pub async fn page(viewer: Viewer) -> Response {
    if !viewer.admin {
        return layout::error_page(
            &viewer,
            0,
            StatusCode::FORBIDDEN,
            "Only an admin may see the users and their tokens.",
        );
    }
    let store = &viewer.state.store;
    let (users, tokens) = match (store.list_users().await, store.list_tokens(None).await) {
        (Ok(users), Ok(tokens)) => (users, tokens),
        (Err(err), _) | (_, Err(err)) => {
            return layout::error_page(
                &viewer,
                0,
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("Cannot read the users: {err}"),
            );
        }
    };
    let names: HashMap<&str, &str> = users
        .iter()
        .map(|u| (u.id.as_str(), u.name.as_str()))
        .collect();
    let mut with_password = std::collections::HashSet::new();
    for user in &users {
        if let Ok(Some(_)) = store.password_hash(&user.id).await {
            with_password.insert(user.id.as_str());
        }
    }
    let at = now();
    let (sessions, tokens): (Vec<&TokenRecord>, Vec<&TokenRecord>) = tokens
        .iter()
        .filter(|t| t.revoked_at.is_none() && t.expires_at.is_none_or(|e| e > at))
        .partition(|t| t.name == SESSION_TOKEN_NAME);
    let body = html! {
        h1 { "Users" }
        table #users {
            thead { tr {
                th { "Name" } th { "Role" } th { "Sign-in" } th { "Tokens" } th { "Added" } th { "" }
            } }
            tbody {
                @for user in &users {
                    @let own_tokens = tokens.iter().filter(|t| t.user_id == user.id).count();
                    @let other = if user.role == Role::Admin { Role::User } else { Role::Admin };
                    tr data-user=(user.name) {
                        td { (user.name) div.muted { code { (user.id) } } }
                        td { span.status { (user.role.as_str()) } }
                        td { (if with_password.contains(user.id.as_str()) { "password" } else { "token only" }) }
                        td.num { (own_tokens) }
                        td { (ago(Some(user.created_at), at)) }
                        td {
                            @if user.id != viewer.user_id {
                                (action_button(
                                    &viewer,
                                    &format!("users/{}/role-{}", listing::path_segment(&user.name), other.as_str()),
                                    &format!("Make {}", other.as_str()),
                                    &format!("Make {} {}?", user.name, if other == Role::Admin { "an admin" } else { "a user (no longer an admin)" }),
                                ))
                            }
                        }
                    }
                }
            }
        }
        h2 { "Roles" }
        dl.facts {
            @for (role, can) in ROLES { dt { (role.as_str()) } dd { (can) } }
        }
        h2 { "Service-account tokens" }
        p.muted { "Made with " code { "skydeck tokens create" } "; the secret is shown once, when it is made." }
        (token_table(&viewer, "tokens", &tokens, &names, at))
        h2 { "Dashboard sessions" }
        p.muted { "Each login to this dashboard, for 12 hours or until its user logs out." }
        (token_table(&viewer, "sessions", &sessions, &names, at))
    };
    layout::page(&viewer, 0, "users", "Users", body)
}

fn token_table(
    viewer: &Viewer,
    id: &str,
    tokens: &[&TokenRecord],
    names: &HashMap<&str, &str>,
    at: f64,
) -> maud::Markup {
    html! {
        table id=(id) {
            thead { tr {
                th { "Name" } th { "User" } th { "Made" } th { "Last used" } th { "Expires" } th { "" }
            } }
            tbody {
                @for token in tokens {
                    tr data-token=(token.id) {
                        td { (token.name) div.muted { code { (token.id) } } }
                        td { (names.get(token.user_id.as_str()).copied().unwrap_or("-")) }
                        td { (ago(Some(token.created_at), at)) }
                        td { (ago(token.last_used_at, at)) }
                        td { (token.expires_at.map_or("never".to_owned(), |e| in_time(e - at))) }
                        td {
                            (action_button(
                                viewer,
                                &format!("tokens/{}/revoke", listing::path_segment(&token.id)),
                                "Revoke",
                                &format!("Revoke {} of {}? Whoever uses it is signed out.", token.name, names.get(token.user_id.as_str()).copied().unwrap_or("?")),
                            ))
                        }
                    }
                }
                @if tokens.is_empty() { tr { td colspan="6" .muted { "None." } } }
            }
        }
    }
}

/// A time ahead as "in 3 h".
fn in_time(seconds: f64) -> String {
    let seconds = seconds.max(0.0) as u64;
    match seconds {
        0..3600 => format!("in {} min", seconds / 60),
        3600..86400 => format!("in {} h", seconds / 3600),
        _ => format!("in {} d", seconds / 86400),
    }
}

/// Actions post to `users/<name>/role-<role>` and `tokens/<id>/revoke`.
const ACTION_DEPTH: usize = 2;

pub async fn set_role(
    viewer: Viewer,
    Path((name, action)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Some(refused) = refusal(&viewer, &headers, &form) {
        return refused;
    }
    let role = match action.as_str() {
        "role-admin" => Role::Admin,
        "role-user" => Role::User,
        _ => {
            return layout::error_page(
                &viewer,
                ACTION_DEPTH,
                StatusCode::NOT_FOUND,
                "A user's role is admin or user.",
            );
        }
    };
    let Ok(user) = UserName::new(&name) else {
        return layout::error_page(
            &viewer,
            ACTION_DEPTH,
            StatusCode::NOT_FOUND,
            &format!("No user {name:?}."),
        );
    };
    // The handler refuses a non-admin too; this says so before anything
    // else is looked at.
    if !viewer.admin {
        return layout::error_page(
            &viewer,
            ACTION_DEPTH,
            StatusCode::FORBIDDEN,
            "Only an admin may change roles.",
        );
    }
    if user.as_str() == viewer.user_name {
        return layout::error_page(
            &viewer,
            ACTION_DEPTH,
            StatusCode::BAD_REQUEST,
            "You cannot change your own role; ask another admin.",
        );
    }
    let answer = users::update(
        State(viewer.state.clone()),
        Extension(viewer.caller.clone()),
        None,
        headers,
        ApiJson(UpdateBody::role(user, role)),
    )
    .await;
    done(&viewer, answer.map(|_| ()))
}

pub async fn revoke_token(
    viewer: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Some(refused) = refusal(&viewer, &headers, &form) {
        return refused;
    }
    // Only admins see the page; the handler still checks the caller may
    // act for the token's owner.
    let answer = users::revoke_token(
        State(viewer.state.clone()),
        Extension(viewer.caller.clone()),
        ApiJson(RevokeTokenBody { id }),
    )
    .await;
    done(&viewer, answer.map(|_| ()))
}

/// Back to the users page, or a page saying why not.
fn done(viewer: &Viewer, answer: Result<(), crate::error::ApiError>) -> Response {
    match answer {
        Ok(()) => redirect(&format!("{}users", "../".repeat(ACTION_DEPTH))),
        Err(err) => layout::error_page(viewer, ACTION_DEPTH, err.status, &err.message()),
    }
}
