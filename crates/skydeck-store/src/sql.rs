//! The SQL implementation of [`Store`], shared by SQLite and PostgreSQL.
//!
//! Queries are written once in the SQL both databases accept (`$N`
//! placeholders, `RETURNING`, partial indexes). JSON values are stored as
//! text so no column type differs between the two.

use crate::model::{
    ClusterRecord, ClusterStatus, EndedCluster, ManagedJob, ManagedJobFilter, ManagedJobPage,
    ManagedTask, NewManagedJob, NewRequest, Outcome, RequestFilter, RequestRecord, Role,
    ServerInfo, StoredConfig, TokenRecord, User,
};
use crate::{Decide, Result, Store, StoreError, migrate};
use async_trait::async_trait;
use skydeck_types::placement::{Allocation, Host};
use skydeck_types::{RequestError, RequestStatus, ScheduleType};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Row};
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::{Mutex, MutexGuard};

/// Which database a [`SqlStore`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    pub fn from_url(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl(redact_url(url)))
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgresql",
        }
    }

    /// Row locking for the claim query. SQLite has a single writer, so its
    /// `UPDATE … WHERE id = (SELECT …)` is atomic on its own; PostgreSQL
    /// replicas must skip rows another server is claiming.
    pub(crate) fn skip_locked(self) -> &'static str {
        match self {
            Self::Sqlite => "",
            Self::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// Row locking for a placement: PostgreSQL placements on one pool
    /// queue on its host rows. SQLite's one writer runs the whole
    /// transaction alone anyway.
    fn for_update(self) -> &'static str {
        match self {
            Self::Sqlite => "",
            Self::Postgres => " FOR UPDATE",
        }
    }
}

/// Hides the password of a connection URL, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((credentials, host)) if credentials.contains(':') => {
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_owned(),
    }
}

const REQUEST_COLUMNS: &str = "id, name, entrypoint, body, status, schedule_type, user_id, \
     cluster_name, created_at, started_at, finished_at, return_value, error, status_msg, \
     server_id, attempts, workspace";

/// SQLite connections that only read. WAL readers never wait for the writer,
/// so a few of them serve concurrent `/api/get` and listing calls.
const SQLITE_READERS: u32 = 4;

pub struct SqlStore {
    /// Runs every statement that reads only.
    reader: AnyPool,
    /// Runs every statement that writes.
    writer: Writer,
    pub(crate) dialect: Dialect,
}

/// Where writing statements run.
enum Writer {
    /// SQLite's one writer connection. SQLite admits a single writer anyway,
    /// and queueing writers on a mutex is far cheaper than letting them
    /// collide inside SQLite, whose busy handler sleeps for milliseconds per
    /// collision. It is owned outright rather than through a pool of one
    /// because sqlx pings a pooled connection after every use, which would
    /// double the cost of each write. A statement whose future is dropped
    /// midway is reset by the driver, so the connection stays usable.
    /// `None` once the store is closed.
    Sqlite(Mutex<Option<AnyConnection>>),
    /// PostgreSQL: the shared pool.
    Pool(AnyPool),
}

/// A connection to write through, for as long as it is held.
pub(crate) enum WriteConnection<'a> {
    Sqlite(MutexGuard<'a, Option<AnyConnection>>),
    Pool(PoolConnection<Any>),
}

impl Deref for WriteConnection<'_> {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        match self {
            Self::Sqlite(guard) => guard.as_ref().expect("checked when acquired"),
            Self::Pool(conn) => conn,
        }
    }
}

impl DerefMut for WriteConnection<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            Self::Sqlite(guard) => guard.as_mut().expect("checked when acquired"),
            Self::Pool(conn) => conn,
        }
    }
}

impl Writer {
    async fn acquire(&self) -> Result<WriteConnection<'_>> {
        match self {
            Self::Sqlite(conn) => {
                let guard = conn.lock().await;
                if guard.is_none() {
                    return Err(sqlx::Error::PoolClosed.into());
                }
                Ok(WriteConnection::Sqlite(guard))
            }
            Self::Pool(pool) => Ok(WriteConnection::Pool(pool.acquire().await?)),
        }
    }
}

impl SqlStore {
    /// Connects to `url` (`sqlite://PATH` or `postgresql://…`) and brings the
    /// schema up to date. A SQLite file is created if missing.
    pub async fn open(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let dialect = Dialect::from_url(url)?;
        let location = redact_url(url);
        let (reader, writer) = match dialect {
            Dialect::Sqlite => {
                if url.contains(":memory:") {
                    // Each connection would get a database of its own.
                    return Err(StoreError::UnsupportedUrl(location));
                }
                let url = sqlite_url_with_create(url);
                // The writer connects first so that it creates the file and
                // switches it to WAL before any reader opens it.
                let mut writer = AnyConnection::connect(&url).await?;
                writer.execute(SQLITE_PRAGMAS).await?;
                migrate::run(&mut writer, &location).await?;
                let reader = sqlite_readers().connect(&url).await?;
                (reader, Writer::Sqlite(Mutex::new(Some(writer))))
            }
            Dialect::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url)
                    .await?;
                migrate::run(&mut *pool.acquire().await?, &location).await?;
                (pool.clone(), Writer::Pool(pool))
            }
        };
        Ok(Self {
            reader,
            writer,
            dialect,
        })
    }

    /// The newest schema version this binary can run on.
    pub fn schema_version() -> i64 {
        migrate::latest_version()
    }

    /// Creates the database at `url` with schema `version` exactly, as the
    /// Skydeck that shipped that schema would have: for the upgrade tests'
    /// fixtures. No store is opened; SQLite keeps its default journal so
    /// the result is one self-contained file.
    pub async fn create_at_schema(url: &str, version: i64) -> Result<()> {
        sqlx::any::install_default_drivers();
        let location = redact_url(url);
        let url = match Dialect::from_url(url)? {
            Dialect::Sqlite => sqlite_url_with_create(url),
            Dialect::Postgres => url.to_owned(),
        };
        let mut conn = AnyConnection::connect(&url).await?;
        migrate::run_through(&mut conn, &location, version).await?;
        conn.close().await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.reader.close().await;
        match &self.writer {
            Writer::Sqlite(conn) => {
                if let Some(conn) = conn.lock().await.take()
                    && let Err(err) = conn.close().await
                {
                    tracing::warn!(error = %err, "closing the database failed");
                }
            }
            Writer::Pool(pool) => pool.close().await,
        }
    }

    /// A connection for statements that write.
    pub(crate) async fn write(&self) -> Result<WriteConnection<'_>> {
        self.writer.acquire().await
    }

    pub(crate) fn reader(&self) -> &AnyPool {
        &self.reader
    }
}

/// Set on every SQLite connection. WAL lets readers run beside the writer;
/// NORMAL sync keeps every commit across a process crash (only an OS crash
/// can drop the last commits). The busy timeout covers the rare waits that
/// remain: checkpoints, and the reader and writer connections opening the
/// file at the same time.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
     PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;";

fn sqlite_readers() -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(SQLITE_READERS)
        .min_connections(1)
        // A file on local disk cannot drop a connection the way a network
        // peer can; pinging before each use would double every query's
        // round trip to the connection's worker thread.
        .test_before_acquire(false)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute(SQLITE_PRAGMAS).await?;
                Ok(())
            })
        })
}

fn sqlite_url_with_create(url: &str) -> String {
    if url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

pub(crate) fn corrupt(table: &'static str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table,
        detail: detail.to_string(),
    }
}

fn parse_json(table: &'static str, text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|err| corrupt(table, err))
}

/// The `WHERE` conditions of `filter`, with their values bound as
/// `$1`, `$2`…; `None` when it can select nothing.
fn request_conditions(filter: &RequestFilter) -> Option<(String, Vec<String>)> {
    let mut sql = "1 = 1".to_owned();
    let mut binds: Vec<String> = Vec::new();
    let mut bind = |sql: &mut String, clause: &str, value: String| {
        binds.push(value);
        sql.push_str(&clause.replace("$?", &format!("${}", binds.len())));
    };
    if let Some(statuses) = &filter.statuses {
        if statuses.is_empty() {
            return None;
        }
        // Status names come from our enum, never from user input.
        let list: Vec<String> = statuses.iter().map(|s| format!("'{s}'")).collect();
        sql.push_str(&format!(" AND status IN ({})", list.join(", ")));
    }
    if let Some(user_id) = &filter.user_id {
        bind(&mut sql, " AND user_id = $?", user_id.clone());
    }
    if let Some(cluster) = &filter.cluster_name {
        bind(&mut sql, " AND cluster_name = $?", cluster.clone());
    }
    if let Some(schedule) = filter.schedule_type {
        bind(&mut sql, " AND schedule_type = $?", schedule.to_string());
    }
    if let Some(text) = filter.text.as_deref().filter(|t| !t.is_empty()) {
        // The text is a bound value; only LIKE's own wildcards need care.
        let escaped: String = text
            .to_lowercase()
            .chars()
            .flat_map(|c| match c {
                '%' | '_' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        let pattern = format!("%{escaped}%");
        bind(
            &mut sql,
            " AND (lower(name) LIKE $? ESCAPE '\\'",
            pattern.clone(),
        );
        bind(
            &mut sql,
            " OR lower(entrypoint) LIKE $? ESCAPE '\\'",
            pattern.clone(),
        );
        bind(
            &mut sql,
            " OR lower(COALESCE(cluster_name, '')) LIKE $? ESCAPE '\\'",
            pattern.clone(),
        );
        bind(
            &mut sql,
            " OR user_id IN (SELECT id FROM users WHERE lower(name) LIKE $? ESCAPE '\\'))",
            pattern,
        );
    }
    Some((sql, binds))
}

fn decode_request(row: &AnyRow) -> Result<RequestRecord> {
    let status: String = row.try_get("status")?;
    let schedule: String = row.try_get("schedule_type")?;
    let body: String = row.try_get("body")?;
    let return_value: Option<String> = row.try_get("return_value")?;
    let error: Option<String> = row.try_get("error")?;
    Ok(RequestRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        entrypoint: row.try_get("entrypoint")?,
        body: parse_json("requests", &body)?,
        status: RequestStatus::from_str(&status).map_err(|e| corrupt("requests", e))?,
        schedule_type: ScheduleType::from_str(&schedule).map_err(|e| corrupt("requests", e))?,
        user_id: row.try_get("user_id")?,
        cluster_name: row.try_get("cluster_name")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        return_value: return_value
            .as_deref()
            .map(|text| parse_json("requests", text))
            .transpose()?,
        error: error
            .as_deref()
            .map(|text| {
                serde_json::from_str::<RequestError>(text).map_err(|e| corrupt("requests", e))
            })
            .transpose()?,
        status_msg: row.try_get("status_msg")?,
        server_id: row.try_get("server_id")?,
        attempts: row.try_get("attempts")?,
        workspace: row.try_get("workspace")?,
    })
}

/// The status, return value and error columns of a finished request.
fn outcome_columns(outcome: &Outcome) -> Result<(RequestStatus, Option<String>, Option<String>)> {
    Ok(match outcome {
        Outcome::Succeeded(value) => (RequestStatus::Succeeded, Some(value.to_string()), None),
        Outcome::Failed(error) => (
            RequestStatus::Failed,
            None,
            Some(serde_json::to_string(error).map_err(|e| corrupt("requests", e))?),
        ),
    })
}

const USER_COLUMNS: &str = "id, name, created_at, role";

fn user_from_row(row: &AnyRow) -> Result<User> {
    let role: String = row.try_get("role")?;
    Ok(User {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        role: role.parse().map_err(|detail| StoreError::Corrupt {
            table: "users",
            detail,
        })?,
    })
}

const TOKEN_COLUMNS: &str =
    "id, user_id, name, hash, created_at, expires_at, last_used_at, revoked_at";

fn token_from_row(row: &AnyRow) -> Result<TokenRecord> {
    Ok(TokenRecord {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        hash: row.try_get("hash")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

pub(crate) const CLUSTER_COLUMNS: &str = "name, status, user_id, workspace, infra, cluster_hash, \
     launched_at, status_updated_at, num_nodes, resources, handle, autostop_minutes, \
     autostop_down, ever_up, last_use";

const CLUSTER_VALUES: &str = "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15";

/// Binds a cluster's fields in [`CLUSTER_COLUMNS`]' order.
fn bind_cluster<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    cluster: &'q ClusterRecord,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(&cluster.name)
        .bind(cluster.status.as_str())
        .bind(&cluster.user_id)
        .bind(&cluster.workspace)
        .bind(&cluster.infra)
        .bind(&cluster.cluster_hash)
        .bind(cluster.launched_at)
        .bind(cluster.status_updated_at)
        .bind(cluster.num_nodes)
        .bind(cluster.resources.to_string())
        .bind(cluster.handle.to_string())
        .bind(cluster.autostop_minutes)
        .bind(i64::from(cluster.autostop_down))
        .bind(i64::from(cluster.ever_up))
        .bind(cluster.last_use.as_deref())
}

fn decode_cluster(row: &AnyRow) -> Result<ClusterRecord> {
    let status: String = row.try_get("status")?;
    let resources: String = row.try_get("resources")?;
    let handle: String = row.try_get("handle")?;
    Ok(ClusterRecord {
        name: row.try_get("name")?,
        status: ClusterStatus::from_str(&status).map_err(|e| corrupt("clusters", e))?,
        user_id: row.try_get("user_id")?,
        workspace: row.try_get("workspace")?,
        infra: row.try_get("infra")?,
        cluster_hash: row.try_get("cluster_hash")?,
        launched_at: row.try_get("launched_at")?,
        status_updated_at: row.try_get("status_updated_at")?,
        num_nodes: row.try_get("num_nodes")?,
        resources: parse_json("clusters", &resources)?,
        handle: parse_json("clusters", &handle)?,
        autostop_minutes: row.try_get("autostop_minutes")?,
        autostop_down: row.try_get::<i64, _>("autostop_down")? != 0,
        ever_up: row.try_get::<i64, _>("ever_up")? != 0,
        last_use: row.try_get("last_use")?,
    })
}

fn decode_server(row: &AnyRow) -> Result<ServerInfo> {
    Ok(ServerInfo {
        id: row.try_get("id")?,
        hostname: row.try_get("hostname")?,
        pid: row.try_get("pid")?,
        started_at: row.try_get("started_at")?,
        heartbeat_at: row.try_get("heartbeat_at")?,
    })
}

/// A list of plain numbers or records as JSON text: cannot fail.
fn to_json_text(table: &'static str, value: serde_json::Result<String>) -> Result<String> {
    value.map_err(|err| corrupt(table, err))
}

fn decode_host(row: &AnyRow) -> Result<Host> {
    let gpus: String = row.try_get("gpus")?;
    Ok(Host {
        id: row.try_get("id")?,
        pool: row.try_get("pool")?,
        cpus: row.try_get("cpus")?,
        memory_gb: row.try_get("memory_gb")?,
        gpus: serde_json::from_str(&gpus).map_err(|e| corrupt("placement_hosts", e))?,
    })
}

const ALLOCATION_COLUMNS: &str = "a.cluster_name, a.node_rank, a.host_id, a.cpus, a.memory_gb, \
     a.gpus, a.ports";

fn decode_allocation(row: &AnyRow) -> Result<Allocation> {
    let gpus: String = row.try_get("gpus")?;
    let ports: String = row.try_get("ports")?;
    let rank: i64 = row.try_get("node_rank")?;
    Ok(Allocation {
        cluster: row.try_get("cluster_name")?,
        node_rank: u32::try_from(rank).map_err(|e| corrupt("placement_allocations", e))?,
        host: row.try_get("host_id")?,
        cpus: row.try_get("cpus")?,
        memory_gb: row.try_get("memory_gb")?,
        gpus: serde_json::from_str(&gpus).map_err(|e| corrupt("placement_allocations", e))?,
        ports: serde_json::from_str(&ports).map_err(|e| corrupt("placement_allocations", e))?,
    })
}

/// Escapes `%`, `_` and `\` so user input matches literally in `LIKE`.
fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[async_trait]
impl Store for SqlStore {
    fn dialect(&self) -> Dialect {
        self.dialect
    }

    async fn upsert_user(&self, user: &User) -> Result<()> {
        sqlx::query(
            "INSERT INTO users (id, name, created_at, role) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name",
        )
        .bind(&user.id)
        .bind(&user.name)
        .bind(user.created_at)
        .bind(user.role.as_str())
        .execute(&mut *self.write().await?)
        .await?;
        Ok(())
    }

    async fn get_user(&self, id: &str) -> Result<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn get_user_by_name(&self, name: &str) -> Result<Option<User>> {
        // An account that can log in wins over a client that merely called
        // itself by that name; then the oldest.
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users WHERE name = $1 \
             ORDER BY (password_hash IS NULL), created_at, id LIMIT 1"
        );
        let row = sqlx::query(&sql)
            .bind(name)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY name, id");
        let rows = sqlx::query(&sql).fetch_all(&self.reader).await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn set_user_role(&self, id: &str, role: Role) -> Result<bool> {
        let done = sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
            .bind(role.as_str())
            .bind(id)
            .execute(&mut *self.write().await?)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn set_password_hash(&self, id: &str, hash: Option<&str>) -> Result<bool> {
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(id)
            .execute(&mut *self.write().await?)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn password_hash(&self, id: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT password_hash FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row
            .map(|row| row.try_get::<Option<String>, _>("password_hash"))
            .transpose()?
            .flatten())
    }

    async fn delete_user(&self, id: &str, now: f64) -> Result<bool> {
        let mut conn = self.write().await?;
        let mut tx = conn.begin().await?;
        sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn server_user_id(&self, proposed: &str) -> Result<String> {
        // Insert-if-absent, then read what won: no window in which two
        // servers could each record their own.
        let mut conn = self.write().await?;
        sqlx::query(
            "INSERT INTO server_identity (id, user_id) VALUES (1, $1) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(proposed)
        .execute(&mut *conn)
        .await?;
        let row = sqlx::query("SELECT user_id FROM server_identity WHERE id = 1")
            .fetch_one(&mut *conn)
            .await?;
        Ok(row.try_get("user_id")?)
    }

    async fn shared_secret(&self, name: &str, proposed: &str) -> Result<String> {
        // As `server_user_id`: insert if absent, then read what won.
        let mut conn = self.write().await?;
        sqlx::query(
            "INSERT INTO server_secrets (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(proposed)
        .execute(&mut *conn)
        .await?;
        let row = sqlx::query("SELECT value FROM server_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&mut *conn)
            .await?;
        Ok(row.try_get("value")?)
    }

    async fn insert_token(&self, token: &TokenRecord) -> Result<()> {
        let sql =
            format!("INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)");
        sqlx::query(&sql)
            .bind(&token.id)
            .bind(&token.user_id)
            .bind(&token.name)
            .bind(&token.hash)
            .bind(token.created_at)
            .bind(token.expires_at)
            .bind(token.last_used_at)
            .bind(token.revoked_at)
            // sqlx's Any driver types a NULL double as a 4-byte float for
            // PostgreSQL: a cached statement prepared with no expiry would
            // refuse the next token's expiry. Prepared per insert instead.
            .persistent(false)
            .execute(&mut *self.write().await?)
            .await?;
        Ok(())
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = $1");
        let row = sqlx::query(&sql)
            .bind(hash)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn list_tokens(&self, user_id: Option<&str>) -> Result<Vec<TokenRecord>> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE ($1 IS NULL OR user_id = $1) \
             ORDER BY created_at DESC, id"
        );
        let rows = sqlx::query(&sql)
            .bind(user_id)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn revoke_token(&self, id: &str, now: f64) -> Result<bool> {
        let done =
            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(&mut *self.write().await?)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn touch_token(&self, id: &str, now: f64) -> Result<()> {
        sqlx::query("UPDATE tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&mut *self.write().await?)
            .await?;
        Ok(())
    }

    async fn server_config(&self) -> Result<Option<StoredConfig>> {
        let row = sqlx::query(
            "SELECT yaml, version, updated_at, updated_by FROM server_config WHERE id = 1",
        )
        .fetch_optional(&self.reader)
        .await?;
        row.map(|row| {
            Ok(StoredConfig {
                yaml: row.try_get("yaml")?,
                version: row.try_get("version")?,
                updated_at: row.try_get("updated_at")?,
                updated_by: row.try_get("updated_by")?,
            })
        })
        .transpose()
    }

    async fn server_config_version(&self) -> Result<i64> {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT version FROM server_config WHERE id = 1")
                .fetch_optional(&self.reader)
                .await?;
        Ok(version.unwrap_or(0))
    }

    async fn put_server_config(&self, yaml: &str, updated_by: &str, now: f64) -> Result<i64> {
        // One statement, so two replicas saving at once both get distinct
        // versions and the last write wins whole.
        let version: i64 = sqlx::query_scalar(
            "INSERT INTO server_config (id, yaml, version, updated_at, updated_by) \
             VALUES (1, $1, 1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET yaml = excluded.yaml, \
             version = server_config.version + 1, updated_at = excluded.updated_at, \
             updated_by = excluded.updated_by \
             RETURNING version",
        )
        .bind(yaml)
        .bind(now)
        .bind(updated_by)
        .fetch_one(&mut *self.write().await?)
        .await?;
        Ok(version)
    }

    async fn insert_request(&self, request: &NewRequest) -> Result<()> {
        sqlx::query(
            "INSERT INTO requests (id, name, entrypoint, body, status, schedule_type, user_id, \
             cluster_name, created_at, workspace) \
             VALUES ($1, $2, $3, $4, 'PENDING', $5, $6, $7, $8, $9)",
        )
        .bind(&request.id)
        .bind(&request.name)
        .bind(&request.entrypoint)
        .bind(request.body.to_string())
        .bind(request.schedule_type.as_str())
        .bind(&request.user_id)
        .bind(request.cluster_name.as_deref())
        .bind(request.created_at)
        .bind(&request.workspace)
        .execute(&mut *self.write().await?)
        .await?;
        Ok(())
    }

    async fn insert_running_request(
        &self,
        request: &NewRequest,
        server_id: &str,
        now: f64,
    ) -> Result<RequestRecord> {
        let sql = format!(
            "INSERT INTO requests (id, name, entrypoint, body, status, schedule_type, user_id, \
             cluster_name, created_at, server_id, started_at, attempts, workspace) \
             VALUES ($1, $2, $3, $4, 'RUNNING', $5, $6, $7, $8, $9, $10, 1, $11) \
             RETURNING {REQUEST_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(&request.id)
            .bind(&request.name)
            .bind(&request.entrypoint)
            .bind(request.body.to_string())
            .bind(request.schedule_type.as_str())
            .bind(&request.user_id)
            .bind(request.cluster_name.as_deref())
            .bind(request.created_at)
            .bind(server_id)
            .bind(now)
            .bind(&request.workspace)
            .fetch_one(&mut *self.write().await?)
            .await?;
        decode_request(&row)
    }

    async fn insert_finished_request(
        &self,
        request: &NewRequest,
        started_at: f64,
        outcome: &Outcome,
        finished_at: f64,
    ) -> Result<RequestRecord> {
        let (status, return_value, error) = outcome_columns(outcome)?;
        let sql = format!(
            "INSERT INTO requests (id, name, entrypoint, body, status, schedule_type, user_id, \
             cluster_name, created_at, started_at, finished_at, return_value, error, attempts, \
             workspace) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 1, $14) \
             RETURNING {REQUEST_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(&request.id)
            .bind(&request.name)
            .bind(&request.entrypoint)
            .bind(request.body.to_string())
            .bind(status.as_str())
            .bind(request.schedule_type.as_str())
            .bind(&request.user_id)
            .bind(request.cluster_name.as_deref())
            .bind(request.created_at)
            .bind(started_at)
            .bind(finished_at)
            .bind(return_value)
            .bind(error)
            .bind(&request.workspace)
            .fetch_one(&mut *self.write().await?)
            .await?;
        decode_request(&row)
    }

    async fn get_request(&self, id: &str) -> Result<Option<RequestRecord>> {
        let sql = format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(decode_request).transpose()
    }

    async fn request_ids_with_prefix(
        &self,
        prefix: &str,
        user_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT id FROM requests WHERE id LIKE $1 ESCAPE '\\' \
             AND ($2 IS NULL OR user_id = $2) ORDER BY created_at DESC LIMIT $3",
        )
        .bind(like_prefix(prefix))
        .bind(user_id)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| row.try_get::<String, _>("id").map_err(Into::into))
            .collect()
    }

    async fn list_requests(&self, filter: &RequestFilter) -> Result<Vec<RequestRecord>> {
        let Some((conditions, binds)) = request_conditions(filter) else {
            return Ok(Vec::new());
        };
        let mut sql = format!(
            "SELECT {REQUEST_COLUMNS} FROM requests WHERE {conditions} \
             ORDER BY created_at DESC, id DESC"
        );
        if let Some(limit) = filter.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        if let Some(offset) = filter.offset {
            if filter.limit.is_none() {
                sql.push_str(&format!(" LIMIT {}", i64::MAX));
            }
            sql.push_str(&format!(" OFFSET {offset}"));
        }
        let mut query = sqlx::query(&sql);
        for value in &binds {
            query = query.bind(value.as_str());
        }
        let rows = query.fetch_all(&self.reader).await?;
        rows.iter().map(decode_request).collect()
    }

    async fn count_requests(&self, filter: &RequestFilter) -> Result<u64> {
        let Some((conditions, binds)) = request_conditions(filter) else {
            return Ok(0);
        };
        let sql = format!("SELECT COUNT(*) FROM requests WHERE {conditions}");
        let mut query = sqlx::query(&sql);
        for value in &binds {
            query = query.bind(value.as_str());
        }
        let count: i64 = query.fetch_one(&self.reader).await?.try_get(0)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn claim_next(
        &self,
        schedule: ScheduleType,
        server_id: &str,
        now: f64,
    ) -> Result<Option<RequestRecord>> {
        let sql = format!(
            "UPDATE requests SET status = 'RUNNING', server_id = $1, started_at = $2, \
             attempts = attempts + 1 \
             WHERE id = (SELECT id FROM requests WHERE status = 'PENDING' AND schedule_type = $3 \
                         ORDER BY created_at, id LIMIT 1{skip_locked}) \
             AND status = 'PENDING' \
             RETURNING {REQUEST_COLUMNS}",
            skip_locked = self.dialect.skip_locked()
        );
        let row = sqlx::query(&sql)
            .bind(server_id)
            .bind(now)
            .bind(schedule.as_str())
            .fetch_optional(&mut *self.write().await?)
            .await?;
        row.as_ref().map(decode_request).transpose()
    }

    async fn finish_request(
        &self,
        id: &str,
        server_id: &str,
        outcome: &Outcome,
        now: f64,
    ) -> Result<Option<RequestRecord>> {
        let (status, return_value, error) = outcome_columns(outcome)?;
        let sql = format!(
            "UPDATE requests SET status = $1, return_value = $2, error = $3, finished_at = $4, \
             server_id = NULL WHERE id = $5 AND status = 'RUNNING' AND server_id = $6 \
             RETURNING {REQUEST_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(status.as_str())
            .bind(return_value)
            .bind(error)
            .bind(now)
            .bind(id)
            .bind(server_id)
            .fetch_optional(&mut *self.write().await?)
            .await?;
        row.as_ref().map(decode_request).transpose()
    }

    async fn requeue_request(&self, id: &str, server_id: &str, note: &str) -> Result<bool> {
        let result = sqlx::query(
            "UPDATE requests SET status = 'PENDING', server_id = NULL, status_msg = $1 \
             WHERE id = $2 AND status = 'RUNNING' AND server_id = $3",
        )
        .bind(note)
        .bind(id)
        .bind(server_id)
        .execute(&mut *self.write().await?)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn cancel_request(&self, id: &str, now: f64) -> Result<Option<RequestStatus>> {
        // Read then conditionally write: the guard on the old status makes a
        // concurrent finish or cancel win cleanly instead of being overwritten.
        for _ in 0..3 {
            let Some(current) = self.get_request(id).await? else {
                return Ok(None);
            };
            if current.status.is_finished() {
                return Ok(None);
            }
            let result = sqlx::query(
                "UPDATE requests SET status = 'CANCELLED', finished_at = $1 \
                 WHERE id = $2 AND status = $3",
            )
            .bind(now)
            .bind(id)
            .bind(current.status.as_str())
            .execute(&mut *self.write().await?)
            .await?;
            if result.rows_affected() == 1 {
                return Ok(Some(current.status));
            }
        }
        Ok(None)
    }

    async fn request_statuses(&self, ids: &[String]) -> Result<Vec<(String, RequestStatus)>> {
        let mut statuses = Vec::with_capacity(ids.len());
        // Chunked so the placeholder count stays far below either database's cap.
        for chunk in ids.chunks(200) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT id, status FROM requests WHERE id IN ({})",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(id.as_str());
            }
            for row in query.fetch_all(&self.reader).await? {
                let status: String = row.try_get("status")?;
                let status =
                    RequestStatus::from_str(&status).map_err(|e| corrupt("requests", e))?;
                statuses.push((row.try_get("id")?, status));
            }
        }
        Ok(statuses)
    }

    async fn active_request_counts(&self) -> Result<Vec<(ScheduleType, RequestStatus, i64)>> {
        let rows = sqlx::query(
            "SELECT schedule_type, status, COUNT(*) AS n FROM requests \
             WHERE status IN ('PENDING', 'WAITING', 'RUNNING') \
             GROUP BY schedule_type, status",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                let schedule: String = row.try_get("schedule_type")?;
                let status: String = row.try_get("status")?;
                Ok((
                    ScheduleType::from_str(&schedule).map_err(|e| corrupt("requests", e))?,
                    RequestStatus::from_str(&status).map_err(|e| corrupt("requests", e))?,
                    row.try_get("n")?,
                ))
            })
            .collect()
    }

    async fn delete_finished_requests(&self, before: f64, limit: u32) -> Result<Vec<String>> {
        const FINISHED: &str = "status IN ('SUCCEEDED', 'FAILED', 'CANCELLED')";
        // A request cancelled before it started may have no finish time;
        // its creation time stands in.
        let ids: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT id FROM requests WHERE {FINISHED} \
             AND COALESCE(finished_at, created_at) < $1 \
             ORDER BY COALESCE(finished_at, created_at) LIMIT $2"
        ))
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        let mut deleted = Vec::with_capacity(ids.len());
        // Chunked so the placeholder count stays far below either database's cap.
        for chunk in ids.chunks(200) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "DELETE FROM requests WHERE {FINISHED} AND id IN ({})",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(id.as_str());
            }
            query.execute(&mut *self.write().await?).await?;
            deleted.extend_from_slice(chunk);
        }
        Ok(deleted)
    }

    async fn put_cluster(&self, cluster: &ClusterRecord) -> Result<()> {
        let sql = format!(
            "INSERT INTO clusters ({CLUSTER_COLUMNS}) VALUES ({CLUSTER_VALUES}) \
             ON CONFLICT (name) DO UPDATE SET status = excluded.status, \
             user_id = excluded.user_id, workspace = excluded.workspace, \
             infra = excluded.infra, cluster_hash = excluded.cluster_hash, \
             launched_at = excluded.launched_at, \
             status_updated_at = excluded.status_updated_at, num_nodes = excluded.num_nodes, \
             resources = excluded.resources, handle = excluded.handle, \
             autostop_minutes = excluded.autostop_minutes, \
             autostop_down = excluded.autostop_down, ever_up = excluded.ever_up, \
             last_use = excluded.last_use"
        );
        let mut conn = self.write().await?;
        let mut tx = conn.begin().await?;
        bind_cluster(sqlx::query(&sql), cluster)
            .execute(&mut *tx)
            .await?;
        crate::history::record(&mut tx, &cluster.name, None).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn claim_cluster(&self, cluster: &ClusterRecord) -> Result<ClusterRecord> {
        // One statement, atomic on both databases: the insert wins, or the
        // no-op update hands back the row that was there (and its owner).
        let sql = format!(
            "INSERT INTO clusters ({CLUSTER_COLUMNS}) VALUES ({CLUSTER_VALUES}) \
             ON CONFLICT (name) DO UPDATE SET name = clusters.name \
             RETURNING {CLUSTER_COLUMNS}"
        );
        let row = bind_cluster(sqlx::query(&sql), cluster)
            .fetch_one(&mut *self.write().await?)
            .await?;
        decode_cluster(&row)
    }

    async fn get_cluster(&self, name: &str) -> Result<Option<ClusterRecord>> {
        let sql = format!("SELECT {CLUSTER_COLUMNS} FROM clusters WHERE name = $1");
        let row = sqlx::query(&sql)
            .bind(name)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(decode_cluster).transpose()
    }

    async fn list_clusters(&self, user_id: Option<&str>) -> Result<Vec<ClusterRecord>> {
        let sql = format!(
            "SELECT {CLUSTER_COLUMNS} FROM clusters WHERE ($1 IS NULL OR user_id = $1) \
             ORDER BY name"
        );
        let rows = sqlx::query(&sql)
            .bind(user_id)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(decode_cluster).collect()
    }

    async fn set_cluster_status(
        &self,
        name: &str,
        status: ClusterStatus,
        now: f64,
    ) -> Result<bool> {
        let mut conn = self.write().await?;
        let mut tx = conn.begin().await?;
        let result = sqlx::query(
            "UPDATE clusters SET status = $1, status_updated_at = $2, \
             ever_up = CASE WHEN $1 = 'UP' THEN 1 ELSE ever_up END WHERE name = $3",
        )
        .bind(status.as_str())
        .bind(now)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        crate::history::record(&mut tx, name, None).await?;
        tx.commit().await?;
        Ok(result.rows_affected() == 1)
    }

    async fn set_cluster_autostop(&self, name: &str, minutes: i64, down: bool) -> Result<bool> {
        let result = sqlx::query(
            "UPDATE clusters SET autostop_minutes = $1, autostop_down = $2 WHERE name = $3",
        )
        .bind(minutes)
        .bind(i64::from(down))
        .bind(name)
        .execute(&mut *self.write().await?)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn delete_cluster(&self, name: &str, now: f64) -> Result<bool> {
        let mut conn = self.write().await?;
        let mut tx = conn.begin().await?;
        crate::history::record(&mut tx, name, Some(now)).await?;
        let result = sqlx::query("DELETE FROM clusters WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(result.rows_affected() == 1)
    }

    async fn list_ended_clusters(
        &self,
        user_id: Option<&str>,
        since: Option<f64>,
    ) -> Result<Vec<EndedCluster>> {
        let sql = crate::history::ended_query(user_id.is_some(), since.is_some());
        let mut query = sqlx::query(&sql);
        if let Some(user_id) = user_id {
            query = query.bind(user_id);
        }
        if let Some(since) = since {
            query = query.bind(since);
        }
        let rows = query.fetch_all(&self.reader).await?;
        rows.iter()
            .map(|row| {
                Ok(EndedCluster {
                    cluster: decode_cluster(row)?,
                    ended_at: row.try_get("ended_at")?,
                })
            })
            .collect()
    }

    async fn put_host(&self, host: &Host) -> Result<()> {
        sqlx::query(
            "INSERT INTO placement_hosts (id, pool, cpus, memory_gb, gpus) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET \
             pool = excluded.pool, cpus = excluded.cpus, memory_gb = excluded.memory_gb, \
             gpus = excluded.gpus",
        )
        .bind(&host.id)
        .bind(&host.pool)
        .bind(host.cpus)
        .bind(host.memory_gb)
        .bind(to_json_text(
            "placement_hosts",
            serde_json::to_string(&host.gpus),
        )?)
        .execute(&mut *self.write().await?)
        .await?;
        Ok(())
    }

    async fn list_hosts(&self, pool: &str) -> Result<Vec<Host>> {
        let rows = sqlx::query(
            "SELECT id, pool, cpus, memory_gb, gpus FROM placement_hosts WHERE pool = $1 \
             ORDER BY id",
        )
        .bind(pool)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(decode_host).collect()
    }

    async fn put_ssh_pool_record(&self, pool: &str, hosts: &str, now: f64) -> Result<()> {
        sqlx::query(
            "INSERT INTO ssh_pool_records (pool, hosts, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (pool) DO UPDATE SET hosts = excluded.hosts, \
             updated_at = excluded.updated_at",
        )
        .bind(pool)
        .bind(hosts)
        .bind(now)
        .execute(&mut *self.write().await?)
        .await?;
        Ok(())
    }

    async fn list_ssh_pool_records(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT pool, hosts FROM ssh_pool_records ORDER BY pool")
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("pool")?, row.try_get("hosts")?)))
            .collect()
    }

    async fn delete_ssh_pool_record(&self, pool: &str) -> Result<bool> {
        let result = sqlx::query("DELETE FROM ssh_pool_records WHERE pool = $1")
            .bind(pool)
            .execute(&mut *self.write().await?)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn delete_host(&self, id: &str) -> Result<bool> {
        let result = sqlx::query("DELETE FROM placement_hosts WHERE id = $1")
            .bind(id)
            .execute(&mut *self.write().await?)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn list_allocations(&self, pool: &str) -> Result<Vec<Allocation>> {
        let sql = format!(
            "SELECT {ALLOCATION_COLUMNS} FROM placement_allocations a \
             JOIN placement_hosts h ON h.id = a.host_id WHERE h.pool = $1 \
             ORDER BY a.cluster_name, a.node_rank"
        );
        let rows = sqlx::query(&sql).bind(pool).fetch_all(&self.reader).await?;
        rows.iter().map(decode_allocation).collect()
    }

    async fn place_cluster(
        &self,
        pool: &str,
        cluster: &str,
        decide: &Decide<'_>,
    ) -> Result<std::result::Result<Vec<Allocation>, String>> {
        let mut conn = self.write().await?;
        let mut tx = conn.begin().await?;
        // The lock comes first: a placement that waited for another sees
        // what that one recorded (each statement of a READ COMMITTED
        // transaction reads the latest commits).
        let sql = format!(
            "SELECT id, pool, cpus, memory_gb, gpus FROM placement_hosts WHERE pool = $1 \
             ORDER BY id{}",
            self.dialect.for_update()
        );
        let hosts = sqlx::query(&sql)
            .bind(pool)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(decode_host)
            .collect::<Result<Vec<_>>>()?;
        let sql = format!(
            "SELECT {ALLOCATION_COLUMNS} FROM placement_allocations a \
             JOIN placement_hosts h ON h.id = a.host_id WHERE h.pool = $1 \
             ORDER BY a.cluster_name, a.node_rank"
        );
        let held = sqlx::query(&sql)
            .bind(pool)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(decode_allocation)
            .collect::<Result<Vec<_>>>()?;
        let own: Vec<Allocation> = held
            .iter()
            .filter(|a| a.cluster == cluster)
            .cloned()
            .collect();
        if !own.is_empty() {
            tx.commit().await?;
            return Ok(Ok(own));
        }
        let placed = match decide(&hosts, &held) {
            Ok(placed) => placed,
            Err(reason) => {
                tx.rollback().await?;
                return Ok(Err(reason));
            }
        };
        for allocation in &placed {
            if allocation.cluster != cluster {
                return Err(corrupt(
                    "placement_allocations",
                    format!(
                        "a placement of {cluster} returned an allocation for {}",
                        allocation.cluster
                    ),
                ));
            }
            sqlx::query(
                "INSERT INTO placement_allocations \
                 (cluster_name, node_rank, host_id, cpus, memory_gb, gpus, ports) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(cluster)
            .bind(i64::from(allocation.node_rank))
            .bind(&allocation.host)
            .bind(allocation.cpus)
            .bind(allocation.memory_gb)
            .bind(to_json_text(
                "placement_allocations",
                serde_json::to_string(&allocation.gpus),
            )?)
            .bind(to_json_text(
                "placement_allocations",
                serde_json::to_string(&allocation.ports),
            )?)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Ok(placed))
    }

    async fn release_cluster(&self, cluster: &str) -> Result<u64> {
        let done = sqlx::query("DELETE FROM placement_allocations WHERE cluster_name = $1")
            .bind(cluster)
            .execute(&mut *self.write().await?)
            .await?;
        Ok(done.rows_affected())
    }

    async fn insert_managed_job(&self, job: &NewManagedJob) -> Result<i64> {
        self.insert_managed_job_sql(job).await
    }

    async fn get_managed_job(&self, job_id: i64) -> Result<Option<ManagedJob>> {
        self.get_managed_job_sql(job_id).await
    }

    async fn list_managed_jobs(&self, user_id: Option<&str>) -> Result<Vec<ManagedJob>> {
        self.list_managed_jobs_sql(user_id, false).await
    }

    async fn list_active_managed_jobs(&self, user_id: Option<&str>) -> Result<Vec<ManagedJob>> {
        self.list_managed_jobs_sql(user_id, true).await
    }

    async fn page_managed_jobs(
        &self,
        filter: &ManagedJobFilter,
        offset: u64,
        limit: u64,
    ) -> Result<ManagedJobPage> {
        self.page_managed_jobs_sql(filter, offset, limit).await
    }

    async fn managed_cluster_names(&self) -> Result<Vec<String>> {
        self.managed_cluster_names_sql().await
    }

    async fn managed_job_dag(&self, job_id: i64) -> Result<Option<String>> {
        self.managed_job_dag_sql(job_id).await
    }

    async fn claim_managed_jobs(
        &self,
        server_id: &str,
        now: f64,
        until: f64,
        limit: u32,
    ) -> Result<Vec<i64>> {
        self.claim_managed_jobs_sql(server_id, now, until, limit)
            .await
    }

    async fn update_managed_task(&self, server_id: &str, task: &ManagedTask) -> Result<bool> {
        self.update_managed_task_sql(server_id, task).await
    }

    async fn finish_managed_job(&self, server_id: &str, job_id: i64) -> Result<bool> {
        self.finish_managed_job_sql(server_id, job_id).await
    }

    async fn cancel_managed_job(&self, job_id: i64) -> Result<bool> {
        self.cancel_managed_job_sql(job_id).await
    }

    async fn release_managed_jobs(&self, server_id: &str) -> Result<u64> {
        self.release_managed_jobs_sql(server_id).await
    }

    async fn register_server(&self, server: &ServerInfo) -> Result<()> {
        sqlx::query(
            "INSERT INTO servers (id, hostname, pid, started_at, heartbeat_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET \
             hostname = excluded.hostname, pid = excluded.pid, heartbeat_at = excluded.heartbeat_at",
        )
        .bind(&server.id)
        .bind(&server.hostname)
        .bind(server.pid)
        .bind(server.started_at)
        .bind(server.heartbeat_at)
        .execute(&mut *self.write().await?)
        .await?;
        Ok(())
    }

    async fn heartbeat_server(&self, id: &str, now: f64) -> Result<()> {
        sqlx::query("UPDATE servers SET heartbeat_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&mut *self.write().await?)
            .await?;
        Ok(())
    }

    async fn remove_server(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM servers WHERE id = $1")
            .bind(id)
            .execute(&mut *self.write().await?)
            .await?;
        Ok(())
    }

    async fn list_servers(&self) -> Result<Vec<ServerInfo>> {
        let rows = sqlx::query(
            "SELECT id, hostname, pid, started_at, heartbeat_at FROM servers ORDER BY started_at",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(decode_server).collect()
    }

    /// Moves the SQLite write-ahead log into the database file and empties
    /// it. SQLite's automatic checkpoints cannot reset the log while readers
    /// overlap without pause, so under steady load it would grow without
    /// bound; the server calls this now and then. A no-op on PostgreSQL.
    async fn checkpoint(&self) -> Result<()> {
        if self.dialect == Dialect::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&mut *self.write().await?)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("postgresql://sky:s3cret@db:5432/sky"),
            "postgresql://sky:***@db:5432/sky"
        );
        assert_eq!(redact_url("sqlite:///x/state.db"), "sqlite:///x/state.db");
    }

    #[test]
    fn like_patterns_match_literally() {
        assert_eq!(like_prefix("ab_%\\"), "ab\\_\\%\\\\%");
    }

    #[test]
    fn unknown_url_schemes_are_refused() {
        assert!(matches!(
            Dialect::from_url("mysql://x"),
            Err(StoreError::UnsupportedUrl(_))
        ));
    }
}
