//! `skydeck launch` and `skydeck exec` read and check the task before they
//! reach a server: a broken task YAML prints its mistakes and starts
//! nothing, not even the local API server the CLI would otherwise start.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use support::BINARY;

/// Runs the CLI on a state directory where nothing names a server, so a
/// command that reached for one would start the local default.
fn skydeck(home: &Path, cwd: &Path, args: &[&str]) -> Output {
    Command::new(BINARY)
        .args(args)
        .current_dir(cwd)
        .env("SKYDECK_HOME", home)
        .env_remove("SKYDECK_API_SERVER_ENDPOINT")
        .env_remove("SKYDECK_SERVICE_ACCOUNT_TOKEN")
        .output()
        .expect("skydeck ran")
}

/// Stops a server the command should not have started, so a failing run
/// leaves nothing behind; true when there was one.
fn stop_stray_server(home: &Path, cwd: &Path) -> bool {
    if !home.join("server.json").exists() {
        return false;
    }
    skydeck(home, cwd, &["api", "stop"]);
    true
}

#[test]
fn a_broken_task_yaml_is_reported_before_any_server_is_started() {
    let scratch = tempfile::tempdir().unwrap();
    let home = scratch.path().join("home");
    let cwd = scratch.path();
    std::fs::write(
        cwd.join("broken.yaml"),
        "name: t\nrunn: echo hi\nresources:\n  cpus: many\n",
    )
    .unwrap();

    for command in [
        &["launch", "-y", "-c", "t", "broken.yaml"][..],
        &["exec", "t", "broken.yaml"][..],
    ] {
        let output = skydeck(&home, cwd, command);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let started = stop_stray_server(&home, cwd);
        assert!(
            !started && !stderr.contains("Starting a local"),
            "`skydeck {}` started a server for a broken task:\n{stderr}",
            command.join(" ")
        );
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        let runn = stderr.find("unknown field \"runn\"");
        let cpus = stderr.find("many");
        assert!(
            runn.is_some() && cpus.is_some() && runn < cpus,
            "both mistakes, in file order:\n{stderr}"
        );
        assert!(stderr.contains("broken.yaml"), "{stderr}");
    }
}
