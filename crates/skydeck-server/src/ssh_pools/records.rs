//! What `ssh up` records in the database about how to reach a pool's hosts
//! (host, user, key path; never the sudo password), so that `ssh down`
//! still reaches them after the pool was deleted from the pool file (or a
//! host taken out of it): `down` works on the union of the file's hosts and
//! the recorded ones.

use crate::ops::{RequestContext, internal};
use crate::skypilot::exception;
use serde::{Deserialize, Serialize};
use skydeck_types::RequestError;
use skydeck_types::names::PoolName;
use skydeck_types::ssh_node_pools::{PoolHost, SshHost, SshUser};
use std::collections::BTreeMap;

/// One host as recorded: what reaching it takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RecordedHost {
    host: SshHost,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<SshUser>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    identity_file: Option<String>,
}

impl From<&PoolHost> for RecordedHost {
    fn from(host: &PoolHost) -> Self {
        Self {
            host: host.host.clone(),
            user: host.user.clone(),
            identity_file: host.identity_file.clone(),
        }
    }
}

impl From<RecordedHost> for PoolHost {
    fn from(host: RecordedHost) -> Self {
        Self {
            host: host.host,
            user: host.user,
            identity_file: host.identity_file,
            password: None,
        }
    }
}

fn encode(hosts: &[RecordedHost]) -> Result<String, RequestError> {
    serde_json::to_string(hosts).map_err(internal)
}

/// Serialises the read-modify-write of records: `up` records its hosts
/// concurrently.
static RECORDS_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Adds `hosts` to the pool's record (a host already there is updated):
/// a host `up` once reached stays recorded until `down` cleaned it.
pub async fn record(
    ctx: &RequestContext,
    pool: &PoolName,
    hosts: &[PoolHost],
) -> Result<(), RequestError> {
    let _guard = RECORDS_LOCK.lock().await;
    let mut merged: BTreeMap<SshHost, RecordedHost> = recorded(ctx)
        .await?
        .remove(pool)
        .unwrap_or_default()
        .into_iter()
        .map(|h| (h.host.clone(), RecordedHost::from(&h)))
        .collect();
    for host in hosts {
        merged.insert(host.host.clone(), RecordedHost::from(host));
    }
    let hosts: Vec<RecordedHost> = merged.into_values().collect();
    ctx.store
        .put_ssh_pool_record(pool.as_str(), &encode(&hosts)?, crate::executor::now())
        .await
        .map_err(internal)
}

/// After `down`: the record keeps only `left` (the hosts not reached), or
/// goes when every host was cleaned.
pub async fn keep_only(
    ctx: &RequestContext,
    pool: &PoolName,
    left: &[PoolHost],
) -> Result<(), RequestError> {
    let _guard = RECORDS_LOCK.lock().await;
    if left.is_empty() {
        ctx.store
            .delete_ssh_pool_record(pool.as_str())
            .await
            .map_err(internal)?;
        return Ok(());
    }
    let hosts: Vec<RecordedHost> = left.iter().map(RecordedHost::from).collect();
    ctx.store
        .put_ssh_pool_record(pool.as_str(), &encode(&hosts)?, crate::executor::now())
        .await
        .map_err(internal)
}

/// Every recorded pool's hosts. A record this version cannot read is
/// skipped with a line in the request's log rather than failing `down`.
async fn recorded(ctx: &RequestContext) -> Result<BTreeMap<PoolName, Vec<PoolHost>>, RequestError> {
    let mut pools = BTreeMap::new();
    for (pool, hosts) in ctx.store.list_ssh_pool_records().await.map_err(internal)? {
        let parsed = PoolName::new(pool.as_str())
            .map_err(|e| e.to_string())
            .and_then(|name| {
                serde_json::from_str::<Vec<RecordedHost>>(&hosts)
                    .map(|hosts| (name, hosts))
                    .map_err(|e| e.to_string())
            });
        match parsed {
            Ok((name, hosts)) => {
                pools.insert(name, hosts.into_iter().map(PoolHost::from).collect());
            }
            Err(e) => ctx.log.line(&format!(
                "Warning: the record of pool {pool:?} is unreadable ({e}): skipped"
            )),
        }
    }
    Ok(pools)
}

/// The pools `down` takes down (`infra`: one, else all) with their hosts:
/// the pool file's, then any recorded at `up` that the file no longer
/// lists, so a pool deleted from the file can still be taken down.
pub async fn down_targets(
    ctx: &RequestContext,
    infra: Option<&str>,
) -> Result<Vec<(PoolName, Vec<PoolHost>)>, RequestError> {
    let home = ctx.infra.home();
    let file = super::load(home).map_err(|e| RequestError::new(exception::VALUE_ERROR, e))?;
    let mut pools: BTreeMap<PoolName, Vec<PoolHost>> = file
        .pools
        .into_iter()
        .map(|(name, pool)| (name, pool.hosts().0))
        .collect();
    for (name, hosts) in recorded(ctx).await? {
        let known = pools.entry(name).or_default();
        for host in hosts {
            if !known.iter().any(|k| k.host == host.host) {
                known.push(host);
            }
        }
    }
    let path = super::pool_file(home).map_or_else(
        || home.join("ssh_node_pools.yaml").display().to_string(),
        |p| p.display().to_string(),
    );
    if pools.is_empty() {
        return Err(RequestError::new(
            exception::VALUE_ERROR,
            format!(
                "No SSH Node Pools are defined or set up: write them in {path} (SkyPilot's format)."
            ),
        ));
    }
    let Some(name) = infra.map(|i| i.strip_prefix("ssh/").unwrap_or(i)) else {
        return Ok(pools.into_iter().collect());
    };
    let known: Vec<String> = pools.keys().map(|p| p.to_string()).collect();
    PoolName::new(name)
        .ok()
        .and_then(|n| pools.remove(&n).map(|hosts| vec![(n, hosts)]))
        .ok_or_else(|| {
            RequestError::new(
                exception::VALUE_ERROR,
                format!(
                    "No SSH Node Pool {name:?} in {path} nor set up on this server; its pools are: {}.",
                    known.join(", ")
                ),
            )
        })
}
