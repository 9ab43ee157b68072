//! `skydeck-bench kube`: clusters as pods on a real Kubernetes (the test
//! cluster of `scripts/kube-up.sh`, or any kubeconfig the server is given)
//! — launch to the first log line with the server's own part broken out
//! from the pod's start, many clusters launched at once, and the server's
//! memory per cluster pod it keeps track of.
//!
//! Everything goes through the real server's API, as the official client
//! drives it. Every cluster the benchmark makes is torn down before the
//! server stops, whatever failed on the way.

use crate::clusters::Created;
use crate::clusters::api::Api;
use crate::clusters::fleet::{self, FleetRun};
use crate::clusters::report::{detail, fleet_table, ms, render, summary_json};
use crate::progress;
use crate::report::{format_mib, format_ms, kib_to_mib, round2};
use crate::server::{Memory, Server};
use crate::ssh::launch::{self, EXPECTED_LINE, Milestones, RUN};
use crate::stats::Summary;
use anyhow::Context;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The kubeconfig the test script exports.
pub const KUBECONFIG_VAR: &str = "SKYDECK_TEST_KUBECONFIG";
/// The image the test script's node has (no registry is reachable).
pub const IMAGE_VAR: &str = "SKYDECK_TEST_KUBE_IMAGE";

pub struct Config {
    /// Fresh one-pod clusters launched one after another.
    pub launches: u32,
    /// Clusters launched at the same time.
    pub clusters: u32,
    /// `k8s/<context>`, or `k8s` for the server's first allowed context.
    pub infra: String,
}

/// A task small enough that a two-core test node holds many of its pods.
fn task(infra: &str, run: &str) -> String {
    let run = serde_json::to_string(run).expect("a string serializes");
    format!(
        "name: hello\n---\nname: hello\nnum_nodes: 1\nresources:\n  infra: {infra}\n  \
         cpus: 0.05\n  memory: 0.1\nrun: {run}\n"
    )
}

/// The kubeconfig to give the server: `--kubeconfig`, else
/// `$SKYDECK_TEST_KUBECONFIG`; none is an error saying how to get one.
pub fn locate(
    given: Option<&Path>,
    from_env: Option<std::ffi::OsString>,
) -> anyhow::Result<PathBuf> {
    let path = given
        .map(Path::to_owned)
        .or_else(|| from_env.map(PathBuf::from))
        .context(
            "no Kubernetes to measure on: pass --kubeconfig, or start the test cluster with \
             `export SKYDECK_TEST_KUBECONFIG=$(bash scripts/kube-up.sh /var/tmp/skydeck-kube-bench \
             | tail -n 1)` (stop it with scripts/kube-down.sh)",
        )?;
    anyhow::ensure!(
        path.is_file(),
        "kubeconfig {} does not exist",
        path.display()
    );
    Ok(path)
}

pub struct KubeReport {
    pub binary: PathBuf,
    pub binary_bytes: u64,
    pub cpus: usize,
    pub infra: String,
    pub launch: Vec<Milestones>,
    pub memory_before_fleet: Memory,
    pub fleet: FleetRun,
    /// The load averages (1, 5, 15 min) before and after the run.
    pub load: [String; 2],
}

/// Runs every part on `server`; then tears down what is left.
pub async fn run(server: &Server, binary: &Path, config: &Config) -> anyhow::Result<KubeReport> {
    let api = Arc::new(Api::new(server.addr)?);
    let created = Created::default();
    let outcome = measure(server, binary, &api, &created, config).await;
    for name in created.names() {
        progress(&format!("tearing down leftover cluster {name}"));
        if let Err(err) = api.down(&name).await {
            progress(&format!("could not tear down {name}: {err:#}"));
        }
    }
    outcome
}

async fn measure(
    server: &Server,
    binary: &Path,
    api: &Arc<Api>,
    created: &Created,
    config: &Config,
) -> anyhow::Result<KubeReport> {
    let load_before = crate::ssh::load_average();
    let infra = &config.infra;
    let launch = launch::run_task(api, created, infra, config.launches, &task(infra, RUN)).await?;
    let memory_before_fleet = server.memory()?;
    let fleet = fleet::run(
        server,
        api,
        created,
        config.clusters,
        &task(infra, "echo hello"),
    )
    .await?;
    Ok(KubeReport {
        binary: binary.to_owned(),
        binary_bytes: std::fs::metadata(binary).map_or(0, |m| m.len()),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        infra: infra.clone(),
        launch,
        memory_before_fleet,
        fleet,
        load: [load_before, crate::ssh::load_average()],
    })
}

/// A launch step's name and how to read it from one run.
type Step = (&'static str, fn(&Milestones) -> Option<Duration>);

/// The server's own part ends where provisioning starts and resumes once
/// the cluster is UP; between them is Kubernetes' (pod scheduled, image,
/// container started) and the agent's copy into the pod.
const STEPS: [Step; 9] = [
    ("POST /launch answered", |m| Some(m.accepted)),
    ("server starts provisioning (its own part)", |m| {
        m.provisioning
    }),
    ("cluster UP (pod running, agent copied in, daemon)", |m| {
        m.up
    }),
    ("job submitted to the agent (exec)", |m| m.job_submitted),
    ("launch request done (/api/get)", |m| Some(m.request_done)),
    ("job started (agent's record)", |m| Some(m.agent_started)),
    ("first line of the job's log", |m| Some(m.first_line)),
    ("job ended (agent's record)", |m| Some(m.agent_ended)),
    ("job done (log stream ended)", |m| Some(m.job_done)),
];

impl KubeReport {
    /// Server RSS added per cluster pod while the fleet is up.
    fn rss_per_pod_kib(&self) -> Option<u64> {
        let pods = self
            .fleet
            .clusters
            .checked_sub(self.fleet.launch_errors.len())?;
        let grown = self
            .fleet
            .memory_after_launch
            .rss_kib
            .saturating_sub(self.memory_before_fleet.rss_kib);
        (pods > 0).then(|| grown / pods as u64)
    }

    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Skydeck Kubernetes benchmark: {} ({:.1} MB), {} CPUs, infra {}",
            self.binary.display(),
            self.binary_bytes as f64 / 1e6,
            self.cpus,
            self.infra
        );
        let _ = writeln!(
            out,
            "load average before: {}, after: {}\n",
            self.load[0], self.load[1]
        );
        let mut rows = vec![vec![
            format!(
                "Launch to first log line ({} fresh one-pod clusters)",
                self.launch.len()
            ),
            "1st run".into(),
            "median".into(),
            "max".into(),
        ]];
        let first = self.launch.first();
        for (name, get) in STEPS {
            let all = Summary::of(self.launch.iter().filter_map(get).collect());
            rows.push(vec![
                format!("  {name}"),
                format_ms(first.and_then(get)),
                format_ms(all.median()),
                format_ms(all.max()),
            ]);
        }
        out.push_str(&render(&rows));
        out.push('\n');
        fleet_table(&mut out, &self.fleet);
        let rows = vec![
            vec!["Server memory".to_owned(), String::new()],
            detail(
                "RSS before the fleet",
                format_mib(self.memory_before_fleet.rss_kib),
            ),
            detail(
                "RSS with the fleet's pods",
                format_mib(self.fleet.memory_after_launch.rss_kib),
            ),
            detail(
                "added per cluster pod",
                self.rss_per_pod_kib()
                    .map_or_else(|| "n/a".to_owned(), |kib| format!("{kib} KiB")),
            ),
            detail("peak", format_mib(self.fleet.memory_after_launch.hwm_kib)),
        ];
        out.push_str(&render(&rows));
        out
    }

    pub fn to_json(&self) -> Value {
        let steps: Vec<Value> = STEPS
            .iter()
            .map(|(name, get)| {
                json!({
                    "step": name,
                    "ms": self.launch.iter().map(|m| get(m).map(ms)).collect::<Vec<_>>(),
                })
            })
            .collect();
        let fleet = &self.fleet;
        json!({
            "binary": self.binary,
            "binary_bytes": self.binary_bytes,
            "cpus": self.cpus,
            "infra": self.infra,
            "launch": {"expected_line": EXPECTED_LINE, "steps": steps},
            "fleet": {
                "clusters": fleet.clusters,
                "launch_total_ms": ms(fleet.launch_total),
                "launch_ms": summary_json(&fleet.launch),
                "launch_errors": fleet.launch_errors,
                "down_total_ms": ms(fleet.down_total),
                "down_ms": summary_json(&fleet.down),
                "down_errors": fleet.down_errors,
            },
            "memory": {
                "rss_before_fleet_mib": round2(kib_to_mib(self.memory_before_fleet.rss_kib)),
                "rss_with_fleet_mib": round2(kib_to_mib(fleet.memory_after_launch.rss_kib)),
                "rss_per_pod_kib": self.rss_per_pod_kib(),
                "hwm_mib": round2(kib_to_mib(fleet.memory_after_launch.hwm_kib)),
            },
            "load": self.load,
        })
    }
}
