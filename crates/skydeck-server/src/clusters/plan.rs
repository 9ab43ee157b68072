//! What a task asks of a cluster, read from the task YAML the client sent:
//! the node shape to provision, the files to sync, and the job to submit.

use crate::skypilot::exception;
use skydeck_infra::NodeRequest;
use skydeck_types::RequestError;
use skydeck_types::task::{EnvValue, FileMount, Workdir};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// CPUs a job takes when its task names none, as in SkyPilot: several
/// such jobs share a node.
const DEFAULT_JOB_CPUS: f64 = 0.5;

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub task_name: Option<String>,
    pub num_nodes: u32,
    /// The infrastructure kind (`local` unless the task says otherwise).
    pub infra: String,
    pub node: NodeRequest,
    /// CPUs the job holds on each node while it runs.
    pub job_cpus: f64,
    /// The workdir, where it is on this server (after the upload).
    pub workdir: Option<PathBuf>,
    /// Remote path → where its source is on this server.
    pub file_mounts: Vec<(String, PathBuf)>,
    pub setup: Option<String>,
    pub run: Option<String>,
    pub envs: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, String>,
}

fn invalid(message: impl Into<String>) -> RequestError {
    RequestError::new(exception::VALUE_ERROR, message)
}

/// Reads the dag YAML of `/launch` or `/exec`. `uploaded` is where the
/// blob of the request's files was unpacked, if it had one.
pub fn plan(task_yaml: &str, uploaded: Option<&Path>) -> Result<Plan, RequestError> {
    let mut tasks = skydeck_types::task::parse_tasks(task_yaml)
        .map_err(|err| invalid(format!("Invalid task: {err}")))?;
    if tasks.len() != 1 {
        return Err(invalid(format!(
            "This request holds {} tasks; a cluster runs one task per launch or exec. \
             Split the chain into separate tasks.",
            tasks.len()
        )));
    }
    let task = tasks.remove(0);
    task.validate()
        .map_err(|err| invalid(format!("Invalid task: {err}")))?;
    let resources = task
        .resource_choices()
        .into_iter()
        .next()
        .unwrap_or_default();
    let mapping = &task.file_mounts_mapping;
    let locate = |source: &str| -> PathBuf {
        match (uploaded, mapping.get(source)) {
            (Some(root), Some(mapped)) => root.join(mapped.trim_start_matches('/')),
            (Some(root), None) => root.join(source.trim_start_matches('/')),
            (None, _) => PathBuf::from(source),
        }
    };
    let mut file_mounts = Vec::new();
    for (target, mount) in &task.file_mounts {
        match mount {
            FileMount::Source(source) if !source.contains("://") => {
                file_mounts.push((target.clone(), locate(source)));
            }
            _ => {
                return Err(invalid(format!(
                    "file_mounts.{target}: buckets are not supported on local \
                     infrastructure yet; mount a local path instead"
                )));
            }
        }
    }
    let workdir = match &task.workdir {
        None => None,
        Some(Workdir::Path(path)) => Some(locate(path)),
        Some(Workdir::Git { .. }) => {
            return Err(invalid(
                "workdir: git repositories are not supported yet; check the repository \
                 out locally and give its path",
            ));
        }
    };
    let accelerators: BTreeMap<String, f64> = resources
        .accelerator()
        .map(|a| (a.name.clone(), a.per_node()))
        .into_iter()
        .collect();
    let values = |map: &BTreeMap<String, EnvValue>| -> BTreeMap<String, String> {
        map.iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
            .collect()
    };
    let cpus = resources.cpus_per_node().map(|c| c.count);
    Ok(Plan {
        task_name: task.name.clone().map(String::from),
        num_nodes: task.num_nodes,
        infra: resources.infra_kind().unwrap_or_else(|| "local".to_owned()),
        node: NodeRequest {
            cpus,
            memory_gb: resources.memory_gb(),
            accelerators,
            ports: resources.ports(),
        },
        job_cpus: cpus.unwrap_or(DEFAULT_JOB_CPUS),
        workdir,
        file_mounts,
        setup: task.setup.clone(),
        run: task.run.clone(),
        envs: values(&task.envs),
        secrets: values(&task.secrets),
    })
}

impl Plan {
    /// `1x[CPU:0.5]`, `2x[CPU:1, H100:1]`: the job's demand, for `queue`.
    pub fn resources_str(&self) -> String {
        let mut parts = vec![format!("CPU:{}", self.job_cpus)];
        for (name, count) in &self.node.accelerators {
            parts.push(format!("{name}:{count}"));
        }
        format!("{}x[{}]", self.num_nodes, parts.join(", "))
    }
}
