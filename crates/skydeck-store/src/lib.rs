//! Skydeck's durable state.
//!
//! [`Store`] is the one interface the server uses. [`SqlStore`] implements it
//! for SQLite (the embedded default) and PostgreSQL (for teams and replicas)
//! with the same portable SQL; the few dialect differences live in
//! [`sql::Dialect`]. The conformance suite in `tests/` runs every method
//! against both.

mod error;
mod history;
mod managed_jobs;
mod migrate;
mod model;
mod sql;

pub use error::StoreError;
pub use model::{
    ClusterRecord, ClusterStatus, EndedCluster, ManagedJob, ManagedJobFilter, ManagedJobPage,
    ManagedTask, NewManagedJob, NewRequest, Outcome, RequestFilter, RequestRecord, Role,
    ServerInfo, StoredConfig, TokenRecord, User,
};
pub use sql::{Dialect, SqlStore};

use async_trait::async_trait;
use skydeck_types::placement::{Allocation, Host};
use skydeck_types::{RequestStatus, ScheduleType};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Decides where a cluster's nodes go, given a pool's hosts and what the
/// other clusters hold there: the cluster's allocations, or why it does
/// not fit. Run by [`Store::place_cluster`] inside its transaction.
pub type Decide<'a> = dyn Fn(&[Host], &[Allocation]) -> std::result::Result<Vec<Allocation>, String>
    + Send
    + Sync
    + 'a;

/// Everything Skydeck persists. Every write is a single statement, so a crash
/// between two calls never leaves a half-written row.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which database this is, for logs and `api info`.
    fn dialect(&self) -> Dialect;

    // ---- users
    /// Creates the user or renames it; `created_at` and `role` of an
    /// existing user stay.
    async fn upsert_user(&self, user: &User) -> Result<()>;
    async fn get_user(&self, id: &str) -> Result<Option<User>>;
    /// The user called `name`: one with a password first, else the oldest.
    async fn get_user_by_name(&self, name: &str) -> Result<Option<User>>;
    async fn list_users(&self) -> Result<Vec<User>>;
    /// False when there is no such user.
    async fn set_user_role(&self, id: &str, role: Role) -> Result<bool>;
    /// Sets (or, with None, removes) the user's password hash.
    async fn set_password_hash(&self, id: &str, hash: Option<&str>) -> Result<bool>;
    async fn password_hash(&self, id: &str) -> Result<Option<String>>;
    /// Deletes the user and revokes every token of theirs, at once.
    async fn delete_user(&self, id: &str, now: f64) -> Result<bool>;
    /// The id of the API servers' own user on this database: the one
    /// recorded first, else `proposed`, recorded now. Servers starting at
    /// once on one database get the same answer.
    async fn server_user_id(&self, proposed: &str) -> Result<String>;
    /// The secret called `name` every server on this database shares: the
    /// one recorded first, else `proposed`, recorded now.
    async fn shared_secret(&self, name: &str, proposed: &str) -> Result<String>;

    // ---- service-account tokens
    async fn insert_token(&self, token: &TokenRecord) -> Result<()>;
    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>>;
    /// Every token, or one user's; newest first.
    async fn list_tokens(&self, user_id: Option<&str>) -> Result<Vec<TokenRecord>>;
    /// False when there is no such token or it was revoked already.
    async fn revoke_token(&self, id: &str, now: f64) -> Result<bool>;
    async fn touch_token(&self, id: &str, now: f64) -> Result<()>;

    // ---- requests
    async fn insert_request(&self, request: &NewRequest) -> Result<()>;
    /// Inserts a request already claimed by `server_id`: RUNNING since `now`,
    /// on its first attempt. For a server with a free worker, which thereby
    /// skips the queue and the claim.
    async fn insert_running_request(
        &self,
        request: &NewRequest,
        server_id: &str,
        now: f64,
    ) -> Result<RequestRecord>;
    /// Inserts a request that the accepting server already ran to the end:
    /// it is stored finished, in the one write that accepts it.
    async fn insert_finished_request(
        &self,
        request: &NewRequest,
        started_at: f64,
        outcome: &Outcome,
        finished_at: f64,
    ) -> Result<RequestRecord>;
    async fn get_request(&self, id: &str) -> Result<Option<RequestRecord>>;
    /// Ids that start with `prefix`, newest first, at most `limit`, limited to
    /// one user's requests when `user_id` is given.
    async fn request_ids_with_prefix(
        &self,
        prefix: &str,
        user_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>>;
    /// Matching requests, newest first.
    async fn list_requests(&self, filter: &RequestFilter) -> Result<Vec<RequestRecord>>;
    /// How many requests `filter` selects, its limit and offset aside.
    async fn count_requests(&self, filter: &RequestFilter) -> Result<u64>;
    /// Atomically moves the oldest PENDING request of `schedule` to RUNNING,
    /// owned by `server_id`. Several servers may call this concurrently; each
    /// request is handed to exactly one.
    async fn claim_next(
        &self,
        schedule: ScheduleType,
        server_id: &str,
        now: f64,
    ) -> Result<Option<RequestRecord>>;
    /// Records the outcome of a RUNNING request owned by `server_id` and
    /// returns the finished request. Returns `None` (and changes nothing) if
    /// the request is no longer RUNNING there, e.g. because it was cancelled
    /// meanwhile.
    async fn finish_request(
        &self,
        id: &str,
        server_id: &str,
        outcome: &Outcome,
        now: f64,
    ) -> Result<Option<RequestRecord>>;
    /// Puts a RUNNING request owned by `server_id` back to PENDING so that a
    /// server runs it again; `note` is shown as its status message.
    async fn requeue_request(&self, id: &str, server_id: &str, note: &str) -> Result<bool>;
    /// Cancels a PENDING or RUNNING request and returns the status it had;
    /// `None` if it does not exist or had already finished.
    async fn cancel_request(&self, id: &str, now: f64) -> Result<Option<RequestStatus>>;
    /// Statuses of the given requests, for executors watching for
    /// cancellations made through another replica.
    async fn request_statuses(&self, ids: &[String]) -> Result<Vec<(String, RequestStatus)>>;
    /// How many requests are waiting or running, per pool and status (only
    /// pairs with at least one request): the queue depth metrics.
    async fn active_request_counts(&self) -> Result<Vec<(ScheduleType, RequestStatus, i64)>>;
    /// Deletes up to `limit` finished requests (succeeded, failed or
    /// cancelled) that finished before `before`, oldest first, and returns
    /// their ids so that what they left on disk (logs) can go too. Requests
    /// that are not finished are never deleted, however old.
    async fn delete_finished_requests(&self, before: f64, limit: u32) -> Result<Vec<String>>;

    // ---- clusters
    /// Creates the cluster or replaces every field of it.
    async fn put_cluster(&self, cluster: &ClusterRecord) -> Result<()>;
    /// Claims the name `cluster.name` for `cluster.user_id` in one atomic
    /// step: creates the row unless one of that name exists, and returns
    /// the row as stored, `cluster` itself or the one that was there (whose
    /// `user_id` is the owner). Of any number of concurrent claims of one
    /// name, on any number of servers, exactly one creates it.
    async fn claim_cluster(&self, cluster: &ClusterRecord) -> Result<ClusterRecord>;
    async fn get_cluster(&self, name: &str) -> Result<Option<ClusterRecord>>;
    /// Clusters by name, limited to one user's when `user_id` is given.
    async fn list_clusters(&self, user_id: Option<&str>) -> Result<Vec<ClusterRecord>>;
    /// Sets the status (and the time it changed); false if no such cluster.
    async fn set_cluster_status(&self, name: &str, status: ClusterStatus, now: f64)
    -> Result<bool>;
    /// Sets autostop; false if no such cluster.
    async fn set_cluster_autostop(&self, name: &str, minutes: i64, down: bool) -> Result<bool>;
    /// Forgets the cluster; false if there was none. One that was ever UP
    /// stays in the history, ended at `now`.
    async fn delete_cluster(&self, name: &str, now: f64) -> Result<bool>;
    /// Clusters torn down, newest end first, limited to one user's when
    /// `user_id` is given and to those that ended at or after `since`.
    /// A cluster is in the history from its first UP (`put_cluster` or
    /// `set_cluster_status` with UP), listed here once it has ended.
    async fn list_ended_clusters(
        &self,
        user_id: Option<&str>,
        since: Option<f64>,
    ) -> Result<Vec<EndedCluster>>;

    // ---- placement on the hosts we place work on ourselves
    /// Records a host with its capacity, or updates a recorded host's
    /// capacity; what is placed on it stays.
    async fn put_host(&self, host: &Host) -> Result<()>;
    /// The hosts of `pool`, by id.
    async fn list_hosts(&self, pool: &str) -> Result<Vec<Host>>;
    /// Forgets a host (`ssh down`); false if there was none. The caller
    /// makes sure nothing is placed on it.
    async fn delete_host(&self, id: &str) -> Result<bool>;
    /// What clusters hold on the hosts of `pool`, by cluster and node rank.
    async fn list_allocations(&self, pool: &str) -> Result<Vec<Allocation>>;
    /// Places the recorded cluster `cluster` on the hosts of `pool` in one
    /// transaction: reads the hosts (locked against other placements on the
    /// pool) and every allocation on them, asks `decide`, and records what
    /// it returns. Of any number of concurrent placements, on any number of
    /// servers, each sees the others' allocations: nothing is double-booked.
    /// A cluster that holds allocations already gets them back unchanged
    /// (a launch run again after a crash keeps its GPUs). The inner `Err`
    /// is `decide`'s reason, with nothing recorded.
    async fn place_cluster(
        &self,
        pool: &str,
        cluster: &str,
        decide: &Decide<'_>,
    ) -> Result<std::result::Result<Vec<Allocation>, String>>;
    /// Releases everything the cluster holds (deleting the cluster does
    /// too); returns how many nodes' allocations went.
    async fn release_cluster(&self, cluster: &str) -> Result<u64>;

    // ---- SSH node pools set up (`ssh up`), for `ssh down`
    /// Records (or replaces) how to reach the hosts of SSH node pool
    /// `pool`, as JSON the caller owns.
    async fn put_ssh_pool_record(&self, pool: &str, hosts: &str, now: f64) -> Result<()>;
    /// Every recorded pool and its hosts' JSON, by pool name.
    async fn list_ssh_pool_records(&self) -> Result<Vec<(String, String)>>;
    /// Forgets a pool's record; false if there was none.
    async fn delete_ssh_pool_record(&self, pool: &str) -> Result<bool>;

    // ---- managed jobs
    /// Records a new managed job, its tasks PENDING, and returns its id:
    /// one more than the largest so far. For a request that submitted a
    /// job already, returns that job's id and records nothing.
    async fn insert_managed_job(&self, job: &NewManagedJob) -> Result<i64>;
    async fn get_managed_job(&self, job_id: i64) -> Result<Option<ManagedJob>>;
    /// Jobs newest first with their tasks, limited to one user's when
    /// `user_id` is given.
    async fn list_managed_jobs(&self, user_id: Option<&str>) -> Result<Vec<ManagedJob>>;
    /// [`Store::list_managed_jobs`] of the jobs not done: what `sky status`
    /// and `--skip-finished` read, without the history.
    async fn list_active_managed_jobs(&self, user_id: Option<&str>) -> Result<Vec<ManagedJob>>;
    /// Jobs `offset..offset + limit` of those `filter` selects, newest
    /// first, with the selection's job count and task counts by status:
    /// paged in the database, so a long history costs only the page.
    async fn page_managed_jobs(
        &self,
        filter: &ManagedJobFilter,
        offset: u64,
        limit: u64,
    ) -> Result<ManagedJobPage>;
    /// The clusters of jobs not done: hidden from `status`, as SkyPilot
    /// hides its managed jobs' clusters.
    async fn managed_cluster_names(&self) -> Result<Vec<String>>;
    /// The job's tasks as accepted (secrets included).
    async fn managed_job_dag(&self, job_id: i64) -> Result<Option<String>>;
    /// Takes (or renews) the lease until `until` on up to `limit` jobs that
    /// are not done and that no server holds at `now` (or that `server_id`
    /// holds); returns their ids. Of servers claiming at once, each job
    /// goes to exactly one.
    async fn claim_managed_jobs(
        &self,
        server_id: &str,
        now: f64,
        until: f64,
        limit: u32,
    ) -> Result<Vec<i64>>;
    /// Writes a task's progress, only while `server_id` holds its job's
    /// lease and the job is not done; false otherwise (stop driving it).
    async fn update_managed_task(&self, server_id: &str, task: &ManagedTask) -> Result<bool>;
    /// Marks the job done and drops its lease, if `server_id` holds it.
    async fn finish_managed_job(&self, server_id: &str, job_id: i64) -> Result<bool>;
    /// Asks the job's driver to cancel it; false if it is done or unknown.
    async fn cancel_managed_job(&self, job_id: i64) -> Result<bool>;
    /// Gives up every lease `server_id` holds (a server shutting down), so
    /// that another server takes its jobs at once.
    async fn release_managed_jobs(&self, server_id: &str) -> Result<u64>;

    // ---- API server processes
    async fn register_server(&self, server: &ServerInfo) -> Result<()>;
    async fn heartbeat_server(&self, id: &str, now: f64) -> Result<()>;
    async fn remove_server(&self, id: &str) -> Result<()>;
    async fn list_servers(&self) -> Result<Vec<ServerInfo>>;

    // ---- the shared server config
    /// The config replicas share, if one was ever stored.
    async fn server_config(&self) -> Result<Option<StoredConfig>>;
    /// Just the version of the stored config (0 when none): a cheap check
    /// for a change made through another replica.
    async fn server_config_version(&self) -> Result<i64>;
    /// Replaces the config; returns its new version.
    async fn put_server_config(&self, yaml: &str, updated_by: &str, now: f64) -> Result<i64>;

    // ---- upkeep
    /// Compacts what the database keeps beside its main file (SQLite's
    /// write-ahead log); servers call it periodically.
    async fn checkpoint(&self) -> Result<()>;
}
