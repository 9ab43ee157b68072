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
    for head in ["../../.git/HEAD", "../../.git/refs/heads"] {
        if std::path::Path::new(head).exists() {
            println!("cargo:rerun-if-changed={head}");
        }
    }
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
