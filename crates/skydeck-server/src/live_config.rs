//! The server config (workspaces, admin policy, allowed clouds…) as it is
//! now. Changes take effect without a restart: through the API at once,
//! and from elsewhere (the file edited by hand, another replica's API call)
//! within one upkeep tick.
//!
//! Where it lives depends on the database: with SQLite (one server) it is
//! `config.yaml` in the state directory; with PostgreSQL (replicas) it is a
//! row in the database, seeded from the file the first time, so every
//! replica reads the same config.

use anyhow::Context;
use skydeck_store::{Dialect, Store};
use skydeck_types::config::{ConfigError, SkyConfig, parse_config, restore_redacted};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    File,
    Database,
}

impl ConfigSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Database => "database",
        }
    }
}

pub struct LiveConfig {
    source: ConfigSource,
    path: PathBuf,
    store: Arc<dyn Store>,
    current: RwLock<Current>,
}

struct Current {
    config: Arc<SkyConfig>,
    /// The database row's version, or a counter of file reloads.
    version: i64,
    /// The file's modification time and length when it was read.
    stamp: Option<(SystemTime, u64)>,
}

/// Why a new config was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ReplaceError {
    #[error("{0}")]
    Invalid(#[from] ConfigError),
    #[error("{0:#}")]
    Failed(anyhow::Error),
}

impl LiveConfig {
    /// Reads the config; an invalid one stops the server from starting,
    /// with the key that is wrong.
    pub async fn open(path: PathBuf, store: Arc<dyn Store>) -> anyhow::Result<Self> {
        let source = match store.dialect() {
            Dialect::Sqlite => ConfigSource::File,
            Dialect::Postgres => ConfigSource::Database,
        };
        let (text, stamp) = read_file(&path)?;
        let invalid =
            |err: ConfigError| anyhow::anyhow!("invalid config {}: {err}", path.display());
        let (config, version) = match source {
            ConfigSource::File => (parse_config(&text).map_err(invalid)?, 0),
            ConfigSource::Database => match store.server_config().await? {
                Some(stored) => {
                    let config = parse_config(&stored.yaml).map_err(|err| {
                        anyhow::anyhow!("the config stored in the database is invalid: {err}")
                    })?;
                    (config, stored.version)
                }
                None => {
                    let config = parse_config(&text).map_err(invalid)?;
                    let version = store
                        .put_server_config(
                            &config.to_yaml(),
                            "seeded from config.yaml",
                            crate::executor::now(),
                        )
                        .await?;
                    (config, version)
                }
            },
        };
        Ok(Self {
            source,
            path,
            store,
            current: RwLock::new(Current {
                config: Arc::new(config),
                version,
                stamp,
            }),
        })
    }

    pub fn get(&self) -> Arc<SkyConfig> {
        self.read().config.clone()
    }

    pub fn version(&self) -> i64 {
        self.read().version
    }

    pub fn source(&self) -> ConfigSource {
        self.source
    }

    /// Validates and stores a whole new config (the API's form, JSON).
    /// Values shown as `<redacted>` keep what they were.
    pub async fn replace(
        &self,
        mut value: serde_json::Value,
        updated_by: &str,
    ) -> Result<Arc<SkyConfig>, ReplaceError> {
        restore_redacted(&mut value, self.get().as_json());
        let config = SkyConfig::from_json(value)?;
        let yaml = config.to_yaml();
        let config = Arc::new(config);
        match self.source {
            ConfigSource::File => {
                let path = self.path.clone();
                let stamp = tokio::task::spawn_blocking(move || write_file(&path, &yaml))
                    .await
                    .map_err(|e| ReplaceError::Failed(e.into()))?
                    .map_err(ReplaceError::Failed)?;
                let mut current = self.write();
                current.config = config.clone();
                current.version += 1;
                current.stamp = Some(stamp);
            }
            ConfigSource::Database => {
                let version = self
                    .store
                    .put_server_config(&yaml, updated_by, crate::executor::now())
                    .await
                    .map_err(|e| ReplaceError::Failed(e.into()))?;
                let mut current = self.write();
                current.config = config.clone();
                current.version = version;
            }
        }
        tracing::info!(by = updated_by, "the server config changed");
        Ok(config)
    }

    /// Picks up a change made elsewhere. An invalid edit of the file is
    /// logged and ignored: the server keeps the last good config.
    pub async fn refresh(&self) {
        match self.source {
            ConfigSource::File => {
                let stamp = file_stamp(&self.path);
                if stamp == self.read().stamp {
                    return;
                }
                let (text, stamp) = match read_file(&self.path) {
                    Ok(read) => read,
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot reread the config");
                        return;
                    }
                };
                let mut current = self.write();
                current.stamp = stamp;
                match parse_config(&text) {
                    Ok(config) => {
                        current.config = Arc::new(config);
                        current.version += 1;
                        tracing::info!(file = %self.path.display(), "reloaded the server config");
                    }
                    Err(err) => tracing::warn!(
                        file = %self.path.display(),
                        error = %err,
                        "the edited config is invalid; keeping the previous one"
                    ),
                }
            }
            ConfigSource::Database => {
                let version = match self.store.server_config_version().await {
                    Ok(version) => version,
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot check the stored config");
                        return;
                    }
                };
                if version == self.version() {
                    return;
                }
                match self.store.server_config().await {
                    Ok(Some(stored)) => match parse_config(&stored.yaml) {
                        Ok(config) => {
                            let mut current = self.write();
                            current.config = Arc::new(config);
                            current.version = stored.version;
                            tracing::info!(version = stored.version, "reloaded the server config");
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, "the stored config is invalid; keeping the previous one")
                        }
                    },
                    Ok(None) => {}
                    Err(err) => tracing::warn!(error = %err, "cannot read the stored config"),
                }
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        self.current.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Current> {
        self.current.write().unwrap_or_else(|e| e.into_inner())
    }
}

fn file_stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// The file's text (empty when there is none) and its stamp.
fn read_file(path: &std::path::Path) -> anyhow::Result<(String, Option<(SystemTime, u64)>)> {
    let stamp = file_stamp(path);
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((text, stamp)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok((String::new(), None)),
        Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Replaces the file whole (write aside, then rename), readable only by
/// its owner: it may hold a database password.
fn write_file(path: &std::path::Path, text: &str) -> anyhow::Result<(SystemTime, u64)> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let aside = path.with_extension("yaml.new");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&aside)
        .with_context(|| format!("cannot write {}", aside.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&aside, path).with_context(|| format!("cannot replace {}", path.display()))?;
    file_stamp(path).context("the config file vanished as it was written")
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sqlite_store(dir: &std::path::Path) -> Arc<dyn Store> {
        let url = format!("sqlite://{}", dir.join("state.db").display());
        Arc::new(skydeck_store::SqlStore::open(&url).await.unwrap())
    }

    #[tokio::test]
    async fn api_changes_are_written_to_the_file_and_hand_edits_are_picked_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, "db: postgresql://sky:hunter2@db/sky\n").unwrap();
        let live = LiveConfig::open(path.clone(), sqlite_store(dir.path()).await)
            .await
            .unwrap();
        assert_eq!(live.source(), ConfigSource::File);

        // What an admin GETs (redacted), edits and POSTs back keeps the
        // password it could not see.
        let mut edited = live.get().redacted_json();
        edited["workspaces"] =
            serde_json::json!({"team-a": {"private": true, "allowed_users": ["alice"]}});
        live.replace(edited, "admin").await.unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(written.contains("hunter2"), "{written}");
        assert!(written.contains("team-a"));
        assert!(live.get().workspace("team-a").unwrap().private);

        // A bad change names the key and changes nothing.
        let err = live
            .replace(
                serde_json::json!({"workspaces": {"x": {"private": "yes"}}}),
                "admin",
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("workspaces.x.private"), "{err}");
        assert!(live.get().workspace("team-a").is_some());

        // Edited by hand: reloaded on the next refresh; a broken edit is not.
        std::fs::write(&path, "allowed_clouds: [local]\n# edited\n").unwrap();
        live.refresh().await;
        assert!(live.get().workspace("team-a").is_none());
        assert_eq!(live.get().allowed_clouds(), Some(&["local".to_owned()][..]));
        std::fs::write(&path, "allowed_clouds: local-and-more: [\n").unwrap();
        live.refresh().await;
        assert_eq!(live.get().allowed_clouds(), Some(&["local".to_owned()][..]));
    }

    #[tokio::test]
    async fn an_invalid_config_file_stops_the_start_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, "workspaces:\n  team-a:\n    privte: true\n").unwrap();
        let err = LiveConfig::open(path, sqlite_store(dir.path()).await)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("workspaces.team-a.privte"), "{err}");
    }
}
