//! The [`crate::Provider`] on one Kubernetes context: a cluster is one pod
//! per node (SkyPilot's names, labels and pod shape, see [`pod_spec`]),
//! reached through the API server alone.
//!
//! - Commands, file sync and logs go through the exec subresource
//!   ([`exec::PodRunner`]); the server needs no route to the pods, and the
//!   pods no network access or special image: the server copies its own
//!   binary in (content-addressed, so a relaunch copies nothing) and starts
//!   the agent daemon in the head pod, laid out as on an SSH host
//!   (`$HOME/.skydeck/clusters/<name>`, the SSH provider's scripts).
//! - The head's agent reaches each worker pod's agent over TCP on the pod
//!   IP (`node-serve`, authenticated with a secret the server makes per
//!   cluster): the agent stays free of any Kubernetes client.
//! - Kubernetes has no stop (SkyPilot refuses `sky stop` there too): a
//!   cluster is launched and torn down; `down` deletes every pod it made,
//!   by label, and waits until they are gone.

pub mod exec;
pub mod ingress;
pub mod names;
pub mod pod_spec;
pub mod ports;
mod scripts;
mod session;
pub mod wait;

use super::KubeTarget;
use crate::ssh::provider::scripts as host_scripts;
use crate::ssh::{BinaryPlatform, HostFacts, Libc, Privilege};
use crate::{
    AgentClient, Capacity, ClusterInfo, ClusterName, ClusterSpec, ClusterState, CommandRunner,
    Handle, InfraError, NodeInfo, Provider, Result,
};
use async_trait::async_trait;
use exec::PodRunner;
use futures_util::future::try_join_all;
use k8s_openapi::api::core::v1::{Node, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use names::{ClusterNames, SKYDECK_CLUSTER_LABEL};
use pod_spec::{GPU_LABEL_KEYS, GpuPlacement, NODE_PORT, PodPlan};
use sha2::{Digest, Sha256};
use skydeck_agent::cluster::NodeTcp;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wait::Verdict;

/// How often a pod's status is read while waiting on it.
const POLL: Duration = Duration::from_millis(500);
/// How long a scheduled pod may take to start its container (pulling a
/// large image included) before the launch gives up.
const START_TIMEOUT: Duration = Duration::from_secs(600);
/// Copies of the agent binary in flight at once, each holding its own
/// buffer of the whole binary (tens of MB): what bounds the server's
/// memory when many clusters launch together.
const CONCURRENT_COPIES: usize = 2;
/// How long `down` waits for the pods to be gone.
const DELETE_TIMEOUT: Duration = Duration::from_secs(120);
/// The cluster's secret on each node, beside cluster.json.
const SECRET_FILE: &str = "node.secret";

/// The API server's own words for a failed call; a refusal (403) says
/// where the missing permission is granted, since the server's words name
/// only the verb, resource and account.
pub(crate) fn kube_message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) if status.code == 403 => forbidden(&status.message),
        kube::Error::Api(status) => format!("{} ({})", status.message, status.reason),
        other => other.to_string(),
    }
}

fn forbidden(message: &str) -> String {
    format!(
        "{message} (Forbidden): the credentials of this context lack that permission. \
         Grant it to them; with the Helm chart, its rbac.namespaceRules (in the clusters' \
         namespace) and rbac.clusterRules hold the backend's permissions (see \
         docs/deploy.md, \"What the pod may do in its cluster\")"
    )
}

fn is_status(err: &kube::Error, code: u16) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == code)
}

/// The agent binary, read and hashed once.
struct Program {
    content: Arc<Vec<u8>>,
    sha: String,
}

/// Clusters as pods on one context.
pub struct KubeProvider {
    target: KubeTarget,
    /// The `skydeck` binary copied into pods as the agent: this very
    /// process unless [`KubeProvider::with_program`] says otherwise.
    program: Option<PathBuf>,
    image: tokio::sync::OnceCell<Program>,
    copies: tokio::sync::Semaphore,
}

/// What a pod said when its node was prepared.
struct PodFacts {
    home: String,
}

impl KubeProvider {
    pub fn new(target: KubeTarget) -> Self {
        Self {
            target,
            program: None,
            image: tokio::sync::OnceCell::new(),
            copies: tokio::sync::Semaphore::new(CONCURRENT_COPIES),
        }
    }

    /// Copies `program` into pods as the agent instead of this process's
    /// own binary (tests, whose process is not `skydeck`).
    #[must_use]
    pub fn with_program(mut self, program: PathBuf) -> Self {
        self.program = Some(program);
        self
    }

    /// The context this provider launches on.
    pub fn target(&self) -> &KubeTarget {
        &self.target
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.target.client.clone(), &self.target.namespace)
    }

    fn runner(&self, pod: &str) -> PodRunner {
        PodRunner::new(self.pods(), pod.to_owned())
    }

    /// The agent of a cluster, run in its head pod.
    pub fn agent(&self, handle: &Handle) -> AgentClient {
        let dir = handle.cluster_dir.clone();
        AgentClient::new(self.head_runner(handle), format!("{dir}/bin/skydeck"), dir)
    }

    fn context_error(&self, what: &str, err: &kube::Error) -> InfraError {
        InfraError::Command(format!(
            "{what} in namespace {} of Kubernetes context {}: {}",
            self.target.namespace,
            self.target.context,
            kube_message(err)
        ))
    }

    async fn program(&self) -> Result<&Program> {
        self.image
            .get_or_try_init(|| async {
                let path = match &self.program {
                    Some(path) => path.clone(),
                    None => std::env::current_exe()
                        .map_err(InfraError::io("cannot find the server's own binary"))?,
                };
                let content = tokio::fs::read(&path)
                    .await
                    .map_err(InfraError::io(format!("cannot read {}", path.display())))?;
                let (content, sha) = tokio::task::spawn_blocking(move || {
                    let sha = format!("{:x}", Sha256::digest(&content));
                    (content, sha)
                })
                .await
                .map_err(|err| InfraError::Command(format!("hashing the agent failed: {err}")))?;
                Ok(Program {
                    content: Arc::new(content),
                    sha,
                })
            })
            .await
    }

    /// The pod names of a handle: its `hosts`, head first.
    fn pods_of(handle: &Handle) -> Result<&[String]> {
        if handle.hosts.is_empty() {
            return Err(InfraError::Command(format!(
                "the handle of cluster {} names no pods",
                handle.cluster_name
            )));
        }
        Ok(&handle.hosts)
    }

    /// The cluster's name on the cloud, from its head pod's name.
    fn on_cloud_of(handle: &Handle) -> Result<&str> {
        let head = &Self::pods_of(handle)?[0];
        head.strip_suffix("-head").ok_or_else(|| {
            InfraError::Refused(format!(
                "{head} is not a head pod's name; refusing to act on it"
            ))
        })
    }

    /// The label selector of a handle's cluster (`skypilot-cluster-name`).
    fn selector_of(handle: &Handle) -> Result<String> {
        Ok(format!(
            "skypilot-cluster-name={}",
            Self::on_cloud_of(handle)?
        ))
    }

    /// Makes `skypilot-service-account` when pods run as it and it is
    /// missing (SkyPilot makes it too; Skydeck's agent needs no role).
    async fn ensure_service_account(&self) -> Result<()> {
        let name = pod_spec::service_account(&self.target.settings);
        if name != pod_spec::DEFAULT_SERVICE_ACCOUNT {
            return Ok(());
        }
        let accounts: Api<ServiceAccount> =
            Api::namespaced(self.target.client.clone(), &self.target.namespace);
        match accounts.get_opt(name).await {
            Ok(Some(_)) => return Ok(()),
            Ok(None) => {}
            Err(err) => return Err(self.context_error("cannot read service accounts", &err)),
        }
        let mut account: ServiceAccount = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"parent": "skypilot"}},
        }))
        .map_err(|err| InfraError::Command(format!("cannot build the service account: {err}")))?;
        if let Some(meta) = pod_spec::custom_metadata(&self.target.settings) {
            let mut value = serde_json::to_value(&account).unwrap_or_default();
            pod_spec::merge_pod_config(&mut value, &serde_json::json!({"metadata": meta}));
            account = serde_json::from_value(value).unwrap_or(account);
        }
        match accounts.create(&PostParams::default(), &account).await {
            Ok(_) => Ok(()),
            Err(err) if is_status(&err, 409) => Ok(()),
            Err(err) => {
                Err(self.context_error(&format!("cannot create service account {name}"), &err))
            }
        }
    }

    /// Where the GPUs of `spec` must go; the label values this context's
    /// nodes carry are used when it may list nodes.
    async fn gpu_placement(&self, spec: &ClusterSpec) -> Option<GpuPlacement> {
        let (name, count) = spec.node.accelerators.iter().next()?;
        let nodes: Api<Node> = Api::all(self.target.client.clone());
        let labelled: Vec<(String, String)> = match nodes.list(&ListParams::default()).await {
            Ok(list) => list
                .items
                .iter()
                .filter_map(|n| n.metadata.labels.as_ref())
                .flat_map(|labels| {
                    labels
                        .iter()
                        .filter(|(k, _)| GPU_LABEL_KEYS.contains(&k.as_str()))
                        .map(|(k, v)| (k.clone(), v.clone()))
                })
                .collect(),
            Err(err) => {
                tracing::debug!(error = %err, "cannot list nodes for their GPU labels");
                Vec::new()
            }
        };
        Some(GpuPlacement::for_model(name, *count, &labelled))
    }

    /// Creates the pods that are missing (a second provision continues);
    /// pods that finished or are being deleted are replaced.
    async fn create_pods(&self, spec: &ClusterSpec, names: &ClusterNames) -> Result<()> {
        let pods = self.pods();
        let gpu = self.gpu_placement(spec).await;
        let num_nodes = spec.num_nodes as usize;
        try_join_all((0..num_nodes).map(|rank| {
            let pods = pods.clone();
            let gpu = gpu.as_ref();
            async move {
                let name = names.pod(rank);
                match pods.get_opt(&name).await {
                    Ok(Some(pod)) if matches!(wait::verdict(&pod), Verdict::Failed(_)) => {
                        self.delete_and_wait(std::slice::from_ref(&name)).await?;
                    }
                    Ok(Some(_)) => return Ok(()),
                    Ok(None) => {}
                    Err(err) => return Err(self.context_error("cannot read pods", &err)),
                }
                let manifest = pod_spec::pod_manifest(&PodPlan {
                    names,
                    rank,
                    num_nodes,
                    request: &spec.node,
                    settings: &self.target.settings,
                    gpu,
                });
                let pod: Pod = serde_json::from_value(manifest).map_err(|err| {
                    InfraError::Unsatisfiable(format!(
                        "kubernetes.pod_config does not make a valid pod: {err}"
                    ))
                })?;
                // A service account made a moment ago has no token yet
                // on clusters that still make token secrets (before
                // 1.24), and pods that would mount it are refused until
                // it has one: wait for it.
                let deadline = Instant::now() + Duration::from_secs(30);
                let created = loop {
                    match pods.create(&PostParams::default(), &pod).await {
                        Err(err)
                            if kube_message(&err).contains("retry after the token")
                                && Instant::now() < deadline =>
                        {
                            tokio::time::sleep(POLL).await;
                        }
                        other => break other,
                    }
                };
                match created {
                    Ok(_) => Ok(()),
                    Err(err) if is_status(&err, 409) => Ok(()),
                    Err(err) if is_status(&err, 422) || is_status(&err, 400) => {
                        Err(InfraError::Unsatisfiable(format!(
                            "Kubernetes refused pod {name}: {}",
                            kube_message(&err)
                        )))
                    }
                    Err(err) => Err(self.context_error(&format!("cannot create pod {name}"), &err)),
                }
            }
        }))
        .await?;
        Ok(())
    }

    /// Waits until every pod runs; returns their IPs by rank.
    async fn wait_running(&self, pods: &[String]) -> Result<Vec<String>> {
        let api = self.pods();
        let started = Instant::now();
        let schedule_timeout = self.target.settings.provision_timeout.map(|t| {
            // SkyPilot's default grows with the cluster: 0.2 s a node more.
            t.max(Duration::from_millis(200) * u32::try_from(pods.len()).unwrap_or(0))
        });
        let mut ips = vec![None; pods.len()];
        loop {
            for (rank, name) in pods.iter().enumerate() {
                if ips[rank].is_some() {
                    continue;
                }
                let pod = match api.get_opt(name).await {
                    Ok(Some(pod)) => pod,
                    Ok(None) => {
                        return Err(InfraError::Command(format!(
                            "pod {name} was deleted while the cluster was being launched"
                        )));
                    }
                    Err(err) => return Err(self.context_error("cannot read pods", &err)),
                };
                match wait::verdict(&pod) {
                    Verdict::Ready { ip } => ips[rank] = Some(ip),
                    Verdict::Failed(why) => return Err(InfraError::Command(why)),
                    Verdict::Waiting { scheduled, why } => {
                        let elapsed = started.elapsed();
                        if !scheduled && schedule_timeout.is_some_and(|t| elapsed > t) {
                            let why = match why {
                                Some(why) => Some(why),
                                None => self.scheduling_event(name).await,
                            };
                            return Err(InfraError::Unsatisfiable(wait::unschedulable(
                                name,
                                &self.target.context,
                                why.as_deref(),
                            )));
                        }
                        if scheduled && elapsed > START_TIMEOUT {
                            return Err(InfraError::Command(format!(
                                "pod {name} was scheduled but its container did not start \
                                 within {}s",
                                START_TIMEOUT.as_secs()
                            )));
                        }
                    }
                }
            }
            if ips.iter().all(Option::is_some) {
                return Ok(ips.into_iter().flatten().collect());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The latest `FailedScheduling` event's message for `pod`.
    async fn scheduling_event(&self, pod: &str) -> Option<String> {
        let events: Api<k8s_openapi::api::core::v1::Event> =
            Api::namespaced(self.target.client.clone(), &self.target.namespace);
        let list = events
            .list(&ListParams::default().fields(&format!(
                "involvedObject.name={pod},involvedObject.kind=Pod"
            )))
            .await
            .ok()?;
        list.items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("FailedScheduling"))
            .max_by_key(|e| e.last_timestamp.clone().map(|t| t.0))
            .and_then(|e| e.message)
    }

    /// Runs `script` (`sh -c`) in `pod` with `args`; its stdout, or an
    /// error with its stderr.
    async fn script(
        &self,
        pod: &str,
        script: &str,
        args: &[&str],
        stdin: Option<Vec<u8>>,
    ) -> Result<String> {
        let mut argv = vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            script.to_owned(),
            "skydeck".to_owned(),
        ];
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        let out = self.runner(pod).run(&argv, stdin).await?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(InfraError::Command(format!(
                "in pod {pod}: {}",
                out.stderr.trim()
            )))
        }
    }

    /// Checks the pod can run the agent, makes the node's directory and
    /// installs the agent (only when that build is not there yet).
    async fn prepare_pod(&self, pod: &str, name: &ClusterName, rank: usize) -> Result<PodFacts> {
        let platform = self.script(pod, scripts::PLATFORM, &[], None).await?;
        let mut lines = platform.lines();
        let facts = HostFacts {
            hostname: pod.to_owned(),
            arch: lines.next().unwrap_or_default().trim().to_owned(),
            libc: match lines.next().map(str::trim) {
                Some("glibc") => Libc::Glibc {
                    version: String::new(),
                },
                Some("musl") => Libc::Musl,
                _ => Libc::Unknown,
            },
            cpus: 0,
            memory_bytes: 0,
            gpus: Vec::new(),
            privilege: Privilege::None,
        };
        BinaryPlatform::current()
            .check(&format!("pod {pod}"), &facts)
            .map_err(|err| {
                InfraError::Unsatisfiable(format!(
                    "{err} (or launch with an image_id whose system has glibc)"
                ))
            })?;
        let out = self
            .script(
                pod,
                &host_scripts::prepare_node(),
                &[name.as_str(), &rank.to_string()],
                None,
            )
            .await?;
        let lines: Vec<&str> = out.lines().collect();
        let [home, ..] = lines[..] else {
            return Err(InfraError::Command(format!(
                "pod {pod} answered the node set-up with something unreadable: {out:?}"
            )));
        };
        let program = self.program().await?;
        let dir = format!(".skydeck/bin/{}", program.sha);
        let path = format!("{dir}/skydeck");
        let link = |path: String| async move {
            let argv: Vec<String> = [
                "/bin/sh",
                "-c",
                &host_scripts::link_agent(),
                "skydeck",
                name.as_str(),
                &path,
            ]
            .iter()
            .map(|w| (*w).to_owned())
            .collect();
            self.runner(pod).run(&argv, None).await
        };
        let mut linked = link(path.clone()).await?;
        if linked.code == host_scripts::NOT_INSTALLED {
            let _copying = self
                .copies
                .acquire()
                .await
                .map_err(|_| InfraError::Command("the provider is shutting down".to_owned()))?;
            self.script(
                pod,
                scripts::INSTALL,
                &[&dir, &program.sha, "skydeck"],
                Some(program.content.as_ref().clone()),
            )
            .await
            .map_err(|err| InfraError::Command(format!("copying the agent failed: {err}")))?;
            linked = link(path).await?;
        }
        if !linked.success() {
            return Err(InfraError::Command(format!(
                "in pod {pod}: cannot link the agent: {}",
                linked.stderr.trim()
            )));
        }
        Ok(PodFacts {
            home: home.to_owned(),
        })
    }

    /// Writes `content` to `file` in the cluster's directory of `pod`.
    async fn write_file(
        &self,
        pod: &str,
        name: &ClusterName,
        file: &str,
        content: Vec<u8>,
    ) -> Result<()> {
        self.script(
            pod,
            &host_scripts::write_file(),
            &[name.as_str(), file],
            Some(content),
        )
        .await
        .map(drop)
    }

    /// Deletes `pods` at once (grace 0, as SkyPilot) and waits until they
    /// are gone.
    async fn delete_and_wait(&self, pods: &[String]) -> Result<()> {
        let api = self.pods();
        let now = DeleteParams::default().grace_period(0);
        for pod in pods {
            match api.delete(pod, &now).await {
                Ok(_) => {}
                Err(err) if is_status(&err, 404) => {}
                Err(err) => {
                    return Err(self.context_error(&format!("cannot delete pod {pod}"), &err));
                }
            }
        }
        let deadline = Instant::now() + DELETE_TIMEOUT;
        for pod in pods {
            loop {
                match api.get_opt(pod).await {
                    Ok(None) => break,
                    Ok(Some(_)) if Instant::now() > deadline => {
                        return Err(InfraError::Command(format!(
                            "pod {pod} was still there {}s after it was deleted",
                            DELETE_TIMEOUT.as_secs()
                        )));
                    }
                    Ok(Some(_)) => tokio::time::sleep(POLL).await,
                    Err(err) => return Err(self.context_error("cannot read pods", &err)),
                }
            }
        }
        Ok(())
    }

    /// Deletes every pod and service labelled `selector`, and waits until
    /// the pods are gone.
    async fn delete_labelled(&self, selector: &str) -> Result<()> {
        let api = self.pods();
        let list = api
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(|err| self.context_error("cannot list pods", &err))?;
        let names: Vec<String> = list
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();
        self.delete_and_wait(&names).await?;
        let services: Api<k8s_openapi::api::core::v1::Service> =
            Api::namespaced(self.target.client.clone(), &self.target.namespace);
        match services.list(&ListParams::default().labels(selector)).await {
            Ok(list) => {
                for service in list.items.into_iter().filter_map(|s| s.metadata.name) {
                    match services.delete(&service, &DeleteParams::default()).await {
                        Ok(_) => {}
                        Err(err) if is_status(&err, 404) => {}
                        Err(err) => {
                            return Err(self
                                .context_error(&format!("cannot delete service {service}"), &err));
                        }
                    }
                }
            }
            Err(err) => return Err(self.context_error("cannot list services", &err)),
        }
        Ok(())
    }

    /// What is wrong with the cluster's pods, if anything: a pod deleted,
    /// evicted or failed, in words for the cluster's status.
    pub async fn problem(&self, handle: &Handle) -> Result<Option<String>> {
        Ok(self.survey(handle).await?.problem())
    }

    /// Reads every pod of the cluster once.
    async fn survey(&self, handle: &Handle) -> Result<Survey> {
        let api = self.pods();
        let mut survey = Survey::default();
        for (rank, pod) in Self::pods_of(handle)?.iter().enumerate() {
            let found = api
                .get_opt(pod)
                .await
                .map_err(|err| self.context_error("cannot read pods", &err))?;
            let Some(found) = found else {
                survey.problems.push(format!("pod {pod} was deleted"));
                continue;
            };
            survey.present += 1;
            match wait::verdict(&found) {
                Verdict::Failed(why) => survey.problems.push(why),
                _ if rank == 0 => survey.head_usable = true,
                _ => {}
            }
        }
        Ok(survey)
    }
}

/// What one read of a cluster's pods found.
#[derive(Debug, Default)]
struct Survey {
    /// Pods that still exist, whatever their state.
    present: usize,
    /// The head pod exists and has not failed.
    head_usable: bool,
    /// A pod deleted, evicted or failed, each in words.
    problems: Vec<String>,
}

impl Survey {
    fn problem(&self) -> Option<String> {
        (!self.problems.is_empty()).then(|| self.problems.join("; "))
    }
}

/// A fresh secret for the cluster's nodes.
fn new_secret() -> Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .map_err(InfraError::io("cannot read /dev/urandom"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[async_trait]
impl Provider for KubeProvider {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn check(&self) -> std::result::Result<String, String> {
        Ok(format!(
            "Kubernetes context {}, namespace {}",
            self.target.context, self.target.namespace
        ))
    }

    fn admits(&self, spec: &ClusterSpec) -> Result<()> {
        if spec.num_nodes == 0 {
            return Err(InfraError::Unsatisfiable(
                "a cluster needs at least one node".to_owned(),
            ));
        }
        if spec.node.accelerators.len() > 1 {
            return Err(InfraError::Unsatisfiable(
                "a Kubernetes pod asks for one GPU model; ask for one accelerator".to_owned(),
            ));
        }
        Ok(())
    }

    async fn provision(&self, spec: &ClusterSpec) -> Result<Handle> {
        self.admits(spec)?;
        let name = &spec.name;
        let names = ClusterNames::new(name, &spec.user_hash);
        let pods: Vec<String> = (0..spec.num_nodes as usize)
            .map(|rank| names.pod(rank))
            .collect();
        self.ensure_service_account().await?;
        // Ports first: a mode the context cannot serve (ingress without
        // its controller) is refused before any pod is made.
        self.open_ports(spec, &names).await?;
        self.create_pods(spec, &names).await?;
        let ips = self.wait_running(&pods).await?;
        let facts = try_join_all(
            pods.iter()
                .enumerate()
                .map(|(rank, pod)| self.prepare_pod(pod, name, rank)),
        )
        .await?;
        let head_dir = format!("{}/.skydeck/clusters/{name}", facts[0].home);
        let secret_file = PathBuf::from(format!("{head_dir}/{SECRET_FILE}"));
        if pods.len() > 1 {
            // One secret for every node; a relaunch makes a new one
            // (a worker's node-serve reads its file for each connection).
            let secret = new_secret()?;
            try_join_all(
                pods.iter().map(|pod| {
                    self.write_file(pod, name, SECRET_FILE, secret.clone().into_bytes())
                }),
            )
            .await?;
            let port = NODE_PORT.to_string();
            try_join_all(pods[1..].iter().map(|pod| {
                let args = [name.as_str(), port.as_str()];
                async move {
                    self.script(pod, scripts::START_NODE_SERVE, &args, None)
                        .await
                }
            }))
            .await?;
        }
        let nodes: Vec<NodeInfo> = facts
            .iter()
            .enumerate()
            .map(|(rank, fact)| NodeInfo {
                rank,
                ip: ips[rank].clone(),
                dir: PathBuf::from(format!(
                    "{}/.skydeck/clusters/{name}/nodes/{rank}",
                    fact.home
                )),
                gpus: None,
                ssh: None,
                tcp: (rank > 0).then(|| NodeTcp {
                    host: ips[rank].clone(),
                    port: NODE_PORT,
                    secret_file: secret_file.clone(),
                }),
            })
            .collect();
        // What each pod requested (the node's own size is not its share).
        let (cpus, memory_gb) = pod_spec::size_of(&spec.node);
        let capacity = Capacity {
            cpus,
            memory_gb,
            accelerators: spec.node.accelerators.clone(),
        };
        let cluster = ClusterInfo {
            name: name.to_string(),
            num_nodes: nodes.len(),
            nodes: nodes.clone(),
            capacity: capacity.clone(),
            cloud: "kubernetes".to_owned(),
            region: Some(self.target.context.clone()),
            zone: None,
            user_hash: Some(spec.user_hash.clone()),
        };
        let json = serde_json::to_vec(&cluster)
            .map_err(|err| InfraError::Command(format!("cannot describe the cluster: {err}")))?;
        self.write_file(&pods[0], name, "cluster.json", json)
            .await?;
        self.script(
            &pods[0],
            &host_scripts::start_agent(),
            &[name.as_str()],
            None,
        )
        .await?;
        Ok(Handle {
            cluster_name: name.clone(),
            cluster_dir: head_dir,
            nodes,
            capacity,
            ports: spec.node.ports.clone(),
            request: Some(spec.node.clone()),
            hosts: pods,
        })
    }

    async fn query(&self, handle: &Handle) -> Result<ClusterState> {
        let pods = Self::pods_of(handle)?;
        let survey = self.survey(handle).await?;
        if survey.present == 0 {
            return Ok(ClusterState::Gone);
        }
        if let Some(problem) = survey.problem() {
            // A pod cannot be brought back; what is left of the cluster
            // stays (and is reported) until `down` removes it, instead of
            // the record vanishing while pods are still there.
            let consequence = if survey.head_usable {
                "the jobs that used those pods ended FAILED_DRIVER"
            } else {
                "the cluster's agent and its job records went with the head pod"
            };
            tracing::warn!(cluster = %handle.cluster_name, "{problem}");
            return Err(InfraError::Command(format!(
                "{problem}; {consequence}. A pod cannot be brought back: tear the cluster \
                 down with `sky down {}` and launch it again",
                handle.cluster_name
            )));
        }
        // Every pod runs: whether the cluster does is the agent's to say.
        let state = self
            .script(
                &pods[0],
                &host_scripts::agent_state(),
                &[handle.cluster_name.as_str()],
                None,
            )
            .await?;
        Ok(match state.trim() {
            "gone" => ClusterState::Gone,
            "running" => ClusterState::Running,
            "autostop" => ClusterState::AutoStopped { down: false },
            "autodown" => ClusterState::AutoStopped { down: true },
            _ => ClusterState::AgentDown,
        })
    }

    async fn stop(&self, handle: &Handle) -> Result<()> {
        Err(InfraError::Unsatisfiable(format!(
            "cluster {} runs on Kubernetes, where clusters cannot be stopped (a pod cannot be \
             paused and resumed; SkyPilot refuses `sky stop` there too): tear it down with \
             `sky down {}`",
            handle.cluster_name, handle.cluster_name
        )))
    }

    async fn start(&self, handle: &Handle) -> Result<()> {
        // Only the agent can be brought back: a pod that is gone is gone.
        if let Some(problem) = self.problem(handle).await? {
            return Err(InfraError::Command(format!(
                "cluster {} cannot be restarted on Kubernetes: {problem}; tear it down with \
                 `sky down {}` and launch it again",
                handle.cluster_name, handle.cluster_name
            )));
        }
        let pods = Self::pods_of(handle)?;
        let name = &handle.cluster_name;
        for pod in &pods[1..] {
            self.script(
                pod,
                scripts::START_NODE_SERVE,
                &[name.as_str(), &NODE_PORT.to_string()],
                None,
            )
            .await?;
        }
        self.script(
            &pods[0],
            &host_scripts::start_agent(),
            &[name.as_str(), "start"],
            None,
        )
        .await
        .map(drop)
    }

    async fn terminate(&self, handle: &Handle) -> Result<()> {
        let selector = Self::selector_of(handle)?;
        self.delete_labelled(&selector).await?;
        self.close_ports(Self::on_cloud_of(handle)?).await?;
        // Pods of the handle that lost their labels (someone relabelled
        // them) are still the cluster's.
        self.delete_and_wait(Self::pods_of(handle)?).await
    }

    async fn terminate_unrecorded(&self, name: &ClusterName) -> Result<()> {
        self.delete_labelled(&format!("{SKYDECK_CLUSTER_LABEL}={name}"))
            .await
    }

    fn head_runner(&self, handle: &Handle) -> Arc<dyn CommandRunner> {
        let head = handle.hosts.first().cloned().unwrap_or_default();
        Arc::new(self.runner(&head))
    }

    async fn sync_up(&self, handle: &Handle, local: &Path, remote: &str) -> Result<()> {
        // A directory travels as a tar of its contents, a file as itself.
        let (content, script) = if local.is_dir() {
            (
                tar_of(local).await?,
                "if [ -L \"$1\" ]; then echo \"$1 is a symbolic link: sync into a real \
                 directory\" >&2; exit 3; fi; mkdir -p -- \"$1\" && tar -xf - -C \"$1\"",
            )
        } else {
            (
                tokio::fs::read(local)
                    .await
                    .map_err(InfraError::io(format!("cannot read {}", local.display())))?,
                "mkdir -p -- \"$(dirname -- \"$1\")\" && cat >\"$1\"",
            )
        };
        for (node, pod) in handle.nodes.iter().zip(Self::pods_of(handle)?) {
            let target = node_path(&node.dir, remote);
            self.script(pod, script, &[&target], Some(content.clone()))
                .await
                .map_err(|err| {
                    InfraError::Command(format!(
                        "cannot sync {} to {target}: {err}",
                        local.display()
                    ))
                })?;
        }
        Ok(())
    }
}

/// A tar of directory `local`'s contents.
async fn tar_of(local: &Path) -> Result<Vec<u8>> {
    let out = tokio::process::Command::new("tar")
        .arg("-cf")
        .arg("-")
        .arg("-C")
        .arg(local)
        .arg(".")
        .output()
        .await
        .map_err(InfraError::io("cannot run tar"))?;
    if !out.status.success() {
        return Err(InfraError::Command(format!(
            "cannot pack {}: {}",
            local.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}

/// Where `remote` (`~/x`, relative to the node's home, or absolute) lands
/// for a node whose home is `node_dir`.
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
