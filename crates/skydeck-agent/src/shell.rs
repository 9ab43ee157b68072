//! The shell a job's setup and run commands execute in, as SkyPilot's
//! `make_task_bash_script` and `/bin/bash -i` build it: an interactive bash
//! (so that a `~/.bashrc` guarded by `[ -z "$PS1" ] && return` or
//! `case $- in *i*)` runs whole), `~/.bashrc` and conda's profile sourced,
//! the task's variables applied after them, then `cd` into the workdir.
//!
//! The script is a file, as SkyPilot's is: an interactive bash reading a
//! file prints neither `[1] <pid>` for background commands nor `exit` as it
//! exits.
//!
//! Where this differs from SkyPilot, on purpose: history expansion and
//! recording are off (a `!` in a command never means "an earlier command",
//! and the job's commands do not land in `~/.bash_history`); SIGTERM ends
//! the shell (an interactive bash ignores it, which would let `cancel` run
//! the script's next line); and the job's commands stay in the shell's
//! process group (an interactive bash would give each its own), so that
//! stopping the group stops them all.

use crate::env::Phase;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Lines an interactive bash without a terminal prints as it starts; not
/// the job's output (SkyPilot drops them too).
const STARTUP_NOISE: [&str; 2] = [
    "bash: cannot set terminal process group (",
    "bash: no job control in this shell",
];

/// How the node process is started.
pub(crate) struct Launch {
    pub program: PathBuf,
    pub args: Vec<std::ffi::OsString>,
    /// The process makes itself a session (and group) leader: the caller
    /// must not put it in a group of its own first, and must wait until it
    /// has (see `runner::await_own_session`).
    pub new_session: bool,
    /// Whether the first lines may be [`STARTUP_NOISE`].
    pub interactive: bool,
}

/// `setsid bash --norc -i SCRIPT`: an interactive shell needs a session of
/// its own, or it opens the agent's terminal (if any) and stops itself
/// trying to take it over. Without `setsid`, a plain `bash` in a group of
/// its own: a `~/.bashrc` that returns unless interactive is cut short then.
/// `--norc`: the script sources `~/.bashrc` itself, once the task's
/// variables are saved.
pub(crate) fn launch(script: &Path) -> Launch {
    let script = script.as_os_str().to_owned();
    match setsid_program() {
        Some(setsid) => Launch {
            program: setsid.clone(),
            args: vec!["bash".into(), "--norc".into(), "-i".into(), script],
            new_session: true,
            interactive: true,
        },
        None => Launch {
            program: PathBuf::from("bash"),
            args: vec!["--norc".into(), script],
            new_session: false,
            interactive: false,
        },
    }
}

fn setsid_program() -> Option<&'static PathBuf> {
    static SETSID: OnceLock<Option<PathBuf>> = OnceLock::new();
    SETSID
        .get_or_init(|| {
            let found = std::env::var_os("PATH")
                .into_iter()
                .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
                .chain(["/usr/bin".into(), "/bin".into()])
                .map(|dir| dir.join("setsid"))
                .find(|candidate| candidate.is_file());
            if found.is_none() {
                tracing::warn!(
                    "no setsid program: jobs run in a non-interactive bash, so a ~/.bashrc \
                     that returns early for non-interactive shells is cut short"
                );
            }
            found
        })
        .as_ref()
}

/// The script bash runs for one phase: `command` wrapped as described in
/// the module comment. `restore` names the variables the agent set (the
/// task's envs and secrets, SkyPilot's): their values are taken before
/// `~/.bashrc` runs and put back after it, so the task's win, as SkyPilot's
/// `export`s after the `source` do. Names only: values stay in the
/// process environment, out of the script file and any command line.
pub(crate) fn wrap<'a>(
    command: &str,
    phase: Phase,
    workdir: &Path,
    restore: impl IntoIterator<Item = &'a str>,
) -> String {
    let names: Vec<&str> = restore
        .into_iter()
        .filter(|name| is_shell_name(name))
        .collect();
    let mut script = String::from(
        "set +m +o history +o histexpand\n\
         trap 'exit 143' TERM\n",
    );
    if phase == Phase::Setup {
        // SkyPilot's setup never sees the run's GPU assignment.
        script.push_str("unset CUDA_VISIBLE_DEVICES\n");
    }
    if !names.is_empty() {
        script.push_str(&format!(
            "__skydeck_task_env=$(declare -p {} 2>/dev/null)\n",
            names.join(" ")
        ));
    }
    script.push_str(
        "[ -f ~/.bashrc ] && source ~/.bashrc\n\
         set -a\n\
         . $(conda info --base 2> /dev/null)/etc/profile.d/conda.sh > /dev/null 2>&1 || true\n\
         set +a\n\
         set +m +o history +o histexpand\n",
    );
    if !names.is_empty() {
        // Quiet: a name bash keeps read-only (UID, PPID…) cannot be restored
        // and needs no restoring.
        script.push_str("eval \"$__skydeck_task_env\" 2>/dev/null; unset __skydeck_task_env\n");
    }
    script.push_str("export PYTHONUNBUFFERED=1\n");
    script.push_str(&format!("cd {} || exit 1\n", quote(workdir)));
    script.push_str(command);
    script.push('\n');
    script
}

/// Whether a line is what bash itself prints as an interactive shell starts.
pub(crate) fn is_startup_noise(line: &[u8]) -> bool {
    STARTUP_NOISE
        .iter()
        .any(|noise| line.starts_with(noise.as_bytes()))
}

fn is_shell_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A single-quoted shell word.
fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_quoted_as_one_word() {
        assert_eq!(quote(Path::new("/a b/it's")), r"'/a b/it'\''s'");
    }

    #[test]
    fn only_shell_names_are_restored() {
        let script = wrap("true", Phase::Run, Path::new("/w"), ["OK_1", "x;rm", "1A"]);
        assert!(script.contains("declare -p OK_1 2>/dev/null"), "{script}");
        assert!(!script.contains("rm"), "{script}");
    }

    #[test]
    fn setup_drops_the_gpu_assignment() {
        let setup = wrap("true", Phase::Setup, Path::new("/w"), []);
        let run = wrap("true", Phase::Run, Path::new("/w"), []);
        assert!(setup.contains("unset CUDA_VISIBLE_DEVICES"));
        assert!(!run.contains("CUDA_VISIBLE_DEVICES"));
    }

    #[test]
    fn bash_startup_lines_are_recognised() {
        assert!(is_startup_noise(
            b"bash: cannot set terminal process group (-1): Inappropriate ioctl for device\n"
        ));
        assert!(is_startup_noise(b"bash: no job control in this shell\n"));
        assert!(!is_startup_noise(b"hello\n"));
    }
}
