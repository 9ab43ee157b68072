//! The store, timed: every call's latency goes to
//! `skydeck_db_query_duration_seconds{op}`, labelled with the method name.

use super::Metrics;
use async_trait::async_trait;
use skydeck_store::{
    ClusterRecord, ClusterStatus, Decide, Dialect, EndedCluster, ManagedJob, ManagedJobFilter,
    ManagedJobPage, ManagedTask, NewManagedJob, NewRequest, Outcome, RequestFilter, RequestRecord,
    Result, Role, ServerInfo, Store, StoredConfig, TokenRecord, User,
};
use skydeck_types::placement::{Allocation, Host};
use skydeck_types::{RequestStatus, ScheduleType};
use std::sync::Arc;
use std::time::Instant;

/// Wraps a store and times each call.
pub struct InstrumentedStore {
    inner: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl InstrumentedStore {
    pub fn new(inner: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

/// Writes the delegating methods: one line per `Store` method, so a method
/// added to the trait fails to compile here until it is listed.
macro_rules! timed {
    ($(fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)*) => {
        #[async_trait]
        impl Store for InstrumentedStore {
            fn dialect(&self) -> Dialect {
                self.inner.dialect()
            }
            $(
                async fn $name(&self $(, $arg: $ty)*) -> $ret {
                    let started = Instant::now();
                    let result = self.inner.$name($($arg),*).await;
                    self.metrics.observe_db(stringify!($name), started.elapsed());
                    result
                }
            )*
        }
    };
}

timed! {
    fn upsert_user(&self, user: &User) -> Result<()>;
    fn get_user(&self, id: &str) -> Result<Option<User>>;
    fn get_user_by_name(&self, name: &str) -> Result<Option<User>>;
    fn list_users(&self) -> Result<Vec<User>>;
    fn set_user_role(&self, id: &str, role: Role) -> Result<bool>;
    fn set_password_hash(&self, id: &str, hash: Option<&str>) -> Result<bool>;
    fn password_hash(&self, id: &str) -> Result<Option<String>>;
    fn delete_user(&self, id: &str, now: f64) -> Result<bool>;
    fn server_user_id(&self, proposed: &str) -> Result<String>;
    fn shared_secret(&self, name: &str, proposed: &str) -> Result<String>;
    fn insert_token(&self, token: &TokenRecord) -> Result<()>;
    fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>>;
    fn list_tokens(&self, user_id: Option<&str>) -> Result<Vec<TokenRecord>>;
    fn revoke_token(&self, id: &str, now: f64) -> Result<bool>;
    fn touch_token(&self, id: &str, now: f64) -> Result<()>;
    fn insert_request(&self, request: &NewRequest) -> Result<()>;
    fn insert_running_request(&self, request: &NewRequest, server_id: &str, now: f64) -> Result<RequestRecord>;
    fn insert_finished_request(&self, request: &NewRequest, started_at: f64, outcome: &Outcome, finished_at: f64) -> Result<RequestRecord>;
    fn get_request(&self, id: &str) -> Result<Option<RequestRecord>>;
    fn request_ids_with_prefix(&self, prefix: &str, user_id: Option<&str>, limit: u32) -> Result<Vec<String>>;
    fn list_requests(&self, filter: &RequestFilter) -> Result<Vec<RequestRecord>>;
    fn count_requests(&self, filter: &RequestFilter) -> Result<u64>;
    fn claim_next(&self, schedule: ScheduleType, server_id: &str, now: f64) -> Result<Option<RequestRecord>>;
    fn finish_request(&self, id: &str, server_id: &str, outcome: &Outcome, now: f64) -> Result<Option<RequestRecord>>;
    fn requeue_request(&self, id: &str, server_id: &str, note: &str) -> Result<bool>;
    fn cancel_request(&self, id: &str, now: f64) -> Result<Option<RequestStatus>>;
    fn request_statuses(&self, ids: &[String]) -> Result<Vec<(String, RequestStatus)>>;
    fn active_request_counts(&self) -> Result<Vec<(ScheduleType, RequestStatus, i64)>>;
    fn delete_finished_requests(&self, before: f64, limit: u32) -> Result<Vec<String>>;
    fn put_cluster(&self, cluster: &ClusterRecord) -> Result<()>;
    fn claim_cluster(&self, cluster: &ClusterRecord) -> Result<ClusterRecord>;
    fn get_cluster(&self, name: &str) -> Result<Option<ClusterRecord>>;
    fn list_clusters(&self, user_id: Option<&str>) -> Result<Vec<ClusterRecord>>;
    fn set_cluster_status(&self, name: &str, status: ClusterStatus, now: f64) -> Result<bool>;
    fn set_cluster_autostop(&self, name: &str, minutes: i64, down: bool) -> Result<bool>;
    fn delete_cluster(&self, name: &str, now: f64) -> Result<bool>;
    fn list_ended_clusters(&self, user_id: Option<&str>, since: Option<f64>) -> Result<Vec<EndedCluster>>;
    fn put_host(&self, host: &Host) -> Result<()>;
    fn list_hosts(&self, pool: &str) -> Result<Vec<Host>>;
    fn delete_host(&self, id: &str) -> Result<bool>;
    fn list_allocations(&self, pool: &str) -> Result<Vec<Allocation>>;
    fn place_cluster(&self, pool: &str, cluster: &str, decide: &Decide<'_>) -> Result<std::result::Result<Vec<Allocation>, String>>;
    fn release_cluster(&self, cluster: &str) -> Result<u64>;
    fn put_ssh_pool_record(&self, pool: &str, hosts: &str, now: f64) -> Result<()>;
    fn list_ssh_pool_records(&self) -> Result<Vec<(String, String)>>;
    fn delete_ssh_pool_record(&self, pool: &str) -> Result<bool>;
    fn insert_managed_job(&self, job: &NewManagedJob) -> Result<i64>;
    fn get_managed_job(&self, job_id: i64) -> Result<Option<ManagedJob>>;
    fn list_managed_jobs(&self, user_id: Option<&str>) -> Result<Vec<ManagedJob>>;
    fn list_active_managed_jobs(&self, user_id: Option<&str>) -> Result<Vec<ManagedJob>>;
    fn page_managed_jobs(&self, filter: &ManagedJobFilter, offset: u64, limit: u64) -> Result<ManagedJobPage>;
    fn managed_cluster_names(&self) -> Result<Vec<String>>;
    fn managed_job_dag(&self, job_id: i64) -> Result<Option<String>>;
    fn claim_managed_jobs(&self, server_id: &str, now: f64, until: f64, limit: u32) -> Result<Vec<i64>>;
    fn update_managed_task(&self, server_id: &str, task: &ManagedTask) -> Result<bool>;
    fn finish_managed_job(&self, server_id: &str, job_id: i64) -> Result<bool>;
    fn cancel_managed_job(&self, job_id: i64) -> Result<bool>;
    fn release_managed_jobs(&self, server_id: &str) -> Result<u64>;
    fn register_server(&self, server: &ServerInfo) -> Result<()>;
    fn heartbeat_server(&self, id: &str, now: f64) -> Result<()>;
    fn remove_server(&self, id: &str) -> Result<()>;
    fn list_servers(&self) -> Result<Vec<ServerInfo>>;
    fn server_config(&self) -> Result<Option<StoredConfig>>;
    fn server_config_version(&self) -> Result<i64>;
    fn put_server_config(&self, yaml: &str, updated_by: &str, now: f64) -> Result<i64>;
    fn checkpoint(&self) -> Result<()>;
}
