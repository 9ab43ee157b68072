//! Cross-site request forgery: a browser sends the dashboard's basic-auth
//! credentials (or the proxy's cookie) with any form another site makes it
//! post, so every form that changes something carries a token only our
//! own pages know, bound to the user, and must come from our own origin.

use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The token of `user`'s forms: a keyed hash of the user with the server's
/// secret, so it needs no storage and another user's token is useless.
pub fn token(secret: &[u8; 32], user_id: &str) -> String {
    let digest = Sha256::new()
        .chain_update(secret)
        .chain_update(b"skydeck-dashboard-form\0")
        .chain_update(user_id.as_bytes())
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a form was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The form came from another site.
    CrossSite,
    /// The token is missing or not this user's.
    BadToken,
}

/// Whether the browser says the form came from our own origin
/// (`Sec-Fetch-Site`, else `Origin` against `Host`); a browser that sends
/// neither is believed (the token still has to match).
pub fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers
            .get("x-forwarded-host")
            .or_else(|| headers.get(header::HOST))
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
        if origin == "null" || origin_host != host {
            return false;
        }
    }
    true
}

/// Checks a form post: the browser's own account of where it came from
/// (`Sec-Fetch-Site`, else `Origin` against `Host`), then the token.
pub fn check(
    headers: &HeaderMap,
    secret: &[u8; 32],
    user_id: &str,
    sent: &str,
) -> Result<(), Refused> {
    if !same_origin(headers) {
        return Err(Refused::CrossSite);
    }
    let expected = token(secret, user_id);
    if bool::from(expected.as_bytes().ct_eq(sent.as_bytes())) {
        Ok(())
    } else {
        Err(Refused::BadToken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const SECRET: [u8; 32] = [7; 32];

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn a_users_own_token_from_our_origin_passes() {
        let mine = token(&SECRET, "alice");
        let same = headers(&[
            ("host", "sky.example:8080"),
            ("origin", "https://sky.example:8080"),
        ]);
        assert_eq!(check(&same, &SECRET, "alice", &mine), Ok(()));
        // A browser that sends neither header (an old one) still needs the token.
        assert_eq!(check(&HeaderMap::new(), &SECRET, "alice", &mine), Ok(()));
    }

    #[test]
    fn another_users_token_or_none_is_refused() {
        let theirs = token(&SECRET, "mallory");
        assert_eq!(
            check(&HeaderMap::new(), &SECRET, "alice", &theirs),
            Err(Refused::BadToken)
        );
        assert_eq!(
            check(&HeaderMap::new(), &SECRET, "alice", ""),
            Err(Refused::BadToken)
        );
        // Another server's secret makes another token.
        assert_ne!(token(&[8; 32], "alice"), token(&SECRET, "alice"));
    }

    #[test]
    fn a_post_from_another_site_is_refused_even_with_the_token() {
        let mine = token(&SECRET, "alice");
        for forged in [
            headers(&[("sec-fetch-site", "cross-site")]),
            headers(&[("sec-fetch-site", "same-site")]),
            headers(&[("host", "sky.example"), ("origin", "https://evil.example")]),
            headers(&[("host", "sky.example"), ("origin", "null")]),
        ] {
            assert_eq!(
                check(&forged, &SECRET, "alice", &mine),
                Err(Refused::CrossSite),
                "{forged:?}"
            );
        }
    }
}
