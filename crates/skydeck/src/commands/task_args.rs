//! The task a `launch` or `exec` runs: read from a YAML file or made from
//! a bare command, with the CLI flags applied and checked here, before
//! anything is uploaded or submitted.

use crate::cli::TaskFlags;
use anyhow::{Context, bail};
use skydeck_types::task::{FileMount, Overrides, TaskDag, TaskError, TaskSpec, Workdir, parse_dag};
use std::path::{Path, PathBuf};

/// A task ready to submit.
pub struct Task {
    pub dag: TaskDag,
}

/// Reads the task from `entrypoint` (a YAML file, a command, or nothing)
/// and applies `flags`.
pub fn load(entrypoint: &[String], flags: &TaskFlags) -> anyhow::Result<Task> {
    let (dag, source) = read(entrypoint)?;
    let origin = source.map_or_else(String::new, |file| format!(" in {file}"));
    if dag.tasks.len() != 1 {
        bail!(
            "the task YAML{origin} holds {} tasks (a pipeline); launch and exec run one task: \
             split it into one file per task, or run it as a managed job (`skydeck jobs launch`)",
            dag.tasks.len()
        );
    }
    prepare(dag, &origin, &overrides(flags))
}

/// Like [`load`], for `jobs launch`, which also runs a pipeline. As in
/// SkyPilot, `--env` and `--secret` apply to every task of a pipeline and
/// the flags that change one task's resources are ignored, with a warning.
pub fn load_pipeline(entrypoint: &[String], flags: &TaskFlags) -> anyhow::Result<Task> {
    let (dag, source) = read(entrypoint)?;
    let origin = source.map_or_else(String::new, |file| format!(" in {file}"));
    let all = overrides(flags);
    if dag.tasks.len() == 1 {
        return prepare(dag, &origin, &all);
    }
    let shared = Overrides {
        envs: all.envs.clone(),
        secrets: all.secrets.clone(),
        ..Overrides::default()
    };
    let ignored = Overrides {
        name: None,
        ..all.clone()
    };
    if ignored != shared {
        eprintln!(
            "Warning: the task YAML{origin} holds {} tasks; flags other than --name, --env and \
             --secret are ignored for a pipeline.",
            dag.tasks.len()
        );
    }
    let mut dag = dag;
    if let Some(name) = all.name {
        dag.name = Some(
            name.parse()
                .map_err(|err| anyhow::anyhow!("invalid flag: --name: {err}"))?,
        );
    }
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    for task in &mut dag.tasks {
        task.apply_overrides(&shared)
            .map_err(|err| anyhow::anyhow!("invalid flag: {err}"))?;
        absolutize_paths(task, &cwd)?;
        task.validate()
            .map_err(|err| anyhow::anyhow!("invalid task{origin}: {err}"))?;
    }
    Ok(Task { dag })
}

/// The tasks `entrypoint` names (a YAML file, a command, or nothing), and
/// the file they came from.
fn read(entrypoint: &[String]) -> anyhow::Result<(TaskDag, Option<&str>)> {
    Ok(match entrypoint {
        [] => (
            TaskDag {
                name: None,
                tasks: vec![TaskSpec::default()],
            },
            None,
        ),
        [word] if is_yaml_file(word)? => {
            let text = std::fs::read_to_string(word)
                .with_context(|| format!("cannot read the task YAML {word}"))?;
            let dag = parse_dag(&text).map_err(|err| yaml_error(word, &text, &err))?;
            (dag, Some(word.as_str()))
        }
        words => (
            TaskDag {
                name: None,
                tasks: vec![TaskSpec::from_command(&words.join(" "))],
            },
            None,
        ),
    })
}

/// One task with the flags applied, its local paths absolute, checked.
fn prepare(mut dag: TaskDag, origin: &str, overrides: &Overrides) -> anyhow::Result<Task> {
    let task = &mut dag.tasks[0];
    task.apply_overrides(overrides)
        .map_err(|err| anyhow::anyhow!("invalid flag: {err}"))?;
    if overrides.name.is_some() {
        // Checked with the task's own name by `apply_overrides` above.
        dag.name = task.name.clone();
    }
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    absolutize_paths(task, &cwd)?;
    task.validate()
        .map_err(|err| anyhow::anyhow!("invalid task{origin}: {err}"))?;
    Ok(Task { dag })
}

/// A single word names a YAML file when it ends in .yaml/.yml (which must
/// then exist) or is a file holding a YAML mapping; anything else, such
/// as `./train.sh`, is a command, as in SkyPilot.
fn is_yaml_file(word: &str) -> anyhow::Result<bool> {
    let path = Path::new(word);
    if word.ends_with(".yaml") || word.ends_with(".yml") {
        if !path.is_file() {
            bail!("the task YAML {word} does not exist (or is not a file)");
        }
        return Ok(true);
    }
    if !path.is_file() {
        return Ok(false);
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(false);
    };
    Ok(serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text).is_ok_and(|v| v.is_mapping()))
}

/// The parser's error with the file name and the offending line, e.g.
///
/// ```text
/// invalid task YAML task.yaml: line 2, column 1: unknown field "runn" in the task; did you mean "run"?
///     2 | runn: echo hi
///       | ^
/// ```
///
/// Several mistakes are listed one after another, each with its line.
fn yaml_error(file: &str, text: &str, err: &TaskError) -> anyhow::Error {
    let mistakes: Vec<&TaskError> = err.all().collect();
    let mut message = format!("invalid task YAML {file}:");
    // One mistake stays on the first line; several get a line each.
    let separator = if mistakes.len() > 1 {
        message.push_str(&format!(" {} mistakes:", mistakes.len()));
        "\n"
    } else {
        " "
    };
    for mistake in mistakes {
        message.push_str(&format!("{separator}{}", mistake.alone()));
        if let (Some(line), Some(column)) = (mistake.line(), mistake.column())
            && let Some(source) = text.lines().nth(line.saturating_sub(1))
        {
            let number = line.to_string();
            let pad = " ".repeat(number.len());
            let caret = " ".repeat(column.saturating_sub(1));
            message.push_str(&format!("\n    {number} | {source}\n    {pad} | {caret}^"));
        }
    }
    anyhow::anyhow!(message)
}

/// The flags as overrides. `--env NAME` without a value takes the value
/// from this shell, as SkyPilot does; when the shell has none, the task
/// check reports the variable as missing.
fn overrides(flags: &TaskFlags) -> Overrides {
    let from_shell = |vars: &[(String, Option<String>)]| -> Vec<(String, Option<String>)> {
        vars.iter()
            .map(|(name, value)| {
                let value = value.clone().or_else(|| std::env::var(name).ok());
                (name.clone(), value)
            })
            .collect()
    };
    Overrides {
        name: flags.name.clone(),
        workdir: flags.workdir.clone(),
        infra: flags.infra.clone(),
        cpus: flags.cpus.clone(),
        memory: flags.memory.clone(),
        gpus: flags.gpus.clone(),
        instance_type: flags.instance_type.clone(),
        num_nodes: flags.num_nodes,
        use_spot: flags.use_spot.then_some(true),
        image_id: flags.image_id.clone(),
        ports: flags.ports.clone(),
        disk_size: flags.disk_size.clone(),
        envs: from_shell(&flags.envs),
        secrets: from_shell(&flags.secrets),
    }
}

/// Local paths as absolute paths (`~` expanded, relative to the current
/// directory), as the server finds them in the upload under those names.
fn absolutize_paths(task: &mut TaskSpec, cwd: &Path) -> anyhow::Result<()> {
    if let Some(Workdir::Path(dir)) = &task.workdir {
        let absolute = absolute(dir, cwd);
        if !absolute.is_dir() {
            bail!("workdir {dir} is not a directory on this machine");
        }
        task.workdir = Some(Workdir::Path(absolute.to_string_lossy().into_owned()));
    }
    for (target, mount) in task.file_mounts.iter_mut() {
        if let FileMount::Source(source) = mount
            && !source.contains("://")
        {
            let absolute = absolute(source, cwd);
            if !absolute.exists() {
                bail!("file_mounts.{target}: {source} does not exist on this machine");
            }
            *source = absolute.to_string_lossy().into_owned();
        }
    }
    Ok(())
}

fn absolute(path: &str, cwd: &Path) -> PathBuf {
    let expanded = match (path.strip_prefix('~'), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
            PathBuf::from(home).join(rest.trim_start_matches('/'))
        }
        _ => PathBuf::from(path),
    };
    normalize(&cwd.join(expanded))
}

/// Drops `.` and resolves `..` by the text alone, as Python's `abspath`.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The local paths to upload for this task: the workdir, and unless
/// `workdir_only` (exec), the local file-mount sources. Each maps to
/// itself in `file_mounts_mapping`.
pub fn local_sources(task: &TaskSpec, workdir_only: bool) -> Vec<String> {
    let mut sources = Vec::new();
    if let Some(Workdir::Path(dir)) = &task.workdir {
        sources.push(dir.clone());
    }
    if !workdir_only {
        for mount in task.file_mounts.values() {
            if let FileMount::Source(source) = mount
                && !source.contains("://")
                && !sources.contains(source)
            {
                sources.push(source.clone());
            }
        }
    }
    sources
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> String {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    #[test]
    fn a_yaml_typo_names_the_file_line_column_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "task.yaml", "name: t\nrunn: echo hi\n");
        let err = load(std::slice::from_ref(&file), &TaskFlags::default())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains(&file), "{err}");
        assert!(err.contains("line 2, column 1"), "{err}");
        assert!(err.contains("did you mean \"run\"?"), "{err}");
        assert!(err.contains("    2 | runn: echo hi\n      | ^"), "{err}");
    }

    #[test]
    fn every_yaml_mistake_is_shown_with_its_line_in_file_order() {
        let dir = tempfile::tempdir().unwrap();
        let text = "num_nodes: two\nresources:\n  cpu: 4\nrunn: echo hi\n";
        let file = write(dir.path(), "task.yaml", text);
        let err = load(std::slice::from_ref(&file), &TaskFlags::default())
            .err()
            .unwrap()
            .to_string();
        let expected = format!(
            "invalid task YAML {file}: 3 mistakes:\n\
             line 1, column 12: num_nodes: invalid value \"two\": expected "
        );
        assert!(err.starts_with(&expected), "{err}");
        let first = err.find("    1 | num_nodes: two").expect("line 1 shown");
        let second = err
            .find("    3 |   cpu: 4\n      |   ^")
            .expect("line 3 shown");
        let third = err
            .find("    4 | runn: echo hi\n      | ^")
            .expect("line 4 shown");
        assert!(first < second && second < third, "{err}");
    }

    #[test]
    fn words_make_a_command_and_flags_apply() {
        let flags = TaskFlags {
            envs: vec![("GREETING".into(), Some("hi".into()))],
            cpus: Some("2".into()),
            ..TaskFlags::default()
        };
        let task = load(&["echo".into(), "$GREETING".into()], &flags).unwrap();
        assert_eq!(task.dag.tasks[0].run.as_deref(), Some("echo $GREETING"));
        assert_eq!(
            task.dag.tasks[0].envs["GREETING"].as_str(),
            Some("hi"),
            "the --env value is set"
        );
    }

    #[test]
    fn a_pipeline_is_a_managed_jobs_and_its_env_flags_reach_every_task() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pipe.yaml");
        std::fs::write(
            &file,
            "name: pipe\n---\nname: a\nrun: echo a\n---\nname: b\nrun: echo b\n",
        )
        .unwrap();
        let entry = [file.to_str().unwrap().to_owned()];
        let flags = TaskFlags {
            envs: vec![("STAGE".into(), Some("x".into()))],
            name: Some("renamed".into()),
            ..TaskFlags::default()
        };
        let err = load(&entry, &flags).err().unwrap().to_string();
        assert!(
            err.contains("holds 2 tasks") && err.contains("skydeck jobs launch"),
            "{err}"
        );
        let task = load_pipeline(&entry, &flags).unwrap();
        assert_eq!(
            task.dag.name.as_ref().map(ToString::to_string).as_deref(),
            Some("renamed")
        );
        assert_eq!(task.dag.tasks.len(), 2);
        for spec in &task.dag.tasks {
            assert_eq!(spec.envs["STAGE"].as_str(), Some("x"), "{spec:?}");
        }
    }

    #[test]
    fn an_env_flag_without_value_reads_the_shell_or_is_reported_missing() {
        let flags = TaskFlags {
            envs: vec![("SKYDECK_SURELY_UNSET_VARIABLE".into(), None)],
            ..TaskFlags::default()
        };
        let err = load(&["true".into()], &flags).err().unwrap().to_string();
        assert!(err.contains("SKYDECK_SURELY_UNSET_VARIABLE"), "{err}");
        let flags = TaskFlags {
            envs: vec![("PATH".into(), None)],
            ..TaskFlags::default()
        };
        let task = load(&["true".into()], &flags).unwrap();
        assert_eq!(
            task.dag.tasks[0].envs["PATH"].as_str(),
            std::env::var("PATH").ok().as_deref()
        );
    }

    #[test]
    fn a_script_file_is_a_command_and_a_missing_yaml_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let script = write(dir.path(), "run.sh", "echo hi\n");
        let task = load(std::slice::from_ref(&script), &TaskFlags::default()).unwrap();
        assert_eq!(task.dag.tasks[0].run.as_deref(), Some(script.as_str()));
        let missing = dir.path().join("nope.yaml").to_string_lossy().into_owned();
        assert!(load(&[missing], &TaskFlags::default()).is_err());
    }

    #[test]
    fn local_paths_become_absolute_and_are_listed_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("proj")).unwrap();
        write(dir.path(), "proj/data.txt", "x");
        let mut spec = skydeck_types::task::parse_tasks(
            "workdir: proj\nfile_mounts:\n  /data.txt: proj/./data.txt\n  /bucket: s3://b\nrun: ls\n",
        )
        .unwrap()
        .remove(0);
        absolutize_paths(&mut spec, dir.path()).unwrap();
        let proj = dir.path().join("proj").to_string_lossy().into_owned();
        assert_eq!(spec.workdir, Some(Workdir::Path(proj.clone())));
        assert_eq!(
            local_sources(&spec, false),
            [proj.clone(), format!("{proj}/data.txt")]
        );
        assert_eq!(local_sources(&spec, true), [proj]);
    }

    #[test]
    fn a_pipeline_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "chain.yaml",
            "name: c\n---\nrun: a\n---\nrun: b\n",
        );
        let err = load(&[file], &TaskFlags::default())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("2 tasks"), "{err}");
    }
}
