//! Refusing a basic-auth server that nobody could sign in to.

use super::Authenticator;
use anyhow::bail;

impl Authenticator {
    /// With only basic auth to get in, at least one user must have a
    /// password once the first admin and the htpasswd file are in;
    /// otherwise the server would answer 401 to everyone, for good. Other
    /// ways in (a proxy, an ingress, a live service-account token) are
    /// enough on their own.
    pub async fn check_someone_can_sign_in(&self) -> anyhow::Result<()> {
        let settings = &self.settings;
        if !settings.basic_auth
            || settings.proxy_header.is_some()
            || settings.ingress_header.is_some()
        {
            return Ok(());
        }
        for user in self.store.list_users().await? {
            if self.store.password_hash(&user.id).await?.is_some() {
                return Ok(());
            }
        }
        if settings.service_accounts
            && self
                .store
                .list_tokens(None)
                .await?
                .iter()
                .any(|token| token.revoked_at.is_none())
        {
            return Ok(());
        }
        bail!(
            "--enable-basic-auth is on but no user has a password, so nobody could sign in. \
             Create the first admin: start with SKYDECK_INITIAL_BASIC_AUTH=admin:PASSWORD in \
             the environment (any name and password), or import users from an htpasswd file \
             with --htpasswd FILE"
        )
    }
}
