//! Schema migrations, embedded in the binary and applied at start.

use crate::{Result, StoreError};
use sqlx::AnyConnection;
use sqlx::migrate::{MigrateError, Migration, MigrationType, Migrator};
use std::borrow::Cow;

/// Every migration this binary knows, oldest first. Append only.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "requests",
        include_str!("../migrations/0001_requests.sql"),
    ),
    (
        2,
        "clusters",
        include_str!("../migrations/0002_clusters.sql"),
    ),
    (3, "auth", include_str!("../migrations/0003_auth.sql")),
    (
        4,
        "workspaces_config",
        include_str!("../migrations/0004_workspaces_config.sql"),
    ),
    (
        5,
        "server_identity",
        include_str!("../migrations/0005_server_identity.sql"),
    ),
    (
        6,
        "placement",
        include_str!("../migrations/0006_placement.sql"),
    ),
    (
        7,
        "cluster_history",
        include_str!("../migrations/0007_cluster_history.sql"),
    ),
    (
        8,
        "ssh_pool_records",
        include_str!("../migrations/0008_ssh_pool_records.sql"),
    ),
    (
        9,
        "managed_jobs",
        include_str!("../migrations/0009_managed_jobs.sql"),
    ),
    (
        10,
        "server_secrets",
        include_str!("../migrations/0010_server_secrets.sql"),
    ),
];

/// The newest schema version this binary knows.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |(version, _, _)| *version)
}

pub async fn run(conn: &mut AnyConnection, location: &str) -> Result<()> {
    run_through(conn, location, latest_version()).await
}

/// Applies the migrations up to and including `last`: brings a database to
/// an old schema, as an old Skydeck left it (for upgrade fixtures).
pub async fn run_through(conn: &mut AnyConnection, location: &str, last: i64) -> Result<()> {
    let migrations: Vec<Migration> = MIGRATIONS
        .iter()
        .filter(|(version, _, _)| *version <= last)
        .map(|(version, description, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*description),
                MigrationType::Simple,
                Cow::Borrowed(*sql),
                false,
            )
        })
        .collect();
    let migrator = Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    };
    migrator.run(conn).await.map_err(|err| match err {
        MigrateError::VersionMissing(found) => StoreError::SchemaTooNew {
            location: location.to_owned(),
            found,
            known: latest_version(),
        },
        other => StoreError::Migration(other),
    })
}
