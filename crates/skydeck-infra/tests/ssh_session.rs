//! Sessions (`CommandRunner::session`) on this machine and over SSH (real
//! sshd hosts from scripts/ssh-hosts-up.sh; skipped without them): input,
//! output and exit codes relayed; a terminal session runs a shell; a
//! session whose reader leaves kills its program.

mod support;

use skydeck_infra::session::{Session, SessionInput, SessionOutput, SessionSpec, TtySize};
use skydeck_infra::ssh::{SshHost, SshPool, SshPoolOptions, SshTarget};
use skydeck_infra::{CommandRunner, LocalRunner};
use std::time::{Duration, Instant};
use support::ssh_hosts::test_hosts;

const DEADLINE: Duration = Duration::from_secs(30);

fn spec(words: &[&str], tty: Option<TtySize>) -> SessionSpec {
    SessionSpec {
        argv: words.iter().map(|w| (*w).to_owned()).collect(),
        tty,
        term: None,
        sandbox: None,
        env: vec![("SKYPILOT_NODE_RANK".to_owned(), "0".to_owned())],
    }
}

/// Feeds `input`, then collects stdout, stderr and the exit code.
async fn finish(mut session: Session, input: Vec<SessionInput>) -> (Vec<u8>, Vec<u8>, i32) {
    for message in input {
        session.input.send(message).await.unwrap();
    }
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let collect = async {
        while let Some(output) = session.output.recv().await {
            match output {
                SessionOutput::Stdout(data) => out.extend(data),
                SessionOutput::Stderr(data) => err.extend(data),
            }
        }
        session.exit.await.unwrap().unwrap()
    };
    let code = tokio::time::timeout(DEADLINE, collect)
        .await
        .expect("the session ends");
    (out, err, code)
}

async fn pipes_relay_everything(runner: &dyn CommandRunner) {
    let session = runner
        .session(spec(
            &[
                "sh",
                "-c",
                "cat; echo rank=$SKYPILOT_NODE_RANK; echo oops >&2; exit 3",
            ],
            None,
        ))
        .await
        .unwrap();
    let input = vec![SessionInput::Data(b"hi\n".to_vec()), SessionInput::Eof];
    let (out, err, code) = finish(session, input).await;
    assert_eq!(
        (String::from_utf8_lossy(&out).as_ref(), err.as_slice(), code),
        ("hi\nrank=0\n", &b"oops\n"[..], 3)
    );
}

async fn a_terminal_runs_a_shell(runner: &dyn CommandRunner) {
    let size = TtySize { cols: 91, rows: 17 };
    let session = runner.session(spec(&["sh"], Some(size))).await.unwrap();
    let input = vec![
        SessionInput::Resize(TtySize { cols: 93, rows: 19 }),
        SessionInput::Data(b"echo $((6*7)); stty size; exit 5\n".to_vec()),
    ];
    let (out, _, code) = finish(session, input).await;
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("42"), "{out}");
    assert!(
        out.contains("19 93"),
        "the resize reached the terminal: {out}"
    );
    assert_eq!(code, 5);
}

async fn a_reader_that_leaves_kills_the_program(
    runner: &dyn CommandRunner,
    tty: Option<TtySize>,
    running: impl AsyncFn(&str) -> bool,
) {
    let nap = format!(
        "{}",
        7000 + std::process::id() % 1000 + u32::from(tty.is_some())
    );
    let session = runner.session(spec(&["sleep", &nap], tty)).await.unwrap();
    let start = Instant::now();
    while !running(&nap).await {
        assert!(start.elapsed() < DEADLINE, "sleep {nap} starts");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(session);
    while running(&nap).await {
        assert!(start.elapsed() < DEADLINE, "sleep {nap} is killed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn local() -> LocalRunner {
    LocalRunner {
        dir: std::env::temp_dir(),
    }
}

async fn running_here(nap: &str) -> bool {
    let wanted = format!("sleep\0{nap}\0");
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        std::fs::read(entry.path().join("cmdline")).is_ok_and(|c| c == wanted.as_bytes())
    })
}

#[tokio::test]
async fn local_sessions() {
    let runner = local();
    pipes_relay_everything(&runner).await;
    a_terminal_runs_a_shell(&runner).await;
    a_reader_that_leaves_kills_the_program(&runner, None, running_here).await;
    let tty = Some(TtySize { cols: 80, rows: 24 });
    a_reader_that_leaves_kills_the_program(&runner, tty, running_here).await;
}

#[tokio::test]
async fn ssh_sessions() {
    let Some(hosts) = test_hosts() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pool = SshPool::open(
        &dir.path().join("pool"),
        SshPoolOptions {
            user_config: Some(hosts.ssh_config.clone()),
            connect_timeout: Duration::from_secs(5),
            ..SshPoolOptions::default()
        },
    )
    .unwrap();
    let runner = pool
        .connect(&SshTarget::new(SshHost::parse("h2").unwrap()))
        .await
        .unwrap();
    pipes_relay_everything(&runner).await;
    a_terminal_runs_a_shell(&runner).await;
    let running_there = async |nap: &str| {
        runner
            .run(
                &[
                    "pgrep".to_owned(),
                    "-f".to_owned(),
                    format!("^sleep {nap}$"),
                ],
                None,
            )
            .await
            .unwrap()
            .success()
    };
    a_reader_that_leaves_kills_the_program(&runner, None, running_there).await;
    let tty = Some(TtySize { cols: 80, rows: 24 });
    a_reader_that_leaves_kills_the_program(&runner, tty, running_there).await;
}
