//! Who is calling: every request but the health checks must prove it when
//! any auth mode is on (see `AuthSettings`). The middleware attaches a
//! [`Caller`] to each request; handlers decide what that caller may see.

mod first_admin;
pub mod hashing;
pub mod limiter;
pub mod password;
pub mod session;
pub mod settings;
pub mod tokens;

use crate::error::ApiError;
use crate::executor::now;
use crate::live_config::LiveConfig;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hashing::HashingPool;
use limiter::LoginLimiter;
use settings::AuthSettings;
use sha2::{Digest, Sha256};
use skydeck_store::{Role, Store, StoreError, User};
use skydeck_types::config::SkyConfig;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Routes anyone may call: load balancers and the client's first probe
/// must reach them before any login.
pub const PUBLIC_ROUTES: &[&str] = &["/health", "/api/health"];

/// Who made a request.
#[derive(Debug, Clone)]
pub enum Caller {
    /// Auth is off: clients name themselves and nothing is refused.
    Trusted,
    /// Auth is on and the caller proved nothing (public routes only).
    Anonymous,
    /// Auth is on and this user proved who they are.
    User(User),
}

impl Caller {
    pub fn user(&self) -> Option<&User> {
        match self {
            Self::User(user) => Some(user),
            _ => None,
        }
    }

    /// Whether the caller sees and acts on everyone's requests and clusters.
    pub fn sees_all(&self) -> bool {
        match self {
            Self::Trusted => true,
            Self::Anonymous => false,
            Self::User(user) => user.role == Role::Admin,
        }
    }

    /// Whether the caller may act on what `owner` made.
    pub fn may_act_for(&self, owner: &str) -> bool {
        self.sees_all() || self.user().is_some_and(|u| u.id == owner)
    }

    /// The caller if it is an admin (or auth is off), else 403.
    pub fn require_admin(&self, action: &str) -> Result<(), ApiError> {
        if self.sees_all() {
            return Ok(());
        }
        Err(ApiError::forbidden(format!(
            "Only admins can {action}; ask an admin to run it or to make you one \
             (`skydeck users set-role NAME admin`)."
        )))
    }
}

/// What the dashboard's login form was given.
pub enum Credentials<'a> {
    Password { name: &'a str, password: &'a str },
    Token(&'a str),
}

/// Why a caller was turned away.
#[derive(Debug)]
pub enum AuthError {
    /// Credentials were sent and are wrong; the text says which kind.
    Invalid(String),
    /// Too many failed logins for this user from this address.
    RateLimited(Duration),
    Store(StoreError),
}

impl From<StoreError> for AuthError {
    fn from(err: StoreError) -> Self {
        Self::Store(err)
    }
}

/// Checks credentials against the users and tokens in the store.
pub struct Authenticator {
    settings: AuthSettings,
    store: Arc<dyn Store>,
    /// For `rbac.default_role`, read when a user is first seen.
    live_config: Arc<LiveConfig>,
    limiter: LoginLimiter,
    /// Passwords checked recently, by a hash of name and password, so a
    /// client sending basic auth on every call pays bcrypt once a minute
    /// rather than per call.
    verified: Mutex<HashMap<[u8; 32], (String, Instant)>>,
    /// Where passwords are hashed and checked, a few at a time.
    hashing: HashingPool,
}

/// How long a checked password is believed without checking it again. A
/// password changed or a user deleted through another replica takes
/// effect within this time; through this one, at once.
const VERIFIED_FOR: Duration = Duration::from_secs(60);

/// Tokens record their last use at most this often: one write per minute
/// per token instead of one per call.
const TOUCH_EVERY: f64 = 60.0;

impl Authenticator {
    pub fn new(
        settings: AuthSettings,
        store: Arc<dyn Store>,
        live_config: Arc<LiveConfig>,
    ) -> Self {
        Self {
            settings,
            store,
            live_config,
            limiter: LoginLimiter::default(),
            verified: Mutex::new(HashMap::new()),
            hashing: HashingPool::for_this_machine(),
        }
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    /// Forgets cached password checks: a user or password changed.
    pub fn forget_verified(&self) {
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The user these headers prove, `None` when they carry no identity.
    pub async fn identify(
        &self,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
    ) -> Result<Option<User>, AuthError> {
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let value = value.to_str().unwrap_or_default();
            if let Some(token) = strip_scheme(value, "bearer") {
                return self.token_user(token.trim()).await.map(Some);
            }
            if let Some(encoded) = strip_scheme(value, "basic") {
                let (name, password) = decode_basic(encoded)?;
                if self.ingress_sets(&header::AUTHORIZATION, peer) {
                    return self.named_user(&name).await.map(Some);
                }
                if self.settings.basic_auth {
                    let client = self.settings.client_address(headers, peer);
                    return self.password_user(&name, &password, client).await.map(Some);
                }
                return Err(AuthError::Invalid(
                    "This API server does not accept passwords; use a service-account token."
                        .into(),
                ));
            }
        }
        for header in [&self.settings.proxy_header, &self.settings.ingress_header]
            .into_iter()
            .flatten()
        {
            if header == header::AUTHORIZATION {
                continue;
            }
            let Some(value) = headers.get(header) else {
                continue;
            };
            if !self.settings.is_trusted_proxy(peer) {
                tracing::warn!(
                    header = %header,
                    peer = ?peer,
                    "ignored an identity header from an address that is not a trusted proxy"
                );
                continue;
            }
            let name = value.to_str().unwrap_or_default().trim();
            if name.is_empty() {
                continue;
            }
            return self.named_user(name).await.map(Some);
        }
        Ok(None)
    }

    fn ingress_sets(&self, header: &header::HeaderName, peer: Option<IpAddr>) -> bool {
        self.settings.ingress_header.as_ref() == Some(header)
            && self.settings.is_trusted_proxy(peer)
    }

    async fn token_user(&self, token: &str) -> Result<User, AuthError> {
        if !self.settings.service_accounts {
            return Err(AuthError::Invalid(
                "This API server does not accept service-account tokens.".into(),
            ));
        }
        let invalid = || AuthError::Invalid("Invalid service-account token.".into());
        if !token.starts_with(tokens::TOKEN_PREFIX) {
            return Err(invalid());
        }
        // Looked up by its SHA-256: timing can reveal at most how much of a
        // hash matched, never the token.
        let Some(record) = self.store.token_by_hash(&tokens::hash(token)).await? else {
            return Err(invalid());
        };
        // A dashboard session lives in its cookie, never in a header.
        if record.name == session::SESSION_TOKEN_NAME {
            return Err(invalid());
        }
        let now = now();
        if record.revoked_at.is_some() {
            return Err(AuthError::Invalid(format!(
                "The service-account token {:?} has been revoked.",
                record.name
            )));
        }
        if !record.is_valid_at(now) {
            return Err(AuthError::Invalid(format!(
                "The service-account token {:?} has expired; create a new one with \
                 `skydeck tokens create`.",
                record.name
            )));
        }
        let Some(user) = self.store.get_user(&record.user_id).await? else {
            return Err(AuthError::Invalid(format!(
                "The user of service-account token {:?} no longer exists.",
                record.name
            )));
        };
        if record
            .last_used_at
            .is_none_or(|last| now - last > TOUCH_EVERY)
        {
            self.store.touch_token(&record.id, now).await?;
        }
        Ok(user)
    }

    /// The user of a dashboard session token (see `session.rs`): a token
    /// made by the login page, valid now.
    pub async fn session_user(&self, token: &str) -> Result<User, AuthError> {
        let invalid =
            || AuthError::Invalid("Your dashboard session has ended; log in again.".into());
        if !token.starts_with(tokens::TOKEN_PREFIX) {
            return Err(invalid());
        }
        let Some(record) = self.store.token_by_hash(&tokens::hash(token)).await? else {
            return Err(invalid());
        };
        if record.name != session::SESSION_TOKEN_NAME || !record.is_valid_at(now()) {
            return Err(invalid());
        }
        self.store
            .get_user(&record.user_id)
            .await?
            .ok_or_else(invalid)
    }

    /// Logs in from the dashboard's form, with a password (when basic
    /// auth is on) or a service-account token, as the API would accept
    /// them: the same checks, the same slow-down after failures.
    pub async fn log_in(
        &self,
        credentials: Credentials<'_>,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
    ) -> Result<User, AuthError> {
        match credentials {
            Credentials::Password { name, password } => {
                if !self.settings.basic_auth {
                    return Err(AuthError::Invalid(
                        "This API server does not accept passwords; log in with a \
                         service-account token."
                            .into(),
                    ));
                }
                let client = self.settings.client_address(headers, peer);
                self.password_user(name, password, client).await
            }
            Credentials::Token(token) => self.token_user(token.trim()).await,
        }
    }

    /// Starts a dashboard session for `user`; returns the cookie's token.
    pub async fn start_session(&self, user: &User) -> Result<String, AuthError> {
        let token = tokens::generate();
        let created_at = now();
        self.store
            .insert_token(&skydeck_store::TokenRecord {
                id: tokens::new_id(),
                user_id: user.id.clone(),
                name: session::SESSION_TOKEN_NAME.to_owned(),
                hash: tokens::hash(&token),
                created_at,
                expires_at: Some(created_at + session::LIFETIME_SECS as f64),
                last_used_at: None,
                revoked_at: None,
            })
            .await?;
        Ok(token)
    }

    /// Ends the session whose token the cookie carries, if it is one.
    pub async fn end_session(&self, token: &str) -> Result<(), AuthError> {
        if let Some(record) = self.store.token_by_hash(&tokens::hash(token)).await?
            && record.name == session::SESSION_TOKEN_NAME
        {
            self.store.revoke_token(&record.id, now()).await?;
        }
        Ok(())
    }

    /// Checks a password, failures counted per `client` address.
    async fn password_user(
        &self,
        name: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<User, AuthError> {
        // Before the cache: a guess that happens to be right must wait
        // like any other, or the wait would tell right from wrong.
        if let Err(retry_after) = self.limiter.check(name, client) {
            return Err(AuthError::RateLimited(retry_after));
        }
        let key: [u8; 32] = Sha256::new()
            .chain_update(name.as_bytes())
            .chain_update([0])
            .chain_update(password.as_bytes())
            .finalize()
            .into();
        let cached = self
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .filter(|(_, at)| at.elapsed() < VERIFIED_FOR)
            .map(|(id, _)| id.clone());
        if let Some(id) = cached
            && let Some(user) = self.store.get_user(&id).await?
        {
            return Ok(user);
        }
        let user = self.store.get_user_by_name(name).await?;
        let stored = match &user {
            Some(user) => self.store.password_hash(&user.id).await?,
            None => None,
        };
        let password = password.to_owned();
        // An unknown user is checked against a dummy hash so that the
        // answer takes as long as for a real one.
        let matches = self
            .hashing(move || {
                let hash = stored.as_deref().unwrap_or(DUMMY_BCRYPT);
                password::verify_password(&password, hash) && stored.is_some()
            })
            .await
            .unwrap_or(false);
        match user {
            Some(user) if matches => {
                self.limiter.succeeded(name, client);
                self.verified
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, (user.id.clone(), Instant::now()));
                Ok(user)
            }
            _ => {
                self.limiter.failed(name, client);
                tracing::warn!(user = %name, client = ?client, "failed login");
                Err(AuthError::Invalid("Invalid user name or password.".into()))
            }
        }
    }

    /// Checks that `current` is `user`'s password before it is changed,
    /// as a login would: the same slow-down per user and address, so this
    /// is no way around it for someone holding only a token. `Some`: the
    /// refusal to send.
    pub async fn check_current_password(
        &self,
        user: &User,
        current: Option<&str>,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
    ) -> Option<Response> {
        let refused = |message: &str| Some(ApiError::forbidden(message).into_response());
        let Some(current) = current.filter(|c| !c.is_empty()) else {
            return refused(
                "Changing your password needs your current one (`current_password`); \
                 `skydeck users set-password` asks for it. If you forgot it, ask an admin to \
                 set a new one.",
            );
        };
        let client = self.settings.client_address(headers, peer);
        match self.password_user(&user.name, current, client).await {
            Ok(checked) if checked.id == user.id => None,
            Ok(_) | Err(AuthError::Invalid(_)) => refused(
                "The current password is wrong; nothing was changed. If you forgot it, ask an \
                 admin to set a new one.",
            ),
            Err(AuthError::RateLimited(retry_after)) => Some(too_many_failures(retry_after)),
            Err(AuthError::Store(err)) => Some(ApiError::from(err).into_response()),
        }
    }

    /// Runs password hashing on the bounded pool (see `hashing.rs`).
    pub async fn hashing<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        self.hashing.run(work).await
    }

    /// The user a trusted proxy vouched for, created on first sight with
    /// the config's `rbac.default_role`.
    async fn named_user(&self, name: &str) -> Result<User, AuthError> {
        let role = default_role(&self.live_config.get());
        Ok(get_or_create_user(self.store.as_ref(), name, role).await?)
    }

    /// Creates the first admin and imports the htpasswd file, if configured.
    pub async fn bootstrap(&self) -> anyhow::Result<()> {
        if let Some(admin) = &self.settings.initial_admin {
            let user = get_or_create_user(self.store.as_ref(), &admin.name, Role::Admin).await?;
            if self.store.password_hash(&user.id).await?.is_none() {
                // SkyPilot's Helm chart passes an htpasswd line
                // (`user:$apr1$…`): its hash is stored as it is.
                let hash = if password::is_supported_hash(&admin.password) {
                    admin.password.clone()
                } else {
                    let password = admin.password.clone();
                    self.hashing(move || password::hash_password(&password))
                        .await??
                };
                self.store.set_password_hash(&user.id, Some(&hash)).await?;
                self.store.set_user_role(&user.id, Role::Admin).await?;
                tracing::info!(user = %admin.name, "created the initial admin");
            }
        }
        if let Some(path) = &self.settings.htpasswd_file {
            let text = std::fs::read_to_string(path).map_err(|err| {
                anyhow::anyhow!("cannot read the htpasswd file {}: {err}", path.display())
            })?;
            let entries = password::parse_htpasswd(&text)
                .map_err(|err| anyhow::anyhow!("htpasswd file {}: {err}", path.display()))?;
            let role = default_role(&self.live_config.get());
            let count = import_htpasswd(self.store.as_ref(), &entries, role).await?;
            tracing::info!(users = count, file = %path.display(), "imported htpasswd users");
        }
        Ok(())
    }
}

/// The role of a user Skydeck creates on first sight (named by a proxy or
/// an htpasswd file): `rbac.default_role` in the server config. Unlike
/// SkyPilot, whose default is `admin`, an unset value means `user`: a
/// team's server should not hand admin rights to whoever signs in first.
pub fn default_role(config: &SkyConfig) -> Role {
    match config
        .get(&["rbac", "default_role"])
        .and_then(|v| v.as_str())
    {
        Some("admin") => Role::Admin,
        _ => Role::User,
    }
}

/// Sets the password of each entry's user, creating users as needed with
/// `role` (existing users keep theirs).
pub async fn import_htpasswd(
    store: &dyn Store,
    entries: &[password::HtpasswdEntry],
    role: Role,
) -> Result<usize, StoreError> {
    for entry in entries {
        let user = get_or_create_user(store, &entry.name, role).await?;
        store.set_password_hash(&user.id, Some(&entry.hash)).await?;
    }
    Ok(entries.len())
}

/// A bcrypt hash of nothing anyone knows, checked for unknown users.
const DUMMY_BCRYPT: &str = "$2b$12$UMOHJ5.OjPYVidkp8HNqtu5Afbh/C7DAYcLRQJgBywVNciU9bFl/6";

/// The user called `name`, or a new one with `role`.
pub async fn get_or_create_user(
    store: &dyn Store,
    name: &str,
    role: Role,
) -> Result<User, StoreError> {
    if let Some(user) = store.get_user_by_name(name).await? {
        return Ok(user);
    }
    let user = User {
        id: new_user_id(),
        name: name.to_owned(),
        created_at: now(),
        role,
    };
    store.upsert_user(&user).await?;
    store.set_user_role(&user.id, role).await?;
    Ok(user)
}

/// SkyPilot's user ids are 8 hex characters; the client stores them as its
/// user hash.
pub fn new_user_id() -> String {
    let mut bytes = [0u8; 4];
    getrandom::getrandom(&mut bytes).expect("the operating system's random source works");
    tokens::hex(&bytes)
}

fn strip_scheme<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (name, rest) = value.split_once(' ')?;
    name.eq_ignore_ascii_case(scheme).then_some(rest)
}

fn decode_basic(encoded: &str) -> Result<(String, String), AuthError> {
    let bad = || AuthError::Invalid("Malformed basic-auth credentials.".into());
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (name, password) = text.split_once(':').ok_or_else(bad)?;
    Ok((name.to_owned(), password.to_owned()))
}

/// The middleware: attaches the [`Caller`], or answers 401/429 itself.
pub async fn authenticate(
    State(state): State<crate::routes::SharedState>,
    mut request: Request,
    next: Next,
) -> Response {
    let auth = &state.auth;
    if !auth.settings().is_enabled() {
        request.extensions_mut().insert(Caller::Trusted);
        return next.run(request).await;
    }
    let path = request.uri().path().to_owned();
    let public = PUBLIC_ROUTES.contains(&path.as_str()) || session::is_public(&path);
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    let mut identified = auth.identify(request.headers(), peer).await;
    // A dashboard page, or the log it follows, may prove who it is with
    // its session cookie instead (see `session.rs`).
    if matches!(identified, Ok(None))
        && session::cookie_counts_for(request.method(), &path)
        && let Some(token) = session::from_cookie(request.headers())
    {
        identified = auth.session_user(token).await.map(Some);
    }
    let caller = match identified {
        Ok(Some(user)) => Caller::User(user),
        Ok(None) if public => Caller::Anonymous,
        // The health check reports who you are; wrong credentials there
        // mean "nobody", which the client turns into a clear login error.
        Err(AuthError::Invalid(_)) if public => Caller::Anonymous,
        // A browser on a dashboard page is sent to the login page.
        Ok(None) | Err(AuthError::Invalid(_)) if session::login_redirect(&path).is_some() => {
            return see_other(session::login_redirect(&path).unwrap_or_default());
        }
        Ok(None) => {
            let tool = crate::client_tool::of_headers(request.headers());
            return unauthorized(auth.settings(), &tool.render(&needs_login(auth.settings())));
        }
        Err(AuthError::Invalid(message)) => return unauthorized(auth.settings(), &message),
        Err(AuthError::RateLimited(retry_after)) => return too_many_failures(retry_after),
        Err(AuthError::Store(err)) => return ApiError::from(err).into_response(),
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// 303 to `location`.
fn see_other(location: String) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// 429 with `Retry-After`: this user failed too often from this address.
fn too_many_failures(retry_after: Duration) -> Response {
    let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!("Too many failed logins; try again in {seconds} s."),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

fn needs_login(settings: &AuthSettings) -> String {
    let mut ways = Vec::new();
    if settings.basic_auth {
        ways.push("log in with `sky api login -e http://USER:PASSWORD@HOST:PORT`");
    }
    if settings.service_accounts {
        ways.push("set SKYPILOT_SERVICE_ACCOUNT_TOKEN to a service-account token");
    }
    if settings.proxy_header.is_some() || settings.ingress_header.is_some() {
        ways.push("sign in through the proxy in front of this server");
    }
    format!("Authentication required: {}.", ways.join(", or "))
}

fn unauthorized(settings: &AuthSettings, message: &str) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    if settings.basic_auth {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"Skydeck\""),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dummy_hash_is_a_valid_bcrypt_hash() {
        assert!(password::is_supported_hash(DUMMY_BCRYPT));
        assert!(!password::verify_password("", DUMMY_BCRYPT));
    }

    #[test]
    fn schemes_are_matched_case_insensitively() {
        assert_eq!(strip_scheme("Bearer sky_x", "bearer"), Some("sky_x"));
        assert_eq!(strip_scheme("basic abc", "basic"), Some("abc"));
        assert_eq!(strip_scheme("Bearersky_x", "bearer"), None);
        let encoded = base64::engine::general_purpose::STANDARD.encode("alice:pa:ss");
        let (name, password) = decode_basic(&encoded).unwrap();
        assert_eq!((name.as_str(), password.as_str()), ("alice", "pa:ss"));
        assert!(decode_basic("!!!").is_err());
    }

    #[test]
    fn only_admins_see_everything_when_auth_is_on() {
        let user = |role| {
            Caller::User(User {
                id: "u1".into(),
                name: "alice".into(),
                created_at: 0.0,
                role,
            })
        };
        assert!(Caller::Trusted.may_act_for("anyone"));
        assert!(!Caller::Anonymous.may_act_for("anyone"));
        assert!(user(Role::User).may_act_for("u1"));
        assert!(!user(Role::User).may_act_for("u2"));
        assert!(user(Role::Admin).may_act_for("u2"));
        assert!(user(Role::User).require_admin("x").is_err());
    }
}
