//! How big a task may be. A task is read by the API server and turned
//! into files, processes and environments on the nodes, so every part a
//! client controls is bounded: a task far past these is a mistake or an
//! attack, and is refused with the limit named.

use super::error::{FieldPath, TaskError, TaskErrorKind};
use super::file_mount::FileMount;
use super::spec::{EnvValue, TaskSpec, Workdir};
use crate::limits::limit_error;
use std::collections::BTreeMap;

/// The whole task YAML text (all documents).
pub const MAX_TASK_YAML_BYTES: usize = 1024 * 1024;
/// Documents in one YAML (a chain's header and tasks).
pub const MAX_TASK_DOCUMENTS: usize = 64;
/// Entries under `envs:`, and separately under `secrets:`.
pub const MAX_VARS: usize = 1000;
/// An environment variable's or secret's name.
pub const MAX_VAR_NAME_BYTES: usize = 256;
/// One value: Linux refuses a single environment string longer than
/// 128 KiB (`MAX_ARG_STRLEN`), so a longer one could never be set anyway.
pub const MAX_VAR_VALUE_BYTES: usize = 128 * 1024;
/// Entries under `file_mounts:`.
pub const MAX_FILE_MOUNTS: usize = 1000;
/// Sources of one storage mount.
pub const MAX_MOUNT_SOURCES: usize = 100;
/// A path (mount target or source, workdir): Linux's `PATH_MAX`.
pub const MAX_PATH_BYTES: usize = 4096;
/// `setup:` and `run:`, each.
pub const MAX_SCRIPT_BYTES: usize = 512 * 1024;

fn too_large(path: FieldPath, message: impl std::fmt::Display) -> TaskError {
    TaskError::new(TaskErrorKind::InvalidValue, path, limit_error(message))
}

/// Refuses a task YAML text longer than [`MAX_TASK_YAML_BYTES`], before
/// it is read.
pub fn check_text_size(text: &str) -> Result<(), TaskError> {
    if text.len() > MAX_TASK_YAML_BYTES {
        return Err(too_large(
            FieldPath::root(),
            format_args!(
                "the task YAML is {} bytes; a task YAML is at most {} bytes (1 MiB): move data \
                 into files (file_mounts, workdir) instead",
                text.len(),
                MAX_TASK_YAML_BYTES
            ),
        ));
    }
    Ok(())
}

/// Refuses the `count`th document once there are too many.
pub(crate) fn check_document_count(count: usize) -> Result<(), TaskError> {
    if count > MAX_TASK_DOCUMENTS {
        return Err(too_large(
            FieldPath::root(),
            format_args!(
                "the task YAML holds more than {MAX_TASK_DOCUMENTS} documents; a chain has at \
                 most {MAX_TASK_DOCUMENTS}"
            ),
        ));
    }
    Ok(())
}

impl TaskSpec {
    /// Checks the task against the limits above; the first one broken.
    pub fn check_limits(&self) -> Result<(), TaskError> {
        let root = FieldPath::root();
        check_vars(&self.envs, &root.key("envs"), "environment variables")?;
        check_vars(&self.secrets, &root.key("secrets"), "secrets")?;
        for (key, script) in [("setup", &self.setup), ("run", &self.run)] {
            if let Some(script) = script
                && script.len() > MAX_SCRIPT_BYTES
            {
                return Err(too_large(
                    root.key(key),
                    format_args!(
                        "{key} is {} bytes; {key} is at most {MAX_SCRIPT_BYTES} bytes (512 KiB): \
                         put a longer script in the workdir and run it from there",
                        script.len()
                    ),
                ));
            }
        }
        if let Some(workdir) = &self.workdir {
            let path = match workdir {
                Workdir::Path(path) => path,
                Workdir::Git { url, .. } => url,
            };
            check_path(path, &root.key("workdir"))?;
        }
        let mounts = root.key("file_mounts");
        if self.file_mounts.len() > MAX_FILE_MOUNTS {
            return Err(too_large(
                mounts,
                format_args!(
                    "file_mounts has {} entries; a task has at most {MAX_FILE_MOUNTS} file mounts: \
                     mount a directory holding them instead",
                    self.file_mounts.len()
                ),
            ));
        }
        for (target, mount) in &self.file_mounts {
            let path = mounts.key(target);
            check_path(target, &path)?;
            match mount {
                FileMount::Source(source) => check_path(source, &path)?,
                FileMount::Storage(storage) => {
                    if storage.source.len() > MAX_MOUNT_SOURCES {
                        return Err(too_large(
                            path.key("source"),
                            format_args!(
                                "a storage mount has at most {MAX_MOUNT_SOURCES} sources, not {}",
                                storage.source.len()
                            ),
                        ));
                    }
                    for source in &storage.source {
                        check_path(source, &path.key("source"))?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn check_vars(
    vars: &BTreeMap<String, EnvValue>,
    path: &FieldPath,
    what: &str,
) -> Result<(), TaskError> {
    if vars.len() > MAX_VARS {
        return Err(too_large(
            path.clone(),
            format_args!(
                "{path} has {} entries; a task has at most {MAX_VARS} {what}",
                vars.len()
            ),
        ));
    }
    for (name, value) in vars {
        if name.len() > MAX_VAR_NAME_BYTES {
            let shown: String = name.chars().take(40).collect();
            return Err(too_large(
                path.clone(),
                format_args!(
                    "the name {shown}… is {} bytes; names of {what} are at most \
                     {MAX_VAR_NAME_BYTES} bytes",
                    name.len()
                ),
            ));
        }
        // Like the length, a NUL is what no process environment can carry:
        // the job could never start, so the task is refused before anything
        // is provisioned for it.
        if let EnvValue::Set(value) = value
            && value.contains('\0')
        {
            return Err(too_large(
                path.key(name),
                format_args!(
                    "the value of {name} contains a NUL byte (\\0), which an environment \
                     variable cannot hold: remove it, or pass binary data in a file"
                ),
            ));
        }
        if let EnvValue::Set(value) = value
            && value.len() > MAX_VAR_VALUE_BYTES
        {
            return Err(too_large(
                path.key(name),
                format_args!(
                    "the value of {name} is {} bytes; one of {what} is at most \
                     {MAX_VAR_VALUE_BYTES} bytes (128 KiB, what Linux allows): put larger data \
                     in a file",
                    value.len()
                ),
            ));
        }
    }
    Ok(())
}

fn check_path(value: &str, path: &FieldPath) -> Result<(), TaskError> {
    if value.len() > MAX_PATH_BYTES {
        let shown: String = value.chars().take(40).collect();
        return Err(too_large(
            path.clone(),
            format_args!(
                "the path {shown}… is {} bytes; a path is at most {MAX_PATH_BYTES} bytes",
                value.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::parse_tasks;
    use super::*;

    fn refused(yaml: &str) -> String {
        parse_tasks(yaml).unwrap_err().to_string()
    }

    #[test]
    fn each_limit_refuses_with_its_name() {
        let huge = format!("run: echo {}\n", "x".repeat(MAX_TASK_YAML_BYTES));
        assert!(refused(&huge).contains("at most 1048576 bytes (1 MiB)"));

        let mut envs = String::from("run: x\nenvs:\n");
        for i in 0..=MAX_VARS {
            envs.push_str(&format!("  V{i}: a\n"));
        }
        assert!(refused(&envs).contains("at most 1000 environment variables"));
        let secrets = envs.replace("envs:", "secrets:");
        assert!(refused(&secrets).contains("at most 1000 secrets"));

        let long_name = format!(
            "run: x\nenvs:\n  {}: a\n",
            "N".repeat(MAX_VAR_NAME_BYTES + 1)
        );
        assert!(refused(&long_name).contains("at most 256 bytes"));
        let long_value = format!(
            "run: x\nsecrets:\n  K: {}\n",
            "v".repeat(MAX_VAR_VALUE_BYTES + 1)
        );
        let err = refused(&long_value);
        assert!(err.contains("at most 131072 bytes"), "{err}");
        assert!(
            !err.contains("vvvv"),
            "a secret value is never shown: {err}"
        );

        let mut mounts = String::from("run: x\nfile_mounts:\n");
        for i in 0..=MAX_FILE_MOUNTS {
            mounts.push_str(&format!("  /m{i}: s3://b/{i}\n"));
        }
        assert!(refused(&mounts).contains("at most 1000 file mounts"));
        let long_path = format!("run: x\nfile_mounts:\n  /m: s3://b/{}\n", "p".repeat(4096));
        let err = refused(&long_path);
        assert!(err.contains("at most 4096 bytes"), "{err}");

        let long_run = format!("run: {}\n", "r".repeat(MAX_SCRIPT_BYTES + 1));
        assert!(refused(&long_run).contains("run is at most 524288 bytes"));

        let chain = "name: c\n".to_owned() + &"---\nrun: x\n".repeat(MAX_TASK_DOCUMENTS + 1);
        assert!(refused(&chain).contains("at most 64"));

        for err in [refused(&envs), refused(&long_run)] {
            assert!(err.contains(crate::limits::LIMIT_ERROR_PREFIX), "{err}");
        }
    }

    #[test]
    fn a_nul_byte_in_an_env_value_is_refused_naming_the_variable() {
        for yaml in [
            "run: x\nenvs:\n  GOOD: ok\n  BAD: \"a\\0b\"\n",
            "run: x\nsecrets:\n  BAD: \"hidden\\0value\"\n",
        ] {
            let err = refused(yaml);
            assert!(err.contains(crate::limits::LIMIT_ERROR_PREFIX), "{err}");
            assert!(err.contains("BAD") && err.contains("NUL byte"), "{err}");
            assert!(!err.contains("hidden"), "a value is never shown: {err}");
        }
        let mut task = parse_tasks("run: x").unwrap().remove(0);
        task.envs
            .insert("FROM_FLAG".into(), EnvValue::Set("a\0b".into()));
        let err = task.validate().unwrap_err().to_string();
        assert!(err.contains("FROM_FLAG"), "{err}");
    }

    #[test]
    fn a_task_at_the_limits_is_accepted() {
        let mut envs = String::from("run: x\nenvs:\n");
        for i in 0..MAX_VARS {
            envs.push_str(&format!("  V{i}: a\n"));
        }
        assert!(parse_tasks(&envs).is_ok());
    }

    #[test]
    fn overrides_are_held_to_the_limits_too() {
        let mut task = parse_tasks("run: x").unwrap().remove(0);
        task.envs.insert(
            "BIG".into(),
            EnvValue::Set("v".repeat(MAX_VAR_VALUE_BYTES + 1)),
        );
        let err = task.validate().unwrap_err().to_string();
        assert!(err.contains("at most 131072 bytes"), "{err}");
    }

    #[test]
    fn an_alias_bomb_is_refused_quickly() {
        // Nine levels of ten aliases: a billion strings if expanded.
        let mut yaml = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..9 {
            let prev = format!("*a{}", level - 1);
            let list = [prev.as_str(); 10].join(", ");
            yaml.push_str(&format!("a{level}: &a{level} [{list}]\n"));
        }
        yaml.push_str("run: echo hi\n");
        assert!(parse_tasks(&yaml).is_err());
    }
}
