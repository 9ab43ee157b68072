//! The official SkyPilot CLI (`pip install skypilot==0.14.1`) as a test
//! driver: a `sky` with a HOME of its own, usage collection off, no proxies
//! and no endpoint inherited from the caller, so it only ever talks to the
//! test's server on 127.0.0.1.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::TestServer;

/// How long one `sky` command may run before it is killed.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// The path of the official `sky` executable, or `None` to skip the test.
pub fn official_sky() -> Option<PathBuf> {
    match std::env::var_os("SKYDECK_TEST_SKY") {
        Some(path) if !path.is_empty() => {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "SKYDECK_TEST_SKY={} is not a file",
                path.display()
            );
            Some(path)
        }
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must set SKYDECK_TEST_SKY to the official `sky` executable \
                 (skypilot==0.14.1); scripts/sky-venv.sh installs it and prints its path: \
                 SKYDECK_TEST_SKY=$(scripts/sky-venv.sh | tail -n 1)"
            );
            eprintln!(
                "skipping the official client test: SKYDECK_TEST_SKY is not set \
                 (SKYDECK_TEST_SKY=$(scripts/sky-venv.sh | tail -n 1) provides it)"
            );
            None
        }
    }
}

/// The official CLI with a HOME of its own, shared by every command so the
/// login persists.
pub struct Sky {
    pub executable: PathBuf,
    pub home: PathBuf,
}

/// What one `sky` command did; ANSI styling removed from its output.
pub struct Outcome {
    pub command: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Both streams: the client prints some messages on stderr.
    pub fn output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    pub fn describe(&self) -> String {
        format!(
            "`{}` exited with {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }
}

impl Sky {
    pub async fn run(&self, args: &[&str]) -> Outcome {
        self.run_with(args, &[]).await
    }

    /// `run` with extra environment variables (set after the caller's
    /// `SKYPILOT_*` ones are removed).
    pub async fn run_with(&self, args: &[&str], envs: &[(&str, &str)]) -> Outcome {
        let mut command = tokio::process::Command::new(&self.executable);
        command.args(args);
        // Nothing inherited may redirect the client: no endpoint, token,
        // config or proxy of the caller's.
        for (key, _) in std::env::vars_os() {
            let name = key.to_string_lossy().to_ascii_uppercase();
            if name.starts_with("SKYPILOT_") || name.ends_with("_PROXY") {
                command.env_remove(&key);
            }
        }
        command
            .env_remove("SKYPILOT_API_SERVER_ENDPOINT")
            .env("HOME", &self.home)
            .env("SKYPILOT_DISABLE_USAGE_COLLECTION", "1")
            .env("DO_NOT_TRACK", "1")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost")
            .env("NO_COLOR", "1")
            .env("TERM", "dumb")
            .env("COLUMNS", "200")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command.envs(envs.iter().copied());
        let rendered = format!("sky {}", args.join(" "));
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.executable.display()));
        // On timeout the future, and with it the child, is dropped: killed.
        let output = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("`{rendered}` ran longer than {COMMAND_TIMEOUT:?}"))
            .unwrap_or_else(|e| panic!("`{rendered}`: {e}"));
        Outcome {
            command: rendered,
            code: output.status.code(),
            stdout: strip_ansi(&String::from_utf8_lossy(&output.stdout)),
            stderr: strip_ansi(&String::from_utf8_lossy(&output.stderr)),
        }
    }
}

/// Removes ANSI escape sequences (CSI and OSC), in case the client styles
/// its output even without a terminal.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\u{7}' || (c == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Collects failures so one run reports every broken command at once.
pub struct Report<'a> {
    pub server: &'a TestServer,
    pub failures: String,
}

impl Report<'_> {
    /// Records a failure unless the command exited 0 and its output has
    /// every fragment.
    pub fn expect(&mut self, outcome: &Outcome, fragments: &[&str]) {
        let output = outcome.output();
        let missing: Vec<&str> = fragments
            .iter()
            .copied()
            .filter(|fragment| !output.contains(fragment))
            .collect();
        if outcome.success() && missing.is_empty() {
            eprintln!("ok: `{}`\n{}", outcome.command, outcome.stdout.trim_end());
            return;
        }
        let _ = writeln!(
            self.failures,
            "\n===== `{}`: exit 0 and {:?} expected; missing {:?}\n{}",
            outcome.command,
            fragments,
            missing,
            outcome.describe()
        );
    }

    /// Records a failure with a free-form check.
    pub fn check(&mut self, outcome: &Outcome, holds: bool, what: &str) {
        if !holds {
            let _ = writeln!(
                self.failures,
                "\n===== `{}`: {what}\n{}",
                outcome.command,
                outcome.describe()
            );
        }
    }

    pub fn finish(self) {
        let log = self.server.stderr();
        let mut failures = self.failures;
        for bad in ["panicked", "internal error"] {
            if log.contains(bad) {
                let _ = writeln!(failures, "\n===== the server log mentions {bad:?}");
            }
        }
        assert!(
            failures.is_empty(),
            "the official client failed against skydeck:{failures}\n===== server log =====\n{log}"
        );
    }
}

pub fn temp_dir(parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}
