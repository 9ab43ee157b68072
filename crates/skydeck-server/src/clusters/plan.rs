//! What a task asks of a cluster, read from the task YAML the client sent:
//! the node shape to provision, the files to sync, and the job to submit.
//!
//! The files a cluster receives come only from the caller's upload: a
//! workdir or file-mount source is looked up in the blob the request names
//! (through `file_mounts_mapping`, as SkyPilot does) and must be there. A
//! local path without an upload, or one the upload lacks, is a `ValueError`
//! naming it: the server never reads its own filesystem for a task.

use crate::skypilot::exception;
use skydeck_infra::NodeRequest;
use skydeck_types::RequestError;
use skydeck_types::names::confine;
use skydeck_types::task::{EnvValue, FileMount, MountTarget, Workdir};
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
    /// Whether the task names its infrastructure: one that does not runs
    /// on an existing cluster wherever that is (`sky exec CLUSTER CMD`).
    pub infra_named: bool,
    pub node: NodeRequest,
    /// CPUs the job holds on each node while it runs.
    pub job_cpus: f64,
    /// The workdir, in the request's upload.
    pub workdir: Option<Uploaded>,
    /// Where on the nodes → its source, in the request's upload.
    pub file_mounts: Vec<(MountTarget, Uploaded)>,
    pub setup: Option<String>,
    pub run: Option<String>,
    pub envs: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, String>,
}

/// A path inside the files the caller uploaded with the request, checked to
/// be there: the only kind of source a cluster receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded(PathBuf);

impl Uploaded {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

/// Which of a task's files a request syncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Files {
    /// Workdir and file mounts (`launch`).
    All,
    /// The workdir alone (`exec`, as in SkyPilot: file mounts are synced
    /// when the cluster is launched, and the client uploads only the
    /// workdir).
    WorkdirOnly,
}

fn invalid(message: impl Into<String>) -> RequestError {
    RequestError::new(exception::VALUE_ERROR, message)
}

/// Finds `source` (what the task names as `what`) in the upload unpacked
/// at `uploaded`, through the client's `mapping`.
fn locate(
    uploaded: Option<&Path>,
    mapping: &BTreeMap<String, String>,
    what: &str,
    source: &str,
) -> Result<Uploaded, RequestError> {
    let Some(root) = uploaded else {
        return Err(invalid(format!(
            "{what}: {source:?} is a local path, but no files were uploaded with this request, \
             and the API server never reads its own files. Send the request with a client \
             that uploads local paths (sky and skydeck do), or remove {what} from the task."
        )));
    };
    let mapped = mapping.get(source).map_or(source, String::as_str);
    let missing = || {
        invalid(format!(
            "{what}: {source:?} is not among the files uploaded with this request. Run the \
             command again from the machine where {source:?} is, so that it is uploaded."
        ))
    };
    let path = confine(root, mapped.trim_start_matches('/')).map_err(|_| missing())?;
    if std::fs::symlink_metadata(&path).is_err() {
        return Err(missing());
    }
    Ok(Uploaded(path))
}

/// Reads the dag YAML of `/launch` or `/exec`. `uploaded` is where the
/// blob of the request's files was unpacked, if it had one.
pub fn plan(task_yaml: &str, uploaded: Option<&Path>, files: Files) -> Result<Plan, RequestError> {
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
    let mut file_mounts = Vec::new();
    let mounts = match files {
        Files::All => task.file_mounts.iter().collect(),
        Files::WorkdirOnly => Vec::new(),
    };
    for (target, mount) in mounts {
        match mount {
            FileMount::Source(source) if !source.contains("://") => {
                let what = format!("file_mounts.{target}");
                let at = MountTarget::parse(target)
                    .map_err(|why| invalid(format!("Invalid task: {what}: {why}")))?;
                file_mounts.push((at, locate(uploaded, mapping, &what, source)?));
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
        Some(Workdir::Path(path)) => Some(locate(uploaded, mapping, "workdir", path)?),
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
        infra: super::ssh_pools::infra_of(&resources),
        infra_named: resources.infra_spec().is_some(),
        node: NodeRequest {
            cpus,
            memory_gb: resources.memory_gb(),
            accelerators,
            ports: resources.ports(),
            image: match &resources.image_id {
                Some(skydeck_types::task::ImageId::Image(image)) => Some(image.clone()),
                _ => None,
            },
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

#[cfg(test)]
mod tests {
    use super::*;

    fn error(task: &str, uploaded: Option<&Path>, files: Files) -> String {
        plan(task, uploaded, files).unwrap_err().to_string()
    }

    #[test]
    fn without_an_upload_a_local_source_is_refused_by_name() {
        for (task, source) in [
            ("workdir: /\nrun: ls\n", "\"/\""),
            (
                "file_mounts:\n  /x: ~/.skydeck/state.db\nrun: ls\n",
                "\"~/.skydeck/state.db\"",
            ),
        ] {
            let message = error(task, None, Files::All);
            assert!(message.contains(source), "{message}");
            assert!(message.contains("no files were uploaded"), "{message}");
        }
    }

    #[test]
    fn a_source_the_upload_lacks_or_that_climbs_out_of_it_is_refused_by_name() {
        let upload = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(upload.path().join("home/u/proj")).unwrap();
        for task in [
            "workdir: /home/u/other\n",
            "workdir: /home/u/proj/../../../../etc\n",
            "workdir: /home/u/proj\nfile_mounts_mapping:\n  /home/u/proj: /../../etc\n",
            "file_mounts:\n  /x: ~/.skydeck/state.db\n",
        ] {
            let message = error(task, Some(upload.path()), Files::All);
            assert!(
                message.contains("not among the files uploaded"),
                "{message}"
            );
        }
    }

    #[test]
    fn sources_in_the_upload_are_found_through_the_mapping() {
        let upload = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(upload.path().join("home/u/proj")).unwrap();
        std::fs::write(upload.path().join("home/u/data.txt"), "x").unwrap();
        let task = "workdir: /home/u/proj\nfile_mounts:\n  /d.txt: ~/data.txt\n\
                    file_mounts_mapping:\n  /home/u/proj: /home/u/proj\n  ~/data.txt: /home/u/data.txt\n";
        let plan = plan(task, Some(upload.path()), Files::All).unwrap();
        assert_eq!(
            plan.workdir.unwrap().path(),
            upload.path().join("home/u/proj")
        );
        assert_eq!(
            plan.file_mounts[0].1.path(),
            upload.path().join("home/u/data.txt")
        );
    }

    #[test]
    fn exec_looks_at_the_workdir_only() {
        let upload = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(upload.path().join("p")).unwrap();
        let task = "workdir: /p\nfile_mounts:\n  /x: /not/uploaded\n";
        let plan = plan(task, Some(upload.path()), Files::WorkdirOnly).unwrap();
        assert!(plan.file_mounts.is_empty());
        assert!(error(task, Some(upload.path()), Files::All).contains("/not/uploaded"));
    }
}
