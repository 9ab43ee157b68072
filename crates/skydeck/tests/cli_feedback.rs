//! What the `skydeck` CLI tells its user while work goes on: a request
//! that waits for a worker says so (its id, how to cancel it), and
//! `launch --dryrun` runs the launch's own checks, failing as the launch
//! would and printing the plan when they pass.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::TestServer;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// How long one CLI command may run before the test gives up on it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the test waits for a state it polls for.
const DEADLINE: Duration = Duration::from_secs(30);
const ADMIN_PASSWORD: &str = "Adm1n-Feedback-51c9";

/// The CLI pointed at one server, with a home and directory of its own.
struct Cli {
    server: TestServer,
    home: PathBuf,
    /// `user:password@` in the endpoint, when the server has auth on.
    login: Option<(String, String)>,
}

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

    fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "{}", self.describe());
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

    /// The first stderr line that contains `needle`.
    fn stderr_line(&self, needle: &str) -> String {
        self.stderr
            .lines()
            .find(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in {}", self.describe()))
            .to_owned()
    }
}

impl Cli {
    fn start(scratch: &Path, envs: &[(&str, &str)]) -> Self {
        let server = TestServer::start(&scratch.join("server"), envs);
        let home = scratch.join("client");
        std::fs::create_dir_all(&home).unwrap();
        Self {
            server,
            home,
            login: None,
        }
    }

    /// A server with basic auth on, the CLI logged in as its first admin.
    fn start_with_auth(scratch: &Path) -> Self {
        let admin = format!("admin:{ADMIN_PASSWORD}");
        let mut cli = Self::start(
            scratch,
            &[
                ("SKYDECK_ENABLE_BASIC_AUTH", "true"),
                ("SKYDECK_INITIAL_BASIC_AUTH", &admin),
            ],
        );
        cli.login = Some(("admin".into(), ADMIN_PASSWORD.into()));
        cli
    }

    /// The same server and client home, logged in as someone else.
    fn as_user(&self, name: &str, password: &str) -> As<'_> {
        As {
            cli: self,
            login: Some((name.to_owned(), password.to_owned())),
        }
    }

    fn me(&self) -> As<'_> {
        As {
            cli: self,
            login: self.login.clone(),
        }
    }

    async fn run(&self, args: &[&str]) -> Outcome {
        self.me().run(args).await
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.home.join(name), text).unwrap();
    }
}

struct As<'a> {
    cli: &'a Cli,
    login: Option<(String, String)>,
}

impl As<'_> {
    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let endpoint = match &self.login {
            Some((user, password)) => self
                .cli
                .server
                .url
                .replace("http://", &format!("http://{user}:{password}@")),
            None => self.cli.server.url.clone(),
        };
        let mut command = tokio::process::Command::new(support::BINARY);
        command
            .args(args)
            .current_dir(&self.cli.home)
            .env("SKYDECK_HOME", &self.cli.home)
            .env("SKYDECK_API_SERVER_ENDPOINT", endpoint)
            .env_remove("SKYDECK_SERVICE_ACCOUNT_TOKEN")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    async fn run(&self, args: &[&str]) -> Outcome {
        self.run_with_stdin(args, "").await
    }

    async fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Outcome {
        let mut child = self.command(args).spawn().expect("cannot start skydeck");
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(stdin.as_bytes()).await.unwrap();
        drop(pipe);
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
}

/// Adds user `name` (as the admin) and returns their password.
async fn add_user(cli: &Cli, name: &str) -> String {
    let password = format!("{name}-pw-feedback");
    cli.run_with_admin_stdin(&["users", "add", name, "--password-stdin"], &password)
        .await;
    password
}

impl Cli {
    async fn run_with_admin_stdin(&self, args: &[&str], stdin: &str) {
        self.me()
            .run_with_stdin(args, &format!("{stdin}\n"))
            .await
            .expect_code(0);
    }
}

/// The cluster names `skydeck status` lists, as the admin.
async fn cluster_names(cli: &Cli) -> Vec<String> {
    let status = cli.run(&["status", "-u"]).await;
    status.expect_code(0);
    status
        .stdout
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dryrun_asking_more_cpus_than_the_machine_has_fails_as_the_launch_does() {
    let scratch = tempfile::tempdir().unwrap();
    let cli = Cli::start(scratch.path(), &[]);
    cli.write("big.yaml", "resources:\n  cpus: 100000\nrun: echo never\n");

    let dryrun = cli
        .run(&["launch", "--dryrun", "-y", "-c", "big", "big.yaml"])
        .await;
    dryrun.expect_code(1);
    let launch = cli.run(&["launch", "-y", "-c", "big", "big.yaml"]).await;
    launch.expect_code(1);
    let refusal = dryrun.stderr_line("ResourcesUnavailableError");
    assert!(refusal.contains("100000 CPUs"), "{}", dryrun.describe());
    assert_eq!(
        refusal,
        launch.stderr_line("ResourcesUnavailableError"),
        "the dry run and the launch fail alike"
    );
    // Refused before the name was claimed: nothing is left of either.
    assert!(cluster_names(&cli).await.is_empty());
    assert!(!cli.server.home.join("clusters/big").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dryrun_of_a_good_task_prints_the_plan_and_creates_nothing() {
    let scratch = tempfile::tempdir().unwrap();
    let cli = Cli::start(scratch.path(), &[]);
    std::fs::create_dir_all(cli.home.join("proj")).unwrap();
    cli.write("proj/data.txt", "payload\n");
    cli.write("extra.txt", "mounted\n");
    cli.write(
        "task.yaml",
        "workdir: proj\nfile_mounts:\n  ~/mounted/extra.txt: extra.txt\n\
         resources:\n  cpus: 1\nsetup: echo setup\nrun: echo run\n",
    );

    let dryrun = cli
        .run(&[
            "launch",
            "--dryrun",
            "-c",
            "planned",
            "-i",
            "15",
            "task.yaml",
        ])
        .await;
    dryrun.expect_code(0).expect_stderr(&[
        "Dry run: every check passed",
        "Cluster:     planned (new)",
        "Infra:       Local",
        "Nodes:       1",
        "Resources:   1 CPUs per node",
        "Workdir:     synced to ~/sky_workdir",
        "File mount:  ~/mounted/extra.txt",
        "Job:         setup, then run",
        "Autostop:    stop after 15 idle minute(s)",
        "nothing was launched",
    ]);
    assert!(cluster_names(&cli).await.is_empty());
    assert!(!cli.server.home.join("clusters/planned").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dryrun_the_admin_policy_refuses_fails() {
    let scratch = tempfile::tempdir().unwrap();
    let server_home = scratch.path().join("server");
    std::fs::create_dir_all(&server_home).unwrap();
    std::fs::write(
        server_home.join("config.yaml"),
        "admin_policy:\n  required_labels: [team]\n",
    )
    .unwrap();
    let cli = Cli::start(scratch.path(), &[]);
    cli.write("task.yaml", "run: echo never\n");

    let dryrun = cli
        .run(&["launch", "--dryrun", "-c", "unlabelled", "task.yaml"])
        .await;
    dryrun.expect_code(1).expect_stderr(&["team"]);
    let refusal = dryrun.stderr_line("team");
    let launch = cli
        .run(&["launch", "-y", "-c", "unlabelled", "task.yaml"])
        .await;
    launch.expect_code(1);
    assert_eq!(refusal, launch.stderr_line("team"));
    assert!(cluster_names(&cli).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dryrun_in_a_workspace_the_user_may_not_use_or_on_anothers_cluster_fails() {
    let scratch = tempfile::tempdir().unwrap();
    let cli = Cli::start_with_auth(scratch.path());
    let alice = add_user(&cli, "alice").await;
    let bob = add_user(&cli, "bob").await;
    cli.write(
        "team.yaml",
        "workspaces:\n  team-a:\n    private: true\n    allowed_users: [alice]\n",
    );
    cli.run(&["config", "set", "team.yaml"])
        .await
        .expect_code(0);
    cli.write("task.yaml", "run: echo hi\n");

    // Alice owns `hers` (launched in the default workspace).
    cli.as_user("alice", &alice)
        .run(&["launch", "-y", "-c", "hers", "task.yaml"])
        .await
        .expect_code(0);
    let dryrun = cli
        .as_user("bob", &bob)
        .run(&["launch", "--dryrun", "-c", "hers", "task.yaml"])
        .await;
    dryrun
        .expect_code(1)
        .expect_stderr(&["hers", "belongs to another user"]);

    cli.write("config.yaml", "active_workspace: team-a\n");
    let dryrun = cli
        .as_user("bob", &bob)
        .run(&["launch", "--dryrun", "-c", "bobs", "task.yaml"])
        .await;
    dryrun
        .expect_code(1)
        .expect_stderr(&["team-a", "not allowed"]);
    // Alice may: the same dry run passes for her.
    cli.as_user("alice", &alice)
        .run(&["launch", "--dryrun", "-c", "alices", "task.yaml"])
        .await
        .expect_code(0)
        .expect_stderr(&["Dry run: every check passed"]);
    cli.write("config.yaml", "active_workspace: default\n");
    cli.run(&["down", "-y", "hers"]).await.expect_code(0);
}

/// Polls `/api/status` until request `id` has `status`.
async fn wait_request(url: &str, id: &str, status: &str) {
    let started = Instant::now();
    loop {
        let listed = support::http("GET", &format!("{url}/api/status?request_ids={id}"), None)
            .await
            .json();
        if listed[0]["status"] == status {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "request {id} never became {status}: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_launch_waiting_for_a_worker_says_so_once_then_runs() {
    let scratch = tempfile::tempdir().unwrap();
    // One long worker, held by a `check` until the test cancels it.
    let cli = Cli::start(
        scratch.path(),
        &[
            ("SKYDECK_LONG_WORKERS", "1"),
            ("SKYDECK_TEST_HOLD_REQUESTS", "sky.check"),
        ],
    );
    let url = cli.server.url.clone();
    let held = support::submit(&url, "/check", "{}").await;
    wait_request(&url, &held, "RUNNING").await;

    let mut launch = cli
        .me()
        .command(&["launch", "-y", "-c", "patient", "--", "echo", "moved-on"])
        .spawn()
        .expect("cannot start skydeck");
    drop(launch.stdin.take());
    let mut stderr = BufReader::new(launch.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let waiting = tokio::time::timeout(DEADLINE, async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            seen.push(line.clone());
            if line.contains("waiting for a free worker") {
                return line;
            }
        }
        panic!("the CLI ended without saying it waits: {seen:?}");
    })
    .await
    .expect("the CLI never said it waits for a worker");
    let id = waiting
        .split_whitespace()
        .nth(2)
        .expect("the line names the request")
        .to_owned();
    let cancel_hint = stderr.next_line().await.unwrap().unwrap_or_default();
    assert!(
        cancel_hint.contains(&format!("skydeck api cancel {id}")),
        "{cancel_hint}"
    );
    let listed = support::http("GET", &format!("{url}/api/status?request_ids={id}"), None)
        .await
        .json();
    assert_eq!(listed[0]["name"], "sky.launch", "{listed}");
    assert_eq!(listed[0]["status"], "PENDING", "{listed}");

    // The worker frees up: the launch runs and the CLI goes on as usual.
    support::submit(
        &url,
        "/api/cancel",
        &serde_json::json!({ "request_ids": [held] }).to_string(),
    )
    .await;
    let mut rest = Vec::new();
    while let Some(line) = stderr.next_line().await.unwrap() {
        rest.push(line);
    }
    let mut stdout = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut launch.stdout.take().unwrap(), &mut stdout)
        .await
        .unwrap();
    let status = tokio::time::timeout(COMMAND_TIMEOUT, launch.wait())
        .await
        .expect("the launch ends")
        .unwrap();
    let rest = rest.join("\n");
    assert!(status.success(), "{rest}");
    assert!(stdout.contains("moved-on"), "{stdout}\n{rest}");
    assert!(rest.contains("Job submitted"), "{rest}");
    assert!(
        !rest.contains("waiting for a free worker"),
        "said once only: {rest}"
    );
    cli.run(&["down", "-y", "patient"]).await.expect_code(0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_launch_prints_its_steps_in_order_with_the_sizes_it_moves() {
    let scratch = tempfile::tempdir().unwrap();
    let cli = Cli::start(scratch.path(), &[]);
    std::fs::create_dir_all(cli.home.join("proj")).unwrap();
    cli.write("proj/data.bin", &"x".repeat(1500));
    cli.write(
        "task.yaml",
        "workdir: proj\nsetup: echo setting-up\nrun: echo running\n",
    );
    let launch = cli.run(&["launch", "-y", "-c", "steps", "task.yaml"]).await;
    launch.expect_code(0);
    let steps = [
        "Uploading files to the API server",
        "Provisioning the cluster",
        "is UP",
        "Syncing the workdir (1.5 KB in 1 file)",
        "Files synced",
        "Starting the job: setup, then run",
        "Job submitted",
    ];
    let mut from = 0;
    for step in steps {
        let at = launch.stderr[from..]
            .find(step)
            .unwrap_or_else(|| panic!("no {step:?} after the step before: {}", launch.describe()));
        from += at + step.len();
    }
    // The upload line says how much goes up.
    let upload = launch.stderr_line("Uploading files to the API server");
    assert!(upload.contains("entries)"), "{upload}");

    // Dry runs against the cluster now there: reused, and runs nothing.
    cli.run(&["launch", "--dryrun", "-c", "steps", "task.yaml"])
        .await
        .expect_code(0)
        .expect_stderr(&["Cluster:     steps (exists, UP; reused)"]);
    let exec = cli
        .run(&["exec", "--dryrun", "steps", "--", "echo", "not-now"])
        .await;
    exec.expect_code(0)
        .expect_stderr(&["Dry run: cluster steps can run this task"]);
    assert!(!exec.stdout.contains("not-now"), "{}", exec.describe());
    cli.run(&["down", "-y", "steps"]).await.expect_code(0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dryrun_of_a_task_over_its_limits_fails_as_the_launch_does() {
    let scratch = tempfile::tempdir().unwrap();
    let cli = Cli::start(scratch.path(), &[]);
    let mut task = String::from("run: echo never\nenvs:\n");
    for i in 0..1001 {
        task.push_str(&format!("  V{i}: a\n"));
    }
    cli.write("huge.yaml", &task);
    let dryrun = cli
        .run(&["launch", "--dryrun", "-c", "huge", "huge.yaml"])
        .await;
    dryrun.expect_code(1);
    let launch = cli.run(&["launch", "-y", "-c", "huge", "huge.yaml"]).await;
    launch.expect_code(1);
    let refusal = dryrun.stderr_line("environment variables");
    assert_eq!(refusal, launch.stderr_line("environment variables"));
    assert!(cluster_names(&cli).await.is_empty());
}
