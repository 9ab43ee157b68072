//! Where the server keeps its state and how it is tuned.

use anyhow::{Context, bail};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Overrides the state directory (default `~/.skydeck`).
pub const ENV_HOME: &str = "SKYDECK_HOME";
/// Overrides the database (default: SQLite in the state directory).
pub const ENV_DB: &str = "SKYDECK_DB_CONNECTION_URI";
/// Worker counts of the two request pools.
pub const ENV_LONG_WORKERS: &str = "SKYDECK_LONG_WORKERS";
pub const ENV_SHORT_WORKERS: &str = "SKYDECK_SHORT_WORKERS";
/// Test hook: requests with these names (comma-separated, e.g. `sky.check`)
/// stay RUNNING until cancelled or the server dies. The crash and cancel
/// tests need a request that is reliably mid-flight; nothing else sets it.
pub const ENV_TEST_HOLD: &str = "SKYDECK_TEST_HOLD_REQUESTS";
/// `user:password` of the first admin, created at start if missing.
pub const ENV_INITIAL_BASIC_AUTH: &str = "SKYDECK_INITIAL_BASIC_AUTH";
/// Seconds a REST admin policy may take to answer (default 30, as SkyPilot).
pub const ENV_POLICY_TIMEOUT: &str = "SKYDECK_ADMIN_POLICY_TIMEOUT";
/// Seconds a stopping server gives running short requests (the Helm chart
/// sets it from the pod's termination grace period).
pub const ENV_GRACE_PERIOD: &str = "SKYDECK_GRACE_PERIOD_SECONDS";
/// The most an upload (workdir and file mounts, unpacked) may hold.
pub const ENV_MAX_UPLOAD_BYTES: &str = "SKYDECK_MAX_UPLOAD_BYTES";
/// The most files and directories one upload may hold (default 100,000).
pub const ENV_MAX_UPLOAD_ENTRIES: &str = "SKYDECK_MAX_UPLOAD_ENTRIES";
/// Seconds an incomplete upload may sit untouched before it is swept
/// (default 3600).
pub const ENV_UPLOAD_STALE_SECONDS: &str = "SKYDECK_UPLOAD_STALE_SECONDS";

/// The files under the state directory.
#[derive(Debug, Clone)]
pub struct Paths {
    pub home: PathBuf,
}

impl Paths {
    pub fn new(home: impl Into<PathBuf>) -> Self {
        Self { home: home.into() }
    }

    /// `$SKYDECK_HOME`, else `~/.skydeck`.
    pub fn from_env() -> anyhow::Result<Self> {
        if let Some(home) = std::env::var_os(ENV_HOME).filter(|h| !h.is_empty()) {
            return Ok(Self::new(home));
        }
        let user_home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .context("cannot find the state directory: set SKYDECK_HOME or HOME")?;
        Ok(Self::new(Path::new(&user_home).join(".skydeck")))
    }

    pub fn config_file(&self) -> PathBuf {
        self.home.join("config.yaml")
    }
    pub fn sqlite_db(&self) -> PathBuf {
        self.home.join("state.db")
    }
    pub fn request_logs(&self) -> PathBuf {
        self.home.join("requests")
    }
    pub fn server_log(&self) -> PathBuf {
        self.home.join("server.log")
    }
    /// Written by a running server: `{"pid": …, "url": …}`.
    pub fn server_info(&self) -> PathBuf {
        self.home.join("server.json")
    }
    /// Held (flock) by the one server that owns this state directory.
    pub fn server_lock(&self) -> PathBuf {
        self.home.join("server.lock")
    }
    /// One directory per cluster of the `local` infrastructure.
    pub fn clusters(&self) -> PathBuf {
        self.home.join("clusters")
    }
    /// Files clients uploaded for their tasks, one directory per blob.
    pub fn uploads(&self) -> PathBuf {
        self.home.join("uploads")
    }
    /// Managed jobs' logs: the controller's and each attempt's run log.
    pub fn managed_jobs(&self) -> PathBuf {
        self.home.join("managed_jobs")
    }
    /// Job logs prepared for clients to download, laid out as under a
    /// home directory (`.sky/api_server/clients/<user>/sky_logs/…`), the
    /// shape SkyPilot's client expects.
    pub fn downloads(&self) -> PathBuf {
        self.home.join("downloads")
    }
    /// Task YAMLs with secrets, kept out of the database while their
    /// request runs (see `secrets.rs`).
    pub fn secrets(&self) -> PathBuf {
        self.home.join("secrets")
    }
    /// This machine's default user id when the caller does not send one.
    pub fn user_hash(&self) -> PathBuf {
        self.home.join("user_hash")
    }
}

/// The parts of `config.yaml` the server reads. Unknown keys are left for
/// the features that own them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileConfig {
    pub db: Option<String>,
}

impl FileConfig {
    /// Reads `path`; a missing file is an empty config.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
        };
        Self::parse(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)?;
        let map = match value {
            serde_yaml_ng::Value::Null => return Ok(Self::default()),
            serde_yaml_ng::Value::Mapping(map) => map,
            _ => bail!("the top level must be a mapping of keys to values"),
        };
        let db = match map.get("db") {
            None | Some(serde_yaml_ng::Value::Null) => None,
            Some(serde_yaml_ng::Value::String(url)) => Some(url.clone()),
            Some(_) => bail!("`db` must be a connection string, e.g. postgresql://user@host/db"),
        };
        Ok(Self { db })
    }
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub paths: Paths,
    pub database_url: String,
    pub long_workers: usize,
    pub short_workers: usize,
    /// How long a stopping server lets short requests finish.
    pub shutdown_grace: Duration,
    /// How often this server proves it is alive to its peers.
    pub heartbeat_interval: Duration,
    /// A peer silent for this long is dead and its requests are settled.
    pub peer_timeout: Duration,
    /// An idle log stream sends a heartbeat line this often.
    pub stream_heartbeat: Duration,
    /// Largest JSON request body accepted.
    pub max_body_bytes: usize,
    /// Limit of one upload, zipped and unpacked alike.
    pub max_upload_bytes: u64,
    /// Limit of one upload's entries.
    pub max_upload_entries: usize,
    /// Incomplete uploads untouched this long are swept.
    pub upload_stale_after: Duration,
    pub hold_requests: HashSet<String>,
    /// Who may call, and how they prove it.
    pub auth: crate::auth::settings::AuthSettings,
    pub admin_policy_timeout: Duration,
    /// How long finished requests, their logs and unused uploads are kept.
    pub retention: crate::retention::Retention,
}

impl ServerConfig {
    /// What one upload may be.
    pub fn upload_limits(&self) -> crate::uploads::Limits {
        crate::uploads::Limits {
            max_bytes: self.max_upload_bytes,
            max_entries: self.max_upload_entries,
            stale_after: self.upload_stale_after,
        }
    }

    /// Defaults for `paths`, with the database chosen the documented way:
    /// `SKYDECK_DB_CONNECTION_URI`, else `db:` in config.yaml, else SQLite.
    pub fn from_env(paths: Paths) -> anyhow::Result<Self> {
        let file = FileConfig::load(&paths.config_file())?;
        let database_url = std::env::var(ENV_DB)
            .ok()
            .filter(|url| !url.is_empty())
            .or(file.db)
            .unwrap_or_else(|| format!("sqlite://{}", paths.sqlite_db().display()));
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Self {
            database_url,
            long_workers: env_usize(ENV_LONG_WORKERS)?.unwrap_or((cpus * 4).max(8)),
            short_workers: env_usize(ENV_SHORT_WORKERS)?.unwrap_or((cpus * 8).max(16)),
            max_upload_bytes: env_usize(ENV_MAX_UPLOAD_BYTES)?
                .map_or(DEFAULT_MAX_UPLOAD_BYTES, |n| n as u64),
            max_upload_entries: env_usize(ENV_MAX_UPLOAD_ENTRIES)?
                .unwrap_or(crate::uploads::DEFAULT_MAX_ENTRIES),
            upload_stale_after: env_usize(ENV_UPLOAD_STALE_SECONDS)?
                .map_or(crate::uploads::DEFAULT_STALE_AFTER, |secs| {
                    Duration::from_secs(secs as u64)
                }),
            hold_requests: std::env::var(ENV_TEST_HOLD)
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(str::to_owned)
                .collect(),
            shutdown_grace: env_usize(ENV_GRACE_PERIOD)?.map_or(DEFAULT_SHUTDOWN_GRACE, |secs| {
                // Leave a few seconds of the pod's grace to close connections.
                Duration::from_secs((secs as u64).saturating_sub(5).max(1))
            }),
            admin_policy_timeout: env_usize(ENV_POLICY_TIMEOUT)?
                .map_or(crate::admin_policy::DEFAULT_TIMEOUT, |secs| {
                    Duration::from_secs(secs as u64)
                }),
            retention: crate::retention::Retention::from_env()?,
            auth: crate::auth::settings::AuthSettings {
                initial_admin: match std::env::var(ENV_INITIAL_BASIC_AUTH) {
                    Ok(text) if !text.is_empty() => Some(
                        crate::auth::settings::Credentials::parse(&text)
                            .with_context(|| format!("{ENV_INITIAL_BASIC_AUTH} is invalid"))?,
                    ),
                    _ => None,
                },
                ..Default::default()
            },
            ..Self::for_tests(paths)
        })
    }

    /// Defaults with SQLite under `paths`; nothing read from the environment.
    pub fn for_tests(paths: Paths) -> Self {
        Self {
            database_url: format!("sqlite://{}", paths.sqlite_db().display()),
            paths,
            long_workers: 8,
            short_workers: 16,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            heartbeat_interval: Duration::from_secs(5),
            peer_timeout: Duration::from_secs(30),
            stream_heartbeat: Duration::from_secs(30),
            max_body_bytes: 16 * 1024 * 1024,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            max_upload_entries: crate::uploads::DEFAULT_MAX_ENTRIES,
            upload_stale_after: crate::uploads::DEFAULT_STALE_AFTER,
            hold_requests: HashSet::new(),
            auth: Default::default(),
            admin_policy_timeout: crate::admin_policy::DEFAULT_TIMEOUT,
            retention: crate::retention::Retention::default(),
        }
    }
}

const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// 2 GiB: room for a code tree with some data, not for datasets (those
/// belong in buckets).
const DEFAULT_MAX_UPLOAD_BYTES: u64 = 2 << 30;

fn env_usize(name: &str) -> anyhow::Result<Option<usize>> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => match value.parse::<usize>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => bail!("{name}={value:?}: expected a whole number of at least 1"),
        },
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_reads_the_database_url() {
        let config =
            FileConfig::parse("db: postgresql://sky@db/sky\nallowed_clouds: [aws]\n").unwrap();
        assert_eq!(config.db.as_deref(), Some("postgresql://sky@db/sky"));
        assert_eq!(FileConfig::parse("").unwrap(), FileConfig::default());
    }

    #[test]
    fn a_malformed_config_names_the_problem() {
        let err = FileConfig::parse("db: [1, 2]").unwrap_err().to_string();
        assert!(err.contains("`db` must be a connection string"), "{err}");
        assert!(FileConfig::parse("- a\n- b").is_err());
    }
}
