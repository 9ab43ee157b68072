//! Which ways of proving who you are a server accepts.

use anyhow::bail;
use axum::http::HeaderMap;
pub use axum::http::HeaderName;
use ipnet::IpNet;
use std::net::IpAddr;
use std::path::PathBuf;

/// Where proxies and ingresses append the address they saw.
const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// oauth2-proxy's header for the signed-in user.
pub const DEFAULT_PROXY_HEADER: &str = "x-auth-request-email";

/// The auth modes, any combination of which may be on. With none, the
/// server trusts whoever clients say they are, which is only safe on
/// loopback.
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    /// Users with passwords (`Authorization: Basic`), checked by the server.
    pub basic_auth: bool,
    /// `Authorization: Bearer sky_…` service-account tokens.
    pub service_accounts: bool,
    /// A trusted auth proxy (oauth2-proxy) names the user in this header.
    pub proxy_header: Option<HeaderName>,
    /// An ingress checked basic auth already and passes the user on in this
    /// header (`authorization`: the user name of its Basic credentials).
    pub ingress_header: Option<HeaderName>,
    /// Where proxy and ingress headers are honoured from.
    pub trusted_proxies: Vec<IpNet>,
    /// The first admin, from `SKYDECK_INITIAL_BASIC_AUTH=user:password`.
    pub initial_admin: Option<Credentials>,
    /// An htpasswd file whose users are imported at start.
    pub htpasswd_file: Option<PathBuf>,
}

/// A user name and password. Debug output never shows the password.
#[derive(Clone)]
pub struct Credentials {
    pub name: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <redacted>)", self.name)
    }
}

impl Credentials {
    /// `user:password`, as `SKYDECK_INITIAL_BASIC_AUTH` holds it.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        match text.split_once(':') {
            Some((name, password)) if !name.is_empty() && !password.is_empty() => Ok(Self {
                name: name.to_owned(),
                password: password.to_owned(),
            }),
            _ => bail!("expected `user:password`, both non-empty"),
        }
    }
}

impl AuthSettings {
    /// Whether any mode is on, i.e. every caller must prove who they are.
    pub fn is_enabled(&self) -> bool {
        self.basic_auth
            || self.service_accounts
            || self.proxy_header.is_some()
            || self.ingress_header.is_some()
    }

    /// Whether headers set by a proxy may be believed from `peer`.
    pub fn is_trusted_proxy(&self, peer: Option<IpAddr>) -> bool {
        peer.is_some_and(|ip| {
            let ip = canonical(ip);
            self.trusted_proxies.iter().any(|net| net.contains(&ip))
        })
    }

    /// The address a request really comes from: the TCP peer, or, when the
    /// peer is a trusted proxy, the nearest address in its
    /// `X-Forwarded-For` that is not itself a trusted proxy. Proxies append
    /// the address they saw, so that entry was written by ours; anything
    /// to its left is what the client claimed and is never believed.
    pub fn client_address(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Option<IpAddr> {
        if !self.is_trusted_proxy(peer) {
            return peer.map(canonical);
        }
        let forwarded: Vec<&str> = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer.map(canonical);
        for entry in forwarded.iter().rev() {
            // Some proxies add the client's port (`1.2.3.4:5678`,
            // `[2001:db8::1]:5678`).
            let Some(ip) = entry
                .parse::<IpAddr>()
                .ok()
                .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
            else {
                break;
            };
            client = Some(canonical(ip));
            if !self.is_trusted_proxy(client) {
                break;
            }
        }
        client
    }

    /// Refuses combinations that cannot work, before the server starts.
    pub fn validate(&self) -> anyhow::Result<()> {
        if (self.proxy_header.is_some() || self.ingress_header.is_some())
            && self.trusted_proxies.is_empty()
        {
            bail!(
                "an auth proxy or ingress names the user in a header, which anyone could send; \
                 say which addresses the proxy connects from with --trusted-proxy CIDR \
                 (e.g. --trusted-proxy 10.0.0.0/8)"
            );
        }
        if self.basic_auth
            && self
                .ingress_header
                .as_ref()
                .is_some_and(|h| h == axum::http::header::AUTHORIZATION)
        {
            bail!(
                "--enable-basic-auth and --ingress-basic-auth both read the Authorization \
                 header; choose one: the server's own users, or the ingress's"
            );
        }
        Ok(())
    }

    /// Serving without auth is allowed only where nobody else can connect.
    /// `host` is the address the server listens on.
    pub fn check_exposure(&self, host: &str, insecure_no_auth: bool) -> anyhow::Result<()> {
        if self.is_enabled() || insecure_no_auth || is_loopback(host) {
            return Ok(());
        }
        bail!(
            "refusing to listen on {host} without authentication: anyone who can reach it could \
             run commands as this server. Turn on an auth mode: --enable-basic-auth (with \
             SKYDECK_INITIAL_BASIC_AUTH=admin:PASSWORD for the first admin), \
             --enable-service-accounts, or --external-proxy-auth with --trusted-proxy. On a \
             network you trust completely, --insecure-no-auth skips this check."
        )
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| canonical(ip).is_loopback())
}

/// `::ffff:10.0.0.1` is 10.0.0.1: a dual-stack listener reports IPv4 peers
/// that way, and CIDRs are written in IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_auth_is_refused_off_loopback_unless_insisted_on() {
        let none = AuthSettings::default();
        for host in ["127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"] {
            assert!(none.check_exposure(host, false).is_ok(), "{host}");
        }
        let err = none
            .check_exposure("0.0.0.0", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--enable-basic-auth"), "{err}");
        assert!(err.contains("--insecure-no-auth"), "{err}");
        assert!(none.check_exposure("0.0.0.0", true).is_ok());
        let basic = AuthSettings {
            basic_auth: true,
            ..Default::default()
        };
        assert!(basic.check_exposure("0.0.0.0", false).is_ok());
    }

    #[test]
    fn proxies_are_trusted_only_from_their_networks() {
        let settings = AuthSettings {
            proxy_header: Some(HeaderName::from_static(DEFAULT_PROXY_HEADER)),
            trusted_proxies: vec!["10.1.0.0/16".parse().unwrap()],
            ..Default::default()
        };
        assert!(settings.is_trusted_proxy(Some("10.1.2.3".parse().unwrap())));
        assert!(settings.is_trusted_proxy(Some("::ffff:10.1.2.3".parse().unwrap())));
        assert!(!settings.is_trusted_proxy(Some("10.2.0.1".parse().unwrap())));
        assert!(!settings.is_trusted_proxy(None));
        assert!(settings.validate().is_ok());
        let untrusting = AuthSettings {
            trusted_proxies: vec![],
            ..settings
        };
        assert!(untrusting.validate().is_err());
    }

    #[test]
    fn the_client_address_comes_from_a_trusted_proxy_only() {
        let settings = AuthSettings {
            trusted_proxies: vec!["10.9.0.0/16".parse().unwrap()],
            ..Default::default()
        };
        let headers = |xff: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(X_FORWARDED_FOR, xff.parse().unwrap());
            headers
        };
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let proxy = ip("10.9.0.5");
        // The rightmost entry that is not a proxy; what the client wrote
        // further left is ignored.
        assert_eq!(
            settings.client_address(&headers("1.2.3.4, 203.0.113.7"), proxy),
            ip("203.0.113.7")
        );
        assert_eq!(
            settings.client_address(&headers("203.0.113.7, 10.9.0.6"), proxy),
            ip("203.0.113.7"),
            "a chain of trusted proxies is walked through"
        );
        assert_eq!(
            settings.client_address(&headers("garbage"), proxy),
            proxy,
            "an unreadable entry is not believed"
        );
        assert_eq!(settings.client_address(&HeaderMap::new(), proxy), proxy);
        assert_eq!(
            settings.client_address(&headers("203.0.113.7:5678"), proxy),
            ip("203.0.113.7")
        );
        assert_eq!(
            settings.client_address(&headers("[2001:db8::1]:5678"), proxy),
            ip("2001:db8::1")
        );
        let stranger = ip("198.51.100.1");
        assert_eq!(
            settings.client_address(&headers("203.0.113.7"), stranger),
            stranger,
            "anyone else's header is ignored"
        );
    }

    #[test]
    fn initial_credentials_parse_and_hide_the_password() {
        let creds = Credentials::parse("admin:pa:ss").unwrap();
        assert_eq!(
            (creds.name.as_str(), creds.password.as_str()),
            ("admin", "pa:ss")
        );
        assert!(!format!("{creds:?}").contains("pa:ss"));
        assert!(Credentials::parse("admin").is_err());
        assert!(Credentials::parse(":pw").is_err());
    }
}
