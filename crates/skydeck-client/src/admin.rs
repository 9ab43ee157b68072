//! Users, service-account tokens and the server's shared config: routes the
//! server answers at once with JSON (no request queue), so each method is
//! one HTTP call. A refusal comes back as `ClientError::Http` carrying the
//! server's `detail`, which says what was wrong.

use crate::{Client, ClientError, Result, check_status};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// What a user may do: admins manage users, tokens and the config, and see
/// everyone's requests and clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    User,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Admin => "admin",
            Self::User => "user",
        })
    }
}

/// A user as the server shows it (never with the password hash).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UserInfo {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// Unix seconds.
    pub created_at: f64,
    /// Whether the user can log in with a password (else only with tokens).
    pub has_password: bool,
}

/// `POST /users/create`. Debug output never shows the password.
#[derive(Clone, Serialize)]
pub struct NewUser {
    pub name: String,
    pub password: Option<String>,
    /// `None`: the server's default, a plain user.
    pub role: Option<Role>,
}

/// `POST /users/update`: only the fields that are `Some` change. Debug
/// output never shows the password.
#[derive(Clone, Serialize)]
pub struct UserUpdate {
    /// The user's name or id.
    pub user: String,
    pub role: Option<Role>,
    pub password: Option<String>,
    /// Your current password: needed to change your own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_password: Option<String>,
}

/// What `POST /users/delete` did.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DeletedUser {
    /// The deleted user's id.
    pub deleted: String,
    pub name: String,
    /// How many live tokens deleting the user revoked, when the server says.
    #[serde(default)]
    pub revoked_tokens: Option<u64>,
}

/// A service-account token's record; the secret itself is never listed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub user_id: String,
    #[serde(default)]
    pub user_name: Option<String>,
    pub created_at: f64,
    pub expires_at: Option<f64>,
    pub last_used_at: Option<f64>,
    pub revoked_at: Option<f64>,
}

/// Whether a token still lets its holder in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    Active,
    Expired,
    Revoked,
}

impl std::fmt::Display for TokenState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        })
    }
}

impl TokenInfo {
    /// The token's state at `now` (Unix seconds). Revocation wins over
    /// expiry: it is the more deliberate of the two.
    pub fn state_at(&self, now: f64) -> TokenState {
        if self.revoked_at.is_some() {
            TokenState::Revoked
        } else if self.expires_at.is_some_and(|at| at <= now) {
            TokenState::Expired
        } else {
            TokenState::Active
        }
    }

    /// The owner's name, or their id when the server does not know it.
    pub fn owner(&self) -> &str {
        self.user_name.as_deref().unwrap_or(&self.user_id)
    }
}

/// `POST /users/tokens/create`.
#[derive(Debug, Clone, Serialize)]
pub struct NewToken {
    /// What uses the token (e.g. `ci`).
    pub name: String,
    /// `None`: it never expires.
    pub expires_in_days: Option<u32>,
    /// The owner's name or id; `None`: the caller.
    pub user: Option<String>,
}

/// A token just made: the only time the server hands out its secret.
/// Debug output never shows the secret.
#[derive(Clone, Deserialize)]
pub struct CreatedToken {
    /// `sky_…`, for `Authorization: Bearer`.
    pub token: String,
    #[serde(flatten)]
    pub info: TokenInfo,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken")
            .field("token", &"<redacted>")
            .field("info", &self.info)
            .finish()
    }
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("name", &self.name)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("role", &self.role)
            .finish()
    }
}

impl std::fmt::Debug for UserUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserUpdate")
            .field("user", &self.user)
            .field("role", &self.role)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field(
                "current_password",
                &self.current_password.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// The server's shared config (`GET`/`POST /api/config`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ServerConfig {
    /// The config mapping; secrets read `<redacted>`.
    pub config: serde_json::Map<String, serde_json::Value>,
    /// Where the server reads it from: `file` or `database`.
    pub source: String,
    /// Bumped on every change.
    pub version: i64,
}

impl Client {
    /// Every user (`GET /users`).
    pub async fn list_users(&self) -> Result<Vec<UserInfo>> {
        self.get_json("/users", &[]).await
    }

    /// The caller (`GET /users/me`); with auth off, the server's local user.
    pub async fn me(&self) -> Result<UserInfo> {
        self.get_json("/users/me", &[]).await
    }

    /// Makes a user (admins only).
    pub async fn create_user(&self, user: &NewUser) -> Result<UserInfo> {
        self.post_json("/users/create", user).await
    }

    /// Changes a user's role or password (admins; anyone for their own
    /// password).
    pub async fn update_user(&self, update: &UserUpdate) -> Result<UserInfo> {
        self.post_json("/users/update", update).await
    }

    /// Deletes a user, by name or id, and revokes their tokens (admins only).
    pub async fn delete_user(&self, name_or_id: &str) -> Result<DeletedUser> {
        self.post_json("/users/delete", &serde_json::json!({ "user": name_or_id }))
            .await
    }

    /// Adds the users of an htpasswd file (admins only); returns how many.
    pub async fn import_htpasswd(&self, htpasswd: &str) -> Result<u64> {
        #[derive(Deserialize)]
        struct Imported {
            imported: u64,
        }
        let answer: Imported = self
            .post_json(
                "/users/import",
                &serde_json::json!({ "htpasswd": htpasswd }),
            )
            .await?;
        Ok(answer.imported)
    }

    /// The caller's tokens, or with `all` everyone's (admins only).
    pub async fn list_tokens(&self, all: bool) -> Result<Vec<TokenInfo>> {
        let query: &[(&str, &str)] = if all { &[("all", "true")] } else { &[] };
        self.get_json("/users/tokens", query).await
    }

    /// Makes a token; the answer is the only place its secret appears.
    pub async fn create_token(&self, token: &NewToken) -> Result<CreatedToken> {
        self.post_json("/users/tokens/create", token).await
    }

    /// Revokes a token by id (its owner or an admin).
    pub async fn revoke_token(&self, id: &str) -> Result<TokenInfo> {
        self.post_json("/users/tokens/revoke", &serde_json::json!({ "id": id }))
            .await
    }

    /// The server's shared config (admins only).
    pub async fn get_config(&self) -> Result<ServerConfig> {
        self.get_json("/api/config", &[]).await
    }

    /// Replaces the server's shared config (admins only); a bad key is a
    /// 400 whose detail names it.
    pub async fn set_config(
        &self,
        config: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<ServerConfig> {
        self.post_json("/api/config", &serde_json::json!({ "config": config }))
            .await
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> Result<T> {
        let response = self
            .send(self.request(reqwest::Method::GET, path).query(query))
            .await?;
        decode(check_status(response).await?).await
    }

    async fn post_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let response = self
            .send(self.request(reqwest::Method::POST, path).json(body))
            .await?;
        decode(check_status(response).await?).await
    }
}

async fn decode<T: DeserializeOwned>(response: reqwest::Response) -> Result<T> {
    response
        .json()
        .await
        .map_err(|e| ClientError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(expires_at: Option<f64>, revoked_at: Option<f64>) -> TokenInfo {
        TokenInfo {
            id: "t1".into(),
            name: "ci".into(),
            user_id: "u1".into(),
            user_name: None,
            created_at: 100.0,
            expires_at,
            last_used_at: None,
            revoked_at,
        }
    }

    #[test]
    fn a_token_is_active_until_it_expires_or_is_revoked() {
        assert_eq!(token(None, None).state_at(1e9), TokenState::Active);
        assert_eq!(token(Some(200.0), None).state_at(199.0), TokenState::Active);
        assert_eq!(
            token(Some(200.0), None).state_at(200.0),
            TokenState::Expired
        );
        assert_eq!(
            token(Some(200.0), Some(150.0)).state_at(300.0),
            TokenState::Revoked
        );
    }

    #[test]
    fn a_token_without_a_known_owner_name_shows_the_owner_id() {
        let mut t = token(None, None);
        assert_eq!(t.owner(), "u1");
        t.user_name = Some("alice".into());
        assert_eq!(t.owner(), "alice");
    }

    #[test]
    fn a_created_token_reads_its_secret_and_record_but_never_debug_prints_the_secret() {
        let created: CreatedToken = serde_json::from_value(serde_json::json!({
            "token": "sky_secret", "id": "t1", "name": "ci", "user_id": "u1",
            "user_name": "alice", "created_at": 1.5, "expires_at": null,
            "last_used_at": null, "revoked_at": null,
        }))
        .unwrap();
        assert_eq!(created.token, "sky_secret");
        assert_eq!(created.info.owner(), "alice");
        assert!(!format!("{created:?}").contains("sky_secret"));
    }

    #[test]
    fn passwords_are_sent_but_never_debug_printed() {
        let user = NewUser {
            name: "bob".into(),
            password: Some("hunter2".into()),
            role: Some(Role::Admin),
        };
        let sent = serde_json::to_value(&user).unwrap();
        assert_eq!(
            sent,
            serde_json::json!({"name": "bob", "password": "hunter2", "role": "admin"})
        );
        assert!(!format!("{user:?}").contains("hunter2"));
        let update = UserUpdate {
            user: "bob".into(),
            role: None,
            password: Some("hunter2".into()),
            current_password: Some("hunter1".into()),
        };
        assert!(!format!("{update:?}").contains("hunter2"));
        assert!(!format!("{update:?}").contains("hunter1"));
    }

    #[test]
    fn a_deleted_user_may_or_may_not_say_how_many_tokens_went_with_it() {
        let with: DeletedUser = serde_json::from_value(serde_json::json!({
            "deleted": "u1", "name": "bob", "revoked_tokens": 2
        }))
        .unwrap();
        assert_eq!(with.revoked_tokens, Some(2));
        let without: DeletedUser =
            serde_json::from_value(serde_json::json!({"deleted": "u1", "name": "bob"})).unwrap();
        assert_eq!(without.revoked_tokens, None);
    }
}
