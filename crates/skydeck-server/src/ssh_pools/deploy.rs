//! `ssh up` and `ssh down`: set a pool's hosts up for clusters (checked,
//! agent installed, capacity recorded) and take that away again.

use super::{host_id, placement_pool, pool_ssh, target};
use crate::ops::{OpResult, RequestContext, internal};
use crate::skypilot::exception;
use serde::{Deserialize, Serialize};
use skydeck_infra::ssh::{BinaryPlatform, HostFacts, Privilege, ProgramImage, SshPool, probe};
use skydeck_types::RequestError;
use skydeck_types::names::PoolName;
use skydeck_types::placement::{Gpu, Host};
use skydeck_types::ssh_node_pools::{NodePool, NodePools, PoolHost};

/// SkyPilot's `SSHUpBody`: `infra` is one pool (none: every pool).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SshUpBody {
    #[serde(flatten)]
    pub base: skydeck_types::bodies::BaseBody,
    pub infra: Option<String>,
    pub cleanup: bool,
}

/// The program's name on the hosts (`~/.skydeck/bin/<sha256>/skydeck`).
const AGENT_NAME: &str = "skydeck";

/// Pool set-up changes infrastructure every user shares: admins only.
async fn require_admin(ctx: &RequestContext, action: &str) -> Result<(), RequestError> {
    if ctx.sees_all_users().await? {
        return Ok(());
    }
    Err(RequestError::new(
        exception::PERMISSION_DENIED,
        format!(
            "Only admins can {action}: SSH Node Pools are shared by every user of the \
             server. Ask an admin to run it, or to make you one (`skydeck users set-role NAME admin`)."
        ),
    ))
}

/// The pools `infra` selects from the file, in the file's (name) order.
fn selected(
    ctx: &RequestContext,
    infra: Option<&str>,
) -> Result<Vec<(PoolName, NodePool)>, RequestError> {
    let home = ctx.infra.home();
    let pools: NodePools =
        super::load(home).map_err(|e| RequestError::new(exception::VALUE_ERROR, e))?;
    let file = super::pool_file(home).map_or_else(
        || home.join("ssh_node_pools.yaml").display().to_string(),
        |p| p.display().to_string(),
    );
    if pools.pools.is_empty() {
        return Err(RequestError::new(
            exception::VALUE_ERROR,
            format!("No SSH Node Pools are defined: write them in {file} (SkyPilot's format)."),
        ));
    }
    let infra = infra.map(|i| i.strip_prefix("ssh/").unwrap_or(i));
    match infra {
        None => Ok(pools.pools.into_iter().collect()),
        Some(name) => {
            let known: Vec<String> = pools.pools.keys().map(|p| p.to_string()).collect();
            let pool = PoolName::new(name)
                .ok()
                .and_then(|n| pools.pools.get(&n).cloned().map(|p| (n, p)));
            pool.map(|p| vec![p]).ok_or_else(|| {
                RequestError::new(
                    exception::VALUE_ERROR,
                    format!(
                        "No SSH Node Pool {name:?} in {file}; its pools are: {}.",
                        known.join(", ")
                    ),
                )
            })
        }
    }
}

pub async fn up(ctx: &RequestContext, body: SshUpBody) -> OpResult {
    require_admin(ctx, "set up SSH Node Pools").await?;
    let pools = selected(ctx, body.infra.as_deref())?;
    let names: Vec<String> = pools.iter().map(|(n, _)| n.to_string()).collect();
    ctx.log.line(&format!(
        "Found {} Node Pool{}: {}",
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        names.join(", ")
    ));
    // Read and hashed once for every host of every pool.
    let agent = ProgramImage::read(ctx.infra.agent_program())
        .await
        .map_err(internal)?;
    let mut failed = Vec::new();
    for (name, pool) in &pools {
        if !up_pool(ctx, name, pool, &agent).await? {
            failed.push(name.to_string());
        }
    }
    if !failed.is_empty() {
        return Err(RequestError::new(
            exception::RUNTIME_ERROR,
            format!(
                "Failed to deploy SkyPilot on some Node Pools: {} (each failing host is named \
                 above with the reason).",
                failed.join(", ")
            ),
        ));
    }
    ctx.log.line(
        "🎉 SSH Node Pools set up successfully. Run `sky check ssh` to verify access, \
         `sky launch --infra ssh` to launch a cluster.",
    );
    Ok(serde_json::Value::Null)
}

/// Sets up every host of one pool; false if any failed (the others are
/// recorded all the same, so one broken host does not hide the rest).
async fn up_pool(
    ctx: &RequestContext,
    name: &PoolName,
    pool: &NodePool,
    agent: &ProgramImage,
) -> Result<bool, RequestError> {
    let (hosts, warnings) = pool.hosts();
    for warning in warnings {
        ctx.log.line(&format!("Warning: pool {name}: {warning}"));
    }
    ctx.log.line(&format!(
        "Setting up SSH Node Pool {name}: {} host{}",
        hosts.len(),
        if hosts.len() == 1 { "" } else { "s" }
    ));
    let ssh = pool_ssh(ctx.infra.home(), name).map_err(internal)?;
    let results = futures_util::future::join_all(hosts.iter().map(|host| {
        let ssh = &ssh;
        async move { (host, up_host(ctx, ssh, name, host, agent).await) }
    }))
    .await;
    let mut ok = true;
    let mut wanted = std::collections::BTreeSet::new();
    for (host, result) in results {
        wanted.insert(host_id(name, host));
        match result {
            Ok(summary) => ctx.log.line(&format!("  ✓ {}: {summary}", host.host)),
            Err(reason) => {
                ok = false;
                ctx.log.line(&format!("  ✗ {}: {reason}", host.host));
            }
        }
    }
    // Hosts taken out of the file leave the pool, unless a cluster holds
    // them: those stay until it is down.
    let pool_id = placement_pool(name);
    let held = held_hosts(ctx, &pool_id).await?;
    for recorded in ctx.store.list_hosts(&pool_id).await.map_err(internal)? {
        if !wanted.contains(&recorded.id) && !held.contains_key(&recorded.id) {
            ctx.store
                .delete_host(&recorded.id)
                .await
                .map_err(internal)?;
            ctx.log.line(&format!(
                "  {} is no longer in the pool file: removed",
                recorded.id
            ));
        }
    }
    if ok {
        ctx.log
            .line(&format!("Completed deployment for cluster: {name}"));
    }
    Ok(ok)
}

/// Connects, checks, installs the agent and records the host; the line
/// to show for it, or why it cannot be used.
async fn up_host(
    ctx: &RequestContext,
    ssh: &SshPool,
    pool: &PoolName,
    host: &PoolHost,
    agent: &ProgramImage,
) -> Result<String, String> {
    let target = target(host);
    ctx.log
        .line(&format!("  Checking SSH connection to {target}..."));
    let runner = ssh.connect(&target).await.map_err(|e| e.to_string())?;
    // Reached, before anything is put there: `down` can reach it again,
    // even once the pool file no longer lists it. A host never reached is
    // not recorded, so it cannot hold `down` up for ever.
    super::records::record(ctx, pool, std::slice::from_ref(host))
        .await
        .map_err(|e| format!("cannot record the host: {}", e.message))?;
    let facts = probe(&runner, host.password.as_ref())
        .await
        .map_err(|e| e.to_string())?;
    if host.password.is_some() && facts.privilege == Privilege::None {
        return Err(format!(
            "sudo refused the pool's password for {target}: fix `password` in the pool file \
             (it is the sudo password of the login, never an SSH one)"
        ));
    }
    BinaryPlatform::current()
        .check(host.host.as_str(), &facts)
        .map_err(|e| e.to_string())?;
    ctx.log
        .line(&format!("  {}: installing the agent...", host.host));
    let installed = runner
        .install_image(agent, AGENT_NAME)
        .await
        .map_err(|e| e.to_string())?;
    let record = host_record(pool, host, &facts);
    ctx.store
        .put_host(&record)
        .await
        .map_err(|e| format!("cannot record the host: {e}"))?;
    Ok(format!(
        "{} ({}, {}), {} CPUs, {:.1} GiB memory, {}, {}; agent {} ~/{}",
        facts.hostname,
        facts.arch,
        match &facts.libc {
            skydeck_infra::ssh::Libc::Glibc { version } => format!("glibc {version}"),
            skydeck_infra::ssh::Libc::Musl => "musl".to_owned(),
            skydeck_infra::ssh::Libc::Unknown => "libc unknown".to_owned(),
        },
        facts.cpus,
        record.memory_gb,
        gpus_text(&facts),
        match facts.privilege {
            Privilege::Root => "root login",
            Privilege::Sudo if host.password.is_some() => "sudo with the pool's password",
            Privilege::Sudo => "sudo",
            Privilege::None => "no sudo",
        },
        if installed.copied {
            "installed at"
        } else {
            "already at"
        },
        installed.path,
    ))
}

fn host_record(pool: &PoolName, host: &PoolHost, facts: &HostFacts) -> Host {
    let capacity = facts.capacity();
    Host {
        id: host_id(pool, host),
        pool: placement_pool(pool),
        cpus: capacity.cpus,
        memory_gb: capacity.memory_gb,
        gpus: facts
            .gpus
            .iter()
            .map(|g| Gpu {
                index: g.index,
                model: g.accelerator(),
            })
            .collect(),
    }
}

fn gpus_text(facts: &HostFacts) -> String {
    if facts.gpus.is_empty() {
        return "no GPUs".to_owned();
    }
    let gpus: Vec<String> = facts
        .gpus
        .iter()
        .map(|g| format!("{}:{}", g.index, g.accelerator()))
        .collect();
    format!("GPUs {}", gpus.join(", "))
}

/// Host id → the clusters placed on it.
async fn held_hosts(
    ctx: &RequestContext,
    pool_id: &str,
) -> Result<std::collections::BTreeMap<String, std::collections::BTreeSet<String>>, RequestError> {
    let mut held: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        std::collections::BTreeMap::new();
    for allocation in ctx
        .store
        .list_allocations(pool_id)
        .await
        .map_err(internal)?
    {
        held.entry(allocation.host)
            .or_default()
            .insert(allocation.cluster);
    }
    Ok(held)
}

pub async fn down(ctx: &RequestContext, body: SshUpBody) -> OpResult {
    require_admin(ctx, "take SSH Node Pools down").await?;
    let pools = super::records::down_targets(ctx, body.infra.as_deref()).await?;
    // Refuse before touching anything: a pool a cluster uses stays whole.
    for (name, _) in &pools {
        let held = held_hosts(ctx, &placement_pool(name)).await?;
        let clusters: std::collections::BTreeSet<&String> = held.values().flatten().collect();
        if !clusters.is_empty() {
            let names: Vec<&str> = clusters.iter().map(|c| c.as_str()).collect();
            return Err(RequestError::new(
                exception::VALUE_ERROR,
                format!(
                    "SSH Node Pool {name} is in use by cluster{} {}: take {} down first \
                     (`sky down {}`).",
                    if names.len() == 1 { "" } else { "s" },
                    names.join(", "),
                    if names.len() == 1 { "it" } else { "them" },
                    names.join(" ")
                ),
            ));
        }
    }
    let mut unreached = Vec::new();
    for (name, hosts) in &pools {
        ctx.log.line(&format!("Cleaning up SSH Node Pool {name}"));
        let ssh = pool_ssh(ctx.infra.home(), name).map_err(internal)?;
        let mut left = Vec::new();
        let results = futures_util::future::join_all(hosts.iter().map(|host| {
            let ssh = &ssh;
            async move { (host, down_host(ssh, host).await) }
        }))
        .await;
        for (host, result) in results {
            match result {
                Ok(()) => ctx.log.line(&format!("  ✓ {}: agent removed", host.host)),
                Err(reason) => {
                    ctx.log.line(&format!("  ✗ {}: {reason}", host.host));
                    unreached.push(format!("{name}/{}", host.host));
                    left.push(host.clone());
                }
            }
        }
        // Only the hosts not reached stay recorded, for the next `down`.
        super::records::keep_only(ctx, name, &left).await?;
        // The placement records go even for hosts not reached: the pool is
        // down, and `ssh down` again (from the pool file, or from the
        // record of the hosts not reached) cleans what is left.
        for recorded in ctx
            .store
            .list_hosts(&placement_pool(name))
            .await
            .map_err(internal)?
        {
            ctx.store
                .delete_host(&recorded.id)
                .await
                .map_err(internal)?;
        }
    }
    if !unreached.is_empty() {
        return Err(RequestError::new(
            exception::RUNTIME_ERROR,
            format!(
                "Could not clean up {}: the agent may still be installed there \
                 (~/.skydeck/bin); run `sky ssh down` again once they are reachable.",
                unreached.join(", ")
            ),
        ));
    }
    ctx.log.line("🎉 SSH Node Pools cleaned up successfully.");
    Ok(serde_json::Value::Null)
}

/// Removes what `up` put on the host: the installed agent builds.
async fn down_host(ssh: &SshPool, host: &PoolHost) -> Result<(), String> {
    use skydeck_infra::CommandRunner;
    let runner = ssh
        .connect(&target(host))
        .await
        .map_err(|e| e.to_string())?;
    let script = "rm -rf \"$HOME/.skydeck/bin\" && { rmdir \"$HOME/.skydeck\" 2>/dev/null; true; }";
    let argv: Vec<String> = ["sh", "-c", script]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let out = runner.run(&argv, None).await.map_err(|e| e.to_string())?;
    if !out.success() {
        return Err(format!("removing the agent failed: {}", out.stderr.trim()));
    }
    Ok(())
}
