//! `TaskSpec::validate`: the checks that need the whole task, after the
//! YAML was read and the CLI flags applied.

use super::error::{FieldPath, TaskError, TaskErrorKind};
use super::file_mount::FileMount;
use super::infra::{Infra, canonical_kind};
use super::mount_target::MountTarget;
use super::resources::Resources;
use super::spec::{EnvValue, TaskSpec, Workdir, env_name_error, is_env_name};
use super::yaml::quote;
use std::collections::BTreeMap;

impl TaskSpec {
    /// Checks that the task can be launched as it stands: every variable
    /// has a value, names are valid, paths make sense on the nodes, and the
    /// resources are consistent. Returns the first problem found.
    pub fn validate(&self) -> Result<(), TaskError> {
        // Flags applied after parsing may have grown the task.
        self.check_limits()?;
        let root = FieldPath::root();
        if !(1..=super::spec::MAX_NUM_NODES).contains(&self.num_nodes) {
            return Err(TaskError::invalid(
                &root.key("num_nodes"),
                &self.num_nodes.to_string(),
                "a number of nodes, 1 to 1000",
            ));
        }
        check_vars(
            &self.envs,
            &root.key("envs"),
            "--env",
            "environment variable",
        )?;
        check_vars(&self.secrets, &root.key("secrets"), "--secret", "secret")?;
        if let Some(name) = self
            .envs
            .keys()
            .find(|name| self.secrets.contains_key(*name))
        {
            return Err(TaskError::conflict(
                root.key("secrets").key(name),
                format!("{name} is both an environment variable and a secret; keep only one"),
            )
            .at_key());
        }
        check_workdir(self.workdir.as_ref(), &root.key("workdir"))?;
        for (target, mount) in &self.file_mounts {
            check_file_mount(target, mount, &root.key("file_mounts").key(target))?;
        }
        check_resources(&self.resources, &root.key("resources"), false)?;
        for choice in self.resource_choices() {
            check_choice(&choice, &root.key("resources"))?;
        }
        if self.passthrough.contains_key("service") && self.passthrough.contains_key("pool") {
            return Err(TaskError::conflict(
                root.key("pool"),
                "give either service or pool, not both",
            )
            .at_key());
        }
        if self
            .passthrough
            .get("managed_secrets")
            .is_some_and(|v| !v.is_null())
        {
            return Err(TaskError::new(
                TaskErrorKind::InvalidValue,
                root.key("managed_secrets"),
                "managed secrets are not supported: Skydeck has no secret store",
            )
            .at_key()
            .with_suggestion("list them under secrets: and pass each with --secret NAME=VALUE"));
        }
        Ok(())
    }
}

fn check_vars(
    vars: &BTreeMap<String, EnvValue>,
    path: &FieldPath,
    flag: &str,
    what: &str,
) -> Result<(), TaskError> {
    for (name, value) in vars {
        if !is_env_name(name) {
            return Err(env_name_error(path.key(name), name));
        }
        if *value == EnvValue::Required {
            return Err(TaskError::new(
                TaskErrorKind::MissingValue,
                path.key(name),
                format!("{what} {name} has no value"),
            )
            .at_key()
            .with_suggestion(format!(
                "pass {flag} {name}=VALUE, or set it in the YAML ({name}: \"\" for an empty value)"
            )));
        }
    }
    Ok(())
}

fn check_workdir(workdir: Option<&Workdir>, path: &FieldPath) -> Result<(), TaskError> {
    let empty = match workdir {
        None => false,
        Some(Workdir::Path(dir)) => dir.trim().is_empty(),
        Some(Workdir::Git { url, .. }) => url.trim().is_empty(),
    };
    if empty {
        return Err(TaskError::invalid(path, "\"\"", "a directory or a git URL"));
    }
    Ok(())
}

fn check_file_mount(target: &str, mount: &FileMount, path: &FieldPath) -> Result<(), TaskError> {
    if let Err(why) = MountTarget::parse(target) {
        return Err(TaskError::invalid(
            path,
            &quote(target),
            &format!("{} ({why})", MountTarget::EXPECTED),
        )
        .at_key());
    }
    match mount {
        FileMount::Source(source) if source.trim().is_empty() => Err(TaskError::invalid(
            path,
            "\"\"",
            "a local path or a bucket URL",
        )),
        FileMount::Storage(storage) if storage.name.is_none() && storage.source.is_empty() => {
            Err(TaskError::new(
                TaskErrorKind::InvalidValue,
                path.clone(),
                "a storage mount needs a source, a name, or both",
            ))
        }
        _ => Ok(()),
    }
}

/// Checks one resources mapping; `entry` is true for `any_of`/`ordered`
/// candidates.
fn check_resources(resources: &Resources, path: &FieldPath, entry: bool) -> Result<(), TaskError> {
    if entry {
        if let Some(key) = [
            ("any_of", &resources.any_of),
            ("ordered", &resources.ordered),
        ]
        .into_iter()
        .find_map(|(key, list)| (!list.is_empty()).then_some(key))
        {
            return Err(
                TaskError::conflict(path.key(key), "any_of and ordered cannot be nested").at_key(),
            );
        }
    } else if !resources.any_of.is_empty() && !resources.ordered.is_empty() {
        return Err(TaskError::conflict(
            path.key("ordered"),
            "give either any_of or ordered, not both",
        )
        .at_key());
    }
    if let Some(infra) = &resources.infra {
        Infra::parse_at(infra, &path.key("infra"))?;
    }
    if let Some(cloud) = &resources.cloud
        && canonical_kind(cloud).is_none()
    {
        return Err(TaskError::invalid(
            &path.key("cloud"),
            &quote(cloud),
            "a known cloud such as aws or gcp",
        ));
    }
    if let Some(cpus) = resources.cpus
        && !(cpus.count.is_finite() && cpus.count > 0.0)
    {
        return Err(TaskError::invalid(
            &path.key("cpus"),
            &cpus.to_string(),
            "a number of CPUs above 0",
        ));
    }
    if let Some(accelerators) = &resources.accelerators {
        if entry && accelerators.candidates().len() > 1 {
            return Err(TaskError::conflict(
                path.key("accelerators"),
                "an any_of/ordered entry takes a single accelerator type",
            ));
        }
        if let Some(bad) = accelerators
            .candidates()
            .iter()
            .find(|a| a.count.is_nan() || a.count <= 0.0 || a.name.is_empty())
        {
            return Err(TaskError::invalid(
                &path.key("accelerators"),
                &quote(&bad.to_string()),
                "a positive count",
            ));
        }
    }
    if let Some(bad) = resources
        .ports
        .iter()
        .flatten()
        .find(|p| p.start == 0 || p.start > p.end)
    {
        return Err(TaskError::invalid(
            &path.key("ports"),
            &quote(&bad.to_string()),
            "ports from 1 to 65535",
        ));
    }
    if resources.disk_size == Some(0) {
        return Err(TaskError::invalid(
            &path.key("disk_size"),
            "0",
            "a disk size in GB above 0",
        ));
    }
    for (key, list) in [
        ("any_of", &resources.any_of),
        ("ordered", &resources.ordered),
    ] {
        for (i, candidate) in list.iter().enumerate() {
            check_resources(candidate, &path.key(key).index(i), true)?;
        }
    }
    Ok(())
}

/// Checks one candidate as the scheduler will see it, with its entry
/// merged into the base.
fn check_choice(choice: &Resources, path: &FieldPath) -> Result<(), TaskError> {
    let legacy = choice.cloud.is_some() || choice.region.is_some() || choice.zone.is_some();
    if choice.infra.is_some() && legacy {
        return Err(TaskError::conflict(
            path.clone(),
            "a candidate mixes infra with the legacy cloud/region/zone; use infra alone",
        ));
    }
    if let Some(memory) = choice.memory {
        // Slurm clusters that do not track memory take 0 to mean "no limit".
        if memory.gb <= 0.0 && choice.infra_kind().as_deref() != Some("slurm") {
            return Err(TaskError::invalid(
                &path.key("memory"),
                &memory.to_string(),
                "a memory size above 0 GB",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{Overrides, parse_tasks};

    fn task(yaml: &str) -> TaskSpec {
        parse_tasks(yaml).unwrap().remove(0)
    }

    fn error(yaml: &str) -> String {
        task(yaml).validate().unwrap_err().to_string()
    }

    #[test]
    fn a_plain_task_is_valid() {
        task("run: echo hi").validate().unwrap();
        task("resources: {memory: 0, infra: slurm/c}\nrun: x")
            .validate()
            .unwrap();
    }

    #[test]
    fn missing_values_say_which_flag_to_pass() {
        assert_eq!(
            error("envs: {MODEL: null}\nrun: x"),
            "envs.MODEL: environment variable MODEL has no value; \
             pass --env MODEL=VALUE, or set it in the YAML (MODEL: \"\" for an empty value)"
        );
        assert_eq!(
            error("secrets: {HF_TOKEN: }\nrun: x"),
            "secrets.HF_TOKEN: secret HF_TOKEN has no value; \
             pass --secret HF_TOKEN=VALUE, or set it in the YAML (HF_TOKEN: \"\" for an empty value)"
        );
        let mut spec = task("secrets: {HF_TOKEN: }\nrun: x");
        let overrides = Overrides {
            secrets: vec![("HF_TOKEN".into(), Some("hf_123".into()))],
            ..Overrides::default()
        };
        spec.apply_overrides(&overrides).unwrap();
        spec.validate().unwrap();
    }

    #[test]
    fn names_and_paths() {
        assert!(
            error("envs: {A: x}\nsecrets: {A: y}\nrun: x")
                .contains("both an environment variable and a secret")
        );
        assert!(
            error("file_mounts: {../data: ./d}\nrun: x")
                .starts_with("file_mounts.../data: invalid value \"../data\"")
        );
        task("file_mounts: {~/data: ./d, /abs: s3://b, rel/data: ./d}\nrun: x")
            .validate()
            .unwrap();
        assert!(
            error("file_mounts: {/d: {mode: COPY}}\nrun: x").contains("needs a source, a name")
        );
        let mut spec = task("run: x");
        spec.envs
            .insert("BAD-NAME".into(), EnvValue::Set("1".into()));
        assert!(
            spec.validate()
                .unwrap_err()
                .to_string()
                .contains("not a valid variable name")
        );
        spec.envs.clear();
        spec.num_nodes = 0;
        assert!(
            spec.validate()
                .unwrap_err()
                .to_string()
                .starts_with("num_nodes:")
        );
    }

    #[test]
    fn resources_consistency() {
        assert!(error("resources: {memory: 0}\nrun: x").contains("resources.memory"));
        assert!(
            error("resources: {cloud: aws, any_of: [{infra: k8s}]}\nrun: x")
                .contains("mixes infra")
        );
        let mut spec = task("run: x");
        spec.resources.any_of = vec![Resources::default()];
        spec.resources.ordered = vec![Resources::default()];
        assert!(
            spec.validate()
                .unwrap_err()
                .to_string()
                .contains("either any_of or ordered")
        );
        spec.resources.ordered.clear();
        spec.resources.any_of[0].ordered = vec![Resources::default()];
        assert!(
            spec.validate()
                .unwrap_err()
                .to_string()
                .contains("cannot be nested")
        );
    }

    #[test]
    fn managed_secrets_and_service_with_pool() {
        assert!(error("managed_secrets: [HF_TOKEN]\nrun: x").contains("not supported"));
        assert!(
            error("service: {replicas: 1}\npool: {workers: 1}\nrun: x")
                .contains("either service or pool")
        );
    }
}
