//! The Skydeck API server.
//!
//! [`Server::open`] prepares everything (state directory lock, database,
//! recovery of what a previous server left) and [`Server::serve`] answers on
//! a listener until told to stop, then drains. The binary and the tests use
//! the same two calls.

pub mod admin_policy;
pub mod auth;
pub mod client_tool;
pub mod clusters;
pub mod config;
pub mod downloads;
pub mod error;
pub mod executor;
pub mod extract;
pub mod infra;
pub mod live_config;
pub mod managed_jobs;
pub mod metrics;
pub mod ops;
pub mod request_log;
pub mod retention;
pub mod routes;
pub mod secrets;
pub mod signals;
pub mod skypilot;
pub mod ssh_pools;
pub mod state;
pub mod task_limits;
pub mod uploads;

use anyhow::Context;
use axum::serve::ListenerExt;
use config::ServerConfig;
use executor::{Executor, now};
use signals::Signals;
use skydeck_store::{Dialect, ServerInfo, SqlStore, Store, User};
use state::AppState;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// A prepared server: state opened, previous runs settled, pools running.
pub struct Server {
    state: Arc<AppState>,
    me: ServerInfo,
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl Server {
    pub async fn open(config: ServerConfig) -> anyhow::Result<Self> {
        let home = &config.paths.home;
        std::fs::create_dir_all(home)
            .with_context(|| format!("cannot create the state directory {}", home.display()))?;
        let lock = lock_state_dir(&config)?;
        let store = SqlStore::open(&config.database_url).await?;
        let exclusive = store.dialect() == Dialect::Sqlite;
        let metrics = Arc::new(metrics::Metrics::new());
        let store: Arc<dyn Store> = Arc::new(metrics::InstrumentedStore::new(
            Arc::new(store),
            metrics.clone(),
        ));

        let me = ServerInfo {
            id: uuid::Uuid::new_v4().to_string(),
            hostname: nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "unknown".to_owned()),
            pid: i64::from(std::process::id()),
            started_at: now(),
            heartbeat_at: now(),
        };
        store.register_server(&me).await?;
        let live_config = Arc::new(
            live_config::LiveConfig::open(config.paths.config_file(), store.clone()).await?,
        );
        let signals = Arc::new(Signals::default());
        let services = state::Services {
            store: store.clone(),
            infra: Arc::new(clusters::Infra::new(&config.paths)?),
            live_config,
            metrics,
        };
        let executor = Executor::new(&services, me.id.clone(), &config, signals, exclusive)
            .context("cannot create the request log directory")?;
        let settled = executor.settle_orphans(&me).await?;
        if settled > 0 {
            tracing::info!(
                settled,
                "settled requests left running by a previous server"
            );
        }
        clusters::warn_invalid_names(store.as_ref()).await;
        let mut local_user = local_user(&config, store.as_ref()).await?;
        store.upsert_user(&local_user).await?;
        // Nobody calls as the machine's user once callers must prove who
        // they are; left an admin, it would hand its rights to any proxy or
        // ingress user who happens to share its name. Once it has a password
        // it is a real login (the chart's first admin is called `skydeck`,
        // like the pod's user), and its role is the admins' to set.
        if config.auth.is_enabled() && store.password_hash(&local_user.id).await?.is_none() {
            local_user.role = skydeck_store::Role::User;
            store
                .set_user_role(&local_user.id, skydeck_store::Role::User)
                .await?;
        }
        config.auth.validate()?;
        let auth = auth::Authenticator::new(
            config.auth.clone(),
            store.clone(),
            services.live_config.clone(),
        );
        auth.bootstrap().await?;
        executor.start();
        let dashboard_secret = state::dashboard_secret(store.as_ref()).await?;
        let state = Arc::new(AppState::new(
            config,
            services,
            executor,
            local_user,
            auth,
            dashboard_secret,
        ));
        Ok(Self {
            state,
            me,
            _lock: lock,
        })
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    pub fn router(&self) -> axum::Router {
        routes::router(self.state.clone())
    }

    /// Serves `/metrics` on `listener` until the API server has stopped.
    pub fn serve_metrics(&self, listener: TcpListener) -> tokio::task::JoinHandle<()> {
        let state = self.state.clone();
        tokio::spawn(async move {
            let stopped = state.shutdown.clone();
            let app = metrics::router(state);
            if let Err(err) = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stopped.cancelled().await })
                .await
            {
                tracing::error!(error = %err, "the metrics endpoint failed");
            }
        })
    }

    /// Serves on `listener` until `stop` completes, then drains: new
    /// requests get 503, short requests finish within the grace period, long
    /// ones are put back to PENDING for the next server to resume.
    pub async fn serve(
        self,
        listener: TcpListener,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = self.state.clone();
        let maintenance = tokio::spawn(maintain(state.clone(), self.me.clone()));
        let drained = tokio_util::sync::CancellationToken::new();
        let drain_state = state.clone();
        let drain_done = drained.clone();
        tokio::spawn(async move {
            stop.await;
            tracing::info!("stopping: draining requests");
            drain_state.start_draining();
            drain_state
                .executor
                .shutdown(drain_state.config.shutdown_grace)
                .await;
            drain_state.shutdown.cancel();
            drain_done.cancel();
        });
        let app = routes::router(state.clone());
        // Streamed answers (logs) go out in small writes; without NODELAY
        // each first chunk on a kept-alive connection waits ~40 ms for the
        // client's delayed ACK.
        let listener = listener.tap_io(|stream| {
            if let Err(err) = stream.set_nodelay(true) {
                tracing::debug!(error = %err, "cannot set TCP_NODELAY");
            }
        });
        // Peer addresses decide whether a proxy's identity header is believed.
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { drained.cancelled().await })
            .await
            .context("the HTTP server failed")?;
        maintenance.abort();
        state.store.remove_server(&self.me.id).await?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Background upkeep: heartbeats, settling requests of dead peers, and
/// cancellations made through other replicas.
async fn maintain(state: Arc<AppState>, me: ServerInfo) {
    let mut ticker = tokio::time::interval(state.config.heartbeat_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut cancel_check = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut cluster_check = tokio::time::interval(CLUSTER_CHECK_INTERVAL);
    cluster_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut retention_sweep = tokio::time::interval(state.config.retention.sweep_interval());
    retention_sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = retention_sweep.tick() => {
                retention::sweep(&state).await;
            }
            _ = cluster_check.tick() => reconcile_clusters(&state).await,
            _ = ticker.tick() => {
                if let Err(err) = state.store.heartbeat_server(&me.id, now()).await {
                    tracing::warn!(error = %err, "heartbeat failed");
                }
                if let Err(err) = state.executor.settle_orphans(&me).await {
                    tracing::warn!(error = %err, "cannot settle orphaned requests");
                }
                if let Err(err) = state.store.checkpoint().await {
                    tracing::warn!(error = %err, "cannot checkpoint the database");
                }
                sweep_secrets(&state).await;
                state.uploads.sweep_stale().await;
                state.live_config.refresh().await;
            }
            _ = cancel_check.tick() => {
                if let Err(err) = state.executor.apply_remote_cancellations().await {
                    tracing::warn!(error = %err, "cannot check for cancellations");
                }
            }
        }
    }
}

/// Removes the stashed secrets of requests that are over (cancelled, or
/// failed by a restart) or gone.
async fn sweep_secrets(state: &AppState) {
    const GRACE: std::time::Duration = std::time::Duration::from_secs(60);
    for id in state.infra.secrets.request_ids(GRACE) {
        match state.store.get_request(&id).await {
            Ok(Some(request)) if !request.status.is_finished() => {}
            Ok(_) => state.infra.secrets.discard(&id),
            Err(err) => tracing::warn!(error = %err, "cannot check stashed secrets"),
        }
    }
}

/// How often the server looks at its clusters for changes it did not make
/// (an agent that stopped its cluster on autostop, a cluster removed by
/// hand).
const CLUSTER_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

async fn reconcile_clusters(state: &AppState) {
    let clusters = match state.store.list_clusters(None).await {
        Ok(clusters) => clusters,
        Err(err) => {
            tracing::warn!(error = %err, "cannot list clusters");
            return;
        }
    };
    let up: Vec<&skydeck_store::ClusterRecord> = clusters
        .iter()
        .filter(|c| c.status == skydeck_store::ClusterStatus::Up)
        .collect();
    // An INIT cluster that was UP is one a check found unhealthy: it is
    // looked at again until it is UP (or gone).
    let unhealthy = clusters
        .iter()
        .filter(|c| c.status == skydeck_store::ClusterStatus::Init && c.ever_up);
    for cluster in up.iter().copied().chain(unhealthy) {
        // A launch in progress holds the lock; its cluster is not idle.
        let lock = state.infra.lock(&cluster.name);
        let Ok(_guard) = lock.try_lock() else {
            continue;
        };
        match ops::clusters::reconcile(state.store.as_ref(), &state.infra, cluster).await {
            Ok(Some(now))
                if now.status == skydeck_store::ClusterStatus::Up && state.metrics.is_serving() =>
            {
                count_jobs(state, &now).await;
            }
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(cluster = %cluster.name, error = %err.message, "cannot check the cluster");
            }
        }
    }
    let names: Vec<&str> = up.iter().map(|c| c.name.as_str()).collect();
    state.metrics.retain_cluster_jobs(&names);
}

/// Refreshes the `skydeck_jobs` counts of one UP cluster.
async fn count_jobs(state: &AppState, cluster: &skydeck_store::ClusterRecord) {
    let Ok(agent) = state.infra.agent(cluster) else {
        return;
    };
    match agent.queue(None, false).await {
        Ok(jobs) => state
            .metrics
            .set_cluster_jobs(&cluster.name, jobs.iter().map(|job| job.status.as_str())),
        Err(err) => {
            tracing::debug!(cluster = %cluster.name, error = %err, "cannot count the cluster's jobs");
        }
    }
}

/// One server per state directory: a second one would share the request
/// logs and, on SQLite, the database.
fn lock_state_dir(config: &ServerConfig) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    let path = config.paths.server_lock();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|_| {
        anyhow::anyhow!(
            "another Skydeck API server already uses {}; stop it with `skydeck api stop` \
             or give this one its own SKYDECK_HOME",
            config.paths.home.display()
        )
    })
}

/// The user requests are attributed to when a caller names none: this
/// machine's user. Its id lives in the database, so that every server on one
/// database is one user, however new its state directory (a pod with an
/// emptyDir and an external database); the copy in the state directory is
/// for the CLI on this machine, and the id a pre-existing state directory
/// proposes is kept when the database has none yet.
async fn local_user(config: &ServerConfig, store: &dyn Store) -> anyhow::Result<User> {
    let path = config.paths.user_hash();
    let on_disk = std::fs::read_to_string(&path)
        .ok()
        .map(|id| id.trim().to_owned())
        .filter(|id| is_user_hash(id));
    let proposed = on_disk
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_owned());
    let id = store
        .server_user_id(&proposed)
        .await
        .context("cannot read the server's own user from the database")?;
    if on_disk.as_deref() != Some(id.as_str()) {
        std::fs::write(&path, &id).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let name = std::env::var("USER")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "skydeck".to_owned());
    // Whoever runs a server without auth on their own machine owns it.
    Ok(User {
        id,
        name,
        created_at: now(),
        role: skydeck_store::Role::Admin,
    })
}

/// SkyPilot's user hash format: `^[a-zA-Z0-9][a-zA-Z0-9-]*$`.
pub fn is_user_hash(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-')
}
