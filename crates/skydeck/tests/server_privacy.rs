//! `local` jobs run as the server's own user. What the server holds (its
//! environment with the database URL, its memory, its open files) must
//! still be out of their reach: the server is not dumpable, so another
//! process of the same user cannot read its /proc files.

mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

/// The user the test runs the server and the "job" as.
const UID: u32 = 65534;

fn as_test_user(program: &Path) -> Command {
    let mut command = Command::new("setpriv");
    command
        .arg(format!("--reuid={UID}"))
        .arg(format!("--regid={UID}"))
        .arg("--clear-groups")
        .arg("--")
        .arg(program);
    command
}

#[test]
fn a_process_of_the_servers_user_cannot_read_the_servers_environment() {
    // /proc/self belongs to this process's effective user.
    let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
    if !root {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run this as root (it switches to uid {UID})"
        );
        eprintln!("not root: skipping (the test runs the server as uid {UID})");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // The build directory is under root's home, which uid 65534 cannot enter.
    let binary = dir.path().join("skydeck");
    std::fs::copy(support::BINARY, &binary).unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(UID), Some(UID)).unwrap();

    let mut server = as_test_user(&binary)
        .args(["api", "start", "--foreground", "--host", "127.0.0.1"])
        .args(["--port", "0"])
        .env("SKYDECK_HOME", &home)
        .env("HOME", &home)
        .env_remove("SKYDECK_DB_CONNECTION_URI")
        .env("SKYDECK_TEST_PRIVATE_MARKER", "not-for-jobs")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = server.stdout.take().unwrap();
    let listening = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.starts_with("Skydeck API server listening on "));
    assert!(listening, "the server exited before listening");

    let read_environ = |pid: u32| {
        as_test_user(Path::new("/bin/cat"))
            .arg(format!("/proc/{pid}/environ"))
            .output()
            .unwrap()
    };
    // A process of that user that is dumpable: its environment is readable,
    // so a refusal below is the server's doing.
    let mut plain = as_test_user(Path::new("/bin/sleep"))
        .arg("60")
        .env("SKYDECK_TEST_PRIVATE_MARKER", "readable")
        .spawn()
        .unwrap();
    // setpriv switches user and then execs sleep; until then the process
    // is root's and its environment unreadable for the wrong reason.
    wait_for_exec(plain.id(), "sleep");
    let control = read_environ(plain.id());
    plain.kill().unwrap();
    plain.wait().unwrap();
    assert!(control.status.success(), "{control:?}");
    assert!(String::from_utf8_lossy(&control.stdout).contains("readable"));

    let attempt = read_environ(server.id());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    server.wait().unwrap();
    assert!(!attempt.status.success(), "{attempt:?}");
    assert!(!String::from_utf8_lossy(&attempt.stdout).contains("not-for-jobs"));
    assert!(
        String::from_utf8_lossy(&attempt.stderr).contains("Permission denied"),
        "{attempt:?}"
    );
}

/// Polls until process `pid` runs `comm` (it has exec'd), within a deadline.
fn wait_for_exec(pid: u32, comm: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map_or(true, |running| running.trim() != comm)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "process {pid} never became {comm}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
