//! The native cluster and job verbs (`launch`, `exec`, `queue`, `logs`,
//! `cancel`, `status`, `stop`, `start`, `down`, `autostop`) run as the
//! real `skydeck` binary against a real server on local infrastructure.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::TestServer;
use tokio::io::{AsyncBufReadExt, BufReader};

/// How long one CLI command may run before the test gives up on it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a job may take to reach a state the test waits for.
const STATE_TIMEOUT: Duration = Duration::from_secs(30);

/// The CLI pointed at one server, run from a scratch directory.
struct Cli {
    server: TestServer,
    cwd: PathBuf,
}

/// What one command did.
struct Outcome {
    command: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn describe(&self) -> String {
        format!(
            "`skydeck {}` exited with {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }

    /// Asserts success and that stdout has every `needle`.
    fn expect_stdout(&self, needles: &[&str]) -> &Self {
        self.expect_code(0).stdout_has(needles)
    }

    fn stdout_has(&self, needles: &[&str]) -> &Self {
        for needle in needles {
            assert!(
                self.stdout.contains(needle),
                "missing {needle:?} in stdout of {}",
                self.describe()
            );
        }
        self
    }

    fn expect_stderr(&self, needles: &[&str]) -> &Self {
        for needle in needles {
            assert!(
                self.stderr.contains(needle),
                "missing {needle:?} in stderr of {}",
                self.describe()
            );
        }
        self
    }

    fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "{}", self.describe());
        self
    }
}

impl Cli {
    fn start(scratch: &Path) -> Self {
        let server = TestServer::start(&scratch.join("home"), &[]);
        let cwd = scratch.join("work");
        std::fs::create_dir_all(&cwd).unwrap();
        Self { server, cwd }
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(support::BINARY);
        command
            .args(args)
            .current_dir(&self.cwd)
            .env("SKYDECK_HOME", &self.server.home)
            .env("SKYDECK_API_SERVER_ENDPOINT", &self.server.url)
            .env_remove("SKYDECK_SERVICE_ACCOUNT_TOKEN")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    async fn run(&self, args: &[&str]) -> Outcome {
        self.run_with_env(args, &[]).await
    }

    async fn run_with_env(&self, args: &[&str], envs: &[(&str, &str)]) -> Outcome {
        let mut command = self.command(args);
        command.envs(envs.iter().copied());
        let child = command.spawn().expect("cannot start skydeck");
        let output = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("`skydeck {}` ran too long", args.join(" ")))
            .expect("skydeck ran");
        Outcome {
            command: args.join(" "),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs `args` until `ready` accepts its outcome, or fails at the
    /// deadline: jobs move through states on their own.
    async fn poll(&self, args: &[&str], ready: impl Fn(&Outcome) -> bool) -> Outcome {
        let deadline = Instant::now() + STATE_TIMEOUT;
        loop {
            let outcome = self.run(args).await;
            if ready(&outcome) {
                return outcome;
            }
            assert!(
                Instant::now() < deadline,
                "gave up waiting; last: {}\n--- server log ---\n{}",
                outcome.describe(),
                self.server.stderr()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The row of job `id` in `skydeck queue CLUSTER`.
    async fn job_row(&self, cluster: &str, id: u64) -> String {
        let queue = self.run(&["queue", cluster]).await;
        queue.expect_stdout(&[]);
        row(&queue.stdout, &id.to_string())
    }
}

/// The table row whose first cell is `first`.
fn row(table: &str, first: &str) -> String {
    table
        .lines()
        .find(|line| line.split_whitespace().next() == Some(first))
        .unwrap_or_default()
        .to_owned()
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn launch_uploads_the_workdir_streams_stages_and_output_then_exec_and_logs_reuse_it() {
    let scratch = tempfile::tempdir().unwrap();
    let cli = Cli::start(scratch.path());
    let project = cli.cwd.join("proj");
    std::fs::create_dir_all(&project).unwrap();
    write(&project.join("data.txt"), "payload-from-the-workdir\n");
    write(&project.join(".skyignore"), "secret.txt\n");
    write(&project.join("secret.txt"), "stays home\n");
    write(&cli.cwd.join("extra.txt"), "payload-from-a-file-mount\n");
    // Relative paths: resolved against the directory the CLI runs in.
    write(
        &cli.cwd.join("task.yaml"),
        "name: hello\nworkdir: proj\nfile_mounts:\n  ~/mounted/extra.txt: extra.txt\n\
         setup: echo setup-ran\nrun: |\n  cat data.txt ~/mounted/extra.txt\n  \
         echo \"greeting=$GREETING from=$FROM_SHELL\"\n  ls secret.txt 2>/dev/null || echo no-secret-file\n",
    );

    let launch = cli
        .run_with_env(
            &[
                "launch",
                "-c",
                "c1",
                "-y",
                "task.yaml",
                "--env",
                "GREETING=hello",
                "--env",
                "FROM_SHELL",
            ],
            &[("FROM_SHELL", "the-shell")],
        )
        .await;
    launch
        .expect_stdout(&[
            "setup-ran",
            "payload-from-the-workdir",
            "payload-from-a-file-mount",
            "greeting=hello from=the-shell",
            "no-secret-file",
        ])
        .expect_stderr(&[
            "Uploading files to the API server",
            "Files uploaded",
            "Provisioning",
            "Cluster c1 is UP",
            "Syncing the workdir",
            "Job submitted, ID: 1",
            "Job 1 SUCCEEDED",
            "skydeck logs c1 1",
        ]);
    assert!(
        !launch.stdout.contains("Provisioning"),
        "stages belong on stderr: {}",
        launch.describe()
    );

    cli.run(&["exec", "c1", "--", "echo", "exec-says-hi"])
        .await
        .expect_stdout(&["exec-says-hi"])
        .expect_stderr(&["Job submitted, ID: 2"]);

    // A failing job fails the command with SkyPilot's exit code.
    cli.run(&["exec", "c1", "--", "printf 'a\\nb\\nlast-line\\n'; exit 3"])
        .await
        .expect_code(100)
        .expect_stderr(&["Job 3 FAILED"]);

    cli.run(&["logs", "c1", "1", "--no-follow"])
        .await
        .expect_stdout(&["payload-from-the-workdir"]);
    // The log's last two lines: the job's last, then why it failed.
    let tail = cli.run(&["logs", "c1", "3", "--tail", "2"]).await;
    tail.expect_code(100).stdout_has(&["last-line", "failed"]);
    assert!(
        !tail.stdout.lines().any(|l| l == "b"),
        "{}",
        tail.describe()
    );

    cli.run(&["logs", "c1", "1", "--status"])
        .await
        .expect_stdout(&["Job 1: SUCCEEDED"]);
    cli.run(&["logs", "c1", "3", "--status"])
        .await
        .expect_code(100)
        .stdout_has(&["Job 3: FAILED"]);

    let synced = cli.run(&["logs", "c1", "1", "2", "--sync-down"]).await;
    synced.expect_stdout(&["Job 1 logs: skydeck_logs/c1/job-1/run.log"]);
    let saved = std::fs::read_to_string(cli.cwd.join("skydeck_logs/c1/job-2/run.log")).unwrap();
    assert!(saved.contains("exec-says-hi"), "{saved}");

    let status = cli.run(&["status"]).await;
    status.expect_stdout(&[]);
    let header: Vec<&str> = status
        .stdout
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "INFRA",
            "RESOURCES",
            "STATUS",
            "AUTOSTOP",
            "LAUNCHED"
        ]
    );
    let c1 = row(&status.stdout, "c1");
    for cell in ["Local", "1x(cpus=", "UP", "-", "ago"] {
        assert!(c1.contains(cell), "{cell:?} not in {c1:?}");
    }
    cli.run(&["status", "-v"])
        .await
        .expect_stdout(&["HEAD_IP", "COMMAND", "127.0.0.1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn detached_jobs_queue_cancel_detach_and_the_cluster_lifecycle() {
    let scratch = tempfile::tempdir().unwrap();
    let cli = Cli::start(scratch.path());

    cli.run(&[
        "launch", "-c", "c2", "-y", "-d", "--ports", "18099", "--", "sleep", "600",
    ])
    .await
    .expect_stdout(&[])
    .expect_stderr(&["Job submitted, ID: 1", "skydeck logs c2 1"]);
    // Ports are only recorded on local infrastructure: nothing binds them.
    cli.run(&["endpoints", "c2"])
        .await
        .expect_stdout(&["18099: 127.0.0.1:18099"]);
    cli.run(&["endpoints", "c2", "1234"])
        .await
        .expect_code(1)
        .expect_stderr(&["Port 1234 is not exposed"]);
    cli.poll(&["queue", "c2"], |q| {
        row(&q.stdout, "1").contains("RUNNING")
    })
    .await;
    cli.run(&["logs", "c2", "1", "--status"])
        .await
        .expect_code(101)
        .stdout_has(&["Job 1: RUNNING"]);

    cli.run(&["cancel", "c2", "1", "-y"])
        .await
        .expect_stdout(&["Cancelled job(s) 1 on cluster c2."]);
    cli.poll(&["queue", "c2"], |q| {
        row(&q.stdout, "1").contains("CANCELLED")
    })
    .await;
    cli.run(&["logs", "c2", "1", "--status"])
        .await
        .expect_code(103);
    let finished_hidden = cli.run(&["queue", "c2", "--skip-finished"]).await;
    assert!(
        row(&finished_hidden.stdout, "1").is_empty(),
        "{}",
        finished_hidden.describe()
    );

    // Ctrl-C while following detaches: the job keeps running.
    let mut follow = cli.command(&["exec", "c2", "--", "echo started; sleep 600"]);
    let mut child = follow.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = tokio::time::timeout(COMMAND_TIMEOUT, async {
        while let Some(line) = stdout.next_line().await.unwrap() {
            if line == "started" {
                return;
            }
        }
        panic!("the job's output ended before it started");
    });
    started.await.expect("the job started");
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let detached = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&detached.stderr);
    assert_eq!(detached.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("Job 2 keeps running. Follow it with: skydeck logs c2 2"),
        "{stderr}"
    );
    assert!(cli.job_row("c2", 2).await.contains("RUNNING"));
    cli.run(&["cancel", "c2", "-a", "-y"])
        .await
        .expect_stdout(&["2"]);

    cli.run(&["stop", "c2", "-y"])
        .await
        .expect_stdout(&["Cluster c2 stopped."]);
    assert!(row(&cli.run(&["status"]).await.stdout, "c2").contains("STOPPED"));
    cli.run(&["queue", "c2"])
        .await
        .expect_code(1)
        .expect_stderr(&["UP"]);
    cli.run(&["start", "c2", "-y"])
        .await
        .expect_stdout(&["Cluster c2 is UP"]);
    cli.run(&["autostop", "c2", "-i", "30", "-y"])
        .await
        .expect_stdout(&["skydeck autostop c2 --cancel"]);
    let status = cli.run(&["status", "c2"]).await;
    let c2 = row(&status.stdout, "c2");
    assert!(
        c2.contains("UP") && c2.contains("30m"),
        "{}",
        status.describe()
    );
    cli.run(&["down", "--all", "-y"])
        .await
        .expect_stdout(&["Cluster c2 terminated."]);
    cli.run(&["status"])
        .await
        .expect_stdout(&["No existing clusters."]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bare_command_launches_on_a_generated_cluster_and_down_alone_autodowns() {
    let scratch = tempfile::tempdir().unwrap();
    let cli = Cli::start(scratch.path());
    cli.run(&["launch", "-y", "echo", "bare-command-ran"])
        .await
        .expect_stdout(&["bare-command-ran"]);
    let status = cli.run(&["status"]).await;
    let generated = status
        .stdout
        .lines()
        .nth(1)
        .and_then(|line| line.split_whitespace().next())
        .unwrap_or_else(|| panic!("no cluster row: {}", status.describe()))
        .to_owned();
    assert!(generated.starts_with("sky-"), "{}", status.describe());

    // `--down` alone: the job runs to the end, then the cluster goes by
    // itself. The server sets the autodown once the job is queued; the CLI
    // makes no second `/autostop` call of its own.
    let launched = cli
        .run(&["launch", "-y", "-c", "once", "--down", "--", "echo", "bye"])
        .await;
    launched
        .expect_stdout(&["bye"])
        .expect_stderr(&["Job 1 SUCCEEDED"]);
    assert!(
        !launched.stderr.contains("Autodown set"),
        "the CLI set autodown itself: {}",
        launched.describe()
    );
    let requests = cli.run(&["api", "status", "-a"]).await;
    assert!(
        requests.stdout.contains("sky.launch") && !requests.stdout.contains("sky.autostop"),
        "the CLI sent its own /autostop: {}",
        requests.describe()
    );
    let once = row(&cli.run(&["status", "once"]).await.stdout, "once");
    assert!(once.is_empty() || once.contains("0m (down)"), "{once}");
    cli.poll(&["status"], |status| row(&status.stdout, "once").is_empty())
        .await;

    cli.run(&["down", &generated, "-y"])
        .await
        .expect_stdout(&[&format!("Cluster {generated} terminated.")]);
}

#[tokio::test(flavor = "multi_thread")]
async fn mistakes_are_reported_with_their_cause_and_a_failure_status() {
    let scratch = tempfile::tempdir().unwrap();
    let cli = Cli::start(scratch.path());
    write(&cli.cwd.join("typo.yaml"), "name: t\nrunn: echo hi\n");

    cli.run(&["launch", "-y", "-c", "t", "typo.yaml"])
        .await
        .expect_code(1)
        .expect_stderr(&[
            "typo.yaml",
            "line 2, column 1",
            "unknown field \"runn\"",
            "did you mean \"run\"?",
            "    2 | runn: echo hi",
        ]);
    cli.run(&["launch", "-c", "t", "echo", "hi"])
        .await
        .expect_code(1)
        .expect_stderr(&["stdin is not a terminal", "-y/--yes"]);
    cli.run(&[
        "launch",
        "-y",
        "-c",
        "t",
        "--env",
        "SKYDECK_TEST_UNSET_VARIABLE",
        "true",
    ])
    .await
    .expect_code(1)
    .expect_stderr(&["SKYDECK_TEST_UNSET_VARIABLE"]);
    cli.run(&["launch", "-y", "-c", "big", "--cpus", "100000", "true"])
        .await
        .expect_code(1)
        .expect_stderr(&["ResourcesUnavailableError", "100000 CPUs"]);
    cli.run(&["exec", "nowhere", "true"])
        .await
        .expect_code(1)
        .expect_stderr(&["ClusterDoesNotExist", "nowhere"]);
    cli.run(&["stop", "nowhere", "-y"])
        .await
        .expect_code(1)
        .expect_stderr(&["\"nowhere\" not found"]);
    cli.run(&["logs", "nowhere", "--no-follow"])
        .await
        .expect_code(1)
        .expect_stderr(&["does not exist"]);
    cli.run(&["status"])
        .await
        .expect_stdout(&["No existing clusters."]);
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_go_in_chunks_and_are_not_sent_twice() {
    let scratch = tempfile::tempdir().unwrap();
    let server = TestServer::start(&scratch.path().join("home"), &[]);
    let project = scratch.path().join("proj");
    std::fs::create_dir_all(&project).unwrap();
    // Pseudo-random letters (xorshift), which deflate cannot shrink much:
    // the zip spans several 1 kB chunks.
    let mut state: u32 = 2_463_534_242;
    let content: String = (0..20_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            char::from(b'a' + (state % 26) as u8)
        })
        .collect();
    write(&project.join("big.txt"), &content);
    let bundle = skydeck_client::upload::Bundle::new(std::slice::from_ref(&project)).unwrap();
    assert!(bundle.size() > 4_000, "{}", bundle.size());
    let client = skydeck_client::Client::new(&server.url, None).unwrap();
    let already = client.upload_bundle(&bundle, "", 1_000).await.unwrap();
    assert!(!already);
    // Kept under the uploading user: with auth off and no user named, the
    // server's local user, the only one there.
    let users: Vec<_> = std::fs::read_dir(server.home.join("uploads/users"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(users.len(), 1, "{users:?}");
    let unpacked = users[0]
        .join(bundle.blob_id())
        .join("files")
        .join(project.strip_prefix("/").unwrap())
        .join("big.txt");
    let stored = std::fs::read_to_string(&unpacked)
        .unwrap_or_else(|e| panic!("{}: {e}", unpacked.display()));
    assert_eq!(stored, content);
    assert!(client.upload_bundle(&bundle, "", 1_000).await.unwrap());
}
