//! The container image and the plain-VM deployment: deploy/Dockerfile,
//! scripts/build-rootfs.sh (the same runtime filesystem without Docker),
//! deploy/skydeck.service and examples/api_server.yaml.
//!
//! No Docker engine runs here, so the image's runtime is proven on the
//! rootfs: built by the script with this test build's binary, then run with
//! the Dockerfile's ENTRYPOINT, CMD, ENV, USER and WORKDIR, chrooted, in
//! PID, mount and network namespaces of its own (what a container is), on
//! the real default port 46580 where nothing else can collide. That test
//! needs root and skips, saying so, without it. The linters come from
//! `SKYDECK_TEST_DEPLOY_TOOLS` (`scripts/image-test.sh` prints it); without
//! it those tests skip, except under CI, where they fail.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::{BINARY, TestServer};

/// How long one state change (a server start, a job start) may take.
const DEADLINE: Duration = Duration::from_secs(60);
/// A cold rootfs build runs debootstrap: a minute or two.
const ROOTFS_BUILD_DEADLINE: Duration = Duration::from_secs(600);
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0")
}

fn under_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// Runs a command to its end, killing it at the deadline.
fn run(command: &mut Command, deadline: Duration) -> Output {
    let described = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {described}: {e}"));
    // Drain both pipes while waiting, so a chatty command never blocks.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{described} ran longer than {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// ---------------------------------------------------------------------------
// A small Dockerfile reader: continuation lines joined, comments dropped,
// instructions grouped by stage.

#[derive(Debug, Clone, PartialEq)]
struct Instruction {
    keyword: String,
    args: String,
}

impl Instruction {
    fn line(&self) -> String {
        format!("{} {}", self.keyword, self.args)
    }
}

fn instructions(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut joined = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        let (part, more) = match line.trim_end().strip_suffix('\\') {
            Some(part) => (part, true),
            None => (line, false),
        };
        if !joined.is_empty() {
            joined.push(' ');
        }
        joined.push_str(part);
        if more {
            continue;
        }
        let whole = std::mem::take(&mut joined);
        let whole = whole.trim();
        if whole.is_empty() {
            continue;
        }
        let (keyword, args) = whole.split_once(char::is_whitespace).unwrap_or((whole, ""));
        out.push(Instruction {
            keyword: keyword.to_ascii_uppercase(),
            args: args.trim().to_owned(),
        });
    }
    out
}

struct Dockerfile {
    /// ARGs before the first FROM.
    global: Vec<Instruction>,
    /// Each stage, its FROM first.
    stages: Vec<Vec<Instruction>>,
}

impl Dockerfile {
    fn parse(text: &str) -> Self {
        let mut global = Vec::new();
        let mut stages: Vec<Vec<Instruction>> = Vec::new();
        for instruction in instructions(text) {
            if instruction.keyword == "FROM" {
                stages.push(vec![instruction]);
            } else if let Some(stage) = stages.last_mut() {
                stage.push(instruction);
            } else {
                global.push(instruction);
            }
        }
        Self { global, stages }
    }

    fn load() -> Self {
        Self::parse(&read("deploy/Dockerfile"))
    }

    fn final_stage(&self) -> &[Instruction] {
        self.stages.last().expect("a FROM")
    }

    /// The runtime settings scripts/build-rootfs.sh copies into image.conf.
    fn runtime_settings(&self) -> Vec<String> {
        self.final_stage()
            .iter()
            .filter(|i| {
                [
                    "ENV",
                    "USER",
                    "WORKDIR",
                    "EXPOSE",
                    "HEALTHCHECK",
                    "ENTRYPOINT",
                    "CMD",
                ]
                .contains(&i.keyword.as_str())
            })
            .map(Instruction::line)
            .collect()
    }
}

fn only<'a>(stage: &'a [Instruction], keyword: &str) -> &'a str {
    let found: Vec<_> = stage.iter().filter(|i| i.keyword == keyword).collect();
    assert_eq!(found.len(), 1, "want one {keyword} in the stage: {found:?}");
    &found[0].args
}

fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| panic!("not an exec-form array ({e}): {args}"))
}

/// The image's runtime settings, read from image.conf or the Dockerfile.
#[derive(Debug)]
struct Runtime {
    env: BTreeMap<String, String>,
    user: String,
    workdir: String,
    expose: String,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    healthcheck: Vec<String>,
}

impl Runtime {
    fn from_lines(lines: &[String]) -> Self {
        let parsed = instructions(&lines.join("\n"));
        let mut env = BTreeMap::new();
        for instruction in parsed.iter().filter(|i| i.keyword == "ENV") {
            for pair in instruction.args.split_whitespace() {
                let (key, value) = pair
                    .split_once('=')
                    .unwrap_or_else(|| panic!("ENV {pair}: write KEY=value"));
                assert!(
                    !value.contains(['"', '\'', '$']),
                    "ENV {pair}: plain values only, scripts/build-rootfs.sh does not expand"
                );
                env.insert(key.to_owned(), value.to_owned());
            }
        }
        let healthcheck = only(&parsed, "HEALTHCHECK");
        let (_, check) = healthcheck
            .split_once("CMD ")
            .unwrap_or_else(|| panic!("HEALTHCHECK without CMD: {healthcheck}"));
        Self {
            env,
            user: only(&parsed, "USER").to_owned(),
            workdir: only(&parsed, "WORKDIR").to_owned(),
            expose: only(&parsed, "EXPOSE").to_owned(),
            entrypoint: exec_form(only(&parsed, "ENTRYPOINT")),
            cmd: exec_form(only(&parsed, "CMD")),
            healthcheck: exec_form(check.trim()),
        }
    }

    /// `KEY=value` arguments for `env -i` inside the rootfs.
    fn env_args(&self) -> Vec<String> {
        let mut args = vec![format!("PATH={DEFAULT_PATH}")];
        args.extend(self.env.iter().map(|(k, v)| format!("{k}={v}")));
        args
    }
}

// ---------------------------------------------------------------------------
// Dockerfile, .dockerignore and the rootfs script agree with each other and
// with the workspace.

/// `major.minor.patch` as numbers, for comparing Rust versions.
fn version(text: &str) -> (u32, u32, u32) {
    let mut parts = text
        .trim()
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

fn quoted_value(line: &str, key: &str) -> Option<String> {
    let rest = line
        .trim()
        .strip_prefix(key)?
        .trim_start()
        .strip_prefix('=')?;
    Some(rest.trim().trim_matches('"').to_owned())
}

/// The highest `rust-version` among the registry crates Cargo.lock pins
/// whose sources are in this machine's cargo registry (every crate this
/// build compiled is), with the crate that asks for it.
fn locked_crates_rust_version() -> Option<((u32, u32, u32), String, usize)> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    let registries: Vec<PathBuf> = std::fs::read_dir(cargo_home.join("registry/src"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    let lock = read("Cargo.lock");
    let mut best: Option<((u32, u32, u32), String)> = None;
    let mut seen = 0;
    for package in lock.split("[[package]]").skip(1) {
        let field = |key: &str| package.lines().find_map(|l| quoted_value(l, key));
        let (Some(name), Some(ver), Some(source)) =
            (field("name"), field("version"), field("source"))
        else {
            continue;
        };
        if !source.starts_with("registry+") {
            continue;
        }
        let Some(manifest) = registries
            .iter()
            .map(|r| r.join(format!("{name}-{ver}/Cargo.toml")))
            .find(|p| p.exists())
        else {
            continue;
        };
        seen += 1;
        let manifest = std::fs::read_to_string(manifest).unwrap_or_default();
        if let Some(wanted) = manifest
            .lines()
            .find_map(|l| quoted_value(l, "rust-version"))
        {
            let wanted = version(&wanted);
            if best.as_ref().is_none_or(|(b, _)| wanted > *b) {
                best = Some((wanted, format!("{name} {ver}")));
            }
        }
    }
    best.map(|(v, who)| (v, who, seen))
}

/// The workspace members, from the root Cargo.toml.
fn workspace_members() -> Vec<String> {
    let manifest = read("Cargo.toml");
    let start = manifest.find("members = [").expect("a members list");
    let list = &manifest[start..];
    let list = &list[..list.find(']').expect("the members list ends")];
    list.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn dockerfile_builds_the_locked_binary_on_bookworm_and_runs_it_as_documented() {
    let file = Dockerfile::load();
    assert_eq!(file.stages.len(), 2, "a builder and a runtime stage");

    // Builder: the official Rust image on bookworm, new enough for the lock.
    let builder = &file.stages[0];
    assert_eq!(
        only(builder, "FROM"),
        "rust:${RUST_VERSION}-bookworm AS builder"
    );
    let rust = file
        .global
        .iter()
        .find_map(|i| i.args.strip_prefix("RUST_VERSION="))
        .expect("ARG RUST_VERSION=... before the first FROM");
    let workspace_rust = read("Cargo.toml")
        .lines()
        .find_map(|l| quoted_value(l, "rust-version"))
        .expect("the workspace's rust-version");
    assert!(
        version(rust) >= version(&workspace_rust),
        "rust:{rust} is older than the workspace's rust-version {workspace_rust}"
    );
    match locked_crates_rust_version() {
        Some((needed, who, seen)) => {
            assert!(seen > 50, "found only {seen} locked crates in the registry");
            assert!(
                version(rust) >= needed,
                "rust:{rust}-bookworm cannot build the locked crates: {who} needs Rust {needed:?}"
            );
        }
        None => eprintln!("no cargo registry here: the locked crates' rust-version is not checked"),
    }
    let runs: Vec<&str> = builder
        .iter()
        .filter(|i| i.keyword == "RUN")
        .map(|i| i.args.as_str())
        .collect();
    assert!(
        runs.iter()
            .all(|r| r.contains("cargo build --release --locked -p skydeck")),
        "both builder RUNs (dependencies, then sources) build the locked release: {runs:?}"
    );
    assert!(
        runs.last()
            .unwrap()
            .contains("target/release/skydeck /usr/local/bin/skydeck")
    );

    // The dependency layer copies every member's manifest (and build
    // script), or the stub build fails once a crate is added.
    let copies: Vec<&str> = builder
        .iter()
        .filter(|i| i.keyword == "COPY")
        .map(|i| i.args.as_str())
        .collect();
    for member in workspace_members() {
        let manifest = format!("{member}/Cargo.toml");
        assert!(
            copies
                .iter()
                .any(|c| c.split_whitespace().any(|s| s == manifest)),
            "deploy/Dockerfile does not COPY {manifest} into the dependency layer"
        );
        if repo().join(&member).join("build.rs").exists() {
            let script = format!("{member}/build.rs");
            assert!(
                copies
                    .iter()
                    .any(|c| c.split_whitespace().any(|s| s == script)),
                "deploy/Dockerfile does not COPY {script} into the dependency layer"
            );
        }
    }

    // Runtime: bookworm too (the binary's glibc), the binary from the builder.
    let runtime = file.final_stage();
    assert_eq!(only(runtime, "FROM"), "debian:bookworm-slim");
    assert!(
        runtime.iter().any(|i| i.keyword == "COPY"
            && i.args == "--from=builder /usr/local/bin/skydeck /usr/local/bin/skydeck"),
        "the binary goes to /usr/local/bin/skydeck"
    );
    assert!(
        runtime
            .iter()
            .any(|i| i.keyword == "RUN" && i.args.contains("runtime-setup.sh")),
        "the runtime stage runs deploy/runtime-setup.sh, as scripts/build-rootfs.sh does"
    );
    let labels = only(runtime, "LABEL");
    for label in [
        "org.opencontainers.image.title",
        "org.opencontainers.image.licenses",
        "org.opencontainers.image.version",
        "org.opencontainers.image.revision",
    ] {
        assert!(labels.contains(label), "missing label {label}");
    }
    let cargo_version = read("Cargo.toml")
        .lines()
        .find_map(|l| quoted_value(l, "version"))
        .expect("the workspace version");
    assert!(
        runtime
            .iter()
            .any(|i| i.keyword == "ARG" && i.args == format!("SKYDECK_VERSION={cargo_version}")),
        "ARG SKYDECK_VERSION should default to the workspace version {cargo_version}"
    );

    let settings = Runtime::from_lines(&file.runtime_settings());
    assert_eq!(settings.user, "1000:1000");
    assert_eq!(settings.env["HOME"], "/home/skydeck");
    assert_eq!(settings.env["SKYDECK_HOME"], "/home/skydeck/.skydeck");
    assert_eq!(settings.workdir, "/home/skydeck");
    assert_eq!(settings.entrypoint, ["tini", "--"]);
    assert_eq!(
        settings.cmd,
        ["skydeck", "api", "start", "--deploy", "--foreground"]
    );
    assert_eq!(settings.healthcheck, ["skydeck", "api", "health"]);

    // EXPOSE and the health check's endpoint are the server's default port.
    let help = run(
        Command::new(BINARY).args(["api", "start", "--help"]),
        DEADLINE,
    );
    assert!(
        text(&help.stdout).contains(&format!("[default: {}]", settings.expose)),
        "EXPOSE {} is not `api start`'s default port:\n{}",
        settings.expose,
        text(&help.stdout)
    );
    let help = run(
        Command::new(BINARY).args(["api", "health", "--help"]),
        DEADLINE,
    );
    assert!(
        text(&help.stdout).contains(&format!("http://127.0.0.1:{}", settings.expose)),
        "`api health` does not ask port {} by default:\n{}",
        settings.expose,
        text(&help.stdout)
    );

    // The shared setup script makes the user the Dockerfile names.
    let setup = read("deploy/runtime-setup.sh");
    let (uid, gid) = settings.user.split_once(':').unwrap();
    for line in [
        format!("uid={uid}"),
        format!("gid={gid}"),
        format!("home={}", settings.env["HOME"]),
    ] {
        assert!(
            setup.lines().any(|l| l == line),
            "deploy/runtime-setup.sh lacks `{line}`"
        );
    }
    // Every package named in the list is a plain Debian package name.
    let packages: Vec<String> = read("deploy/runtime-packages.txt")
        .lines()
        .map(|l| l.split('#').next().unwrap().trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    for wanted in ["ca-certificates", "tini", "openssh-client", "rsync"] {
        assert!(
            packages.iter().any(|p| p == wanted),
            "{wanted} is not in the package list"
        );
    }
    assert!(
        packages.iter().all(|p| p
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))),
        "{packages:?}"
    );
}

/// Whether a .dockerignore pattern matches `path` (or a folder above it),
/// as Docker matches them: `*` within one path segment, `**` across any.
fn ignore_pattern_matches(pattern: &str, path: &str) -> bool {
    fn glob(pattern: &[&str], path: &[&str]) -> bool {
        match (pattern.first(), path.first()) {
            (None, None) => true,
            (Some(&"**"), _) => {
                glob(&pattern[1..], path) || (!path.is_empty() && glob(pattern, &path[1..]))
            }
            (Some(p), Some(s)) => segment(p, s) && glob(&pattern[1..], &path[1..]),
            _ => false,
        }
    }
    fn segment(pattern: &str, text: &str) -> bool {
        match pattern.split_once('*') {
            None => pattern == text,
            Some((head, tail)) => {
                let Some(rest) = text.strip_prefix(head) else {
                    return false;
                };
                (0..=rest.len()).any(|i| rest.is_char_boundary(i) && segment(tail, &rest[i..]))
            }
        }
    }
    let pattern: Vec<&str> = pattern.trim_matches('/').split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    // A pattern that matches a folder excludes everything in it.
    (1..=path.len()).any(|n| glob(&pattern, &path[..n]))
}

/// Whether .dockerignore keeps `path` out of the build context.
fn ignored(rules: &[(bool, String)], path: &str) -> bool {
    let mut out = false;
    for (include, pattern) in rules {
        if ignore_pattern_matches(pattern, path) {
            out = !include;
        }
    }
    out
}

fn files_under(dir: &Path, root: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name == ".git" {
            continue;
        }
        if path.is_dir() {
            files_under(&path, root, out);
        } else {
            out.push(
                path.strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
}

#[test]
fn dockerignore_keeps_build_output_and_git_out_and_every_source_in() {
    let rules: Vec<(bool, String)> = read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.strip_prefix('!') {
            Some(p) => (true, p.to_owned()),
            None => (false, l.to_owned()),
        })
        .collect();
    for out in [
        ".git/HEAD",
        "target/release/skydeck",
        "crates/skydeck/target/x",
        "docs/deploy.md",
        "scripts/test.sh",
        "crates/skydeck/tests/deploy_image.rs",
        "deploy/Dockerfile.local-notes",
    ] {
        assert!(
            ignored(&rules, out),
            ".dockerignore lets {out} into the context"
        );
    }
    // What the build reads: manifests, sources, SQL migrations, the runtime
    // setup.
    let root = repo().canonicalize().unwrap();
    let mut files = Vec::new();
    files_under(&root.join("crates"), &root, &mut files);
    files_under(&root.join("bench"), &root, &mut files);
    files.extend(
        [
            "Cargo.toml",
            "Cargo.lock",
            "deploy/runtime-packages.txt",
            "deploy/runtime-setup.sh",
        ]
        .map(str::to_owned),
    );
    let needed: Vec<&String> = files
        .iter()
        .filter(|f| {
            !f.split('/')
                .any(|s| s == "tests" || s == "benches" || s == "examples")
        })
        .collect();
    assert!(needed.len() > 50, "found only {needed:?}");
    for file in needed {
        assert!(
            !ignored(&rules, file),
            ".dockerignore keeps {file} out of the build"
        );
    }
    // tests/, benches/ and examples/ of the crates stay out; that works only
    // while cargo finds them by folder, not named in a manifest.
    for member in workspace_members() {
        let manifest = std::fs::read_to_string(root.join(&member).join("Cargo.toml")).unwrap();
        for table in ["[[test]]", "[[bench]]", "[[example]]"] {
            assert!(
                !manifest.contains(table),
                "{member}/Cargo.toml names a {table} target, which .dockerignore leaves out \
                 of the Docker build: let it in"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Linters.

/// The folder with `hadolint` and `shellcheck`, or `None` to skip.
fn lint_tools() -> Option<PathBuf> {
    match std::env::var_os("SKYDECK_TEST_DEPLOY_TOOLS") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            for tool in ["hadolint", "shellcheck"] {
                assert!(
                    dir.join(tool).is_file(),
                    "SKYDECK_TEST_DEPLOY_TOOLS={} has no {tool}",
                    dir.display()
                );
            }
            Some(dir)
        }
        None => {
            assert!(
                !under_ci(),
                "CI must set SKYDECK_TEST_DEPLOY_TOOLS: \
                 SKYDECK_TEST_DEPLOY_TOOLS=$(bash scripts/image-test.sh | tail -n 1)"
            );
            eprintln!(
                "skipping: SKYDECK_TEST_DEPLOY_TOOLS is not set \
                 (SKYDECK_TEST_DEPLOY_TOOLS=$(bash scripts/image-test.sh | tail -n 1) provides it)"
            );
            None
        }
    }
}

#[test]
fn dockerfile_passes_hadolint() {
    let Some(tools) = lint_tools() else { return };
    let lint = |dockerfile: &Path| {
        run(
            Command::new(tools.join("hadolint"))
                .current_dir(repo())
                .args(["--no-color", "--config", "deploy/.hadolint.yaml"])
                .arg(dockerfile),
            DEADLINE,
        )
    };
    let out = lint(Path::new("deploy/Dockerfile"));
    assert!(
        out.status.success(),
        "hadolint finds problems in deploy/Dockerfile:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // The linter and its settings do bite: an untagged base, an apt-get
    // without --no-install-recommends and an unlisted label all fail.
    let scratch = tempfile::tempdir().unwrap();
    let bad = scratch.path().join("Dockerfile");
    std::fs::write(
        &bad,
        "FROM debian\nLABEL org.example.stray=1\nRUN apt-get update && apt-get install -y curl\n",
    )
    .unwrap();
    let out = lint(&bad);
    let report = text(&out.stdout);
    assert!(!out.status.success(), "hadolint passed a bad Dockerfile");
    for rule in ["DL3006", "DL3015", "DL3050"] {
        assert!(
            report.contains(rule),
            "hadolint did not report {rule}:\n{report}"
        );
    }
}

#[test]
fn deploy_scripts_pass_shellcheck() {
    let Some(tools) = lint_tools() else { return };
    let out = run(
        Command::new(tools.join("shellcheck"))
            .current_dir(repo())
            .args([
                "deploy/runtime-setup.sh",
                "scripts/build-rootfs.sh",
                "scripts/image-test.sh",
                "scripts/ssh-hosts-up.sh",
                "scripts/ssh-hosts-down.sh",
                "scripts/ssh-hosts-rekey.sh",
            ]),
        DEADLINE,
    );
    assert!(
        out.status.success(),
        "shellcheck:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

// ---------------------------------------------------------------------------
// The rootfs, run as the image would be.

/// A process tree the test started in new PID, mount and network
/// namespaces; dropping it kills the tree (the kernel kills everything in
/// a PID namespace whose first process dies).
struct Contained {
    child: Child,
    stdout: BufReader<std::process::ChildStdout>,
    log: PathBuf,
}

impl Contained {
    /// `unshare` with the namespaces of a container, /proc mounted inside
    /// `root`, loopback up, then `chroot --userspec` into `root` running
    /// `argv` with exactly `env`, in `workdir`.
    fn start(
        root: &Path,
        user: &str,
        workdir: &str,
        env: &[String],
        argv: &[String],
        log: PathBuf,
    ) -> Self {
        let stderr = std::fs::File::create(&log).unwrap();
        let mut child = Command::new("unshare")
            .args(["--pid", "--fork", "--kill-child", "--net"])
            .arg(format!("--mount-proc={}", root.join("proc").display()))
            .args(["--", "sh", "-c", r#"ip link set lo up && exec "$@""#, "sh"])
            .arg("chroot")
            .arg(format!("--userspec={user}"))
            .arg(root)
            .args(["/usr/bin/env", "-i", &format!("--chdir={workdir}")])
            .args(env)
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("cannot run unshare");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self { child, stdout, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process that is PID 1 inside (the ENTRYPOINT), as seen here.
    fn init_pid(&self) -> u32 {
        let started = Instant::now();
        loop {
            if let Some(pid) = children_of(self.child.id()).first() {
                return *pid;
            }
            assert!(started.elapsed() < DEADLINE, "unshare started nothing");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for a stdout line starting with `prefix` and returns the rest.
    fn wait_for_line(&mut self, prefix: &str) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            // The server prints the line or exits; EOF means it exited.
            if self.stdout.read_line(&mut line).unwrap_or(0) == 0 {
                let status = self.wait(DEADLINE);
                panic!(
                    "exited ({status}) before printing {prefix:?}:\n{}",
                    self.log()
                );
            }
            if let Some(rest) = line.trim_end().strip_prefix(prefix) {
                return rest.to_owned();
            }
        }
    }

    fn wait(&mut self, deadline: Duration) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < deadline,
                "still running after {deadline:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs a command in the same namespaces and root as `user`, as
    /// `docker exec` would (a health check, a probe).
    fn exec(&self, root: Option<(&Path, &str)>, env: &[String], argv: &[&str]) -> Output {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--target={}", self.init_pid()))
            .args(["--net", "--mount", "--"]);
        if let Some((root, user)) = root {
            command
                .arg("chroot")
                .arg(format!("--userspec={user}"))
                .arg(root)
                .args(["/usr/bin/env", "-i"])
                .args(env);
        }
        command.args(argv);
        run(&mut command, DEADLINE)
    }
}

impl Drop for Contained {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Children of `pid`, from /proc.
fn children_of(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            found.push(child);
        }
    }
    found
}

/// The real and effective uid and gid of a process.
fn ids_of(pid: u32) -> (String, String) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|ids| ids.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    (field("Uid:"), field("Gid:"))
}

/// One HTTP/1.0 call from inside the namespaces, with bash's /dev/tcp:
/// the status code and the body.
fn http_inside(server: &Contained, port: &str, path: &str, auth: Option<&str>) -> (u16, String) {
    let header = auth
        .map(|a| format!("Authorization: Basic {a}\\r\\n"))
        .unwrap_or_default();
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/{port} && \
         printf 'GET {path} HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\
         X-SkyPilot-API-Version: 62\\r\\nX-SkyPilot-Version: 0.14.1\\r\\n{header}\\r\\n' >&3 && \
         cat <&3"
    );
    let out = server.exec(None, &[], &["bash", "-c", &script]);
    let response = text(&out.stdout);
    assert!(out.status.success(), "no answer: {}", text(&out.stderr));
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

fn assert_owned_by(path: &Path, uid: u32, gid: u32) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (uid, gid),
        "{} is not owned by {uid}:{gid}",
        path.display()
    );
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).unwrap().flatten() {
            assert_owned_by(&entry.path(), uid, gid);
        }
    }
}

#[test]
fn rootfs_runs_the_image_command_as_uid_1000_in_its_own_namespaces() {
    if !is_root() {
        eprintln!(
            "skipping the rootfs test: it needs root (debootstrap, chroot and namespaces); \
             CI runs as root"
        );
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("image");
    let built = run(
        Command::new("bash")
            .arg(repo().join("scripts/build-rootfs.sh"))
            .arg("--tar")
            .arg(&out)
            .arg(BINARY),
        ROOTFS_BUILD_DEADLINE,
    );
    assert!(
        built.status.success(),
        "scripts/build-rootfs.sh failed:\n{}",
        text(&built.stderr)
    );
    let root = out.join("rootfs");

    // The runtime settings it wrote are the Dockerfile's.
    let conf: Vec<String> = std::fs::read_to_string(out.join("image.conf"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(conf, Dockerfile::load().runtime_settings());
    let image = Runtime::from_lines(&conf);
    let (uid, gid) = image.user.split_once(':').unwrap();
    let (uid, gid): (u32, u32) = (uid.parse().unwrap(), gid.parse().unwrap());

    // The filesystem: the binary, the user and its home, the packages.
    let installed = std::fs::read(root.join("usr/local/bin/skydeck")).unwrap();
    assert!(
        installed == std::fs::read(BINARY).unwrap(),
        "not the binary given"
    );
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    let home = &image.env["HOME"];
    assert!(
        passwd
            .lines()
            .any(|l| l == format!("skydeck:x:{uid}:{gid}::{home}:/bin/bash")),
        "no skydeck user {uid}:{gid} with home {home}:\n{passwd}"
    );
    let state = root.join(image.env["SKYDECK_HOME"].trim_start_matches('/'));
    assert_owned_by(&state, uid, gid);
    assert_eq!(
        Path::new(&image.env["SKYDECK_HOME"]).parent(),
        Some(Path::new(home))
    );
    for program in ["usr/bin/tini", "usr/bin/ssh", "usr/bin/rsync", "bin/bash"] {
        assert!(root.join(program).is_file(), "{program} is missing");
    }
    assert!(
        root.join("etc/ssl/certs/ca-certificates.crt").is_file(),
        "no CA bundle"
    );
    assert!(
        !root.join("var/lib/apt/lists").read_dir().unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with("_Packages")
        }),
        "apt lists left in the rootfs"
    );

    // --tar: the same tree with numeric owners, and an import script.
    let listing = run(
        Command::new("tar")
            .args(["--numeric-owner", "-tvf"])
            .arg(out.join("skydeck-rootfs.tar")),
        DEADLINE,
    );
    let listing = text(&listing.stdout);
    for (mode, owner, path) in [
        ("-rwxr-xr-x", "0/0", "./usr/local/bin/skydeck"),
        ("drwxr-xr-x", &format!("{uid}/{gid}"), &format!(".{home}/")),
        (
            "drwx------",
            &format!("{uid}/{gid}"),
            &format!(".{}/", image.env["SKYDECK_HOME"]),
        ),
    ] {
        assert!(
            listing.lines().any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.first() == Some(&mode) && f.get(1) == Some(&owner) && f.last() == Some(&path)
            }),
            "no {mode} {owner} {path} in the tarball"
        );
    }
    let import = std::fs::read_to_string(out.join("import.sh")).unwrap();
    let syntax = run(
        Command::new("bash").arg("-n").arg(out.join("import.sh")),
        DEADLINE,
    );
    assert!(syntax.status.success(), "{}", text(&syntax.stderr));
    for line in conf.iter().filter(|l| !l.starts_with("HEALTHCHECK")) {
        assert!(
            import.contains(&format!("'{line}'")),
            "import.sh lacks {line}"
        );
    }

    // Without an auth mode the image's CMD refuses to serve on 0.0.0.0.
    let argv: Vec<String> = image.entrypoint.iter().chain(&image.cmd).cloned().collect();
    let env = image.env_args();
    let user = format!("{uid}:{gid}");
    let mut refused = Contained::start(
        &root,
        &user,
        &image.workdir,
        &env,
        &argv,
        scratch.path().join("refused.log"),
    );
    let status = refused.wait(DEADLINE);
    let log = refused.log();
    assert!(!status.success(), "started without auth:\n{log}");
    assert!(
        log.contains("refusing to listen on 0.0.0.0 without authentication")
            && log.contains("--enable-basic-auth"),
        "unclear refusal:\n{log}"
    );

    // With basic auth from the environment, as the Dockerfile's comment says.
    let mut env_auth = env.clone();
    env_auth.push("SKYDECK_ENABLE_BASIC_AUTH=true".into());
    env_auth.push("SKYDECK_INITIAL_BASIC_AUTH=admin:secret".into());
    let mut server = Contained::start(
        &root,
        &user,
        &image.workdir,
        &env_auth,
        &argv,
        scratch.path().join("server.log"),
    );
    // `--deploy` listens on every address, and the start line says so
    // rather than naming loopback; its last word is the local URL.
    let line = server.wait_for_line("Skydeck API server listening on ");
    assert!(
        line.starts_with(&format!("every address (0.0.0.0:{})", image.expose)),
        "{line}"
    );
    let url = line.rsplit(' ').next().unwrap().to_owned();
    assert_eq!(url, format!("http://127.0.0.1:{}", image.expose));

    // tini is PID 1 as uid 1000, and the server its child, also uid 1000.
    let init = server.init_pid();
    let init_cmd = std::fs::read(format!("/proc/{init}/cmdline")).unwrap();
    assert!(
        text(&init_cmd).starts_with("tini\0--\0skydeck\0"),
        "{}",
        text(&init_cmd)
    );
    let ids = (format!("{uid} {uid}"), format!("{gid} {gid}"));
    assert_eq!(ids_of(init), ids);
    let servers = children_of(init);
    assert_eq!(servers.len(), 1, "tini should run one server: {servers:?}");
    assert_eq!(ids_of(servers[0]), ids);

    // The HEALTHCHECK, run the way Docker runs it: inside, as the user.
    let health = server.exec(
        Some((&root, &user)),
        &env,
        &image
            .healthcheck
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(
        health.status.success(),
        "the health check failed: {}{}\n{}",
        text(&health.stdout),
        text(&health.stderr),
        server.log()
    );
    // ...and it does fail when nothing answers.
    let mut elsewhere: Vec<&str> = image.healthcheck.iter().map(String::as_str).collect();
    elsewhere.extend(["--endpoint", "http://127.0.0.1:1"]);
    let health = server.exec(Some((&root, &user)), &env, &elsewhere);
    assert!(!health.status.success(), "healthy with no server to ask");

    // Auth is on: strangers get 401 off /api/health, the admin gets in.
    let (code, body) = http_inside(&server, &image.expose, "/api/health", None);
    assert_eq!(code, 200, "{body}");
    let (code, body) = http_inside(&server, &image.expose, "/users/me", None);
    assert_eq!(code, 401, "{body}");
    // base64("admin:secret")
    let (code, body) = http_inside(
        &server,
        &image.expose,
        "/users/me",
        Some("YWRtaW46c2VjcmV0"),
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("admin"), "{body}");
    // base64("admin:wrong")
    let (code, _) = http_inside(
        &server,
        &image.expose,
        "/users/me",
        Some("YWRtaW46d3Jvbmc="),
    );
    assert_eq!(code, 401);

    // SIGTERM to PID 1 (what `docker stop` sends): tini passes it on, the
    // server drains and exits 0, within the grace the image sets.
    let grace: u64 = image.env["SKYDECK_GRACE_PERIOD_SECONDS"].parse().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(init as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = server.wait(Duration::from_secs(grace));
    assert!(status.success(), "stopped with {status}:\n{}", server.log());

    // The state landed in SKYDECK_HOME, all of it the user's.
    let entries: Vec<String> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        entries.iter().any(|e| e.ends_with(".db")),
        "no database in {}: {entries:?}",
        state.display()
    );
    assert_owned_by(&state, uid, gid);
}

// ---------------------------------------------------------------------------
// Plain VM: the systemd unit.

/// `Key=value` settings of a unit file, by section; repeated keys keep
/// every value.
fn unit_settings(text: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut sections: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut current = None;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.to_owned());
            sections.entry(name.to_owned()).or_default();
            continue;
        }
        let section = current
            .clone()
            .unwrap_or_else(|| panic!("line {}: a setting outside a section", number + 1));
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not Key=value: {line}", number + 1));
        assert!(
            !line.ends_with('\\'),
            "line {}: keep settings on one line",
            number + 1
        );
        sections
            .get_mut(&section)
            .unwrap()
            .push((key.trim().to_owned(), value.trim().to_owned()));
    }
    sections
}

#[test]
fn systemd_unit_runs_the_deploy_server_as_its_own_user_and_verifies() {
    let unit = read("deploy/skydeck.service");
    let sections = unit_settings(&unit);
    let get = |section: &str, key: &str| -> Vec<String> {
        sections
            .get(section)
            .map(|s| {
                s.iter()
                    .filter(|(k, _)| k == key)
                    .map(|(_, v)| v.clone())
                    .collect()
            })
            .unwrap_or_default()
    };
    let one = |section: &str, key: &str| -> String {
        let values = get(section, key);
        assert_eq!(values.len(), 1, "[{section}] {key}: {values:?}");
        values[0].clone()
    };
    assert_eq!(
        one("Service", "ExecStart"),
        "/usr/local/bin/skydeck api start --deploy --foreground"
    );
    assert_eq!(one("Service", "User"), "skydeck");
    assert_eq!(one("Service", "Restart"), "on-failure");
    assert_eq!(one("Service", "EnvironmentFile"), "-/etc/skydeck/env");
    assert_eq!(one("Service", "StateDirectory"), "skydeck");
    assert_eq!(one("Service", "NoNewPrivileges"), "yes");
    assert_eq!(one("Service", "ProtectSystem"), "full");
    assert_eq!(one("Install", "WantedBy"), "multi-user.target");
    let env: BTreeMap<String, String> = get("Service", "Environment")
        .iter()
        .map(|e| {
            let (k, v) = e.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect();
    assert_eq!(env["SKYDECK_HOME"], "/var/lib/skydeck/.skydeck");
    // The drain fits in the time systemd waits before SIGKILL.
    let timeout = one("Service", "TimeoutStopSec");
    assert_eq!(
        timeout.trim_end_matches('s'),
        env["SKYDECK_GRACE_PERIOD_SECONDS"],
        "TimeoutStopSec and SKYDECK_GRACE_PERIOD_SECONDS differ"
    );
    // Jobs of the local infrastructure run inside this unit: nothing that
    // would hide GPUs or break them.
    for key in [
        "PrivateDevices",
        "MemoryDenyWriteExecute",
        "SystemCallFilter",
        "DynamicUser",
    ] {
        assert!(
            get("Service", key).is_empty(),
            "{key} would get in the way of jobs"
        );
    }

    let Some(analyze) = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
    else {
        assert!(
            !under_ci(),
            "CI needs systemd-analyze (scripts/image-test.sh installs systemd)"
        );
        eprintln!("skipping `systemd-analyze verify`: systemd is not installed");
        return;
    };
    // Verified with this build's binary in place of /usr/local/bin/skydeck
    // (verify checks that the program exists).
    let scratch = tempfile::tempdir().unwrap();
    let verify = |text: &str| {
        let path = scratch.path().join("skydeck.service");
        std::fs::write(&path, text).unwrap();
        run(Command::new(&analyze).arg("verify").arg(&path), DEADLINE)
    };
    let out = verify(&unit.replace("/usr/local/bin/skydeck", BINARY));
    let report = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success() && report.trim().is_empty(),
        "systemd-analyze verify deploy/skydeck.service:\n{report}"
    );
    // It notices mistakes (it only warns about some, hence the empty report).
    let out = verify(
        &unit
            .replace("/usr/local/bin/skydeck", BINARY)
            .replace("Restart=on-failure", "Restart=sometimes"),
    );
    assert!(
        !format!("{}{}", text(&out.stdout), text(&out.stderr))
            .trim()
            .is_empty(),
        "systemd-analyze let a bad Restart= through"
    );
}

// ---------------------------------------------------------------------------
// examples/api_server.yaml: a Skydeck server as a task on the local
// infrastructure of a test server.

fn cli(server: &TestServer, args: &[&str]) -> Output {
    run(
        Command::new(BINARY)
            .args(args)
            .current_dir(repo())
            .env("SKYDECK_HOME", &server.home)
            .env("SKYDECK_API_SERVER_ENDPOINT", &server.url)
            .env_remove("SKYDECK_SERVICE_ACCOUNT_TOKEN")
            .env("NO_PROXY", "127.0.0.1,localhost"),
        DEADLINE,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn api_server_example_serves_from_a_cluster_on_the_local_infrastructure() {
    let scratch = tempfile::tempdir().unwrap();
    // The binary on the nodes' PATH, as the example expects on local infra.
    let bin_dir = Path::new(BINARY).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let server = TestServer::start(
        &scratch.path().join("outer"),
        &[
            ("PATH", path.as_str()),
            // Settings the inner server must not inherit from the outer
            // (jobs on the local infrastructure get the server's
            // environment): its first admin, and metrics, which the inner
            // server would announce in its log.
            ("SKYDECK_INITIAL_BASIC_AUTH", "outer:outer-password"),
            ("SKYDECK_METRICS", "true"),
            ("SKYDECK_METRICS_PORT", "0"),
        ],
    );

    let launch = cli(
        &server,
        &[
            "launch",
            "-y",
            "-d",
            "-c",
            "inner",
            "examples/api_server.yaml",
            "--env",
            "SKYDECK_HOST=127.0.0.1",
            "--env",
            "SKYDECK_PORT=0",
            "--secret",
            "SKYDECK_INITIAL_BASIC_AUTH=admin:inner-secret",
        ],
    );
    assert!(
        launch.status.success(),
        "launch failed:\n{}{}",
        text(&launch.stdout),
        text(&launch.stderr)
    );

    // The inner server prints where it listens into the job's log.
    let started = Instant::now();
    let inner = loop {
        let logs = cli(&server, &["logs", "inner", "1", "--no-follow"]);
        let log = text(&logs.stdout);
        if let Some(url) = log.lines().find_map(|l| {
            l.split_once("Skydeck API server listening on ")
                .and_then(|(_, rest)| rest.split_whitespace().last())
                .map(str::to_owned)
        }) {
            assert!(
                !log.contains("Skydeck metrics at"),
                "the inner server inherited the outer one's settings:\n{log}"
            );
            break url;
        }
        let status = cli(&server, &["logs", "inner", "1", "--status"]);
        let status = text(&status.stdout);
        assert!(
            !status.contains("FAILED"),
            "the job failed ({status}):\n{log}{}",
            text(&logs.stderr)
        );
        assert!(
            started.elapsed() < DEADLINE,
            "the inner server never listened; job log:\n{log}\nserver log:\n{}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(inner.starts_with("http://127.0.0.1:"), "{inner}");
    assert_ne!(inner, server.url);

    let http = skydeck_client::http_client().unwrap();
    let health = http
        .get(format!("{inner}/api/health"))
        .send()
        .await
        .expect("the inner server answers");
    assert_eq!(health.status().as_u16(), 200);
    let health: serde_json::Value = health.json().await.unwrap();
    assert_eq!(health["status"], "healthy", "{health}");
    // Its own auth: the secret's admin, not the outer server's.
    let me = |user: &'static str, password: &'static str| {
        let http = http.clone();
        let url = format!("{inner}/users/me");
        async move {
            http.get(url)
                .basic_auth(user, Some(password))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(me("admin", "inner-secret").await, 200);
    assert_eq!(me("outer", "outer-password").await, 401);
    let stranger = http.get(format!("{inner}/users/me")).send().await.unwrap();
    assert_eq!(stranger.status().as_u16(), 401);
    // Its own state directory, inside the node.
    let node_state = server.home.join("clusters/inner/nodes/0/.skydeck");
    assert!(
        node_state.join("server.json").is_file(),
        "no inner state in {}",
        node_state.display()
    );

    let down = cli(&server, &["down", "-y", "inner"]);
    assert!(
        down.status.success(),
        "down failed:\n{}{}",
        text(&down.stdout),
        text(&down.stderr)
    );
    // Tearing the cluster down stops the inner server.
    let started = Instant::now();
    while http
        .get(format!("{inner}/api/health"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .is_ok()
    {
        assert!(
            started.elapsed() < DEADLINE,
            "the inner server outlived its cluster"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
