//! SSH node pools as infrastructure: a cluster's nodes are placed on the
//! hosts of one pool (`ssh/<pool>`), each node a directory under the login's
//! home on its host (`~/.skydeck/clusters/<cluster>/nodes/<rank>`), with
//! the head's agent in `~/.skydeck/clusters/<cluster>`.
//!
//! The head reaches its workers itself, over SSH with a key pair made for
//! the cluster alone: its private key and the workers' host keys (from the
//! pool's own known_hosts, checked when the server first reached them) go
//! to the head, its public key into each worker's authorized_keys under a
//! marker that `down` removes again. The pool's hosts and what they have
//! are the store's records (`ssh up` makes them); this provider only reads
//! the pool file for how to reach each host.

mod agent_env;
mod node_runner;
mod ports;
mod reach;
pub(crate) mod scripts;

use crate::placement::Allocation;
use crate::ssh::{ClusterKey, SshPool, SshTarget, quote};
use crate::{
    AgentClient, Capacity, ClusterInfo, ClusterName, ClusterSpec, ClusterState, CommandRunner,
    Handle, InfraError, NodeInfo, PlacementPool, Provider, Result,
};
use async_trait::async_trait;
use futures_util::future::{join_all, try_join_all};
use node_runner::{NodeRunner, Unreachable};
use sha2::{Digest, Sha256};
use skydeck_agent::cluster::NodeSsh;
use skydeck_types::names::PoolName;
use skydeck_types::ssh_node_pools::PoolHost;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a cluster lives under the login's home on each host.
const CLUSTERS: &str = ".skydeck/clusters";

/// One SSH node pool.
pub struct SshProvider {
    pool: PoolName,
    ssh: SshPool,
    /// How to reach each host, by the name the pool file gives it.
    targets: BTreeMap<String, SshTarget>,
    /// The `skydeck` binary installed on the hosts as the agent.
    program: PathBuf,
    /// Where it is installed on a host, relative to the home; hashing the
    /// binary takes seconds, so once.
    installed_path: tokio::sync::OnceCell<String>,
    /// One connection per host, made on first use and kept.
    runners: std::sync::Mutex<HashMap<String, Arc<NodeRunner>>>,
}

/// What a node's host said when its directory was made.
struct NodeFacts {
    home: String,
    /// The address this server reached the host at (`$SSH_CONNECTION`):
    /// the host's real address, also as its peers see it.
    ip: String,
    port: u16,
    user: String,
    cpus: f64,
    memory_gb: f64,
}

impl SshProvider {
    /// The provider of pool `pool`, whose hosts (from the pool file) are
    /// reached through `ssh` (the pool's own known_hosts and config);
    /// `home` is the server user's, for `~/` in key paths.
    pub fn new(
        pool: PoolName,
        ssh: SshPool,
        hosts: &[PoolHost],
        home: &Path,
        program: PathBuf,
    ) -> Self {
        let targets = hosts
            .iter()
            .map(|h| {
                (
                    h.host.as_str().to_owned(),
                    SshTarget::from_pool_host(h, home),
                )
            })
            .collect();
        Self {
            pool,
            ssh,
            targets,
            program,
            installed_path: tokio::sync::OnceCell::new(),
            runners: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The infrastructure name and placement pool: `ssh/<pool>`.
    pub fn infra(&self) -> String {
        format!("ssh/{}", self.pool)
    }

    /// The placement id of a host of this pool.
    pub fn host_id(&self, host: &str) -> String {
        format!("ssh/{}/{host}", self.pool)
    }

    /// The pool file's name of the host with placement id `id`.
    fn host_of(&self, id: &str) -> Result<&str> {
        let prefix = format!("ssh/{}/", self.pool);
        id.strip_prefix(&prefix)
            .and_then(|host| self.targets.get_key_value(host))
            .map(|(host, _)| host.as_str())
            .ok_or_else(|| {
                InfraError::Command(format!(
                    "host {id} is not in pool {} of ssh_node_pools.yaml any more: add it back \
                     to reach the cluster's node there",
                    self.pool
                ))
            })
    }

    fn runner(&self, host: &str) -> Result<Arc<NodeRunner>> {
        let target = self.targets.get(host).ok_or_else(|| {
            InfraError::Command(format!("host {host} is not in pool {}", self.pool))
        })?;
        let mut runners = self.runners.lock().unwrap_or_else(|e| e.into_inner());
        Ok(Arc::clone(runners.entry(host.to_owned()).or_insert_with(
            || Arc::new(NodeRunner::new(self.ssh.clone(), target.clone())),
        )))
    }

    /// The cluster's head host (rank 0).
    fn head_host<'a>(&'a self, handle: &Handle) -> Result<&'a str> {
        let id = handle.hosts.first().ok_or_else(|| {
            InfraError::Command(format!(
                "the handle of cluster {} names no hosts",
                handle.cluster_name
            ))
        })?;
        self.host_of(id)
    }

    /// The distinct hosts of a handle, head first.
    fn hosts_of(&self, handle: &Handle) -> (Vec<&str>, Vec<String>) {
        let mut hosts = Vec::new();
        let mut missing = Vec::new();
        for id in &handle.hosts {
            match self.host_of(id) {
                Ok(host) if !hosts.contains(&host) => hosts.push(host),
                Ok(_) => {}
                Err(err) => missing.push(err.to_string()),
            }
        }
        (hosts, missing)
    }

    /// The agent of a cluster, run on its head.
    pub fn agent(&self, handle: &Handle) -> AgentClient {
        let dir = self.head_dir(handle);
        AgentClient::new(self.head_runner(handle), format!("{dir}/bin/skydeck"), dir)
    }

    /// The cluster's directory on its head as the handle says, if it is
    /// the shape this provider makes (`<home>/.skydeck/clusters/<name>`);
    /// else the home-relative one, so a changed record aims nothing
    /// elsewhere.
    fn head_dir(&self, handle: &Handle) -> String {
        let name = handle.cluster_name.as_str();
        let stored = Path::new(&handle.cluster_dir);
        let plain = stored.is_absolute()
            && stored.components().all(|c| {
                matches!(
                    c,
                    std::path::Component::RootDir | std::path::Component::Normal(_)
                )
            });
        if plain && handle.cluster_dir.ends_with(&format!("/{CLUSTERS}/{name}")) {
            handle.cluster_dir.clone()
        } else {
            format!("{CLUSTERS}/{name}")
        }
    }

    /// Runs one of [`scripts`] on `runner` with the cluster's name and
    /// `args`; its stdout, or an error with its stderr.
    async fn script(
        &self,
        runner: &dyn CommandRunner,
        host: &str,
        script: String,
        name: &ClusterName,
        args: &[&str],
        stdin: Option<Vec<u8>>,
    ) -> Result<String> {
        let mut argv = vec![
            "sh".to_owned(),
            "-c".to_owned(),
            script,
            "skydeck".to_owned(),
            name.as_str().to_owned(),
        ];
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        let out = runner.run(&argv, stdin).await?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(InfraError::Command(format!(
                "on {host} (cluster {name}): {}",
                out.stderr.trim()
            )))
        }
    }

    /// Makes node `rank`'s directory on `host` and reads the host's facts.
    async fn prepare_node(&self, host: &str, name: &ClusterName, rank: u32) -> Result<NodeFacts> {
        let runner = self.runner(host)?;
        let out = self
            .script(
                &*runner,
                host,
                scripts::prepare_node(),
                name,
                &[&rank.to_string()],
                None,
            )
            .await?;
        let lines: Vec<&str> = out.lines().collect();
        let [home, connection, user, cpus, memory_kb, ..] = lines[..] else {
            return Err(InfraError::Command(format!(
                "{host} answered the node set-up with something unreadable: {out:?}"
            )));
        };
        // "client_ip client_port server_ip server_port"
        let fields: Vec<&str> = connection.split_whitespace().collect();
        let (ip, port) = match fields[..] {
            [_, _, ip, port] => (ip.to_owned(), port.parse().unwrap_or(22)),
            _ => (host.to_owned(), 22),
        };
        Ok(NodeFacts {
            home: home.to_owned(),
            ip,
            port,
            user: user.to_owned(),
            cpus: cpus.trim().parse().unwrap_or(1.0),
            memory_gb: memory_kb.trim().parse::<f64>().unwrap_or(0.0) / (1024.0 * 1024.0),
        })
    }

    /// Where `install_program` puts this build of the agent (relative to
    /// the home): `.skydeck/bin/<sha256>/skydeck`.
    async fn installed_path(&self) -> Result<&String> {
        self.installed_path
            .get_or_try_init(|| async {
                let program = self.program.clone();
                let digest = tokio::task::spawn_blocking(move || {
                    std::fs::read(&program).map(|content| format!("{:x}", Sha256::digest(content)))
                })
                .await
                .map_err(|err| InfraError::Command(format!("hashing the agent failed: {err}")))?
                .map_err(InfraError::io(format!(
                    "cannot read {}",
                    self.program.display()
                )))?;
                Ok(format!(".skydeck/bin/{digest}/skydeck"))
            })
            .await
    }

    /// Installs the agent on `host` (only when that build is not there)
    /// and links it as the cluster's; returns its absolute path.
    async fn install_agent(&self, host: &str, name: &ClusterName, home: &str) -> Result<String> {
        let runner = self.runner(host)?;
        let path = self.installed_path().await?;
        let link = |path: &str| {
            let argv: Vec<String> = [
                "sh",
                "-c",
                &scripts::link_agent(),
                "skydeck",
                name.as_str(),
                path,
            ]
            .iter()
            .map(|w| (*w).to_owned())
            .collect();
            let runner = Arc::clone(&runner);
            async move { runner.run(&argv, None).await }
        };
        let mut out = link(path).await?;
        if out.code == scripts::NOT_INSTALLED {
            let installed = runner
                .get()
                .await?
                .install_program(&self.program, "skydeck")
                .await?;
            out = link(&installed.path).await?;
        }
        if !out.success() {
            return Err(InfraError::Command(format!(
                "on {host} (cluster {name}): cannot link the agent: {}",
                out.stderr.trim()
            )));
        }
        Ok(format!("{home}/{path}"))
    }

    /// The host-key lines of the pool's known_hosts for `host` (reached at
    /// `ip:port`), rewritten for the address the head will use.
    async fn worker_host_keys(&self, host: &str, ip: &str, port: u16) -> Result<String> {
        let name = |h: &str| {
            if port == 22 {
                h.to_owned()
            } else {
                format!("[{h}]:{port}")
            }
        };
        for candidate in [name(ip), name(host)] {
            let out = tokio::process::Command::new("ssh-keygen")
                .arg("-F")
                .arg(&candidate)
                .arg("-f")
                .arg(self.ssh.known_hosts())
                .output()
                .await
                .map_err(InfraError::io("cannot run ssh-keygen"))?;
            let keys: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .filter_map(|l| {
                    l.split_once(' ')
                        .map(|(_, key)| format!("{} {key}", name(ip)))
                })
                .collect();
            if !keys.is_empty() {
                return Ok(keys.join("\n") + "\n");
            }
        }
        Err(InfraError::Command(format!(
            "the host key of {host} is not in {}, though the server reached it: record it \
             with `skydeck ssh up`, then launch again",
            self.ssh.known_hosts().display()
        )))
    }

    /// The hosts of the spec's nodes by rank, checked against the pool.
    fn placed_hosts(&self, spec: &ClusterSpec) -> Result<Vec<String>> {
        (0..spec.num_nodes)
            .map(|rank| {
                let allocation: &Allocation = spec
                    .allocations
                    .iter()
                    .find(|a| a.node_rank == rank)
                    .ok_or_else(|| {
                        InfraError::Command(format!(
                            "node {rank} of cluster {} was not placed on a host of pool {}",
                            spec.name, self.pool
                        ))
                    })?;
                self.host_of(&allocation.host)?;
                Ok(allocation.host.clone())
            })
            .collect()
    }

    /// Starts the cluster's agent on its head `host` (`how`: see
    /// `scripts::start_agent`), with the server's settings it needs.
    async fn start_agent(&self, host: &str, name: &ClusterName, how: &str) -> Result<()> {
        let runner = self.runner(host)?;
        let env = agent_env::forwarded();
        let mut args = vec![how];
        args.extend(env.iter().map(String::as_str));
        self.script(&*runner, host, scripts::start_agent(), name, &args, None)
            .await
            .map(drop)
    }

    /// Refuses the spec's ports where a program on the head `host` listens
    /// on them already, before anything is made there.
    async fn check_ports(&self, host: &str, spec: &ClusterSpec) -> Result<()> {
        if spec.node.ports.is_empty() {
            return Ok(());
        }
        let wanted: Vec<String> = spec.node.ports.iter().map(u16::to_string).collect();
        let args: Vec<&str> = wanted.iter().map(String::as_str).collect();
        let runner = self.runner(host)?;
        let answer = self
            .script(
                &*runner,
                host,
                scripts::ports_in_use(),
                &spec.name,
                &args,
                None,
            )
            .await?;
        let taken = ports::taken(&answer, &spec.node.ports);
        if taken.is_empty() {
            Ok(())
        } else {
            Err(ports::refusal(self.pool.as_str(), host, &taken))
        }
    }

    /// Removes the cluster from `host`: stops its agent (on the head), kills
    /// whatever of it still runs, removes its directory and its key.
    async fn clean_host(&self, host: &str, name: &ClusterName) -> Result<()> {
        let runner = self.runner(host)?;
        self.script(&*runner, host, scripts::stop_agent(), name, &[], None)
            .await?;
        self.script(&*runner, host, scripts::reap(), name, &[], None)
            .await?;
        self.script(&*runner, host, scripts::remove(), name, &[], None)
            .await?;
        runner.get().await?.revoke_key(&key_marker(name)).await
    }

    /// Cleans every host in `hosts`, all of them at once and each even when
    /// others fail; a host that does not answer within
    /// [`reach::ANSWER_WITHIN`] is left, not waited for. An error lists the
    /// hosts it could not clean and how to finish.
    async fn clean_hosts(
        &self,
        hosts: &[&str],
        handle: Option<&Handle>,
        name: &ClusterName,
        mut failed: Vec<String>,
    ) -> Result<()> {
        let results = join_all(hosts.iter().map(|host| async move {
            let shown = Self::shown(handle, host);
            let runner = self.runner(host)?;
            reach::probe(&shown, &*runner).await?;
            self.clean_host(host, name)
                .await
                .map_err(|err| InfraError::Command(format!("host {shown}: {err}")))
        }))
        .await;
        let mut cleaned = Vec::new();
        for (host, result) in hosts.iter().zip(results) {
            match result {
                Ok(()) => cleaned.push(Self::shown(handle, host)),
                Err(err) => failed.push(err.to_string()),
            }
        }
        if failed.is_empty() {
            return Ok(());
        }
        let done = if cleaned.is_empty() {
            String::new()
        } else {
            format!(" It was removed from {}.", cleaned.join(", "))
        };
        Err(InfraError::Command(format!(
            "cluster {name} could not be removed from every host of pool {}: {}.{done} Run              `down` again once those hosts answer, or `down --purge` to forget the cluster              here (what is left of it on those hosts then stays there).",
            self.pool,
            failed.join("; ")
        )))
    }

    /// `host` as messages name it: with the address its node has when the
    /// pool file names it otherwise (an alias), `h5 (10.0.0.6)`.
    fn shown(handle: Option<&Handle>, host: &str) -> String {
        let ip = handle.and_then(|handle| {
            handle
                .hosts
                .iter()
                .zip(&handle.nodes)
                .find(|(id, _)| id.rsplit('/').next() == Some(host))
                .map(|(_, node)| node.ip.clone())
        });
        match ip {
            Some(ip) if ip != host && !ip.is_empty() => format!("{host} ({ip})"),
            _ => host.to_owned(),
        }
    }

    /// Whether every host of the cluster answers, and the agent's state on
    /// its head; all hosts are asked at once, each within
    /// [`reach::ANSWER_WITHIN`]. An error names each host that did not
    /// answer and why.
    async fn health(&self, handle: &Handle) -> Result<String> {
        let head = self.head_host(handle)?;
        let (hosts, missing) = self.hosts_of(handle);
        let name = &handle.cluster_name;
        let head_shown = Self::shown(Some(handle), head);
        let head_state = reach::answered(&head_shown, async {
            let runner = self.runner(head)?;
            self.script(&*runner, head, scripts::agent_state(), name, &[], None)
                .await
        });
        let workers = join_all(
            hosts
                .iter()
                .filter(|host| **host != head)
                .map(|host| async move {
                    let shown = Self::shown(Some(handle), host);
                    reach::probe(&shown, &*self.runner(host)?).await
                }),
        );
        let (state, workers) = tokio::join!(head_state, workers);
        let mut lost = missing;
        // A head that says "gone" while a worker does not answer is a
        // `down` that could not finish: still a cluster, unhealthy, so its
        // record stays for the next `down` (or `down --purge`).
        let state = match state {
            Ok(state) => state,
            Err(err) => {
                lost.push(err.to_string());
                String::new()
            }
        };
        lost.extend(
            workers
                .into_iter()
                .filter_map(|r| r.err().map(|e| e.to_string())),
        );
        if lost.is_empty() {
            Ok(state)
        } else {
            Err(InfraError::Command(lost.join("; ")))
        }
    }
}

/// The comment that marks the cluster's key in authorized_keys.
fn key_marker(name: &ClusterName) -> String {
    format!("skydeck-cluster:{name}")
}

#[async_trait]
impl Provider for SshProvider {
    fn name(&self) -> &'static str {
        "ssh"
    }

    fn check(&self) -> std::result::Result<String, String> {
        if self.targets.is_empty() {
            return Err(format!("pool {} has no hosts", self.pool));
        }
        let hosts: Vec<&str> = self.targets.keys().map(String::as_str).collect();
        Ok(format!("SSH node pool {}: {}", self.pool, hosts.join(", ")))
    }

    fn admits(&self, spec: &ClusterSpec) -> Result<()> {
        if spec.num_nodes == 0 {
            return Err(InfraError::Unsatisfiable(
                "a cluster needs at least one node".to_owned(),
            ));
        }
        Ok(())
    }

    async fn provision(&self, spec: &ClusterSpec) -> Result<Handle> {
        self.admits(spec)?;
        let hosts = self.placed_hosts(spec)?;
        let name = &spec.name;
        self.check_ports(self.host_of(&hosts[0])?, spec).await?;
        // Every node at once: one round trip for all, not one per node.
        let facts = try_join_all(hosts.iter().enumerate().map(|(rank, id)| async move {
            let rank = u32::try_from(rank).unwrap_or(u32::MAX);
            self.prepare_node(self.host_of(id)?, name, rank).await
        }))
        .await?;
        let head_host = self.host_of(&hosts[0])?;
        let head = &facts[0];
        let head_dir = format!("{}/{CLUSTERS}/{name}", head.home);
        // Once per host: nodes sharing a host share its agent.
        let mut distinct: Vec<(&str, &str)> = Vec::new();
        for (id, fact) in hosts.iter().zip(&facts) {
            let host = self.host_of(id)?;
            if !distinct.iter().any(|(h, _)| *h == host) {
                distinct.push((host, &fact.home));
            }
        }
        let installed = try_join_all(
            distinct
                .iter()
                .map(|(host, home)| self.install_agent(host, name, home)),
        )
        .await?;
        let agents: Vec<String> = hosts
            .iter()
            .map(|id| {
                let host = self.host_of(id).unwrap_or_default();
                distinct
                    .iter()
                    .zip(&installed)
                    .find(|((h, _), _)| *h == host)
                    .map(|(_, path)| path.clone())
                    .unwrap_or_default()
            })
            .collect();

        // Workers on another host than the head's are reached over SSH.
        let remote: Vec<usize> = (1..hosts.len())
            .filter(|&rank| self.host_of(&hosts[rank]).ok() != Some(head_host))
            .collect();
        let head_runner = self.runner(head_host)?;
        if !remote.is_empty() {
            let keys_dir = self.ssh.dir().join("keys").join(name.as_str());
            let key = ClusterKey::generate(&keys_dir, &key_marker(name)).await?;
            let private = tokio::fs::read(&key.private_key)
                .await
                .map_err(InfraError::io("cannot read the cluster key"));
            // The private key lives on the head only.
            let _ = tokio::fs::remove_dir_all(&keys_dir).await;
            self.script(
                &*head_runner,
                head_host,
                scripts::write_file(),
                name,
                &["ssh/id_ed25519"],
                Some(private?),
            )
            .await?;
            let mut known_hosts = String::new();
            let mut authorized = Vec::new();
            for &rank in &remote {
                let host = self.host_of(&hosts[rank])?;
                known_hosts.push_str(
                    &self
                        .worker_host_keys(host, &facts[rank].ip, facts[rank].port)
                        .await?,
                );
                if !authorized.contains(&host) {
                    self.runner(host)?.get().await?.authorize_key(&key).await?;
                    authorized.push(host);
                }
            }
            self.script(
                &*head_runner,
                head_host,
                scripts::write_file(),
                name,
                &["ssh/known_hosts"],
                Some(known_hosts.into_bytes()),
            )
            .await?;
        }

        let nodes: Vec<NodeInfo> = facts
            .iter()
            .enumerate()
            .map(|(rank, fact)| {
                let dir = format!("{}/{CLUSTERS}/{name}/nodes/{rank}", fact.home);
                NodeInfo {
                    rank,
                    ip: fact.ip.clone(),
                    dir: PathBuf::from(dir),
                    gpus: spec
                        .allocations
                        .iter()
                        .find(|a| a.node_rank as usize == rank)
                        .map(|a| a.gpus.clone()),
                    ssh: remote.contains(&rank).then(|| NodeSsh {
                        host: fact.ip.clone(),
                        port: fact.port,
                        user: fact.user.clone(),
                        identity_file: PathBuf::from(format!("{head_dir}/ssh/id_ed25519")),
                        known_hosts: PathBuf::from(format!("{head_dir}/ssh/known_hosts")),
                        agent: PathBuf::from(&agents[rank]),
                    }),
                    tcp: None,
                }
            })
            .collect();
        let least = |f: fn(&NodeFacts) -> f64| facts.iter().map(f).fold(f64::INFINITY, f64::min);
        let capacity = Capacity {
            cpus: spec.node.cpus.unwrap_or_else(|| least(|f| f.cpus)),
            memory_gb: spec
                .node
                .memory_gb
                .unwrap_or_else(|| least(|f| f.memory_gb)),
            accelerators: spec.node.accelerators.clone(),
        };
        let cluster = ClusterInfo {
            name: name.to_string(),
            num_nodes: nodes.len(),
            nodes: nodes.clone(),
            capacity: capacity.clone(),
            cloud: "ssh".to_owned(),
            region: Some(self.pool.to_string()),
            zone: None,
            user_hash: Some(spec.user_hash.clone()),
        };
        let json = serde_json::to_vec(&cluster)
            .map_err(|err| InfraError::Command(format!("cannot describe the cluster: {err}")))?;
        self.script(
            &*head_runner,
            head_host,
            scripts::write_file(),
            name,
            &["cluster.json"],
            Some(json),
        )
        .await?;
        self.start_agent(head_host, name, "launch").await?;
        Ok(Handle {
            cluster_name: name.clone(),
            cluster_dir: head_dir,
            nodes,
            capacity,
            ports: spec.node.ports.clone(),
            request: Some(spec.node.clone()),
            hosts,
        })
    }

    async fn query(&self, handle: &Handle) -> Result<ClusterState> {
        let state = self.health(handle).await?;
        Ok(match state.trim() {
            "gone" => ClusterState::Gone,
            "running" => ClusterState::Running,
            "autostop" => ClusterState::AutoStopped { down: false },
            "autodown" => ClusterState::AutoStopped { down: true },
            _ => ClusterState::AgentDown,
        })
    }

    async fn stop(&self, handle: &Handle) -> Result<()> {
        let name = &handle.cluster_name;
        let head = self.head_host(handle)?;
        let runner = self.runner(head)?;
        reach::probe(&Self::shown(Some(handle), head), &*runner).await?;
        self.script(&*runner, head, scripts::stop_agent(), name, &[], None)
            .await?;
        // The agent stops its jobs as it goes; whatever it could not reach
        // (a worker that was cut off a while) is stopped here.
        let (hosts, _) = self.hosts_of(handle);
        let reaped = join_all(hosts.iter().map(|host| async move {
            let runner = self.runner(host)?;
            reach::probe(&Self::shown(Some(handle), host), &*runner).await?;
            self.script(&*runner, host, scripts::reap(), name, &[], None)
                .await
                .map_err(|err| InfraError::Command(format!("{host}: {err}")))
        }))
        .await;
        let failed: Vec<String> = reaped
            .into_iter()
            .filter_map(|r| r.err().map(|e| e.to_string()))
            .collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(InfraError::Command(format!(
                "cluster {name} was stopped except on: {}",
                failed.join("; ")
            )))
        }
    }

    async fn start(&self, handle: &Handle) -> Result<()> {
        let name = &handle.cluster_name;
        let head = self.head_host(handle)?;
        let runner = self.runner(head)?;
        let home = self
            .script(&*runner, head, scripts::prepare_node(), name, &["0"], None)
            .await?;
        let home = home.lines().next().unwrap_or_default().to_owned();
        // The server may have been upgraded since: its own build runs.
        self.install_agent(head, name, &home).await?;
        self.start_agent(head, name, "start").await
    }

    async fn terminate(&self, handle: &Handle) -> Result<()> {
        let (hosts, missing) = self.hosts_of(handle);
        self.clean_hosts(&hosts, Some(handle), &handle.cluster_name, missing)
            .await
    }

    async fn terminate_unrecorded(&self, name: &ClusterName) -> Result<()> {
        // Where provisioning got to is not known: every host of the pool.
        let hosts: Vec<&str> = self.targets.keys().map(String::as_str).collect();
        self.clean_hosts(&hosts, None, name, Vec::new()).await
    }

    fn head_runner(&self, handle: &Handle) -> Arc<dyn CommandRunner> {
        match self.head_host(handle).and_then(|host| self.runner(host)) {
            Ok(runner) => runner,
            Err(err) => Arc::new(Unreachable(err.to_string())),
        }
    }

    async fn sync_up(&self, handle: &Handle, local: &Path, remote: &str) -> Result<()> {
        for (node, id) in handle.nodes.iter().zip(&handle.hosts) {
            let host = self.host_of(id)?;
            let target = node_path(&node.dir, remote);
            let runner = self.runner(host)?;
            let ssh = runner.get().await?;
            if local.is_dir() {
                ssh.sync_up(local, &target).await?;
            } else {
                let content = tokio::fs::read(local)
                    .await
                    .map_err(InfraError::io(format!("cannot read {}", local.display())))?;
                let line = format!(
                    "mkdir -p -- \"$(dirname -- {t})\" && cat >{t}",
                    t = quote(&target)
                );
                let out = ssh
                    .run(&["sh".to_owned(), "-c".to_owned(), line], Some(content))
                    .await?;
                if !out.success() {
                    return Err(InfraError::Command(format!(
                        "cannot write {target} on {host}: {}",
                        out.stderr.trim()
                    )));
                }
            }
        }
        Ok(())
    }

    fn placement(&self) -> Option<PlacementPool> {
        // The hosts and their capacity are the store's records, which `ssh
        // up` makes after probing them; placement reads them from there.
        Some(PlacementPool {
            pool: self.infra(),
            hosts: Vec::new(),
            gpu_hint: format!(
                "Run `skydeck ssh up --infra {}` to probe the pool's hosts again.",
                self.pool
            ),
        })
    }
}

/// Where `remote` (`~/x`, a path relative to the node's home, or an
/// absolute path on the host) lands for a node whose home is `node_dir`.
fn node_path(node_dir: &Path, remote: &str) -> String {
    if remote.starts_with('/') {
        return remote.to_owned();
    }
    let relative = remote
        .strip_prefix("~/")
        .or_else(|| (remote == "~").then_some(""))
        .unwrap_or(remote);
    let mut path = node_dir.to_owned();
    for component in Path::new(relative).components() {
        if let std::path::Component::Normal(part) = component {
            path.push(part);
        }
    }
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(test: &str) -> SshProvider {
        let dir =
            std::env::temp_dir().join(format!("skydeck-provider-{test}-{}", std::process::id()));
        let ssh = SshPool::open(&dir, crate::ssh::SshPoolOptions::default()).unwrap();
        SshProvider::new(
            PoolName::new("p").unwrap(),
            ssh,
            &[],
            Path::new("/home/srv"),
            PathBuf::from("/bin/true"),
        )
    }

    fn handle(dir: &str) -> Handle {
        Handle {
            cluster_name: ClusterName::new("c").unwrap(),
            cluster_dir: dir.to_owned(),
            nodes: Vec::new(),
            capacity: Capacity::default(),
            ports: Vec::new(),
            request: None,
            hosts: vec!["ssh/p/gone".to_owned()],
        }
    }

    #[test]
    fn a_stored_directory_is_used_only_when_it_is_the_clusters_own() {
        let provider = provider("dir");
        assert_eq!(
            provider.head_dir(&handle("/home/u/.skydeck/clusters/c")),
            "/home/u/.skydeck/clusters/c"
        );
        for tampered in [
            "/etc",
            "/home/u/.skydeck/clusters/other",
            "/x/../.skydeck/clusters/c",
            "rel/.skydeck/clusters/c",
        ] {
            assert_eq!(
                provider.head_dir(&handle(tampered)),
                ".skydeck/clusters/c",
                "{tampered}"
            );
        }
        let _ = std::fs::remove_dir_all(provider.ssh.dir());
    }

    #[tokio::test]
    async fn a_host_the_pool_no_longer_lists_fails_its_commands_saying_so() {
        let provider = provider("gone");
        let runner = provider.head_runner(&handle("/home/u/.skydeck/clusters/c"));
        let err = runner.run(&["true".to_owned()], None).await.unwrap_err();
        assert!(err.to_string().contains("not in pool p"), "{err}");
        let err = provider.query(&handle("/x")).await.unwrap_err();
        assert!(err.to_string().contains("ssh/p/gone"), "{err}");
        let _ = std::fs::remove_dir_all(provider.ssh.dir());
    }

    #[test]
    fn remote_paths_land_in_the_node_home() {
        let home = Path::new("/home/u/.skydeck/clusters/c/nodes/1");
        assert_eq!(
            node_path(home, "~/sky_workdir"),
            "/home/u/.skydeck/clusters/c/nodes/1/sky_workdir"
        );
        assert_eq!(
            node_path(home, "data/../x"),
            "/home/u/.skydeck/clusters/c/nodes/1/data/x"
        );
        assert_eq!(node_path(home, "/data"), "/data");
    }
}
