//! `skydeck ssh CLUSTER [-- CMD]` against the real binary on local infra:
//! a command runs in the head node's home with its stdin, stdout, stderr
//! and exit code relayed; a user who does not own the cluster is refused
//! and nothing runs, an admin may; a client that goes away leaves nothing
//! running; a login shell works through a terminal.

mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::TestServer;

const DEADLINE: Duration = Duration::from_secs(60);

fn skydeck(home: &Path, endpoint: &str) -> Command {
    let mut command = Command::new(support::BINARY);
    command
        .env("SKYDECK_HOME", home)
        .env("SKYDECK_API_SERVER_ENDPOINT", endpoint)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env_remove("SKYDECK_SERVICE_ACCOUNT_TOKEN");
    command
}

fn run(home: &Path, endpoint: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = skydeck(home, endpoint)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn launch(home: &Path, endpoint: &str, cluster: &str) {
    let out = run(
        home,
        endpoint,
        &["launch", "-c", cluster, "-y", "--", "echo", "up"],
        None,
    );
    assert!(out.status.success(), "launch: {}", text(&out.stderr));
}

/// The PIDs whose command line is exactly `argv`.
fn processes(argv: &[&str]) -> Vec<u32> {
    let wanted = argv.join("\0") + "\0";
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted.as_bytes())
        })
        .collect()
}

fn poll(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < DEADLINE, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn commands_run_on_the_head_node_with_their_io_and_exit_code() {
    let scratch = tempfile::tempdir().unwrap();
    let server = TestServer::start(&scratch.path().join("server"), &[]);
    let client = scratch.path().join("client");
    std::fs::create_dir_all(&client).unwrap();
    let url = server.url.clone();
    launch(&client, &url, "c");

    let out = run(
        &client,
        &url,
        &[
            "ssh",
            "c",
            "--",
            "sh",
            "-c",
            "echo $HOME; pwd; echo oops >&2; exit 3",
        ],
        None,
    );
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(out.status.code(), Some(3), "{stdout} {}", text(&out.stderr));
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0], lines[1], "starts in its home");
    assert!(lines[0].ends_with("/clusters/c/nodes/0"), "{stdout}");
    assert_eq!(text(&out.stderr), "oops\n");

    let out = run(&client, &url, &["ssh", "c", "--", "cat"], Some("hi\nthere"));
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(0), "hi\nthere".to_owned())
    );

    // A program that prints much while it reads no input is not held up by
    // the input waiting for it, nor its input by its output.
    let piped = Command::new("sh")
        .args([
            "-c",
            r#"head -c 100000000 /dev/zero | "$0" ssh c -- sh -c 'head -c 20000000 /dev/zero; wc -c' | wc -c"#,
            support::BINARY,
        ])
        .env("SKYDECK_HOME", &client)
        .env("SKYDECK_API_SERVER_ENDPOINT", &url)
        .output()
        .unwrap();
    assert_eq!(
        text(&piped.stdout).trim(),
        "20000010",
        "{}",
        text(&piped.stderr)
    );

    // A client that goes away leaves nothing running.
    let marker = format!("1000.{}", std::process::id());
    let mut held = skydeck(&client, &url)
        .args(["ssh", "c", "--", "sleep", &marker])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    poll("the command starts", || {
        !processes(&["sleep", &marker]).is_empty()
    });
    held.kill().unwrap();
    held.wait().unwrap();
    poll("the command is killed once its client is gone", || {
        processes(&["sleep", &marker]).is_empty()
    });
    // Told to stop, the client ends the session (and restores a terminal
    // it put in raw mode) and exits as a signalled command would.
    let mut held = skydeck(&client, &url)
        .args(["ssh", "c", "--", "sleep", &marker])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    poll("the command starts", || {
        !processes(&["sleep", &marker]).is_empty()
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(held.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(held.wait().unwrap().code(), Some(128 + 15));
    poll("the command is killed once its client stopped", || {
        processes(&["sleep", &marker]).is_empty()
    });

    // A stopped cluster says so; an unknown one is not found.
    let out = run(&client, &url, &["ssh", "nope", "--", "true"], None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("does not exist"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_login_shell_runs_on_a_terminal() {
    let scratch = tempfile::tempdir().unwrap();
    let server = TestServer::start(&scratch.path().join("server"), &[]);
    let client = scratch.path().join("client");
    std::fs::create_dir_all(&client).unwrap();
    launch(&client, &server.url, "t");
    // `script` gives the CLI a terminal of its own.
    let mut shell = Command::new("script")
        .args(["-qec", &format!("{} ssh t", support::BINARY), "/dev/null"])
        .env("SKYDECK_HOME", &client)
        .env("SKYDECK_API_SERVER_ENDPOINT", &server.url)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("SHELL", "/bin/sh")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = shell.stdin.take().unwrap();
    stdin.write_all(b"echo $((6*7)) $TERM; exit\n").unwrap();
    let mut stdout = shell.stdout.take().unwrap();
    let reading = std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = stdout.read_to_end(&mut all);
        all
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = shell.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < DEADLINE, "the shell did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(stdin);
    let out = text(&reading.join().unwrap());
    assert!(status.success(), "{out}");
    assert!(out.contains("42"), "{out}");
}

const ADMIN_PASSWORD: &str = "Adm1n-Ssh-Session-7";

#[tokio::test]
async fn only_the_owner_or_an_admin_may_open_a_session() {
    use skydeck_client::admin::{NewUser, Role};
    let scratch = tempfile::tempdir().unwrap();
    let server = TestServer::start(
        &scratch.path().join("server"),
        &[
            ("SKYDECK_ENABLE_BASIC_AUTH", "true"),
            (
                "SKYDECK_INITIAL_BASIC_AUTH",
                &format!("admin:{ADMIN_PASSWORD}"),
            ),
        ],
    );
    let as_user = |user: &str, password: &str| {
        server
            .url
            .replace("http://", &format!("http://{user}:{password}@"))
    };
    let admin_url = as_user("admin", ADMIN_PASSWORD);
    let admin = skydeck_client::Client::new(&admin_url, None).unwrap();
    for name in ["alice", "bob"] {
        admin
            .create_user(&NewUser {
                name: name.to_owned(),
                password: Some(format!("{name}-pw-1234")),
                role: Some(Role::User),
            })
            .await
            .unwrap();
    }
    let (alice, bob) = (
        as_user("alice", "alice-pw-1234"),
        as_user("bob", "bob-pw-1234"),
    );
    let home = scratch.path().join("client");
    std::fs::create_dir_all(&home).unwrap();
    launch(&home, &alice, "mine");

    let marker = scratch.path().join("bob-was-here");
    let out = run(
        &home,
        &bob,
        &["ssh", "mine", "--", "touch", marker.to_str().unwrap()],
        None,
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("belongs to another user"), "{stderr}");
    assert!(!marker.exists(), "nothing ran for another user");
    // The refusals are plain HTTP answers, before anything runs.
    let touch = ["touch".to_owned(), marker.display().to_string()];
    let as_bob = skydeck_client::Client::new(&bob, None).unwrap();
    for (cluster, status) in [("mine", 403), ("nothing-here", 404)] {
        match as_bob.open_session(cluster, &touch, None).await {
            Err(skydeck_client::ClientError::Http { status: got, .. }) => {
                assert_eq!(got, status, "{cluster}")
            }
            other => panic!("{cluster}: {:?}", other.map(|_| "a session")),
        }
    }
    assert!(!marker.exists(), "nothing ran for another user");

    for (who, endpoint) in [("the owner", &alice), ("an admin", &admin_url)] {
        let out = run(&home, endpoint, &["ssh", "mine", "--", "echo", "in"], None);
        assert_eq!(text(&out.stdout), "in\n", "{who}: {}", text(&out.stderr));
    }
}
