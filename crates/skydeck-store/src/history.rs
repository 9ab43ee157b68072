//! The cluster history (`cluster_history`): every cluster that was ever
//! UP, kept after `down` so that `sky cost-report` can list it. A row is
//! a copy of the cluster's row, refreshed on each write while the cluster
//! exists and stamped with `ended_at` when it is deleted.

use crate::Result;
use crate::sql::CLUSTER_COLUMNS;
use sqlx::AnyConnection;

/// Copies the cluster's row (if it was ever UP) into the history, ended at
/// `ended_at` (`None` while it exists). Runs on the caller's connection,
/// in the caller's transaction, before the row is deleted.
pub(crate) async fn record(
    conn: &mut AnyConnection,
    name: &str,
    ended_at: Option<f64>,
) -> Result<()> {
    let updates: Vec<String> = CLUSTER_COLUMNS
        .split(',')
        .map(str::trim)
        .filter(|column| *column != "cluster_hash")
        .map(|column| format!("{column} = excluded.{column}"))
        .collect();
    // The SELECT's WHERE also settles SQLite's parse of INSERT … SELECT …
    // ON CONFLICT.
    let sql = format!(
        "INSERT INTO cluster_history ({CLUSTER_COLUMNS}) \
         SELECT {CLUSTER_COLUMNS} FROM clusters WHERE name = $1 AND ever_up = 1 \
         ON CONFLICT (cluster_hash) DO UPDATE SET {}",
        updates.join(", ")
    );
    sqlx::query(&sql).bind(name).execute(&mut *conn).await?;
    if let Some(ended_at) = ended_at {
        sqlx::query(
            "UPDATE cluster_history SET ended_at = $1 \
             WHERE cluster_hash IN (SELECT cluster_hash FROM clusters WHERE name = $2)",
        )
        .bind(ended_at)
        .bind(name)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The query for the ended clusters, with the filters that are set as
/// parameters from `$1`.
pub(crate) fn ended_query(by_user: bool, since: bool) -> String {
    let mut sql = format!(
        "SELECT {CLUSTER_COLUMNS}, ended_at FROM cluster_history WHERE ended_at IS NOT NULL"
    );
    let mut next = 1;
    if by_user {
        sql.push_str(&format!(" AND user_id = ${next}"));
        next += 1;
    }
    if since {
        sql.push_str(&format!(" AND ended_at >= ${next}"));
    }
    sql.push_str(" ORDER BY ended_at DESC, cluster_hash");
    sql
}
