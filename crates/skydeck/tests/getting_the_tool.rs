//! What a new user installs alongside the binary: shell completions, man
//! pages and a `--version` that names the build. None of them may need (or
//! start) a server.

use std::path::Path;
use std::process::{Command, Output};

const BINARY: &str = env!("CARGO_BIN_EXE_skydeck");

/// Runs `skydeck ARGS` with a fresh home, and checks it left that home empty:
/// these commands must work before anything is set up.
fn skydeck(args: &[&str]) -> String {
    let home = tempfile::tempdir().unwrap();
    let output = Command::new(BINARY)
        .args(args)
        .env("SKYDECK_HOME", home.path())
        .env_remove("SKYDECK_API_SERVER_ENDPOINT")
        .output()
        .unwrap();
    assert_succeeded(args, &output);
    let left: Vec<_> = std::fs::read_dir(home.path()).unwrap().collect();
    assert!(
        left.is_empty(),
        "skydeck {args:?} wrote into its home: {left:?}"
    );
    String::from_utf8(output.stdout).unwrap()
}

fn assert_succeeded(args: &[&str], output: &Output) {
    assert!(
        output.status.success(),
        "skydeck {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn completion_scripts_cover_the_subcommands_for_each_shell() {
    let bash = skydeck(&["completion", "bash"]);
    assert!(bash.contains("complete -F _skydeck"), "{bash}");
    for subcommand in ["launch", "status", "completion", "api"] {
        assert!(
            bash.contains(subcommand),
            "bash completion lacks {subcommand}"
        );
    }
    // Nested subcommands and their flags are completed too.
    assert!(
        bash.contains("skydeck__subcmd__api__subcmd__start"),
        "{bash}"
    );
    assert!(
        bash.contains("--retry-until-up"),
        "launch's flags are completed"
    );

    let zsh = skydeck(&["completion", "zsh"]);
    assert!(zsh.starts_with("#compdef skydeck"), "{zsh}");
    assert!(zsh.contains("launch"));

    let fish = skydeck(&["completion", "fish"]);
    assert!(fish.contains("complete -c skydeck"), "{fish}");
    assert!(fish.contains("-a \"launch\""), "{fish}");
}

#[test]
fn completion_rejects_an_unknown_shell_and_names_the_known_ones() {
    let output = Command::new(BINARY)
        .args(["completion", "tcsh"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bash") && stderr.contains("zsh") && stderr.contains("fish"),
        "{stderr}"
    );
}

#[test]
fn the_man_page_is_roff_naming_every_subcommand() {
    let page = skydeck(&["man"]);
    assert!(
        page.contains(".TH skydeck 1"),
        "a section-1 page for skydeck: {page}"
    );
    assert!(page.contains(".SH SUBCOMMANDS"), "{page}");
    for subcommand in [
        "launch",
        "exec",
        "status",
        "queue",
        "logs",
        "down",
        "completion",
        "man",
    ] {
        assert!(
            page.contains(&format!("skydeck\\-{subcommand}(1)")),
            "the page names {subcommand}: {page}"
        );
    }
}

#[test]
fn man_dir_writes_one_page_per_command() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("man1");
    skydeck(&["man", "--dir", dir.to_str().unwrap()]);
    for page in [
        "skydeck.1",
        "skydeck-launch.1",
        "skydeck-api.1",
        "skydeck-api-start.1",
    ] {
        let text = std::fs::read_to_string(dir.join(page))
            .unwrap_or_else(|err| panic!("{page} was not written: {err}"));
        assert!(text.contains(".TH "), "{page} is roff");
    }
    let launch = std::fs::read_to_string(dir.join("skydeck-launch.1")).unwrap();
    assert!(
        launch.contains("retry\\-until\\-up"),
        "launch's page documents its flags"
    );
}

fn git_head(repo: &Path) -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(repo)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
fn version_names_the_release_and_the_commit() {
    let line = skydeck(&["--version"]);
    let expected_prefix = format!("skydeck {} (commit ", env!("CARGO_PKG_VERSION"));
    let commit = line
        .trim_end()
        .strip_prefix(&expected_prefix)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("unexpected --version output: {line:?}"));
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "the commit is a short hash or `unknown`: {commit:?}"
    );
    // Built from this checkout (not from an image build that passed
    // SKYDECK_COMMIT): it is the checkout's HEAD, not a stale one.
    let from_checkout = std::env::var_os("SKYDECK_COMMIT").is_none();
    if let Some(head) = git_head(Path::new(env!("CARGO_MANIFEST_DIR"))).filter(|_| from_checkout) {
        assert_eq!(commit, head, "--version names the commit HEAD is at");
    }
}

/// What bash offers for `skydeck WORDS…<TAB>`, by running the generated
/// completion function the way bash's completion machinery calls it.
fn bash_completes(words: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("skydeck.bash");
    std::fs::write(&script, skydeck(&["completion", "bash"])).unwrap();
    let current = words.last().unwrap();
    let previous = words[words.len() - 2];
    let driver = format!(
        "source {script:?}; COMP_WORDS=({words}); COMP_CWORD={cword}; \
         _skydeck skydeck {current:?} {previous:?}; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        words = words
            .iter()
            .map(|w| format!("{w:?}"))
            .collect::<Vec<_>>()
            .join(" "),
        cword = words.len() - 1,
    );
    let output = Command::new("bash").args(["-c", &driver]).output().unwrap();
    assert_succeeded(&["(bash completion)"], &output);
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completes_subcommands_and_their_flags() {
    assert_eq!(bash_completes(&["skydeck", "lau"]), ["launch"]);
    assert_eq!(
        bash_completes(&["skydeck", "launch", "--retry"]),
        ["--retry-until-up"]
    );
}
