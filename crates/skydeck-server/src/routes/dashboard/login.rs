//! The login page: a password (when basic auth is on) or a service-account
//! token, checked as the API checks them, starts a session held in a
//! cookie (see `auth/session.rs`); logging out ends it.

use super::csrf;
use super::layout;
use super::{Viewer, redirect};
use crate::auth::{AuthError, Credentials, session};
use axum::Form;
use axum::extract::{ConnectInfo, Extension};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use std::net::SocketAddr;

pub async fn page(viewer: Viewer) -> Response {
    if !viewer.state.auth.settings().is_enabled() || viewer.caller.user().is_some() {
        return redirect("clusters");
    }
    form_page(&viewer, StatusCode::OK, None)
}

fn form_page(viewer: &Viewer, status: StatusCode, error: Option<&str>) -> Response {
    let settings = viewer.state.auth.settings();
    let body = html! {
        h1 { "Log in to Skydeck" }
        @if let Some(error) = error { p.error #login-error { (error) } }
        form.login method="post" action="login" {
            @if settings.basic_auth {
                label { "User " input type="text" name="name" autocomplete="username" autofocus; }
                label { "Password " input type="password" name="password" autocomplete="current-password"; }
            }
            @if settings.service_accounts {
                label {
                    @if settings.basic_auth { "or a token " } @else { "Service-account token " }
                    input type="password" name="token" placeholder="sky_…" autocomplete="off";
                }
            }
            p { button type="submit" { "Log in" } }
        }
        @if !settings.basic_auth && !settings.service_accounts {
            p.muted { "This server is behind a sign-in proxy: sign in there, then reload." }
        }
    };
    let mut response = layout::bare("Log in", body);
    *response.status_mut() = status;
    response
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginForm {
    name: String,
    password: String,
    token: String,
}

pub async fn log_in(
    viewer: Viewer,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    // Only our own login page may log a browser in (no login CSRF).
    if !csrf::same_origin(&headers) {
        return form_page(
            &viewer,
            StatusCode::FORBIDDEN,
            Some("This form was sent from another site."),
        );
    }
    let credentials = if !form.token.trim().is_empty() {
        Credentials::Token(&form.token)
    } else if !form.name.is_empty() {
        Credentials::Password {
            name: &form.name,
            password: &form.password,
        }
    } else {
        return form_page(
            &viewer,
            StatusCode::BAD_REQUEST,
            Some("Give a user and password, or a token."),
        );
    };
    let auth = &viewer.state.auth;
    let user = match auth
        .log_in(
            credentials,
            &headers,
            peer.map(|Extension(ConnectInfo(addr))| addr.ip()),
        )
        .await
    {
        Ok(user) => user,
        Err(AuthError::Invalid(message)) => {
            return form_page(&viewer, StatusCode::UNAUTHORIZED, Some(&message));
        }
        Err(AuthError::RateLimited(after)) => {
            let message = format!(
                "Too many failed logins; try again in {} s.",
                after.as_secs().max(1)
            );
            return form_page(&viewer, StatusCode::TOO_MANY_REQUESTS, Some(&message));
        }
        Err(AuthError::Store(err)) => {
            return layout::error_page(
                &viewer,
                0,
                StatusCode::SERVICE_UNAVAILABLE,
                &err.to_string(),
            );
        }
    };
    let token = match auth.start_session(&user).await {
        Ok(token) => token,
        Err(_) => {
            return layout::error_page(
                &viewer,
                0,
                StatusCode::SERVICE_UNAVAILABLE,
                "The session could not be recorded; try again.",
            );
        }
    };
    let mut response = redirect("clusters");
    response.headers_mut().insert(
        header::SET_COOKIE,
        session::set_cookie(&token, session::over_https(&headers)),
    );
    response
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LogoutForm {
    csrf: String,
}

pub async fn log_out(viewer: Viewer, headers: HeaderMap, Form(form): Form<LogoutForm>) -> Response {
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
            0,
            StatusCode::FORBIDDEN,
            "This form is out of date; reload the page.",
        );
    }
    if let Some(token) = session::from_cookie(&headers)
        && let Err(AuthError::Store(err)) = viewer.state.auth.end_session(token).await
    {
        return layout::error_page(
            &viewer,
            0,
            StatusCode::SERVICE_UNAVAILABLE,
            &err.to_string(),
        );
    }
    let mut response = redirect("login");
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session::clear_cookie());
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
