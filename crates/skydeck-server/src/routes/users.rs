//! Users and service-account tokens: answered at once (no request queue),
//! since they only touch the database.

use super::SharedState;
use crate::auth::{Caller, get_or_create_user, import_htpasswd, password, tokens};
use crate::error::ApiError;
use crate::executor::now;
use crate::extract::{ApiJson, ApiQuery};
use axum::Json;
use axum::extract::{ConnectInfo, Extension, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use skydeck_store::{Role, TokenRecord, User};
use skydeck_types::names::{TokenName, UserName};
use std::net::SocketAddr;
use std::str::FromStr;

#[derive(Debug, Serialize)]
pub struct UserView {
    id: String,
    name: String,
    role: String,
    created_at: f64,
    has_password: bool,
}

async fn view(state: &SharedState, user: User) -> Result<UserView, ApiError> {
    let has_password = state.store.password_hash(&user.id).await?.is_some();
    Ok(UserView {
        id: user.id,
        name: user.name,
        role: user.role.to_string(),
        created_at: user.created_at,
        has_password,
    })
}

/// The user called `name_or_id` (a name wins; ids are tried second).
async fn find_user(state: &SharedState, name_or_id: &str) -> Result<User, ApiError> {
    if let Some(user) = state.store.get_user_by_name(name_or_id).await? {
        return Ok(user);
    }
    state.store.get_user(name_or_id).await?.ok_or_else(|| {
        ApiError::not_found(format!("No user {name_or_id:?}; see `skydeck users list`."))
    })
}

fn parse_role(role: &str) -> Result<Role, ApiError> {
    Role::from_str(role).map_err(|_| {
        ApiError::bad_request(format!(
            "Unknown role {role:?}; a role is `admin` or `user`."
        ))
    })
}

async fn hash(state: &SharedState, password: String) -> Result<String, ApiError> {
    if password.is_empty() {
        return Err(ApiError::bad_request("The password is empty."));
    }
    state
        .auth
        .hashing(move || password::hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

pub async fn list(
    State(state): State<SharedState>,
    Extension(_caller): Extension<Caller>,
) -> Result<Json<Vec<UserView>>, ApiError> {
    let mut out = Vec::new();
    for user in state.store.list_users().await? {
        out.push(view(&state, user).await?);
    }
    Ok(Json(out))
}

pub async fn me(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<UserView>, ApiError> {
    let user = caller
        .user()
        .cloned()
        .unwrap_or_else(|| state.local_user.clone());
    Ok(Json(view(&state, user).await?))
}

#[derive(Debug, Deserialize)]
pub struct CreateBody {
    name: UserName,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    role: Option<String>,
}

pub async fn create(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<Json<UserView>, ApiError> {
    caller.require_admin("add users")?;
    let name = body.name.as_str();
    let role = parse_role(body.role.as_deref().unwrap_or("user"))?;
    if let Some(existing) = state.store.get_user_by_name(name).await?
        && state.store.password_hash(&existing.id).await?.is_some()
    {
        return Err(ApiError::conflict(format!(
            "User {name:?} already exists; change it with `skydeck users set-role` or \
             `skydeck users set-password`."
        )));
    }
    // A name already known without a password (a client that named itself
    // before auth was on) is adopted, keeping its clusters.
    let user = get_or_create_user(state.store.as_ref(), name, role).await?;
    state.store.set_user_role(&user.id, role).await?;
    if let Some(password) = body.password {
        let hash = hash(&state, password).await?;
        state.store.set_password_hash(&user.id, Some(&hash)).await?;
    }
    tracing::info!(user = %name, role = %role, by = ?caller.user().map(|u| &u.name), "user added");
    let user = find_user(&state, &user.id).await?;
    Ok(Json(view(&state, user).await?))
}

#[derive(Debug, Deserialize)]
pub struct UpdateBody {
    /// A user's name or id (every id is also a valid name).
    user: UserName,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    password: Option<String>,
    /// The caller's own password, needed to change it: whoever holds only
    /// a token (or an unlocked terminal) must not be able to take over
    /// the account.
    #[serde(default)]
    current_password: Option<String>,
}

impl UpdateBody {
    /// A change of `user`'s role and nothing else.
    pub fn role(user: UserName, role: Role) -> Self {
        Self {
            user,
            role: Some(role.as_str().to_owned()),
            password: None,
            current_password: None,
        }
    }
}

pub async fn update(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<UpdateBody>,
) -> Result<Response, ApiError> {
    let user = find_user(&state, &body.user).await?;
    let own = caller.user().is_some_and(|me| me.id == user.id);
    if !(own && body.role.is_none()) {
        caller.require_admin("change other users or roles")?;
    }
    if own && body.password.is_some() {
        let has_password = state.store.password_hash(&user.id).await?.is_some();
        // Admins may set anyone's password, their own first one included;
        // a user with only tokens gets a first password from an admin, so
        // that holding a token is not enough to add one.
        if !has_password && !caller.sees_all() {
            return Err(ApiError::forbidden(
                "You have no password yet; an admin sets the first one \
                 (`skydeck users set-password NAME`).",
            ));
        }
        if has_password {
            let peer = peer.map(|Extension(ConnectInfo(addr))| addr.ip());
            if let Some(refusal) = state
                .auth
                .check_current_password(&user, body.current_password.as_deref(), &headers, peer)
                .await
            {
                return Ok(refusal);
            }
        }
    }
    if let Some(role) = &body.role {
        state
            .store
            .set_user_role(&user.id, parse_role(role)?)
            .await?;
    }
    if let Some(password) = body.password {
        let hash = hash(&state, password).await?;
        state.store.set_password_hash(&user.id, Some(&hash)).await?;
    }
    state.auth.forget_verified();
    let user = find_user(&state, &user.id).await?;
    Ok(Json(view(&state, user).await?).into_response())
}

#[derive(Debug, Deserialize)]
pub struct DeleteBody {
    user: UserName,
}

pub async fn delete(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<DeleteBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require_admin("delete users")?;
    let user = find_user(&state, &body.user).await?;
    if caller.user().is_some_and(|me| me.id == user.id) {
        return Err(ApiError::bad_request(
            "You cannot delete yourself; ask another admin.",
        ));
    }
    let revoked = state
        .store
        .list_tokens(Some(&user.id))
        .await?
        .iter()
        .filter(|t| t.revoked_at.is_none())
        .count();
    state.store.delete_user(&user.id, now()).await?;
    state.auth.forget_verified();
    tracing::info!(user = %user.name, revoked, "user deleted");
    Ok(Json(serde_json::json!({
        "deleted": user.id, "name": user.name, "revoked_tokens": revoked,
    })))
}

#[derive(Debug, Deserialize)]
pub struct ImportBody {
    htpasswd: String,
}

pub async fn import(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<ImportBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require_admin("import users")?;
    let entries = password::parse_htpasswd(&body.htpasswd)
        .map_err(|err| ApiError::bad_request(format!("Invalid htpasswd file: {err}")))?;
    let role = crate::auth::default_role(&state.live_config.get());
    let imported = import_htpasswd(state.store.as_ref(), &entries, role).await?;
    state.auth.forget_verified();
    Ok(Json(serde_json::json!({"imported": imported})))
}

// ---- tokens

#[derive(Debug, Serialize)]
pub struct TokenView {
    id: String,
    name: String,
    user_id: String,
    user_name: Option<String>,
    created_at: f64,
    expires_at: Option<f64>,
    last_used_at: Option<f64>,
    revoked_at: Option<f64>,
}

async fn token_view(state: &SharedState, token: TokenRecord) -> TokenView {
    TokenView {
        user_name: state.user_name(&token.user_id).await,
        id: token.id,
        name: token.name,
        user_id: token.user_id,
        created_at: token.created_at,
        expires_at: token.expires_at,
        last_used_at: token.last_used_at,
        revoked_at: token.revoked_at,
    }
}

/// The user tokens are made for and listed by: the caller, or with auth
/// off, this machine's user.
fn acting_user<'a>(state: &'a SharedState, caller: &'a Caller) -> &'a User {
    caller.user().unwrap_or(&state.local_user)
}

#[derive(Debug, Deserialize)]
pub struct ListTokensQuery {
    #[serde(default)]
    all: bool,
}

pub async fn list_tokens(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(query): ApiQuery<ListTokensQuery>,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    let owner = if query.all {
        caller.require_admin("list everyone's tokens")?;
        None
    } else {
        Some(acting_user(&state, &caller).id.clone())
    };
    let mut out = Vec::new();
    for token in state.store.list_tokens(owner.as_deref()).await? {
        out.push(token_view(&state, token).await);
    }
    Ok(Json(out))
}

#[derive(Debug, Deserialize)]
pub struct CreateTokenBody {
    name: TokenName,
    #[serde(default)]
    expires_in_days: Option<u32>,
    #[serde(default)]
    user: Option<UserName>,
}

impl CreateTokenBody {
    /// A token for the caller.
    pub fn new(name: TokenName, expires_in_days: Option<u32>) -> Self {
        Self {
            name,
            expires_in_days,
            user: None,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct CreatedToken {
    /// The secret: shown this once, never stored.
    token: String,
    #[serde(flatten)]
    record: TokenView,
}

pub async fn create_token(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<CreateTokenBody>,
) -> Result<Json<CreatedToken>, ApiError> {
    let name = body.name.as_str();
    let me = acting_user(&state, &caller).clone();
    let owner = match &body.user {
        Some(other) => {
            let user = find_user(&state, other).await?;
            if user.id != me.id {
                caller.require_admin("create tokens for other users")?;
            }
            user
        }
        None => me,
    };
    if body.expires_in_days == Some(0) {
        return Err(ApiError::bad_request(
            "expires_in_days must be at least 1; leave it out for a token that does not expire.",
        ));
    }
    if name == crate::auth::session::SESSION_TOKEN_NAME {
        return Err(ApiError::bad_request(format!(
            "The token name {name:?} is kept for dashboard sessions; choose another."
        )));
    }
    let secret = tokens::generate();
    let created_at = now();
    let record = TokenRecord {
        id: tokens::new_id(),
        user_id: owner.id.clone(),
        name: name.to_owned(),
        hash: tokens::hash(&secret),
        created_at,
        expires_at: body
            .expires_in_days
            .map(|days| created_at + f64::from(days) * 86_400.0),
        last_used_at: None,
        revoked_at: None,
    };
    state.store.insert_token(&record).await?;
    tracing::info!(token = %record.id, user = %owner.name, "service-account token created");
    Ok(Json(CreatedToken {
        token: secret,
        record: token_view(&state, record).await,
    }))
}

#[derive(Debug, Deserialize)]
pub struct RevokeTokenBody {
    pub id: String,
}

pub async fn revoke_token(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<RevokeTokenBody>,
) -> Result<Json<TokenView>, ApiError> {
    let not_found = || {
        ApiError::not_found(format!(
            "No token {:?}; see `skydeck tokens list`.",
            body.id
        ))
    };
    // Another user's token answers as one that does not exist, so token
    // ids cannot be probed.
    let token = state
        .store
        .list_tokens(None)
        .await?
        .into_iter()
        .find(|t| t.id == body.id && caller.may_act_for(&t.user_id))
        .ok_or_else(not_found)?;
    if !state.store.revoke_token(&token.id, now()).await? {
        return Err(ApiError::conflict(format!(
            "Token {:?} was already revoked.",
            token.id
        )));
    }
    tracing::info!(token = %token.id, "service-account token revoked");
    let token = state
        .store
        .list_tokens(Some(&token.user_id))
        .await?
        .into_iter()
        .find(|t| t.id == body.id)
        .ok_or_else(not_found)?;
    Ok(Json(token_view(&state, token).await))
}
