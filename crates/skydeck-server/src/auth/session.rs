//! Dashboard sessions: a browser that logged in on the dashboard's login
//! page holds a cookie with a short-lived token of its own, stored (as its
//! SHA-256, like a service-account token, so every replica knows it and
//! `skydeck tokens revoke` ends it) under the name [`SESSION_TOKEN_NAME`].
//!
//! The cookie is `HttpOnly` and `SameSite=Strict`, `Secure` when the page
//! came over HTTPS, and it counts only for the dashboard's pages and the
//! log stream they follow: an API call must still carry its credentials
//! in the `Authorization` header, so a cookie can never make another site
//! drive the API.

use axum::http::{HeaderMap, HeaderValue, header};

/// The cookie's name.
pub const COOKIE: &str = "skydeck_session";
/// How long a session lasts.
pub const LIFETIME_SECS: u64 = 12 * 3600;
/// The name a session's token is stored under.
pub const SESSION_TOKEN_NAME: &str = "dashboard-session";

/// Whether a request to `path` (with `method`) may be authenticated by
/// the session cookie.
pub fn cookie_counts_for(method: &axum::http::Method, path: &str) -> bool {
    path == "/dashboard"
        || path.starts_with("/dashboard/")
        || (method == axum::http::Method::GET && path == "/api/stream")
}

/// Dashboard paths anyone may reach: the login page and what it loads,
/// and the root, which only redirects.
pub fn is_public(path: &str) -> bool {
    path == "/" || path == "/dashboard/login" || path.starts_with("/dashboard/static/")
}

/// Where a browser that has not logged in is sent from dashboard page
/// `path`: the login page, relative to `path` (the dashboard may sit
/// under a prefix); `None` for paths that are not dashboard pages.
pub fn login_redirect(path: &str) -> Option<String> {
    if path == "/dashboard" {
        return Some("dashboard/login".to_owned());
    }
    let below = path.strip_prefix("/dashboard/")?;
    let depth = below.split('/').count().saturating_sub(1);
    Some(format!("{}login", "../".repeat(depth)))
}

/// The session token the request's cookie carries.
pub fn from_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// Whether the browser reached us over HTTPS (directly or through a proxy
/// that says so).
pub fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

/// The `Set-Cookie` value that starts a session.
pub fn set_cookie(token: &str, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={LIFETIME_SECS}{secure}"
    ))
    .expect("a token is a valid header value")
}

/// The `Set-Cookie` value that ends one.
pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
    ))
    .expect("a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    #[test]
    fn the_cookie_is_read_among_others_and_counts_only_for_the_dashboard() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; skydeck_session=sky_abc; other=1"),
        );
        assert_eq!(from_cookie(&headers), Some("sky_abc"));
        assert_eq!(from_cookie(&HeaderMap::new()), None);
        assert!(cookie_counts_for(&Method::GET, "/dashboard/clusters"));
        assert!(cookie_counts_for(
            &Method::POST,
            "/dashboard/clusters/a/stop"
        ));
        assert!(cookie_counts_for(&Method::GET, "/api/stream"));
        assert!(!cookie_counts_for(&Method::POST, "/launch"));
        assert!(!cookie_counts_for(&Method::GET, "/dashboardx"));
        assert!(!cookie_counts_for(&Method::GET, "/api/get"));
    }

    #[test]
    fn a_browser_is_sent_to_the_login_page_relative_to_where_it_is() {
        assert_eq!(
            login_redirect("/dashboard").as_deref(),
            Some("dashboard/login")
        );
        assert_eq!(login_redirect("/dashboard/").as_deref(), Some("login"));
        assert_eq!(
            login_redirect("/dashboard/clusters").as_deref(),
            Some("login")
        );
        assert_eq!(
            login_redirect("/dashboard/clusters/dev").as_deref(),
            Some("../login")
        );
        assert_eq!(login_redirect("/launch"), None);
        assert!(is_public("/dashboard/login") && is_public("/dashboard/static/dashboard.css"));
        assert!(!is_public("/dashboard/clusters"));
    }

    #[test]
    fn the_cookie_is_strict_and_secure_over_https() {
        let cookie = set_cookie("sky_abc", true);
        let text = cookie.to_str().unwrap();
        assert!(
            text.contains("HttpOnly")
                && text.contains("SameSite=Strict")
                && text.ends_with("; Secure")
        );
        assert!(
            !set_cookie("sky_abc", false)
                .to_str()
                .unwrap()
                .contains("Secure")
        );
    }
}
