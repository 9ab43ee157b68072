//! The SQL implementation of [`Store`], shared by SQLite and PostgreSQL.
//!
//! Queries are written once in the SQL both databases accept (`$N`
//! placeholders, `RETURNING`, partial indexes). JSON values are stored as
//! text so no column type differs between the two.

use crate::model::{NewRequest, Outcome, RequestFilter, RequestRecord, ServerInfo, User};
use crate::{Result, Store, StoreError, migrate};
use async_trait::async_trait;
use skydeck_types::{RequestError, RequestStatus, ScheduleType};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};
use std::str::FromStr;
use std::time::Duration;

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
    fn skip_locked(self) -> &'static str {
        match self {
            Self::Sqlite => "",
            Self::Postgres => " FOR UPDATE SKIP LOCKED",
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
     server_id, attempts";

pub struct SqlStore {
    pool: AnyPool,
    dialect: Dialect,
}

impl SqlStore {
    /// Connects to `url` (`sqlite://PATH` or `postgresql://…`) and brings the
    /// schema up to date. A SQLite file is created if missing.
    pub async fn open(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let dialect = Dialect::from_url(url)?;
        let location = redact_url(url);
        let pool = match dialect {
            Dialect::Sqlite => {
                let url = sqlite_url_with_create(url);
                AnyPoolOptions::new()
                    .max_connections(8)
                    .min_connections(1)
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            // WAL lets readers run beside the writer; NORMAL
                            // sync keeps every commit across a process crash
                            // (only an OS crash can drop the last commits).
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                                 PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await?
            }
            Dialect::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url)
                    .await?
            }
        };
        migrate::run(&pool, &location).await?;
        Ok(Self { pool, dialect })
    }

    /// The newest schema version this binary can run on.
    pub fn schema_version() -> i64 {
        migrate::latest_version()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn sqlite_url_with_create(url: &str) -> String {
    if url.contains("mode=") || url.contains(":memory:") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

fn corrupt(table: &'static str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table,
        detail: detail.to_string(),
    }
}

fn parse_json(table: &'static str, text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|err| corrupt(table, err))
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
            "INSERT INTO users (id, name, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name",
        )
        .bind(&user.id)
        .bind(&user.name)
        .bind(user.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_user(&self, id: &str) -> Result<Option<User>> {
        let row = sqlx::query("SELECT id, name, created_at FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(User {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .transpose()
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query("SELECT id, name, created_at FROM users ORDER BY name, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(User {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    async fn insert_request(&self, request: &NewRequest) -> Result<()> {
        sqlx::query(
            "INSERT INTO requests (id, name, entrypoint, body, status, schedule_type, user_id, \
             cluster_name, created_at) VALUES ($1, $2, $3, $4, 'PENDING', $5, $6, $7, $8)",
        )
        .bind(&request.id)
        .bind(&request.name)
        .bind(&request.entrypoint)
        .bind(request.body.to_string())
        .bind(request.schedule_type.as_str())
        .bind(&request.user_id)
        .bind(request.cluster_name.as_deref())
        .bind(request.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_request(&self, id: &str) -> Result<Option<RequestRecord>> {
        let sql = format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
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
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| row.try_get::<String, _>("id").map_err(Into::into))
            .collect()
    }

    async fn list_requests(&self, filter: &RequestFilter) -> Result<Vec<RequestRecord>> {
        let mut sql = format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE 1 = 1");
        let mut binds: Vec<String> = Vec::new();
        let mut bind = |sql: &mut String, clause: &str, value: String| {
            binds.push(value);
            sql.push_str(&clause.replace("$?", &format!("${}", binds.len())));
        };
        if let Some(statuses) = &filter.statuses {
            if statuses.is_empty() {
                return Ok(Vec::new());
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
        sql.push_str(" ORDER BY created_at DESC, id DESC");
        if let Some(limit) = filter.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        let mut query = sqlx::query(&sql);
        for value in &binds {
            query = query.bind(value.as_str());
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(decode_request).collect()
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
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(decode_request).transpose()
    }

    async fn finish_request(
        &self,
        id: &str,
        server_id: &str,
        outcome: &Outcome,
        now: f64,
    ) -> Result<bool> {
        let (status, return_value, error) = match outcome {
            Outcome::Succeeded(value) => (RequestStatus::Succeeded, Some(value.to_string()), None),
            Outcome::Failed(error) => (
                RequestStatus::Failed,
                None,
                Some(serde_json::to_string(error).map_err(|e| corrupt("requests", e))?),
            ),
        };
        let result = sqlx::query(
            "UPDATE requests SET status = $1, return_value = $2, error = $3, finished_at = $4, \
             server_id = NULL WHERE id = $5 AND status = 'RUNNING' AND server_id = $6",
        )
        .bind(status.as_str())
        .bind(return_value)
        .bind(error)
        .bind(now)
        .bind(id)
        .bind(server_id)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn requeue_request(&self, id: &str, server_id: &str, note: &str) -> Result<bool> {
        let result = sqlx::query(
            "UPDATE requests SET status = 'PENDING', server_id = NULL, status_msg = $1 \
             WHERE id = $2 AND status = 'RUNNING' AND server_id = $3",
        )
        .bind(note)
        .bind(id)
        .bind(server_id)
        .execute(&self.pool)
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
            .execute(&self.pool)
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
            for row in query.fetch_all(&self.pool).await? {
                let status: String = row.try_get("status")?;
                let status =
                    RequestStatus::from_str(&status).map_err(|e| corrupt("requests", e))?;
                statuses.push((row.try_get("id")?, status));
            }
        }
        Ok(statuses)
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
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn heartbeat_server(&self, id: &str, now: f64) -> Result<()> {
        sqlx::query("UPDATE servers SET heartbeat_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn remove_server(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM servers WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn list_servers(&self) -> Result<Vec<ServerInfo>> {
        let rows = sqlx::query(
            "SELECT id, hostname, pid, started_at, heartbeat_at FROM servers ORDER BY started_at",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode_server).collect()
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
