//! CLI flags that change a task after it is read (`--cpus`, `--env`…), as
//! `sky launch` applies them.

use super::accelerators::Accelerators;
use super::error::{FieldPath, TaskError};
use super::infra::Infra;
use super::ports::PortRange;
use super::quantity::{CpuRequest, MemoryRequest, parse_disk_size};
use super::resources::{ImageId, Resources};
use super::spec::{EnvValue, TaskSpec, Workdir, env_name_error, is_env_name};
use super::yaml::quote;
use std::str::FromStr;

/// The flags a user gave on top of a task YAML. Values are the flags' text;
/// `apply_overrides` checks them and names the flag when one is wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub name: Option<String>,
    pub workdir: Option<String>,
    /// `--infra`: `local`, `k8s`, `aws/us-east-1`…
    pub infra: Option<String>,
    /// `--cpus`: `4`, `4+`.
    pub cpus: Option<String>,
    /// `--memory`: `16`, `16+`, `16GB`.
    pub memory: Option<String>,
    /// `--gpus`: `H100`, `H100:2`.
    pub gpus: Option<String>,
    pub instance_type: Option<String>,
    pub num_nodes: Option<u32>,
    pub use_spot: Option<bool>,
    pub image_id: Option<String>,
    /// `--ports`, each `8080` or `10000-10010`; replaces the task's ports.
    pub ports: Vec<String>,
    /// `--disk-size`: `256` or `1TB`.
    pub disk_size: Option<String>,
    /// `--env NAME=VALUE`. `(NAME, None)` is `--env NAME` whose value the
    /// caller could not find in its environment: the task then requires
    /// it, and `validate` says so.
    pub envs: Vec<(String, Option<String>)>,
    /// `--secret NAME=VALUE`, as `envs`.
    pub secrets: Vec<(String, Option<String>)>,
}

impl Overrides {
    /// Splits an `--env` argument: `NAME=VALUE` gives a value (which may
    /// contain `=` or be empty); a bare `NAME` gives none, for the caller
    /// to look up in its environment.
    pub fn parse_env_arg(arg: &str) -> Result<(String, Option<String>), TaskError> {
        parse_var_arg(arg, "--env")
    }

    /// Splits a `--secret` argument, as [`Overrides::parse_env_arg`].
    pub fn parse_secret_arg(arg: &str) -> Result<(String, Option<String>), TaskError> {
        parse_var_arg(arg, "--secret")
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

fn parse_var_arg(arg: &str, flag: &str) -> Result<(String, Option<String>), TaskError> {
    let (name, value) = match arg.split_once('=') {
        Some((name, value)) => (name, Some(value.to_owned())),
        None => (arg, None),
    };
    if !is_env_name(name) {
        return Err(TaskError::invalid(
            &FieldPath::flag(flag),
            &quote(arg),
            "NAME=VALUE or NAME, where NAME has letters, digits and _ and does not start with a digit",
        ));
    }
    Ok((name.to_owned(), value))
}

/// Parses a flag's text with `FromStr`, naming the flag on error.
fn flag<T: FromStr<Err = TaskError>>(
    text: &Option<String>,
    name: &str,
) -> Result<Option<T>, TaskError> {
    text.as_deref()
        .map(|text| {
            text.parse::<T>()
                .map_err(|e| e.at_path(FieldPath::flag(name)))
        })
        .transpose()
}

/// Every override checked and parsed, so that a bad flag changes nothing.
struct Parsed {
    infra: Option<String>,
    cpus: Option<CpuRequest>,
    memory: Option<MemoryRequest>,
    gpus: Option<Accelerators>,
    ports: Option<Vec<PortRange>>,
    disk_size: Option<u64>,
}

impl Parsed {
    fn new(overrides: &Overrides) -> Result<Self, TaskError> {
        let infra = match &overrides.infra {
            Some(text) => {
                Infra::parse_at(text, &FieldPath::flag("--infra"))?;
                Some(text.trim().to_owned())
            }
            None => None,
        };
        let ports = if overrides.ports.is_empty() {
            None
        } else {
            let parsed = overrides
                .ports
                .iter()
                .map(|p| {
                    p.parse::<PortRange>()
                        .map_err(|e| e.at_path(FieldPath::flag("--ports")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Some(parsed)
        };
        let disk_size = overrides
            .disk_size
            .as_deref()
            .map(|text| {
                parse_disk_size(text).map_err(|e| e.at_path(FieldPath::flag("--disk-size")))
            })
            .transpose()?;
        for (name, _) in &overrides.envs {
            if !is_env_name(name) {
                return Err(env_name_error(FieldPath::flag("--env"), name));
            }
        }
        for (name, _) in &overrides.secrets {
            if !is_env_name(name) {
                return Err(env_name_error(FieldPath::flag("--secret"), name));
            }
        }
        if let Some(n) = overrides.num_nodes
            && !(1..=super::spec::MAX_NUM_NODES).contains(&n)
        {
            return Err(TaskError::invalid(
                &FieldPath::flag("--num-nodes"),
                &n.to_string(),
                "a number of nodes, 1 to 1000",
            ));
        }
        Ok(Self {
            infra,
            cpus: flag(&overrides.cpus, "--cpus")?,
            memory: flag(&overrides.memory, "--memory")?,
            gpus: flag(&overrides.gpus, "--gpus")?,
            ports,
            disk_size,
        })
    }
}

impl TaskSpec {
    /// Applies CLI flags to the task. A resources flag wins over the
    /// task's resources and over every `any_of`/`ordered` candidate, as in
    /// SkyPilot. Nothing changes when a flag is invalid.
    pub fn apply_overrides(&mut self, overrides: &Overrides) -> Result<(), TaskError> {
        let parsed = Parsed::new(overrides)?;
        // First of the changes, so an invalid name changes nothing.
        if let Some(name) = &overrides.name {
            let name = super::spec::job_name(name.clone(), &FieldPath::flag("--name"))?;
            self.name = Some(name);
        }
        if let Some(workdir) = &overrides.workdir {
            self.workdir = Some(Workdir::Path(workdir.clone()));
        }
        if let Some(num_nodes) = overrides.num_nodes {
            self.num_nodes = num_nodes;
        }
        for (name, value) in &overrides.envs {
            self.envs.insert(name.clone(), env_value(value));
        }
        for (name, value) in &overrides.secrets {
            self.secrets.insert(name.clone(), env_value(value));
        }
        let resources = &mut self.resources;
        if let Some(infra) = parsed.infra {
            set_everywhere(resources, |r| {
                r.infra = None;
                r.cloud = None;
                r.region = None;
                r.zone = None;
            });
            resources.infra = Some(infra);
        }
        override_field(resources, parsed.cpus, |r| &mut r.cpus);
        override_field(resources, parsed.memory, |r| &mut r.memory);
        override_field(resources, parsed.gpus, |r| &mut r.accelerators);
        override_field(resources, overrides.instance_type.clone(), |r| {
            &mut r.instance_type
        });
        override_field(resources, overrides.use_spot, |r| &mut r.use_spot);
        override_field(
            resources,
            overrides.image_id.clone().map(ImageId::Image),
            |r| &mut r.image_id,
        );
        override_field(resources, parsed.ports, |r| &mut r.ports);
        override_field(resources, parsed.disk_size, |r| &mut r.disk_size);
        Ok(())
    }
}

fn env_value(value: &Option<String>) -> EnvValue {
    value.clone().map_or(EnvValue::Required, EnvValue::Set)
}

/// Runs `change` on the resources and on each `any_of`/`ordered` entry.
fn set_everywhere(resources: &mut Resources, change: impl Fn(&mut Resources)) {
    change(resources);
    for entry in resources
        .any_of
        .iter_mut()
        .chain(resources.ordered.iter_mut())
    {
        change(entry);
    }
}

/// Sets one field on the base resources and clears it in the candidates,
/// so every candidate inherits the flag's value.
fn override_field<T: Clone>(
    resources: &mut Resources,
    value: Option<T>,
    field: impl Fn(&mut Resources) -> &mut Option<T>,
) {
    let Some(value) = value else {
        return;
    };
    set_everywhere(resources, |r| *field(r) = None);
    *field(resources) = Some(value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::parse_tasks;

    fn task(yaml: &str) -> TaskSpec {
        parse_tasks(yaml).unwrap().remove(0)
    }

    #[test]
    fn env_args() {
        assert_eq!(
            Overrides::parse_env_arg("K=V").unwrap(),
            ("K".into(), Some("V".into()))
        );
        assert_eq!(
            Overrides::parse_env_arg("K=a=b").unwrap(),
            ("K".into(), Some("a=b".into()))
        );
        assert_eq!(
            Overrides::parse_env_arg("K=").unwrap(),
            ("K".into(), Some(String::new()))
        );
        assert_eq!(Overrides::parse_env_arg("K").unwrap(), ("K".into(), None));
        let error = Overrides::parse_env_arg("1K=V").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("--env: invalid value \"1K=V\""),
            "{error}"
        );
        assert!(
            Overrides::parse_secret_arg("MY-TOKEN=x")
                .unwrap_err()
                .to_string()
                .starts_with("--secret")
        );
    }

    #[test]
    fn resource_flags_win_over_the_yaml_and_every_candidate() {
        let mut spec = task(
            "resources: {cpus: 2, accelerators: A100:1, any_of: [{infra: aws, cpus: 8}, {infra: gcp, accelerators: V100}]}",
        );
        let overrides = Overrides {
            infra: Some("k8s".into()),
            cpus: Some("4+".into()),
            gpus: Some("H100:2".into()),
            ports: vec!["8080".into()],
            disk_size: Some("1TB".into()),
            use_spot: Some(true),
            ..Overrides::default()
        };
        spec.apply_overrides(&overrides).unwrap();
        let choices = spec.resource_choices();
        assert_eq!(choices.len(), 2);
        for choice in choices {
            assert_eq!(choice.infra_kind().as_deref(), Some("kubernetes"));
            assert_eq!(choice.cpus.unwrap().to_string(), "4+");
            assert_eq!(choice.accelerator().unwrap().to_string(), "H100:2");
            assert_eq!(choice.ports(), vec![8080]);
            assert_eq!(choice.disk_size, Some(1024));
            assert_eq!(choice.use_spot, Some(true));
        }
    }

    #[test]
    fn task_flags_and_envs() {
        let mut spec = task("envs: {MODEL: small, TOKEN: null}\nrun: echo");
        let overrides = Overrides {
            name: Some("train".into()),
            workdir: Some("/src".into()),
            num_nodes: Some(4),
            envs: vec![
                ("MODEL".into(), Some("large".into())),
                ("EXTRA".into(), None),
            ],
            secrets: vec![("HF_TOKEN".into(), Some("hf_x".into()))],
            ..Overrides::default()
        };
        spec.apply_overrides(&overrides).unwrap();
        assert_eq!(spec.name.as_deref(), Some("train"));
        assert_eq!(spec.workdir, Some(Workdir::Path("/src".into())));
        assert_eq!(spec.num_nodes, 4);
        assert_eq!(spec.envs["MODEL"], EnvValue::Set("large".into()));
        assert_eq!(spec.envs["EXTRA"], EnvValue::Required);
        assert_eq!(spec.secrets["HF_TOKEN"], EnvValue::Set("hf_x".into()));
    }

    #[test]
    fn a_bad_flag_is_named_and_changes_nothing() {
        let mut spec = task("resources: {cpus: 2}\nrun: echo");
        let before = spec.clone();
        let overrides = Overrides {
            cpus: Some("8".into()),
            gpus: Some("H100:lots".into()),
            ..Overrides::default()
        };
        let error = spec.apply_overrides(&overrides).unwrap_err();
        assert_eq!(error.path().to_string(), "--gpus");
        assert!(
            error
                .to_string()
                .starts_with("--gpus: invalid value \"H100:lots\""),
            "{error}"
        );
        assert_eq!(spec, before);
        let zero = Overrides {
            num_nodes: Some(0),
            ..Overrides::default()
        };
        assert!(spec.apply_overrides(&zero).is_err());
        let bad_infra = Overrides {
            infra: Some("kubernets".into()),
            ..Overrides::default()
        };
        let error = spec.apply_overrides(&bad_infra).unwrap_err();
        assert_eq!(error.suggestion(), Some("did you mean \"kubernetes\"?"));
    }
}
