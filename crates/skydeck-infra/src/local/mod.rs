//! The `local` infrastructure, the embedded default: a cluster is a set of
//! node sandboxes on this machine. A node is a directory (its HOME), its
//! processes run in their own process groups, and its IP is a loopback
//! address of its own (127.0.0.1 for the head, 127.0.0.2 for the next…).

mod files;

use crate::{
    AgentClient, Capacity, ClusterInfo, ClusterName, ClusterSpec, ClusterState, CommandRunner,
    Handle, InfraError, LocalRunner, Machine, NodeInfo, PlacementPool, Provider, Result,
};
use async_trait::async_trait;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use skydeck_agent::protocol::{AutostopAction, AutostopFile};
use skydeck_types::names::confine;
use skydeck_types::task::MountTarget;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a new agent may take to come up, and an old one to go.
const AGENT_DEADLINE: Duration = Duration::from_secs(15);

/// How long an agent that exited may take to be replaced by the one that
/// beat it to the cluster.
const EXIT_GRACE: Duration = Duration::from_secs(1);

/// Sets how many nodes one `local` cluster may have.
pub const ENV_MAX_NODES: &str = "SKYDECK_LOCAL_MAX_NODES";

/// Nodes of one `local` cluster unless [`ENV_MAX_NODES`] says otherwise:
/// each node is a directory and a set of processes on this one machine.
pub const DEFAULT_MAX_NODES: u32 = 64;

pub struct LocalProvider {
    /// Where cluster directories live (`$SKYDECK_HOME/clusters`).
    root: PathBuf,
    /// The `skydeck` binary that runs as each cluster's agent.
    program: PathBuf,
    /// The most nodes one cluster may have.
    max_nodes: u32,
}

impl LocalProvider {
    pub fn new(root: PathBuf, program: PathBuf) -> Self {
        Self {
            root,
            program,
            max_nodes: DEFAULT_MAX_NODES,
        }
    }

    /// The node cap from [`ENV_MAX_NODES`], or the default; an error saying
    /// what is wrong with a value that is not a whole number of 1 or more.
    pub fn max_nodes_from_env() -> std::result::Result<u32, String> {
        match std::env::var(ENV_MAX_NODES) {
            Err(_) => Ok(DEFAULT_MAX_NODES),
            Ok(text) => text
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    format!("{ENV_MAX_NODES}={text:?} is not a whole number of nodes, 1 or more")
                }),
        }
    }

    pub fn with_max_nodes(mut self, max_nodes: u32) -> Self {
        self.max_nodes = max_nodes;
        self
    }

    /// The directory of cluster `name`: one component under the clusters
    /// root, proven so by `confine`.
    pub fn cluster_dir(&self, name: &ClusterName) -> Result<PathBuf> {
        confine(&self.root, name.as_str()).map_err(|err| {
            InfraError::Refused(format!("cluster {name:?} has no directory here: {err}"))
        })
    }

    /// The directory a handle may act on, never a symbolic link (which
    /// would take a recursive removal somewhere else).
    ///
    /// Normally the cluster's own directory under this server's root. A
    /// server on a shared database but another state directory (a new pod,
    /// a moved home) finds handles made under the old root; such a
    /// directory is used only if it is provably a cluster directory of this
    /// very cluster: an absolute, `..`-free `…/clusters/<name>` that is not
    /// a link and holds a `cluster.json` naming the cluster.
    fn dir_of(&self, handle: &Handle) -> Result<PathBuf> {
        let own = self.cluster_dir(&handle.cluster_name)?;
        let stored = Path::new(&handle.cluster_dir);
        let dir = if stored == own {
            own
        } else if is_plain_absolute(stored) && !stored.exists() {
            // Whatever made it is gone; only our own directory can be acted on.
            own
        } else if is_cluster_dir_of(stored, &handle.cluster_name) {
            stored.to_path_buf()
        } else {
            return Err(InfraError::Refused(format!(
                "the stored handle of cluster {} points at {:?}, which is not a directory of \
                 that cluster; refusing to touch it (the record was changed outside Skydeck)",
                handle.cluster_name, handle.cluster_dir,
            )));
        };
        refuse_link(&dir)?;
        Ok(dir)
    }

    pub fn agent(&self, handle: &Handle) -> AgentClient {
        AgentClient::new(
            self.head_runner(handle),
            self.program.display().to_string(),
            self.dir_of(handle)
                .unwrap_or_else(|_| self.own_dir(&handle.cluster_name))
                .display()
                .to_string(),
        )
    }

    /// [`Self::cluster_dir`] where no error can be reported: a
    /// `ClusterName` is one plain path component, so confining it cannot fail.
    fn own_dir(&self, name: &ClusterName) -> PathBuf {
        self.cluster_dir(name)
            .expect("a cluster name is one plain path component")
    }

    fn handle_for(&self, spec: &ClusterSpec, machine: &Machine) -> Result<Handle> {
        let dir = self.cluster_dir(&spec.name)?;
        let nodes = (0..spec.num_nodes)
            .map(|rank| NodeInfo {
                rank: rank as usize,
                ip: format!("127.0.0.{}", rank + 1),
                dir: dir.join("nodes").join(rank.to_string()),
                gpus: spec
                    .allocations
                    .iter()
                    .find(|a| a.node_rank == rank)
                    .map(|a| a.gpus.clone()),
                ssh: None,
                tcp: None,
            })
            .collect();
        Ok(Handle {
            cluster_name: spec.name.clone(),
            cluster_dir: dir.display().to_string(),
            nodes,
            // A node without a CPU request may use the whole machine; with
            // one, it is held to what it asked for, as a VM would be.
            capacity: Capacity {
                cpus: spec.node.cpus.unwrap_or(machine.cpus),
                memory_gb: spec.node.memory_gb.unwrap_or(machine.memory_gb),
                accelerators: spec.node.accelerators.clone(),
            },
            ports: spec.node.ports.clone(),
            request: Some(spec.node.clone()),
            hosts: Vec::new(),
        })
    }

    /// Gives the nodes of a stopped cluster's description the GPUs its new
    /// placement chose (another cluster may hold the old ones now).
    fn assign_gpus(&self, dir: &Path, handle: &Handle) -> Result<()> {
        let path = dir.join("cluster.json");
        let Ok(mut cluster) = ClusterInfo::load(&path) else {
            return Ok(());
        };
        let mut changed = false;
        for node in &mut cluster.nodes {
            let gpus = handle.nodes.get(node.rank).and_then(|n| n.gpus.clone());
            if node.gpus != gpus {
                node.gpus = gpus;
                changed = true;
            }
        }
        if !changed {
            return Ok(());
        }
        let json = serde_json::to_vec(&cluster)
            .map_err(|err| InfraError::Command(format!("cannot describe the cluster: {err}")))?;
        files::write_atomically(&path, &json).map_err(InfraError::io("cannot write cluster.json"))
    }

    /// Starts the cluster's agent unless one runs, and waits until it answers.
    async fn ensure_agent(&self, handle: &Handle) -> Result<()> {
        let dir = &self.dir_of(handle)?;
        if daemon_pid(dir).is_some() {
            return Ok(());
        }
        let log_path = dir.join("agent").join("daemon.log");
        std::fs::create_dir_all(dir.join("agent"))
            .map_err(InfraError::io(format!("cannot create {}", dir.display())))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(InfraError::io(format!(
                "cannot open {}",
                log_path.display()
            )))?;
        let log_err = log
            .try_clone()
            .map_err(InfraError::io("cannot duplicate the agent log handle"))?;
        // Its own process group: the agent outlives the server (a restart
        // must not take running jobs with it) and a signal to the server's
        // group does not reach it.
        let mut command = tokio::process::Command::new(&self.program);
        // The server's own settings (its database URL with a password, the
        // first admin's password, …) are no business of the agent or of the
        // jobs it runs; the agent's settings are `SKYDECK_AGENT_*`.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("SKYDECK_") && !name.starts_with("SKYDECK_AGENT_") {
                command.env_remove(&*name);
            }
        }
        let mut child = command
            .args(["agent", "daemon", "--cluster-dir"])
            .arg(dir)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(InfraError::io(format!(
                "cannot start the agent ({})",
                self.program.display()
            )))?;
        let started = Instant::now();
        let mut exited_at = None;
        let outcome = loop {
            if daemon_pid(dir).is_some() {
                break Ok(());
            }
            // An agent that exits at once (a broken cluster directory, or
            // autostop due right away) will not come up however long we
            // wait. It also exits when another agent got the cluster first;
            // that one shows up in a moment, hence the grace.
            if exited_at.is_none() && matches!(child.try_wait(), Ok(Some(_))) {
                exited_at = Some(Instant::now());
            }
            let exited = exited_at.is_some_and(|at| at.elapsed() > EXIT_GRACE);
            if exited || started.elapsed() > AGENT_DEADLINE {
                let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
                let what = if exited {
                    "exited as it started".to_owned()
                } else {
                    format!("did not start within {}s", AGENT_DEADLINE.as_secs())
                };
                break Err(InfraError::Command(format!(
                    "the cluster's agent {what}; its log ({}) ends with: {}",
                    log_path.display(),
                    last_lines(&tail, 5)
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // Reaped in the background; the agent is not waited for otherwise.
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        outcome
    }

    /// Stops the agent (which stops every job) and waits until it is gone.
    async fn stop_agent(&self, handle: &Handle) -> Result<()> {
        let dir = &self.dir_of(handle)?;
        let Some(pid) = daemon_pid(dir) else {
            return Ok(());
        };
        let _ = kill(pid, Signal::SIGTERM);
        let started = Instant::now();
        while daemon_pid(dir).is_some() {
            if started.elapsed() > AGENT_DEADLINE {
                tracing::warn!(cluster = %handle.cluster_name, "the agent ignored SIGTERM; killing it");
                let _ = kill(pid, Signal::SIGKILL);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

/// The pid of the cluster's running agent daemon, if one runs.
fn daemon_pid(cluster_dir: &Path) -> Option<Pid> {
    let text = std::fs::read_to_string(cluster_dir.join("agent").join("daemon.pid")).ok()?;
    let pid: i32 = text.trim().parse().ok()?;
    // The pid file outlives a killed agent, and pids are reused: only a
    // live `skydeck agent daemon` process counts.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let is_agent = cmdline.split(|b| *b == 0).any(|arg| arg == b"daemon");
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true);
    (is_agent && !zombie).then(|| Pid::from_raw(pid))
}

/// Which of `ports` something already listens on at `ip`. A listener
/// bound to every address (0.0.0.0) counts too: binding beside it fails.
fn ports_in_use(ip: &str, ports: &[u16]) -> Vec<u16> {
    ports
        .iter()
        .copied()
        .filter(|port| {
            matches!(
                std::net::TcpListener::bind((ip, *port)),
                Err(err) if err.kind() == std::io::ErrorKind::AddrInUse
            )
        })
        .collect()
}

/// Whether `dir` is `…/clusters/<name>` made for cluster `name`: absolute,
/// plain components only, no link anywhere on the way, and a readable
/// `cluster.json` that names the cluster.
fn is_cluster_dir_of(dir: &Path, name: &ClusterName) -> bool {
    let plain = is_plain_absolute(dir);
    let shaped = dir.file_name().is_some_and(|n| n == name.as_str())
        && dir
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|n| n == "clusters");
    let unlinked = std::fs::canonicalize(dir).is_ok_and(|real| real == dir);
    plain
        && shaped
        && unlinked
        && ClusterInfo::load(&dir.join("cluster.json")).is_ok_and(|info| info.name == name.as_str())
}

/// An absolute path of plain components only (no `.`, no `..`).
fn is_plain_absolute(path: &Path) -> bool {
    path.is_absolute()
        && path.components().all(|c| {
            matches!(
                c,
                std::path::Component::RootDir | std::path::Component::Normal(_)
            )
        })
}

/// Refuses a symbolic link where a directory of ours should be.
fn refuse_link(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(InfraError::Refused(format!(
            "{} is a symbolic link, not a cluster directory; refusing to touch it",
            path.display()
        ))),
        _ => Ok(()),
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

#[async_trait]
impl Provider for LocalProvider {
    fn name(&self) -> &'static str {
        "local"
    }

    fn check(&self) -> std::result::Result<String, String> {
        let machine = Machine::probe();
        let accelerators = if machine.accelerators.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = machine
                .accelerators
                .iter()
                .map(|(name, count)| format!("{name}:{count}"))
                .collect();
            format!(", {}", list.join(", "))
        };
        Ok(format!(
            "This machine: {} CPUs, {:.1} GiB memory{accelerators}.",
            machine.cpus, machine.memory_gb
        ))
    }

    fn admits(&self, spec: &ClusterSpec) -> Result<()> {
        if spec.num_nodes > self.max_nodes {
            return Err(InfraError::Unsatisfiable(format!(
                "The task asks for {} nodes; a `local` cluster has at most {} (every node \
                 is a sandbox on this one machine). Ask for fewer nodes, or have the server \
                 started with {ENV_MAX_NODES} set higher.",
                spec.num_nodes, self.max_nodes
            )));
        }
        Ok(())
    }

    fn admits_file_mount(&self, target: &MountTarget) -> Result<()> {
        files::placeable(target).map_err(InfraError::Refused)
    }

    async fn provision(&self, spec: &ClusterSpec) -> Result<Handle> {
        self.admits(spec)?;
        // What the machine has free may change (`--retry-until-up` waits
        // for it); what `admits` refuses never does.
        let machine = Machine::probe();
        machine
            .fits(&spec.node)
            .map_err(InfraError::Unsatisfiable)?;
        let handle = self.handle_for(spec, &machine)?;
        let dir = self.dir_of(&handle)?;
        // Placement keeps clusters off each other's ports; this keeps them
        // off ports other programs on this machine listen on, so that
        // `endpoints` never names a port the job cannot have.
        if daemon_pid(&dir).is_none() {
            let head = handle.nodes.first().map_or("127.0.0.1", |n| n.ip.as_str());
            let taken = ports_in_use(head, &handle.ports);
            if !taken.is_empty() {
                return Err(InfraError::Unsatisfiable(format!(
                    "Port {} on {head} is in use by a program outside Skydeck; the task's \
                     resources.ports cannot be exposed. Stop that program, or choose other \
                     ports.",
                    taken
                        .iter()
                        .map(u16::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        for node in &handle.nodes {
            let workdir = node.workdir();
            std::fs::create_dir_all(&workdir).map_err(InfraError::io(format!(
                "cannot create {}",
                workdir.display()
            )))?;
        }
        let cluster = ClusterInfo {
            name: spec.name.to_string(),
            num_nodes: handle.nodes.len(),
            nodes: handle.nodes.clone(),
            capacity: handle.capacity.clone(),
            cloud: "local".to_owned(),
            region: None,
            zone: None,
            user_hash: Some(spec.user_hash.clone()),
        };
        let json = serde_json::to_vec(&cluster)
            .map_err(|err| InfraError::Command(format!("cannot describe the cluster: {err}")))?;
        files::write_atomically(&dir.join("cluster.json"), &json)
            .map_err(InfraError::io("cannot write cluster.json"))?;
        self.ensure_agent(&handle).await?;
        Ok(handle)
    }

    async fn query(&self, handle: &Handle) -> Result<ClusterState> {
        let dir = &self.dir_of(handle)?;
        if !dir.join("cluster.json").exists() {
            return Ok(ClusterState::Gone);
        }
        if daemon_pid(dir).is_some() {
            return Ok(ClusterState::Running);
        }
        if let Ok(text) = std::fs::read_to_string(dir.join("agent").join("autostop.json")) {
            let down = serde_json::from_str::<AutostopFile>(&text)
                .is_ok_and(|file| file.action == AutostopAction::Down);
            return Ok(ClusterState::AutoStopped { down });
        }
        // A local node is a directory on a machine that is up, so a missing
        // agent did not stop with its nodes: it died. A cluster stopped on
        // purpose is known as stopped by the server's record.
        Ok(ClusterState::AgentDown)
    }

    async fn stop(&self, handle: &Handle) -> Result<()> {
        self.stop_agent(handle).await
    }

    async fn start(&self, handle: &Handle) -> Result<()> {
        let dir = self.dir_of(handle)?;
        let _ = std::fs::remove_file(dir.join("agent").join("autostop.json"));
        if daemon_pid(&dir).is_none() {
            self.assign_gpus(&dir, handle)?;
        }
        self.ensure_agent(handle).await
    }

    async fn terminate(&self, handle: &Handle) -> Result<()> {
        // Only ever the cluster's own directory, proven from its name: the
        // recursive removal below must not be aimed by a stored value.
        let dir = self.dir_of(handle)?;
        if !dir.exists() {
            return Ok(());
        }
        // An agent that died (rather than stopping on autostop, which it
        // does only once idle) may have left jobs behind: a fresh one reaps
        // them when it starts, and then stops with everything else.
        let agent = dir.join("agent");
        let died = daemon_pid(&dir).is_none()
            && agent.join("state.json").exists()
            && !agent.join("autostop.json").exists();
        if died && let Err(err) = self.ensure_agent(handle).await {
            tracing::warn!(cluster = %handle.cluster_name, error = %err, "cannot restart the agent to reap its jobs");
        }
        self.stop_agent(handle).await?;
        tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&dir))
            .await
            .map_err(|err| InfraError::Command(format!("removing the cluster failed: {err}")))?
            .map_err(InfraError::io(format!(
                "cannot remove {}",
                handle.cluster_dir
            )))
    }

    async fn terminate_unrecorded(&self, name: &ClusterName) -> Result<()> {
        let dir = self.cluster_dir(name)?;
        refuse_link(&dir)?;
        let Ok(cluster) = ClusterInfo::load(&dir.join("cluster.json")) else {
            // No description: provisioning stopped before any agent could
            // start, so only files can be left.
            return match std::fs::remove_dir_all(&dir) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                    Err(InfraError::io(format!("cannot remove {}", dir.display()))(
                        err,
                    ))
                }
                _ => Ok(()),
            };
        };
        // The description's own name is not trusted: the directory is the
        // one this name gives.
        let handle = Handle {
            cluster_name: name.clone(),
            cluster_dir: dir.display().to_string(),
            nodes: cluster.nodes,
            capacity: cluster.capacity,
            ports: Vec::new(),
            request: None,
            hosts: Vec::new(),
        };
        self.terminate(&handle).await
    }

    fn head_runner(&self, handle: &Handle) -> Arc<dyn CommandRunner> {
        Arc::new(LocalRunner {
            dir: self
                .dir_of(handle)
                .unwrap_or_else(|_| self.own_dir(&handle.cluster_name)),
        })
    }

    fn placement(&self) -> Option<PlacementPool> {
        Some(crate::placement::local_pool())
    }

    async fn sync_up(&self, handle: &Handle, local: &Path, remote: &str) -> Result<()> {
        let dir = self.dir_of(handle)?;
        for node in &handle.nodes {
            // The node's directory as this provider makes it, not as the
            // stored handle says.
            let node_dir = confine(&dir, Path::new("nodes").join(node.rank.to_string()))
                .map_err(|err| InfraError::Refused(err.to_string()))?;
            let target = files::node_path(&node_dir, remote).map_err(InfraError::Refused)?;
            let (from, to) = (local.to_owned(), target.clone());
            tokio::task::spawn_blocking(move || files::copy_tree(&from, &to))
                .await
                .map_err(|err| InfraError::Command(format!("copying files failed: {err}")))?
                .map_err(InfraError::io(format!(
                    "cannot copy {} to {}",
                    local.display(),
                    target.display()
                )))?;
        }
        Ok(())
    }
}
