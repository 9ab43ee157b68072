//! What every handler shares.

use crate::config::ServerConfig;
use crate::executor::Executor;
use skydeck_store::{Store, User};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

pub struct AppState {
    pub config: ServerConfig,
    pub store: Arc<dyn Store>,
    pub executor: Arc<Executor>,
    /// The user requests are attributed to when the client names none.
    pub local_user: User,
    /// Cancelled when the server stops: long polls and streams end.
    pub shutdown: CancellationToken,
    draining: AtomicBool,
    pub uploads: Arc<crate::uploads::Uploads>,
    /// The server config as it is now (workspaces, admin policy…).
    pub live_config: Arc<crate::live_config::LiveConfig>,
    /// Checks who is calling (see `auth`).
    pub auth: crate::auth::Authenticator,
    /// The infrastructure clusters are launched on.
    pub infra: Arc<crate::clusters::Infra>,
    /// What `/metrics` on the metrics port reports.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Users already written to the database, so a request costs no extra
    /// write for a caller we have seen.
    known_users: Mutex<HashMap<String, String>>,
    /// Keys the dashboard's form tokens (see `routes/dashboard/csrf.rs`);
    /// the same on every server of the database (see [`dashboard_secret`]).
    pub dashboard_secret: [u8; 32],
}

/// The key of the dashboard's form tokens: derived from a random secret
/// the first server on the database records and every later one reads, so
/// a form one replica rendered is accepted by another, and after a restart.
pub async fn dashboard_secret(store: &dyn Store) -> skydeck_store::Result<[u8; 32]> {
    use sha2::{Digest, Sha256};
    let mut proposed = [0u8; 32];
    getrandom::getrandom(&mut proposed).expect("the operating system's random source works");
    let proposed: String = proposed.iter().map(|b| format!("{b:02x}")).collect();
    let shared = store.shared_secret("dashboard-forms", &proposed).await?;
    Ok(Sha256::digest(shared.as_bytes()).into())
}

/// The long-lived parts the executor and the handlers both use.
#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn Store>,
    pub infra: Arc<crate::clusters::Infra>,
    pub live_config: Arc<crate::live_config::LiveConfig>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl AppState {
    pub fn new(
        config: ServerConfig,
        services: Services,
        executor: Arc<Executor>,
        local_user: User,
        auth: crate::auth::Authenticator,
        dashboard_secret: [u8; 32],
    ) -> Self {
        let Services {
            store,
            infra,
            live_config,
            metrics,
        } = services;
        Self {
            metrics,
            live_config,
            auth,
            uploads: Arc::new(crate::uploads::Uploads::new(
                config.paths.uploads(),
                config.upload_limits(),
            )),
            infra,
            config,
            store,
            executor,
            local_user,
            shutdown: CancellationToken::new(),
            draining: AtomicBool::new(false),
            known_users: Mutex::new(HashMap::new()),
            dashboard_secret,
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Records the caller so listings can show its name.
    pub async fn remember_user(
        &self,
        id: &str,
        name: &str,
    ) -> Result<(), skydeck_store::StoreError> {
        let known = self
            .known_users
            .lock()
            .expect("users lock")
            .get(id)
            .is_some_and(|known| known == name);
        if !known {
            self.store
                .upsert_user(&User {
                    id: id.to_owned(),
                    name: name.to_owned(),
                    created_at: crate::executor::now(),
                    role: skydeck_store::Role::User,
                })
                .await?;
            self.known_users
                .lock()
                .expect("users lock")
                .insert(id.to_owned(), name.to_owned());
        }
        Ok(())
    }

    /// The name of user `id`, if known.
    pub async fn user_name(&self, id: &str) -> Option<String> {
        if let Some(name) = self.known_users.lock().expect("users lock").get(id) {
            return Some(name.clone());
        }
        let user = self.store.get_user(id).await.ok().flatten()?;
        self.known_users
            .lock()
            .expect("users lock")
            .insert(user.id, user.name.clone());
        Some(user.name)
    }
}
