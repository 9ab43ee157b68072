//! Authentication and authorization, in process against a real SQLite store:
//! every route refuses strangers, each kind of bad credential is refused
//! with the right status, and users cannot reach each other's work.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use base64::Engine;
use http_body_util::BodyExt;
use skydeck_server::Server;
use skydeck_server::auth::settings::{AuthSettings, Credentials, HeaderName};
use skydeck_server::auth::{PUBLIC_ROUTES, session};
use skydeck_server::config::{Paths, ServerConfig};
use skydeck_store::{ClusterRecord, ClusterStatus, Role, TokenRecord};
use std::net::SocketAddr;
use tower::ServiceExt;

const ADMIN_PASSWORD: &str = "admin-pw-4a1f";

struct App {
    router: axum::Router,
    server: Server,
    _home: tempfile::TempDir,
}

async fn app_with(auth: AuthSettings) -> App {
    let home = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::for_tests(Paths::new(home.path()));
    config.auth = auth;
    let server = Server::open(config).await.unwrap();
    App {
        router: server.router(),
        server,
        _home: home,
    }
}

/// Basic auth and tokens on, with an admin and two users.
async fn app() -> App {
    let app = app_with(AuthSettings {
        basic_auth: true,
        service_accounts: true,
        proxy_header: Some(HeaderName::from_static("x-auth-request-email")),
        trusted_proxies: vec!["10.9.0.0/16".parse().unwrap()],
        initial_admin: Some(Credentials::parse(&format!("admin:{ADMIN_PASSWORD}")).unwrap()),
        ..Default::default()
    })
    .await;
    for (name, password) in [("alice", "alice-pw"), ("bob", "bob-pw")] {
        let answer = app
            .call(
                post(
                    "/users/create",
                    &format!(r#"{{"name": "{name}", "password": "{password}"}}"#),
                )
                .basic("admin", ADMIN_PASSWORD),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    }
    app
}

struct Answer {
    status: StatusCode,
    location: Option<String>,
    body: serde_json::Value,
}

impl Answer {
    /// Asserts the call was refused with `status` and a detail that says
    /// `needle`.
    #[track_caller]
    fn expect_refused(&self, status: StatusCode, needle: &str) {
        assert_eq!(self.status, status, "{:?}", self.body);
        let detail = self.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(needle), "{needle:?} not in {:?}", self.body);
    }
}

impl App {
    async fn call(&self, request: Call) -> Answer {
        let response = self.router.clone().oneshot(request.0).await.unwrap();
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        // An event stream (a live dashboard table) lasts while it is read:
        // its status is the answer.
        if response
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
        {
            return Answer {
                status,
                location,
                body: serde_json::Value::Null,
            };
        }
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
        Answer {
            status,
            location,
            body,
        }
    }

    fn store(&self) -> &dyn skydeck_store::Store {
        self.server.state().store.as_ref()
    }

    async fn user_id(&self, name: &str) -> String {
        self.store()
            .get_user_by_name(name)
            .await
            .unwrap()
            .unwrap()
            .id
    }

    /// A new token for `user` and its secret.
    async fn token(&self, user: &str, password: &str) -> (String, String) {
        let answer = self
            .call(post("/users/tokens/create", r#"{"name": "ci"}"#).basic(user, password))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        (
            answer.body["id"].as_str().unwrap().to_owned(),
            answer.body["token"].as_str().unwrap().to_owned(),
        )
    }

    /// Submits `body` to `path` as `user`; returns the request id.
    async fn submit(&self, user: &str, password: &str, path: &str, body: &str) -> String {
        let response = self
            .router
            .clone()
            .oneshot(post(path, body).basic(user, password).0)
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        response.headers()["x-skypilot-request-id"]
            .to_str()
            .unwrap()
            .to_owned()
    }
}

struct Call(Request<Body>);

fn request(method: Method, uri: &str, body: &str) -> Call {
    Call(
        Request::builder()
            .method(method)
            .uri(uri)
            .header("X-SkyPilot-API-Version", "62")
            .header("X-SkyPilot-Version", "0.14.1")
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap(),
    )
}

fn get(uri: &str) -> Call {
    request(Method::GET, uri, "")
}

fn post(uri: &str, body: &str) -> Call {
    request(Method::POST, uri, body)
}

impl Call {
    fn header(mut self, name: &str, value: &str) -> Self {
        self.0
            .headers_mut()
            .insert(HeaderName::try_from(name).unwrap(), value.parse().unwrap());
        self
    }

    fn basic(self, user: &str, password: &str) -> Self {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.header("authorization", &format!("Basic {encoded}"))
    }

    fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    fn via_peer(mut self, peer: &str) -> Self {
        let addr: SocketAddr = peer.parse().unwrap();
        self.0.extensions_mut().insert(ConnectInfo(addr));
        self
    }
}

#[tokio::test]
async fn every_route_but_the_health_checks_refuses_an_unauthenticated_call() {
    let app = app().await;
    let routes = skydeck_server::routes::routes();
    assert!(routes.len() > 30, "the walk covers the whole router");
    for route in &routes {
        let body = if route.method == Method::POST {
            "{}"
        } else {
            ""
        };
        let public = PUBLIC_ROUTES.contains(&route.path);
        // The dashboard's login page and what it loads are open; its other
        // pages send a browser there instead of answering 401.
        let dashboard_open = session::is_public(route.path);
        let to_login = session::login_redirect(route.path);
        for (label, call) in [
            (
                "no credentials",
                request(route.method.clone(), route.path, body),
            ),
            (
                "a made-up token",
                request(route.method.clone(), route.path, body).bearer("sky_madeup"),
            ),
            (
                "malformed basic credentials",
                request(route.method.clone(), route.path, body)
                    .header("authorization", "Basic !!notbase64"),
            ),
            (
                "a made-up session cookie",
                request(route.method.clone(), route.path, body)
                    .header("cookie", "skydeck_session=sky_madeup"),
            ),
        ] {
            let answer = app.call(call).await;
            if public {
                assert_eq!(
                    answer.status,
                    StatusCode::OK,
                    "{} {}",
                    route.method,
                    route.path
                );
            } else if dashboard_open {
                // The login form itself, a redirect, or a refused post:
                // never a page of anyone's data.
                assert!(
                    matches!(
                        answer.status,
                        StatusCode::OK
                            | StatusCode::SEE_OTHER
                            | StatusCode::NOT_FOUND
                            | StatusCode::UNSUPPORTED_MEDIA_TYPE
                            | StatusCode::BAD_REQUEST
                            | StatusCode::FORBIDDEN
                    ),
                    "{} {} with {label} answered {:?} {:?}",
                    route.method,
                    route.path,
                    answer.status,
                    answer.body
                );
            } else if let Some(login) = &to_login {
                assert_eq!(
                    (answer.status, answer.location.as_deref()),
                    (StatusCode::SEE_OTHER, Some(login.as_str())),
                    "{} {} with {label}",
                    route.method,
                    route.path,
                );
            } else {
                assert_eq!(
                    answer.status,
                    StatusCode::UNAUTHORIZED,
                    "{} {} with {label} answered {:?}",
                    route.method,
                    route.path,
                    answer.body
                );
            }
        }
    }
    // Paths that are not routes are refused the same way, not probed.
    let answer = app.call(get("/no/such/route")).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn health_reports_the_modes_and_who_is_calling() {
    let app = app().await;
    let anonymous = app.call(get("/api/health")).await;
    assert_eq!(anonymous.status, StatusCode::OK);
    assert_eq!(anonymous.body["basic_auth_enabled"], true);
    assert_eq!(anonymous.body["service_account_token_enabled"], true);
    assert_eq!(anonymous.body["external_proxy_auth_enabled"], true);
    assert_eq!(anonymous.body["ingress_basic_auth_enabled"], false);
    assert!(anonymous.body["user"].is_null());

    let alice = app
        .call(get("/api/health").basic("alice", "alice-pw"))
        .await;
    assert_eq!(alice.body["user"]["name"], "alice");
    assert_eq!(alice.body["user"]["id"], app.user_id("alice").await);
    let wrong = app.call(get("/api/health").basic("alice", "wrong")).await;
    assert_eq!(wrong.status, StatusCode::OK);
    assert!(wrong.body["user"].is_null(), "wrong credentials are nobody");
}

#[tokio::test]
async fn the_initial_admin_may_be_given_as_an_htpasswd_line_as_helm_charts_do() {
    // `openssl passwd -apr1 -salt c1h4rNxt hunter2`, the format SkyPilot's
    // chart puts in `initialBasicAuthCredentials`.
    let line = "root:$apr1$c1h4rNxt$3tSOaYWcrHVOof67K0IUg0";
    let app = app_with(AuthSettings {
        basic_auth: true,
        initial_admin: Some(Credentials::parse(line).unwrap()),
        ..Default::default()
    })
    .await;
    let me = app.call(get("/users/me").basic("root", "hunter2")).await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
    assert_eq!(me.body["role"], "admin", "{:?}", me.body);
    let hash_as_password = app
        .call(get("/users/me").basic("root", "$apr1$c1h4rNxt$3tSOaYWcrHVOof67K0IUg0"))
        .await;
    assert_eq!(hash_as_password.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_proxy_user_named_like_the_servers_own_user_gets_no_admin_rights() {
    let app = app().await;
    let local = app.server.state().local_user.name.clone();
    let me = app
        .call(
            get("/users/me")
                .header("x-auth-request-email", &local)
                .via_peer("10.9.0.7:1234"),
        )
        .await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
    assert_eq!(me.body["name"], local.as_str());
    assert_eq!(me.body["role"], "user", "{:?}", me.body);
    let config = app
        .call(
            get("/api/config")
                .header("x-auth-request-email", &local)
                .via_peer("10.9.0.7:1234"),
        )
        .await;
    assert_eq!(config.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_first_admin_named_like_the_servers_own_user_stays_admin_across_restarts() {
    let home = tempfile::tempdir().unwrap();
    let open = || async {
        let mut config = ServerConfig::for_tests(Paths::new(home.path()));
        config.auth = AuthSettings {
            basic_auth: true,
            initial_admin: None,
            ..Default::default()
        };
        let server = Server::open(config.clone()).await.unwrap();
        let name = server.state().local_user.name.clone();
        drop(server);
        config.auth.initial_admin = Some(Credentials::parse(&format!("{name}:pw-1")).unwrap());
        (config, name)
    };
    let (config, name) = open().await;
    for start in 0..2 {
        let server = Server::open(config.clone()).await.unwrap();
        let router = server.router();
        let app = App {
            router,
            server,
            _home: tempfile::tempdir().unwrap(),
        };
        let me = app.call(get("/users/me").basic(&name, "pw-1")).await;
        assert_eq!(me.status, StatusCode::OK, "start {start}: {:?}", me.body);
        assert_eq!(me.body["role"], "admin", "start {start}: {:?}", me.body);
    }
}

#[tokio::test]
async fn wrong_passwords_are_refused_and_then_rate_limited() {
    let app = app().await;
    let ok = app.call(get("/users/me").basic("alice", "alice-pw")).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.body["name"], "alice");

    let answer = app.call(get("/users/me").basic("alice", "alice-PW")).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.body["detail"], "Invalid user name or password.");
    let answer = app.call(get("/users/me").basic("nobody", "x")).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.body["detail"], "Invalid user name or password.");

    // Bob guesses from one address until locked out: then even his right
    // password is refused without being checked, while alice is unaffected.
    for _ in 0..5 {
        let answer = app
            .call(
                get("/users/me")
                    .basic("bob", "guess")
                    .via_peer("10.1.1.1:5000"),
            )
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
    let locked = app
        .call(
            get("/users/me")
                .basic("bob", "bob-pw")
                .via_peer("10.1.1.1:5000"),
        )
        .await;
    locked.expect_refused(StatusCode::TOO_MANY_REQUESTS, "Too many failed logins");
    let elsewhere = app
        .call(
            get("/users/me")
                .basic("bob", "bob-pw")
                .via_peer("10.1.1.2:5000"),
        )
        .await;
    assert_eq!(
        elsewhere.status,
        StatusCode::OK,
        "another address is not locked"
    );
}

#[tokio::test]
async fn tokens_work_until_revoked_expired_or_their_user_is_deleted() {
    let app = app().await;
    let (id, token) = app.token("alice", "alice-pw").await;
    assert!(token.starts_with("sky_"));
    let me = app.call(get("/users/me").bearer(&token)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["name"], "alice");

    // Listings never show the secret, and the store holds only its hash.
    let list = app.call(get("/users/tokens").bearer(&token)).await;
    assert_eq!(list.body[0]["id"], id.as_str());
    assert!(!list.body.to_string().contains(&token[4..]));
    let stored = app.store().list_tokens(None).await.unwrap();
    assert!(
        stored
            .iter()
            .all(|t| t.hash != token && !t.hash.contains(&token[4..]))
    );

    // Someone else's token reads as no token at all.
    app.call(post("/users/tokens/revoke", &format!(r#"{{"id": "{id}"}}"#)).basic("bob", "bob-pw"))
        .await
        .expect_refused(StatusCode::NOT_FOUND, "No token");
    // Revoked.
    let revoke = app
        .call(post("/users/tokens/revoke", &format!(r#"{{"id": "{id}"}}"#)).bearer(&token))
        .await;
    assert_eq!(revoke.status, StatusCode::OK, "{:?}", revoke.body);
    let refused = app.call(get("/users/me").bearer(&token)).await;
    refused.expect_refused(StatusCode::UNAUTHORIZED, "revoked");

    // Expired: a token whose expiry has passed.
    let expired = "sky_expiredexpiredexpiredexpiredexpiredexpired1";
    app.store()
        .insert_token(&TokenRecord {
            id: "old1".into(),
            user_id: app.user_id("alice").await,
            name: "old".into(),
            hash: skydeck_server::auth::tokens::hash(expired),
            created_at: 1.0,
            expires_at: Some(2.0),
            last_used_at: None,
            revoked_at: None,
        })
        .await
        .unwrap();
    let refused = app.call(get("/users/me").bearer(expired)).await;
    refused.expect_refused(StatusCode::UNAUTHORIZED, "expired");

    // The user is deleted: their other token stops working.
    let (_, bobs) = app.token("bob", "bob-pw").await;
    assert_eq!(
        app.call(get("/users/me").bearer(&bobs)).await.status,
        StatusCode::OK
    );
    let deleted = app
        .call(post("/users/delete", r#"{"user": "bob"}"#).basic("admin", ADMIN_PASSWORD))
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{:?}", deleted.body);
    assert_eq!(deleted.body["revoked_tokens"], 1);
    let refused = app.call(get("/users/me").bearer(&bobs)).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let refused = app.call(get("/users/me").basic("bob", "bob-pw")).await;
    assert_eq!(
        refused.status,
        StatusCode::UNAUTHORIZED,
        "the password went too"
    );
}

#[tokio::test]
async fn a_proxy_identity_header_counts_only_from_a_trusted_proxy() {
    let app = app().await;
    let trusted = app
        .call(
            get("/users/me")
                .header("X-Auth-Request-Email", "carol@example.com")
                .via_peer("10.9.3.4:40000"),
        )
        .await;
    assert_eq!(trusted.status, StatusCode::OK, "{:?}", trusted.body);
    assert_eq!(trusted.body["name"], "carol@example.com");
    assert_eq!(trusted.body["role"], "user");

    for peer in ["10.8.3.4:40000", "127.0.0.1:40000"] {
        let forged = app
            .call(
                get("/users/me")
                    .header("X-Auth-Request-Email", "admin")
                    .via_peer(peer),
            )
            .await;
        assert_eq!(forged.status, StatusCode::UNAUTHORIZED, "from {peer}");
    }
}

/// `rbac.default_role` decides the role of users first seen after it is
/// set; users already known keep theirs. Unset, new users are plain users.
#[tokio::test]
async fn new_proxy_users_get_the_configs_default_role() {
    let app = app().await;
    let me = |name: &'static str| {
        get("/users/me")
            .header("X-Auth-Request-Email", name)
            .via_peer("10.9.3.4:40000")
    };
    assert_eq!(app.call(me("carol@example.com")).await.body["role"], "user");
    let answer = app
        .set_config(serde_json::json!({"rbac": {"default_role": "admin"}}))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(app.call(me("dave@example.com")).await.body["role"], "admin");
    assert_eq!(app.call(me("carol@example.com")).await.body["role"], "user");
    let refused = app
        .set_config(serde_json::json!({"rbac": {"default_role": "viewer"}}))
        .await;
    refused.expect_refused(StatusCode::BAD_REQUEST, "rbac.default_role");
}

#[tokio::test]
async fn an_ingress_that_checked_basic_auth_names_the_user() {
    let app = app_with(AuthSettings {
        ingress_header: Some(HeaderName::from_static("authorization")),
        trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
        ..Default::default()
    })
    .await;
    let health = app
        .call(
            get("/api/health")
                .basic("dana", "checked-by-ingress")
                .via_peer("10.0.0.7:1"),
        )
        .await;
    assert_eq!(health.body["ingress_basic_auth_enabled"], true);
    assert_eq!(health.body["basic_auth_enabled"], false);
    assert_eq!(health.body["user"]["name"], "dana");
    let direct = app
        .call(
            get("/users/me")
                .basic("dana", "anything")
                .via_peer("192.168.0.1:1"),
        )
        .await;
    assert_eq!(
        direct.status,
        StatusCode::UNAUTHORIZED,
        "not through the ingress"
    );
}

#[tokio::test]
async fn users_cannot_read_each_others_requests() {
    let app = app().await;
    let alices = app.submit("alice", "alice-pw", "/status", "{}").await;
    // Another user's request answers exactly as one that does not exist,
    // whole id or prefix, down to one character.
    let missing = "0123abcd-0000-4000-8000-000000000000";
    for prefix in [alices.as_str(), &alices[..8], &alices[..1]] {
        for uri in ["/api/get", "/api/stream"] {
            let theirs = app
                .call(get(&format!("{uri}?request_id={prefix}")).basic("bob", "bob-pw"))
                .await;
            let nobodys = app
                .call(get(&format!("{uri}?request_id={missing}")).basic("bob", "bob-pw"))
                .await;
            assert_eq!(theirs.status, StatusCode::NOT_FOUND, "{uri} {prefix}");
            assert_eq!(nobodys.status, StatusCode::NOT_FOUND);
            assert_eq!(
                theirs.body["detail"],
                format!("Request {prefix:?} not found")
            );
            assert_eq!(
                nobodys.body["detail"],
                format!("Request {missing:?} not found")
            );
            if prefix.len() < alices.len() {
                assert!(!theirs.body.to_string().contains(&alices), "{prefix}");
            }
        }
        let listed = app
            .call(get(&format!("/api/status?request_ids={prefix}")).basic("bob", "bob-pw"))
            .await;
        assert_eq!(listed.status, StatusCode::OK);
        assert_eq!(listed.body, serde_json::json!([]), "{prefix}");
    }
    // Cancelling by her prefix finds nothing of hers either.
    let cancel = app
        .submit(
            "bob",
            "bob-pw",
            "/api/cancel",
            &format!(r#"{{"request_ids": ["{}"]}}"#, &alices[..1]),
        )
        .await;
    let cancelled = app
        .call(get(&format!("/api/get?request_id={cancel}")).basic("bob", "bob-pw"))
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{:?}", cancelled.body);
    assert!(
        !cancelled.body.to_string().contains(&alices),
        "{:?}",
        cancelled.body
    );
    let bad = app
        .call(get("/api/get?request_id=../x").basic("bob", "bob-pw"))
        .await;
    bad.expect_refused(StatusCode::BAD_REQUEST, "request id");
    let own = app
        .call(get(&format!("/api/get?request_id={alices}")).basic("alice", "alice-pw"))
        .await;
    assert_eq!(own.status, StatusCode::OK, "{:?}", own.body);
    let admin = app
        .call(get(&format!("/api/get?request_id={alices}")).basic("admin", ADMIN_PASSWORD))
        .await;
    assert_eq!(admin.status, StatusCode::OK);

    let listed = app
        .call(get("/api/status?all_status=true").basic("bob", "bob-pw"))
        .await;
    assert!(
        !listed.body.to_string().contains(&alices),
        "{:?}",
        listed.body
    );
    let listed = app
        .call(get("/api/status?all_status=true").basic("admin", ADMIN_PASSWORD))
        .await;
    assert!(listed.body.to_string().contains(&alices));

    // A request's user is the proven one, whatever the body claims.
    let body = r#"{"env_vars": {"SKYPILOT_USER_ID": "admin0", "SKYPILOT_USER": "admin"}}"#;
    let id = &app.submit("bob", "bob-pw", "/status", body).await;
    let record = app.store().get_request(id).await.unwrap().unwrap();
    assert_eq!(record.user_id, app.user_id("bob").await);
    assert_eq!(record.body["env_vars"]["SKYPILOT_USER"], "bob");
}

#[tokio::test]
async fn users_cannot_act_on_each_others_clusters() {
    let app = app().await;
    let alice = app.user_id("alice").await;
    app.store()
        .put_cluster(&up_cluster("alices", alice))
        .await
        .unwrap();
    for (path, body) in [
        ("/stop", r#"{"cluster_name": "alices"}"#),
        ("/down", r#"{"cluster_name": "alices"}"#),
        ("/queue", r#"{"cluster_name": "alices"}"#),
        ("/logs", r#"{"cluster_name": "alices", "job_id": 1}"#),
        ("/download_logs", r#"{"cluster_name": "alices"}"#),
        ("/cancel", r#"{"cluster_name": "alices", "all": true}"#),
        (
            "/exec",
            r#"{"cluster_name": "alices", "task": "run: echo hi"}"#,
        ),
        (
            "/launch",
            r#"{"cluster_name": "alices", "task": "run: echo hi"}"#,
        ),
    ] {
        let answer = app.call(post(path, body).basic("bob", "bob-pw")).await;
        answer.expect_refused(StatusCode::FORBIDDEN, "belongs to another user");
    }
    let own = app
        .call(post("/queue", r#"{"cluster_name": "alices"}"#).basic("alice", "alice-pw"))
        .await;
    assert_eq!(own.status, StatusCode::OK);
}

#[tokio::test]
async fn only_admins_manage_users() {
    let app = app().await;
    let answer = app
        .call(
            post("/users/create", r#"{"name": "eve", "password": "x"}"#).basic("alice", "alice-pw"),
        )
        .await;
    answer.expect_refused(StatusCode::FORBIDDEN, "Only admins");
    let answer = app
        .call(
            post("/users/update", r#"{"user": "alice", "role": "admin"}"#)
                .basic("alice", "alice-pw"),
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::FORBIDDEN,
        "no promoting yourself"
    );
    let answer = app
        .call(get("/users/tokens?all=true").basic("alice", "alice-pw"))
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);

    // Users may change their own password, given the current one.
    let answer = app
        .call(
            post(
                "/users/update",
                r#"{"user": "alice", "password": "new-pw", "current_password": "alice-pw"}"#,
            )
            .basic("alice", "alice-pw"),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(
        app.call(get("/users/me").basic("alice", "alice-pw"))
            .await
            .status,
        StatusCode::UNAUTHORIZED,
        "the old password stops working at once"
    );
    assert_eq!(
        app.call(get("/users/me").basic("alice", "new-pw"))
            .await
            .status,
        StatusCode::OK
    );

    let answer = app
        .call(
            post("/users/update", r#"{"user": "alice", "role": "admin"}"#)
                .basic("admin", ADMIN_PASSWORD),
        )
        .await;
    assert_eq!(answer.body["role"], "admin");
    let stored = app
        .store()
        .get_user_by_name("alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.role, Role::Admin);
    let answer = app
        .call(
            post("/users/create", r#"{"name": "alice", "password": "x"}"#)
                .basic("admin", ADMIN_PASSWORD),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn htpasswd_users_log_in_with_their_imported_passwords() {
    let app = app().await;
    // Lines as `htpasswd -nbB`, `-nbm` and `-nbs` write them (password "pw"
    // for bob and carol, "s3cret" for alice).
    let file = "erin:$2y$05$XkT/r7IvSDhxkWjH9Sg4d.5zUhuBsZ0YVyGzyrvB7iXuix5qCb6jS\n\
                frank:$apr1$wFJlD6cn$/cym6ibcUaV068IilBkbw.\n\
                grace:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=\n";
    let body = serde_json::json!({ "htpasswd": file }).to_string();
    let answer = app
        .call(post("/users/import", &body).basic("admin", ADMIN_PASSWORD))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.body["imported"], 3);
    for (user, password) in [("erin", "s3cret"), ("frank", "pw"), ("grace", "pw")] {
        let me = app.call(get("/users/me").basic(user, password)).await;
        assert_eq!(me.status, StatusCode::OK, "{user}");
        assert_eq!(me.body["name"], user);
    }
    let bad = serde_json::json!({ "htpasswd": "henry:plain\n" }).to_string();
    let answer = app
        .call(post("/users/import", &bad).basic("admin", ADMIN_PASSWORD))
        .await;
    answer.expect_refused(StatusCode::BAD_REQUEST, "line 1 (henry)");
}

#[tokio::test]
async fn without_auth_nothing_is_refused_and_clients_name_themselves() {
    let app = app_with(AuthSettings::default()).await;
    for route in skydeck_server::routes::routes() {
        let body = if route.method == Method::POST {
            "{}"
        } else {
            ""
        };
        let answer = app
            .call(request(route.method.clone(), route.path, body))
            .await;
        assert_ne!(answer.status, StatusCode::UNAUTHORIZED, "{}", route.path);
        assert_ne!(answer.status, StatusCode::FORBIDDEN, "{}", route.path);
    }
    let health = app.call(get("/api/health")).await;
    assert_eq!(health.body["basic_auth_enabled"], false);
    assert!(health.body["user"]["id"].is_string());
}

impl App {
    async fn set_config(&self, config: serde_json::Value) -> Answer {
        let body = serde_json::json!({ "config": config }).to_string();
        self.call(post("/api/config", &body).basic("admin", ADMIN_PASSWORD))
            .await
    }

    /// Submits `body` to `path` as `user` and waits for the result.
    async fn run(&self, user: &str, password: &str, path: &str, body: &str) -> Answer {
        let response = self
            .router
            .clone()
            .oneshot(post(path, body).basic(user, password).0)
            .await
            .unwrap();
        let status = response.status();
        if status != StatusCode::OK {
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            return Answer {
                status,
                location: None,
                body: serde_json::from_slice(&bytes).unwrap_or_default(),
            };
        }
        let id = response.headers()["x-skypilot-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        self.call(get(&format!("/api/get?request_id={id}")).basic(user, password))
            .await
    }
}

/// The error text of a failed request as `/api/get` reports it.
fn request_error(answer: &Answer) -> String {
    assert_eq!(
        answer.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{:?}",
        answer.body
    );
    answer.body["detail"]["error"].to_string()
}

#[tokio::test]
async fn only_admins_read_and_write_the_config_and_changes_apply_at_once() {
    let app = app().await;
    for call in [
        get("/api/config").basic("alice", "alice-pw"),
        post("/api/config", r#"{"config": {}}"#).basic("alice", "alice-pw"),
    ] {
        let answer = app.call(call).await;
        answer.expect_refused(StatusCode::FORBIDDEN, "Only admins");
    }
    let bad = app
        .set_config(serde_json::json!({"workspaces": {"team-a": {"privat": true}}}))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let detail = bad.body["detail"].as_str().unwrap();
    assert!(detail.contains("workspaces.team-a.privat"), "{detail}");
    assert!(
        detail.contains("private"),
        "the nearest key is suggested: {detail}"
    );

    let config = serde_json::json!({
        "api_server": {"service_account_token": "sky_notshownnotshown"},
        "workspaces": {"team-a": {"private": true, "allowed_users": ["alice"]}},
    });
    let saved = app.set_config(config).await;
    assert_eq!(saved.status, StatusCode::OK, "{:?}", saved.body);
    assert_eq!(saved.body["source"], "file");
    let shown = app
        .call(get("/api/config").basic("admin", ADMIN_PASSWORD))
        .await;
    assert_eq!(
        shown.body["config"]["api_server"]["service_account_token"],
        "<redacted>"
    );
    assert!(!shown.body.to_string().contains("notshown"));

    // No restart: the workspace exists for the next request.
    let answer = app
        .call(get("/users/me/workspace").basic("alice", "alice-pw"))
        .await;
    assert_eq!(
        answer.body["accessible"],
        serde_json::json!(["default", "team-a"])
    );
    let answer = app
        .call(get("/users/me/workspace").basic("bob", "bob-pw"))
        .await;
    assert_eq!(answer.body["accessible"], serde_json::json!(["default"]));
}

#[tokio::test]
async fn a_private_workspace_refuses_users_it_does_not_list() {
    let app = app().await;
    let saved = app
        .set_config(serde_json::json!({
            "workspaces": {"team-a": {"private": true, "allowed_users": ["alice"]}},
        }))
        .await;
    assert_eq!(saved.status, StatusCode::OK);
    let in_team_a = r#"{"override_skypilot_config": {"active_workspace": "team-a"}}"#;
    let refused = app
        .call(post("/status", in_team_a).basic("bob", "bob-pw"))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let detail = refused.body["detail"].as_str().unwrap();
    assert!(detail.contains("\"team-a\""), "{detail}");
    assert!(detail.contains("bob"), "{detail}");
    for (user, password) in [("alice", "alice-pw"), ("admin", ADMIN_PASSWORD)] {
        let answer = app
            .call(post("/status", in_team_a).basic(user, password))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{user}");
    }
    let unknown = app
        .call(
            post(
                "/status",
                r#"{"override_skypilot_config": {"active_workspace": "nope"}}"#,
            )
            .basic("alice", "alice-pw"),
        )
        .await;
    unknown.expect_refused(StatusCode::BAD_REQUEST, "default, team-a");

    // The request is recorded in its workspace.
    let id = &app.submit("alice", "alice-pw", "/status", in_team_a).await;
    let record = app.store().get_request(id).await.unwrap().unwrap();
    assert_eq!(record.workspace, "team-a");
}

#[tokio::test]
async fn a_launch_on_infra_the_workspace_leaves_out_is_refused() {
    let app = app().await;
    app.set_config(serde_json::json!({
        "workspaces": {"no-local": {"local": {"disabled": true}}},
    }))
    .await;
    let body = serde_json::json!({
        "cluster_name": "c1",
        "task": "run: echo hi\n",
        "override_skypilot_config": {"active_workspace": "no-local"},
    })
    .to_string();
    let answer = app.run("alice", "alice-pw", "/launch", &body).await;
    let error = request_error(&answer);
    assert!(error.contains("PermissionDeniedError"), "{error}");
    assert!(error.contains("no-local"), "{error}");
    assert!(
        app.store().get_cluster("c1").await.unwrap().is_none(),
        "nothing was launched"
    );
}

#[tokio::test]
async fn the_declarative_policy_rejects_a_task_over_its_caps() {
    let app = app().await;
    app.set_config(
        serde_json::json!({"admin_policy": {"max_cpus": 2, "required_labels": ["team"]}}),
    )
    .await;
    let body = serde_json::json!({
        "cluster_name": "big",
        "task": "run: echo hi\nresources:\n  cpus: 8\n  labels:\n    team: ml\n",
    })
    .to_string();
    let error = request_error(&app.run("alice", "alice-pw", "/launch", &body).await);
    assert!(error.contains("UserRequestRejectedByPolicy"), "{error}");
    assert!(error.contains("admin_policy.max_cpus"), "{error}");
    let body = serde_json::json!({"cluster_name": "nolabel", "task": "run: echo hi\n"}).to_string();
    let error = request_error(&app.run("alice", "alice-pw", "/launch", &body).await);
    assert!(error.contains("team"), "{error}");
}

#[tokio::test]
async fn a_rest_policy_rejection_or_failure_fails_the_request_with_its_text() {
    use axum::routing::post as route_post;
    let policy = axum::Router::new()
        .route(
            "/reject",
            route_post(|| async { (StatusCode::BAD_REQUEST, "GPUs need a ticket (POL-7)") }),
        )
        .route(
            "/broken",
            route_post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "oops") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, policy).await });

    let app = app().await;
    let body = serde_json::json!({"cluster_name": "p1", "task": "run: echo hi\n"}).to_string();
    app.set_config(serde_json::json!({"admin_policy": format!("http://{address}/reject")}))
        .await;
    let error = request_error(&app.run("alice", "alice-pw", "/launch", &body).await);
    assert!(error.contains("UserRequestRejectedByPolicy"), "{error}");
    assert!(error.contains("GPUs need a ticket (POL-7)"), "{error}");

    app.set_config(serde_json::json!({"admin_policy": format!("http://{address}/broken")}))
        .await;
    let error = request_error(&app.run("alice", "alice-pw", "/launch", &body).await);
    assert!(error.contains("RestfulPolicyError"), "{error}");
    assert!(
        error.contains(&format!("http://{address}/broken")),
        "{error}"
    );
}

#[tokio::test]
async fn an_attacker_behind_the_same_ingress_cannot_lock_the_admin_out() {
    let app = app().await;
    // Every client comes through the ingress at 10.9.0.5 (a trusted
    // proxy), which appends the address it saw to X-Forwarded-For.
    let through_ingress = |call: Call, client: &str| {
        call.via_peer("10.9.0.5:40000")
            .header("x-forwarded-for", client)
    };
    for _ in 0..8 {
        let answer = app
            .call(through_ingress(
                get("/users/me").basic("admin", "guess"),
                "203.0.113.66",
            ))
            .await;
        assert!(
            [StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS].contains(&answer.status),
            "{:?}",
            answer.body
        );
    }
    let slowed = app
        .call(through_ingress(
            get("/users/me").basic("admin", ADMIN_PASSWORD),
            "203.0.113.66",
        ))
        .await;
    slowed.expect_refused(StatusCode::TOO_MANY_REQUESTS, "try again in");
    // A client claiming the admin's address in a header of its own: the
    // ingress appends the real one, which is what counts.
    let forged = app
        .call(through_ingress(
            get("/users/me").basic("admin", "guess"),
            "198.51.100.7, 203.0.113.66",
        ))
        .await;
    assert_eq!(forged.status, StatusCode::TOO_MANY_REQUESTS);

    let admin = app
        .call(through_ingress(
            get("/users/me").basic("admin", ADMIN_PASSWORD),
            "198.51.100.7",
        ))
        .await;
    assert_eq!(admin.status, StatusCode::OK, "{:?}", admin.body);
    assert_eq!(admin.body["name"], "admin");

    // Outside a trusted proxy, the header is the client's own word and
    // counts for nothing: the peer is the address.
    for _ in 0..6 {
        app.call(
            get("/users/me")
                .basic("bob", "guess")
                .via_peer("192.0.2.1:5000")
                .header("x-forwarded-for", "198.51.100.99"),
        )
        .await;
    }
    let bob = app
        .call(
            get("/users/me")
                .basic("bob", "bob-pw")
                .via_peer("192.0.2.1:5000")
                .header("x-forwarded-for", "198.51.100.100"),
        )
        .await;
    assert_eq!(bob.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn changing_your_own_password_needs_the_current_one() {
    let app = app().await;
    let (_, token) = app.token("alice", "alice-pw").await;
    let change = |current: Option<&str>| {
        let mut body = serde_json::json!({"user": "alice", "password": "taken-over"});
        if let Some(current) = current {
            body["current_password"] = current.into();
        }
        post("/users/update", &body.to_string())
    };
    // Whoever holds only her token cannot take over her account.
    app.call(change(None).bearer(&token))
        .await
        .expect_refused(StatusCode::FORBIDDEN, "needs your current one");
    app.call(change(Some("wrong")).bearer(&token))
        .await
        .expect_refused(StatusCode::FORBIDDEN, "current password is wrong");
    app.call(change(None).basic("alice", "alice-pw"))
        .await
        .expect_refused(StatusCode::FORBIDDEN, "needs your current one");
    assert_eq!(
        app.call(get("/users/me").basic("alice", "alice-pw"))
            .await
            .status,
        StatusCode::OK,
        "nothing was changed"
    );
    // Guessing the current password here is slowed as a login is.
    for _ in 0..6 {
        app.call(change(Some("guess")).bearer(&token).via_peer("10.2.0.1:1"))
            .await;
    }
    app.call(
        change(Some("alice-pw"))
            .bearer(&token)
            .via_peer("10.2.0.1:1"),
    )
    .await
    .expect_refused(StatusCode::TOO_MANY_REQUESTS, "try again in");

    let changed = app.call(change(Some("alice-pw")).bearer(&token)).await;
    assert_eq!(changed.status, StatusCode::OK, "{:?}", changed.body);
    assert_eq!(
        app.call(get("/users/me").basic("alice", "taken-over"))
            .await
            .status,
        StatusCode::OK
    );

    // An admin sets another user's password without knowing it.
    let reset = app
        .call(
            post(
                "/users/update",
                r#"{"user": "bob", "password": "reset-pw"}"#,
            )
            .basic("admin", ADMIN_PASSWORD),
        )
        .await;
    assert_eq!(reset.status, StatusCode::OK, "{:?}", reset.body);
    // A user with only tokens gets a first password from an admin: a
    // token is not enough to add one.
    let added = app
        .call(post("/users/create", r#"{"name": "robot"}"#).basic("admin", ADMIN_PASSWORD))
        .await;
    assert_eq!(added.status, StatusCode::OK, "{:?}", added.body);
    let made = app
        .call(
            post("/users/tokens/create", r#"{"name": "ci", "user": "robot"}"#)
                .basic("admin", ADMIN_PASSWORD),
        )
        .await;
    let robot_token = made.body["token"].as_str().unwrap().to_owned();
    app.call(
        post(
            "/users/update",
            r#"{"user": "robot", "password": "mine-now"}"#,
        )
        .bearer(&robot_token),
    )
    .await
    .expect_refused(StatusCode::FORBIDDEN, "no password yet");
    // But their own, like anyone, only with the current one.
    app.call(
        post("/users/update", r#"{"user": "admin", "password": "x"}"#)
            .basic("admin", ADMIN_PASSWORD),
    )
    .await
    .expect_refused(StatusCode::FORBIDDEN, "needs your current one");
}

#[tokio::test]
async fn a_status_pattern_that_would_backtrack_forever_answers() {
    let app = app().await;
    let alice = app.user_id("alice").await;
    let name = format!("a{}", "a".repeat(62));
    app.store()
        .put_cluster(&up_cluster(&name, alice))
        .await
        .unwrap();
    // Exponential for a matcher that tries every split at every star.
    let evil = format!("{}b", "*a".repeat(30));
    let body = serde_json::json!({"cluster_names": [evil, "a*"], "refresh": "NONE"});
    let id = app
        .submit("alice", "alice-pw", "/status", &body.to_string())
        .await;
    let answer = app
        .call(get(&format!("/api/get?request_id={id}")).basic("alice", "alice-pw"))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let records: serde_json::Value =
        serde_json::from_str(answer.body["return_value"].as_str().unwrap()).unwrap();
    assert_eq!(records[0]["name"], name.as_str());

    let too_long = serde_json::json!({"cluster_names": ["*".repeat(129)]});
    app.call(post("/status", &too_long.to_string()).basic("alice", "alice-pw"))
        .await
        .expect_refused(StatusCode::BAD_REQUEST, "at most 128 characters");
    let too_many = serde_json::json!({"cluster_names": vec!["c"; 101]});
    app.call(post("/status", &too_many.to_string()).basic("alice", "alice-pw"))
        .await
        .expect_refused(StatusCode::BAD_REQUEST, "at most 100");
}

#[tokio::test]
async fn secrets_on_an_official_clients_command_line_are_stored_redacted() {
    let app = app().await;
    // As SkyPilot's client sends it: the whole command line, and the task
    // with the secret values the flags gave.
    let line = "sky launch --secret HF_TOKEN=hf_Sekrit_one --env DB_PASS=db_Sekrit_two \
                --env A=visible -c c1 t.yaml";
    let body = serde_json::json!({
        "entrypoint": "sky.client.cli.command.launch",
        "entrypoint_command": line,
        "task": "run: echo hi\nsecrets:\n  HF_TOKEN: hf_Sekrit_one\n  DB_PASS: db_Sekrit_two\n",
        "cluster_name": "c1",
        "dryrun": true,
    });
    let id = app
        .submit("alice", "alice-pw", "/launch", &body.to_string())
        .await;
    let record = app.store().get_request(&id).await.unwrap().unwrap();
    let stored = format!("{} {}", record.entrypoint, record.body);
    let shown = app
        .call(get(&format!("/api/status?request_ids={id}")).basic("alice", "alice-pw"))
        .await
        .body
        .to_string();
    for text in [&stored, &shown] {
        assert!(!text.contains("Sekrit"), "{text}");
        assert!(text.contains("HF_TOKEN=<redacted>"), "{text}");
        assert!(text.contains("DB_PASS=<redacted>"), "{text}");
        assert!(text.contains("A=visible"), "{text}");
    }
}

#[tokio::test]
async fn a_task_over_its_limits_is_refused_when_submitted_naming_the_limit() {
    let app = app().await;
    let mut envs = String::from("run: echo hi\nenvs:\n");
    for i in 0..1001 {
        envs.push_str(&format!("  V{i}: a\n"));
    }
    let huge = format!("run: echo {}\n", "x".repeat(1024 * 1024));
    for (task, limit) in [
        (envs.as_str(), "at most 1000 environment variables"),
        (huge.as_str(), "at most 1048576 bytes"),
    ] {
        for path in ["/launch", "/exec"] {
            let body = serde_json::json!({"cluster_name": "c1", "task": task});
            app.call(post(path, &body.to_string()).basic("alice", "alice-pw"))
                .await
                .expect_refused(StatusCode::BAD_REQUEST, limit);
        }
        let body = serde_json::json!({ "dag": task });
        let answer = app
            .call(post("/validate", &body.to_string()).basic("alice", "alice-pw"))
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert!(answer.body.to_string().contains(limit), "{:?}", answer.body);
    }
}

/// An UP cluster record of `user_id`, stored directly (no agent behind it).
fn up_cluster(name: &str, user_id: String) -> ClusterRecord {
    ClusterRecord {
        name: name.into(),
        status: ClusterStatus::Up,
        user_id,
        workspace: "default".into(),
        infra: "local".into(),
        cluster_hash: "h".into(),
        launched_at: Some(1.0),
        status_updated_at: 1.0,
        num_nodes: 1,
        resources: serde_json::json!({}),
        handle: serde_json::json!({}),
        autostop_minutes: -1,
        autostop_down: false,
        ever_up: true,
        last_use: None,
    }
}

#[tokio::test]
async fn only_admins_set_ssh_node_pools_up_or_down_or_read_their_file() {
    let app = app().await;
    for call in [
        post(
            "/ssh_node_pools/deploy",
            r#"{"infra": null, "cleanup": false}"#,
        )
        .basic("alice", "alice-pw"),
        post("/ssh_node_pools/lab/deploy", "").basic("alice", "alice-pw"),
        post("/ssh_node_pools/down", r#"{"infra": "lab"}"#).basic("alice", "alice-pw"),
        post("/ssh_node_pools/lab/down", "").basic("alice", "alice-pw"),
        get("/ssh_node_pools").basic("alice", "alice-pw"),
    ] {
        let answer = app.call(call).await;
        answer.expect_refused(StatusCode::FORBIDDEN, "Only admins");
    }
    // A pool name that is not one is refused before anything is stored.
    let answer = app
        .call(post("/ssh_node_pools/..%2Fx/deploy", "").basic("admin", ADMIN_PASSWORD))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{:?}", answer.body);
    // Anyone may ask whether a pool is up; without a file none is.
    let answer = app
        .call(get("/ssh_node_pools/lab/status").basic("alice", "alice-pw"))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.body["context_name"], "ssh-lab");
    assert_eq!(answer.body["status"], "Not Ready");
}

#[tokio::test]
async fn a_launch_on_a_node_pool_the_workspace_does_not_allow_is_refused() {
    let app = app().await;
    app.set_config(serde_json::json!({
        "ssh": {"allowed_node_pools": ["everyone"]},
        "workspaces": {"lab-only": {"ssh": {"allowed_node_pools": ["lab"]}}},
    }))
    .await;
    for (workspace, pool, setting) in [
        (
            "default",
            "lab",
            "ssh.allowed_node_pools lists only everyone",
        ),
        (
            "lab-only",
            "everyone",
            "workspaces.lab-only.ssh.allowed_node_pools lists only lab",
        ),
    ] {
        let body = serde_json::json!({
            "cluster_name": "c1",
            "task": format!("resources:\n  infra: ssh/{pool}\nrun: echo hi\n"),
            "override_skypilot_config": {"active_workspace": workspace},
        })
        .to_string();
        let answer = app.run("alice", "alice-pw", "/launch", &body).await;
        let error = request_error(&answer);
        assert!(error.contains("PermissionDeniedError"), "{error}");
        assert!(
            error.contains(&format!("`{pool}` is not allowed")),
            "{error}"
        );
        assert!(error.contains(setting), "{error}");
        assert!(app.store().get_cluster("c1").await.unwrap().is_none());
    }
}
