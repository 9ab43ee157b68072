//! Records the git commit the server was built from, for `/api/health`.
use std::process::Command;

fn main() {
    // Set by builds without a checkout (the container image passes its
    // revision); otherwise asked of git.
    let given = std::env::var("SKYDECK_COMMIT")
        .ok()
        .filter(|c| !c.is_empty() && c != "unknown");
    let commit = given.unwrap_or_else(git_commit);
    println!("cargo:rustc-env=SKYDECK_COMMIT={commit}");
    println!("cargo:rerun-if-env-changed=SKYDECK_COMMIT");
    // Asked of git rather than assumed to be ../../.git: in a worktree `.git`
    // is a file and HEAD and the branch refs live elsewhere, and a commit
    // there must still change the recorded commit.
    for path in git_paths(&["HEAD", "refs/heads", "packed-refs"]) {
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}

fn git_paths(names: &[&str]) -> Vec<String> {
    let mut args = vec!["rev-parse", "--path-format=absolute"];
    for name in names {
        args.extend(["--git-path", name]);
    }
    Command::new("git")
        .args(&args)
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn git_commit() -> String {
    Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}
