//! The managed-jobs tables (`0009_managed_jobs.sql`): the SQL behind the
//! managed-job methods of [`Store`](crate::Store).
//!
//! A job is driven by one server at a time: the one holding its lease. Every
//! write of the controller's progress is conditional on still holding it,
//! so a server that lost its lease (it stalled, another took the job over)
//! learns so from its next write and stops.

use crate::model::{ManagedJob, ManagedJobFilter, ManagedJobPage, ManagedTask, NewManagedJob};
use crate::sql::{SqlStore, corrupt};
use crate::{Result, StoreError};
use skydeck_types::managed_jobs::{ManagedJobStatus, ScheduleState};
use sqlx::Any;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Connection, Row};
use std::collections::BTreeMap;
use std::str::FromStr;

const JOB_COLUMNS: &str = "job_id, name, user_id, workspace, file_mounts_blob, entrypoint, \
     submitted_at, cancel_requested, done, lease_owner, lease_until";

const TASK_COLUMNS: &str = "job_id, task_id, task_name, resources, status, schedule_state, \
     start_at, end_at, run_seconds, last_started_at, recovery_count, restarts, attempt, \
     cluster_name, cluster_job_id, infra, failure_reason";

/// Tries at allocating a job id before giving up: ids are the largest
/// plus one, so two servers inserting at the same moment on PostgreSQL can
/// pick the same; the loser tries again.
const ID_ATTEMPTS: usize = 8;

/// Jobs whose tasks one query of a page reads.
const TASK_CHUNK: usize = 500;

impl SqlStore {
    pub(crate) async fn insert_managed_job_sql(&self, job: &NewManagedJob) -> Result<i64> {
        for _ in 0..ID_ATTEMPTS {
            match self.try_insert_managed_job(job).await {
                Err(StoreError::Database(sqlx::Error::Database(err)))
                    if err.is_unique_violation() =>
                {
                    continue;
                }
                other => return other,
            }
        }
        Err(corrupt(
            "managed_jobs",
            "could not allocate a job id: too many concurrent inserts",
        ))
    }

    async fn try_insert_managed_job(&self, job: &NewManagedJob) -> Result<i64> {
        let mut conn = self.write().await?;
        let mut tx = conn.begin().await?;
        let submitted = sqlx::query("SELECT job_id FROM managed_jobs WHERE request_id = $1")
            .bind(&job.request_id)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = submitted {
            tx.commit().await?;
            return Ok(row.try_get("job_id")?);
        }
        let row = sqlx::query(
            "INSERT INTO managed_jobs (job_id, request_id, name, user_id, workspace, dag_yaml, \
             file_mounts_blob, entrypoint, submitted_at, cancel_requested, done) \
             SELECT COALESCE(MAX(job_id), 0) + 1, $8, $1, $2, $3, $4, $5, $6, $7, 0, 0 \
             FROM managed_jobs RETURNING job_id",
        )
        .bind(&job.name)
        .bind(&job.user_id)
        .bind(&job.workspace)
        .bind(&job.dag_yaml)
        .bind(job.file_mounts_blob.as_deref())
        .bind(&job.entrypoint)
        .bind(job.submitted_at)
        .bind(&job.request_id)
        .fetch_one(&mut *tx)
        .await?;
        let job_id: i64 = row.try_get("job_id")?;
        for (task_id, (name, resources)) in job.tasks.iter().enumerate() {
            sqlx::query(
                "INSERT INTO managed_job_tasks (job_id, task_id, task_name, resources, status, \
                 schedule_state) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(job_id)
            .bind(task_id as i64)
            .bind(name)
            .bind(resources)
            .bind(ManagedJobStatus::Pending.as_str())
            .bind(ScheduleState::Waiting.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(job_id)
    }

    pub(crate) async fn get_managed_job_sql(&self, job_id: i64) -> Result<Option<ManagedJob>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM managed_jobs WHERE job_id = $1");
        let Some(row) = sqlx::query(&sql)
            .bind(job_id)
            .fetch_optional(self.reader())
            .await?
        else {
            return Ok(None);
        };
        let mut job = decode_job(&row)?;
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM managed_job_tasks WHERE job_id = $1 ORDER BY task_id"
        );
        job.tasks = sqlx::query(&sql)
            .bind(job_id)
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(decode_task)
            .collect::<Result<_>>()?;
        Ok(Some(job))
    }

    pub(crate) async fn list_managed_jobs_sql(
        &self,
        user_id: Option<&str>,
        active_only: bool,
    ) -> Result<Vec<ManagedJob>> {
        let active = if active_only { " AND done = 0" } else { "" };
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM managed_jobs WHERE ($1 IS NULL OR user_id = $1){active} \
             ORDER BY job_id DESC"
        );
        let mut jobs: Vec<ManagedJob> = sqlx::query(&sql)
            .bind(user_id)
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(decode_job)
            .collect::<Result<_>>()?;
        let active = if active_only { " AND j.done = 0" } else { "" };
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM managed_job_tasks t WHERE EXISTS (SELECT 1 FROM \
             managed_jobs j WHERE j.job_id = t.job_id AND ($1 IS NULL OR j.user_id = $1){active}) \
             ORDER BY job_id, task_id"
        );
        let mut tasks: BTreeMap<i64, Vec<ManagedTask>> = BTreeMap::new();
        for row in sqlx::query(&sql)
            .bind(user_id)
            .fetch_all(self.reader())
            .await?
        {
            let task = decode_task(&row)?;
            tasks.entry(task.job_id).or_default().push(task);
        }
        for job in &mut jobs {
            job.tasks = tasks.remove(&job.job_id).unwrap_or_default();
        }
        Ok(jobs)
    }

    pub(crate) async fn page_managed_jobs_sql(
        &self,
        filter: &ManagedJobFilter,
        offset: u64,
        limit: u64,
    ) -> Result<ManagedJobPage> {
        let (condition, values) = selection("j", filter);
        let bind = |sql| bound(sql, &values);
        let sql = format!("SELECT COUNT(*) AS n FROM managed_jobs j WHERE {condition}");
        let total: i64 = bind(&sql).fetch_one(self.reader()).await?.try_get("n")?;
        let sql = format!(
            "SELECT t.status AS status, COUNT(*) AS n FROM managed_job_tasks t JOIN managed_jobs j \
             ON j.job_id = t.job_id WHERE {condition} GROUP BY t.status ORDER BY t.status"
        );
        let mut status_counts = Vec::new();
        for row in bind(&sql).fetch_all(self.reader()).await? {
            let status: String = row.try_get("status")?;
            let count: i64 = row.try_get("n")?;
            let status =
                ManagedJobStatus::from_str(&status).map_err(|e| corrupt("managed_job_tasks", e))?;
            status_counts.push((status, u64::try_from(count).unwrap_or(0)));
        }
        let (limit, offset) = (
            i64::try_from(limit).unwrap_or(i64::MAX),
            i64::try_from(offset).unwrap_or(i64::MAX),
        );
        let next = values.len() + 1;
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM managed_jobs j WHERE {condition} ORDER BY job_id DESC \
             LIMIT ${next} OFFSET ${}",
            next + 1
        );
        let mut jobs: Vec<ManagedJob> = bind(&sql)
            .bind(limit)
            .bind(offset)
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(decode_job)
            .collect::<Result<_>>()?;
        let mut tasks: BTreeMap<i64, Vec<ManagedTask>> = BTreeMap::new();
        // Ids from our own rows, written as numbers: nothing to escape.
        for chunk in jobs.chunks(TASK_CHUNK) {
            let ids: Vec<String> = chunk.iter().map(|job| job.job_id.to_string()).collect();
            let sql = format!(
                "SELECT {TASK_COLUMNS} FROM managed_job_tasks WHERE job_id IN ({}) \
                 ORDER BY job_id, task_id",
                ids.join(", ")
            );
            for row in sqlx::query(&sql)
                .persistent(false)
                .fetch_all(self.reader())
                .await?
            {
                let task = decode_task(&row)?;
                tasks.entry(task.job_id).or_default().push(task);
            }
        }
        for job in &mut jobs {
            job.tasks = tasks.remove(&job.job_id).unwrap_or_default();
        }
        Ok(ManagedJobPage {
            jobs,
            total: u64::try_from(total).unwrap_or(0),
            status_counts,
        })
    }

    pub(crate) async fn managed_cluster_names_sql(&self) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT DISTINCT t.cluster_name FROM managed_job_tasks t JOIN managed_jobs j \
             ON j.job_id = t.job_id WHERE j.done = 0 AND t.cluster_name IS NOT NULL \
             ORDER BY t.cluster_name",
        )
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|row| row.try_get("cluster_name").map_err(Into::into))
            .collect()
    }

    pub(crate) async fn managed_job_dag_sql(&self, job_id: i64) -> Result<Option<String>> {
        let row = sqlx::query("SELECT dag_yaml FROM managed_jobs WHERE job_id = $1")
            .bind(job_id)
            .fetch_optional(self.reader())
            .await?;
        row.map(|row| row.try_get("dag_yaml").map_err(Into::into))
            .transpose()
    }

    pub(crate) async fn claim_managed_jobs_sql(
        &self,
        server_id: &str,
        now: f64,
        until: f64,
        limit: u32,
    ) -> Result<Vec<i64>> {
        // The inner select picks jobs no live server holds (or ours, which
        // renews them); on PostgreSQL it skips rows another server is
        // claiming at this moment, so each job goes to one.
        let sql = format!(
            "UPDATE managed_jobs SET lease_owner = $1, lease_until = $2 WHERE job_id IN \
             (SELECT job_id FROM managed_jobs WHERE done = 0 AND (lease_owner IS NULL OR \
             lease_owner = $1 OR lease_until < $3) ORDER BY job_id LIMIT $4{}) \
             RETURNING job_id",
            self.dialect.skip_locked()
        );
        let rows = sqlx::query(&sql)
            .bind(server_id)
            .bind(until)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&mut *self.write().await?)
            .await?;
        let mut ids: Vec<i64> = rows
            .iter()
            .map(|row| row.try_get("job_id"))
            .collect::<std::result::Result<_, _>>()?;
        ids.sort_unstable();
        Ok(ids)
    }

    pub(crate) async fn update_managed_task_sql(
        &self,
        server_id: &str,
        task: &ManagedTask,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE managed_job_tasks SET status = $3, schedule_state = $4, start_at = $5, \
             end_at = $6, run_seconds = $7, last_started_at = $8, recovery_count = $9, \
             restarts = $10, attempt = $11, cluster_name = $12, cluster_job_id = $13, \
             infra = $14, failure_reason = $15 \
             WHERE job_id = $1 AND task_id = $2 AND EXISTS (SELECT 1 FROM managed_jobs j \
             WHERE j.job_id = $1 AND j.lease_owner = $16 AND j.done = 0)",
        )
        .bind(task.job_id)
        .bind(task.task_id)
        .bind(task.status.as_str())
        .bind(task.schedule_state.as_str())
        .bind(task.start_at)
        .bind(task.end_at)
        .bind(task.run_seconds)
        .bind(task.last_started_at)
        .bind(task.recovery_count)
        .bind(task.restarts)
        .bind(task.attempt)
        .bind(task.cluster_name.as_deref())
        .bind(task.cluster_job_id)
        .bind(task.infra.as_deref())
        .bind(task.failure_reason.as_deref())
        .bind(server_id)
        // sqlx's Any driver sends a NULL DOUBLE to PostgreSQL typed as a
        // 4-byte float; a statement prepared with one then refuses the
        // 8-byte float of a later write ("incorrect binary data format").
        // Not caching the statement prepares it for each write's types.
        .persistent(false)
        .execute(&mut *self.write().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn finish_managed_job_sql(
        &self,
        server_id: &str,
        job_id: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE managed_jobs SET done = 1, lease_owner = NULL, lease_until = NULL \
             WHERE job_id = $1 AND lease_owner = $2 AND done = 0",
        )
        .bind(job_id)
        .bind(server_id)
        .execute(&mut *self.write().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn cancel_managed_job_sql(&self, job_id: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE managed_jobs SET cancel_requested = 1 WHERE job_id = $1 AND done = 0",
        )
        .bind(job_id)
        .execute(&mut *self.write().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn release_managed_jobs_sql(&self, server_id: &str) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE managed_jobs SET lease_owner = NULL, lease_until = NULL \
             WHERE lease_owner = $1",
        )
        .bind(server_id)
        .execute(&mut *self.write().await?)
        .await?;
        Ok(done.rows_affected())
    }
}

fn decode_job(row: &AnyRow) -> Result<ManagedJob> {
    Ok(ManagedJob {
        job_id: row.try_get("job_id")?,
        name: row.try_get("name")?,
        user_id: row.try_get("user_id")?,
        workspace: row.try_get("workspace")?,
        file_mounts_blob: row.try_get("file_mounts_blob")?,
        entrypoint: row.try_get("entrypoint")?,
        submitted_at: row.try_get("submitted_at")?,
        cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
        done: row.try_get::<i64, _>("done")? != 0,
        lease_owner: row.try_get("lease_owner")?,
        lease_until: row.try_get("lease_until")?,
        tasks: Vec::new(),
    })
}

/// `sql` with `values` bound to its first parameters. Not prepared once
/// and cached: the statement's shape varies with the filter.
fn bound<'q>(sql: &'q str, values: &[String]) -> Query<'q, Any, AnyArguments<'q>> {
    values
        .iter()
        .fold(sqlx::query(sql).persistent(false), |query, value| {
            query.bind(value.clone())
        })
}

/// The SQL condition on managed jobs (as `alias`) that `filter` selects,
/// and the values of its `$n` parameters in order.
fn selection(alias: &str, filter: &ManagedJobFilter) -> (String, Vec<String>) {
    let mut values = Vec::new();
    let mut parts = vec!["1 = 1".to_owned()];
    if let Some(user) = &filter.user_id {
        values.push(user.clone());
        parts.push(format!("{alias}.user_id = ${}", values.len()));
    }
    if filter.active_only {
        parts.push(format!("{alias}.done = 0"));
    }
    if let Some(workspaces) = &filter.workspaces {
        if workspaces.is_empty() {
            parts.push("1 = 0".to_owned());
        } else {
            let mut marks = Vec::new();
            for workspace in workspaces {
                values.push(workspace.clone());
                marks.push(format!("${}", values.len()));
            }
            parts.push(format!("{alias}.workspace IN ({})", marks.join(", ")));
        }
    }
    (parts.join(" AND "), values)
}

fn decode_task(row: &AnyRow) -> Result<ManagedTask> {
    let status: String = row.try_get("status")?;
    let schedule_state: String = row.try_get("schedule_state")?;
    Ok(ManagedTask {
        job_id: row.try_get("job_id")?,
        task_id: row.try_get("task_id")?,
        task_name: row.try_get("task_name")?,
        resources: row.try_get("resources")?,
        status: ManagedJobStatus::from_str(&status).map_err(|e| corrupt("managed_job_tasks", e))?,
        schedule_state: ScheduleState::from_str(&schedule_state)
            .map_err(|e| corrupt("managed_job_tasks", e))?,
        start_at: row.try_get("start_at")?,
        end_at: row.try_get("end_at")?,
        run_seconds: row.try_get("run_seconds")?,
        last_started_at: row.try_get("last_started_at")?,
        recovery_count: row.try_get("recovery_count")?,
        restarts: row.try_get("restarts")?,
        attempt: row.try_get("attempt")?,
        cluster_name: row.try_get("cluster_name")?,
        cluster_job_id: row.try_get("cluster_job_id")?,
        infra: row.try_get("infra")?,
        failure_reason: row.try_get("failure_reason")?,
    })
}
