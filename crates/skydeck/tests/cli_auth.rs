//! Users, service-account tokens and the shared config, managed with the
//! real `skydeck` binary against a real server with basic auth and service
//! accounts on. Every command checks that the password in its endpoint URL
//! never reaches its output.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use support::TestServer;
use tokio::io::AsyncWriteExt;

/// How long one CLI command may run before the test gives up on it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The first admin's password: distinctive, so finding it in output can
/// only mean it leaked.
const ADMIN_PASSWORD: &str = "Adm1n-Secret-7f3a";

/// A server with auth on, and a client home of its own so the CLI never
/// starts a server of its own.
struct AuthServer {
    server: TestServer,
    client_home: PathBuf,
}

impl AuthServer {
    fn start(scratch: &Path) -> Self {
        let initial_admin = format!("admin:{ADMIN_PASSWORD}");
        let server = TestServer::start(
            &scratch.join("server"),
            &[
                ("SKYDECK_ENABLE_BASIC_AUTH", "true"),
                ("SKYDECK_ENABLE_SERVICE_ACCOUNTS", "true"),
                ("SKYDECK_INITIAL_BASIC_AUTH", &initial_admin),
            ],
        );
        let client_home = scratch.join("client");
        std::fs::create_dir_all(&client_home).unwrap();
        Self {
            server,
            client_home,
        }
    }

    /// The CLI logged in with a password in the endpoint URL.
    fn as_user(&self, name: &str, password: &str) -> As<'_> {
        As {
            server: self,
            endpoint: Some(
                self.server
                    .url
                    .replace("http://", &format!("http://{name}:{password}@")),
            ),
            token: None,
            secret: Some(password.to_owned()),
        }
    }

    fn as_admin(&self) -> As<'_> {
        self.as_user("admin", ADMIN_PASSWORD)
    }

    /// The CLI with a service-account token and a bare endpoint.
    fn with_token(&self, token: &str) -> As<'_> {
        As {
            server: self,
            endpoint: Some(self.server.url.clone()),
            token: Some(token.to_owned()),
            secret: None,
        }
    }

    /// The CLI with no credentials at all.
    fn anonymous(&self) -> As<'_> {
        As {
            server: self,
            endpoint: Some(self.server.url.clone()),
            token: None,
            secret: None,
        }
    }
}

/// The CLI run as someone.
struct As<'a> {
    server: &'a AuthServer,
    /// `None`: the endpoint `skydeck api login` saved.
    endpoint: Option<String>,
    token: Option<String>,
    /// A password that must not appear in any output.
    secret: Option<String>,
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

    fn expect_success(&self) -> &Self {
        assert_eq!(self.code, Some(0), "{}", self.describe());
        self
    }

    fn expect_failure(&self) -> &Self {
        assert_eq!(self.code, Some(1), "{}", self.describe());
        self
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

    fn stderr_has(&self, needles: &[&str]) -> &Self {
        for needle in needles {
            assert!(
                self.stderr.contains(needle),
                "missing {needle:?} in stderr of {}",
                self.describe()
            );
        }
        self
    }

    /// The whitespace-split cells of the table row whose first cell is
    /// `first`.
    fn row(&self, first: &str) -> Vec<String> {
        self.stdout
            .lines()
            .map(|line| {
                line.split_whitespace()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .find(|cells| cells.first().map(String::as_str) == Some(first))
            .unwrap_or_else(|| panic!("no row {first:?} in {}", self.describe()))
    }
}

impl As<'_> {
    async fn run(&self, args: &[&str]) -> Outcome {
        self.run_with_stdin(args, None).await
    }

    async fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Outcome {
        let mut command = tokio::process::Command::new(support::BINARY);
        command
            .args(args)
            .current_dir(&self.server.client_home)
            .env("SKYDECK_HOME", &self.server.client_home)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        match &self.endpoint {
            Some(endpoint) => command.env("SKYDECK_API_SERVER_ENDPOINT", endpoint),
            None => command.env_remove("SKYDECK_API_SERVER_ENDPOINT"),
        };
        match &self.token {
            Some(token) => command.env("SKYDECK_SERVICE_ACCOUNT_TOKEN", token),
            None => command.env_remove("SKYDECK_SERVICE_ACCOUNT_TOKEN"),
        };
        let mut child = command.spawn().expect("cannot start skydeck");
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().expect("piped stdin");
            pipe.write_all(text.as_bytes()).await.unwrap();
            // Closing stdin ends what --password-stdin reads.
            drop(pipe);
        }
        let output = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("`skydeck {}` ran too long", args.join(" ")))
            .expect("skydeck ran");
        let outcome = Outcome {
            command: args.join(" "),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        if let Some(secret) = &self.secret {
            assert!(
                !outcome.stdout.contains(secret) && !outcome.stderr.contains(secret),
                "the password leaked into the output of {}",
                outcome.describe()
            );
        }
        outcome
    }

    /// Adds a user with a password (given on stdin).
    async fn add_user(&self, name: &str, password: &str, role: &str) {
        self.run_with_stdin(
            &["users", "add", name, "--role", role, "--password-stdin"],
            Some(&format!("{password}\n")),
        )
        .await
        .expect_success()
        .stdout_has(&[&format!("Added {role} {name}")]);
    }

    /// Makes a token (for `user`, or the caller) and returns its secret
    /// and id.
    async fn create_token(&self, name: &str, user: Option<&str>) -> (String, String) {
        let mut args = vec!["tokens", "create", name];
        if let Some(user) = user {
            args.extend(["--user", user]);
        }
        let created = self.run(&args).await;
        created.expect_success();
        let secret = created.stdout.trim().to_owned();
        assert!(
            secret.starts_with("sky_") && !secret.contains('\n'),
            "stdout should be the token alone: {}",
            created.describe()
        );
        (secret, token_id(&created, name))
    }
}

/// The id `tokens create NAME` reports (`Created … token "NAME" (ID) …`).
fn token_id(created: &Outcome, name: &str) -> String {
    created
        .stderr
        .split_once(&format!("{name:?} ("))
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(id, _)| id.to_owned())
        .unwrap_or_else(|| panic!("no token id in {}", created.describe()))
}

/// How many times `needle` occurs in the command's whole output.
fn occurrences(outcome: &Outcome, needle: &str) -> usize {
    outcome.stdout.matches(needle).count() + outcome.stderr.matches(needle).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_manages_users_and_a_token_works_until_it_is_revoked() {
    let scratch = tempfile::tempdir().unwrap();
    let server = AuthServer::start(scratch.path());
    let admin = server.as_admin();

    admin.add_user("alice", "alice-Pw-91b2", "user").await;
    let users = admin.run(&["users", "list"]).await;
    users.expect_success();
    assert_eq!(
        users.stdout.split_whitespace().take(5).collect::<Vec<_>>(),
        ["NAME", "ID", "ROLE", "PASSWORD", "CREATED"]
    );
    assert_eq!(users.row("alice")[2..4], ["user", "yes"]);
    assert_eq!(users.row("admin")[2..4], ["admin", "yes"]);

    admin
        .run(&["users", "set-role", "alice", "admin"])
        .await
        .expect_success()
        .stdout_has(&["alice is now an admin"]);
    assert_eq!(admin.run(&["users", "list"]).await.row("alice")[2], "admin");
    admin
        .run(&["users", "set-role", "alice", "user"])
        .await
        .expect_success();

    // Alice logs in with the password she was given.
    server
        .as_user("alice", "alice-Pw-91b2")
        .run(&["users", "list"])
        .await
        .expect_success();

    let created = admin
        .run(&[
            "tokens",
            "create",
            "ci",
            "--user",
            "alice",
            "--expires-in-days",
            "30",
        ])
        .await;
    created.expect_success().stderr_has(&[
        "only time the token is shown",
        "export SKYDECK_SERVICE_ACCOUNT_TOKEN=",
        "skydeck api login -e",
        "expires in 30 days",
    ]);
    let token = created.stdout.trim();
    assert!(token.starts_with("sky_"), "{}", created.describe());
    assert_eq!(occurrences(&created, token), 1, "{}", created.describe());
    // Where to log in with the token: the endpoint, without the password.
    assert!(
        created.stderr.contains(&format!(
            "skydeck api login -e {} --token",
            server.server.url
        )),
        "{}",
        created.describe()
    );

    let as_token = server.with_token(token);
    as_token
        .run(&["users", "list"])
        .await
        .expect_success()
        .stdout_has(&["alice"]);
    as_token
        .run(&["status"])
        .await
        .expect_success()
        .stdout_has(&["No existing clusters."]);

    let listed = admin.run(&["tokens", "list", "--all"]).await;
    listed.expect_success();
    assert!(!listed.stdout.contains(token), "{}", listed.describe());
    let id = token_id(&created, "ci");
    let row = listed.row(&id);
    assert_eq!(row[1..3], ["ci", "alice"], "{}", listed.describe());
    assert_eq!(row.last().unwrap(), "active", "{}", listed.describe());
    // Alice's own list has it too, and the holder of the token (Alice) may
    // not see everyone's.
    as_token
        .run(&["tokens", "list"])
        .await
        .expect_success()
        .stdout_has(&[&id]);
    as_token
        .run(&["tokens", "list", "--all"])
        .await
        .expect_failure()
        .stderr_has(&["permission denied"]);

    admin
        .run(&["tokens", "revoke", &id])
        .await
        .expect_success()
        .stdout_has(&["Revoked", &id]);
    as_token
        .run(&["users", "list"])
        .await
        .expect_failure()
        .stderr_has(&[
            "revoked",
            "skydeck api login -e http://USER:PASSWORD@HOST:PORT",
            "SKYDECK_SERVICE_ACCOUNT_TOKEN",
        ]);
    let after = admin.run(&["tokens", "list", "--all"]).await;
    assert_eq!(
        after.row(&id).last().unwrap(),
        "revoked",
        "{}",
        after.describe()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_user_revokes_their_tokens() {
    let scratch = tempfile::tempdir().unwrap();
    let server = AuthServer::start(scratch.path());
    let admin = server.as_admin();

    admin
        .run(&["users", "add", "robot", "--no-password"])
        .await
        .expect_success()
        .stdout_has(&["Added user robot", "no password"]);
    assert_eq!(admin.run(&["users", "list"]).await.row("robot")[3], "no");
    let (token, _) = admin.create_token("deploy", Some("robot")).await;
    let robot = server.with_token(&token);
    robot.run(&["users", "list"]).await.expect_success();

    // Without a terminal nobody can confirm, so -y is required.
    admin
        .run(&["users", "delete", "robot"])
        .await
        .expect_failure()
        .stderr_has(&["-y"]);
    admin
        .run(&["users", "delete", "robot", "-y"])
        .await
        .expect_success()
        .stdout_has(&["Deleted user robot", "1 service-account token revoked"]);
    robot
        .run(&["users", "list"])
        .await
        .expect_failure()
        .stderr_has(&["skydeck api login"]);
    let users = admin.run(&["users", "list"]).await;
    assert!(!users.stdout.contains("robot"), "{}", users.describe());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_user_is_refused_admin_actions_but_may_change_their_own_password() {
    let scratch = tempfile::tempdir().unwrap();
    let server = AuthServer::start(scratch.path());
    server
        .as_admin()
        .add_user("carol", "carol-Pw-33c1", "user")
        .await;
    let carol = server.as_user("carol", "carol-Pw-33c1");

    carol
        .run(&["users", "add", "mallory", "--no-password"])
        .await
        .expect_failure()
        .stderr_has(&["permission denied", "Only admins"]);
    carol
        .run(&["config", "get"])
        .await
        .expect_failure()
        .stderr_has(&["permission denied", "Only admins"]);
    carol
        .run(&["tokens", "create", "x", "--user", "admin"])
        .await
        .expect_failure()
        .stderr_has(&["permission denied"]);

    // Whoever holds only her token cannot change her password: the CLI
    // asks for the current one, and a wrong one is refused.
    let (token, _) = carol.create_token("laptop", None).await;
    let with_token = server.with_token(&token);
    with_token
        .run_with_stdin(
            &["users", "set-password", "--password-stdin"],
            Some("taken-over\n"),
        )
        .await
        .expect_failure()
        .stderr_has(&["current password first"]);
    with_token
        .run_with_stdin(
            &["users", "set-password", "--password-stdin"],
            Some("a-guess\ntaken-over\n"),
        )
        .await
        .expect_failure()
        .stderr_has(&["current password is wrong"]);

    // Her own password, without naming herself: the current one, then
    // the new one.
    carol
        .run_with_stdin(
            &["users", "set-password", "--password-stdin"],
            Some("carol-Pw-33c1\ncarol-New-Pw-5d\n"),
        )
        .await
        .expect_success()
        .stdout_has(&["Password of carol changed"]);
    carol
        .run(&["users", "list"])
        .await
        .expect_failure()
        .stderr_has(&["skydeck api login"]);
    server
        .as_user("carol", "carol-New-Pw-5d")
        .run(&["users", "list"])
        .await
        .expect_success();
}

#[tokio::test(flavor = "multi_thread")]
async fn users_imported_from_htpasswd_files_log_in() {
    let scratch = tempfile::tempdir().unwrap();
    let server = AuthServer::start(scratch.path());
    let admin = server.as_admin();

    let users = [
        ("bcrypt-user", "Pw-bcrypt-1", "-nbB"),
        ("md5-user", "Pw-md5-2", "-nbm"),
        ("sha-user", "Pw-sha-3", "-nbs"),
    ];
    let mut file = String::new();
    for (name, password, flag) in users {
        file.push_str(&htpasswd(flag, name, password));
    }
    let path = scratch.path().join("users.htpasswd");
    std::fs::write(&path, &file).unwrap();
    admin
        .run(&["users", "import", path.to_str().unwrap()])
        .await
        .expect_success()
        .stdout_has(&["Imported 3 users"]);

    for (name, password, _) in users {
        server
            .as_user(name, password)
            .run(&["users", "list"])
            .await
            .expect_success()
            .stdout_has(&[name]);
    }
    server
        .as_user("md5-user", "Pw-wrong")
        .run(&["users", "list"])
        .await
        .expect_failure()
        .stderr_has(&["skydeck api login"]);

    let bad = scratch.path().join("bad.htpasswd");
    std::fs::write(
        &bad,
        format!("{}not a user line\n", htpasswd("-nbB", "x", "y")),
    )
    .unwrap();
    admin
        .run(&["users", "import", bad.to_str().unwrap()])
        .await
        .expect_failure()
        .stderr_has(&["bad.htpasswd was not imported", "line 3"]);
}

/// A line as the real `htpasswd` writes it.
fn htpasswd(flag: &str, name: &str, password: &str) -> String {
    let output = std::process::Command::new("htpasswd")
        .args([flag, name, password])
        .output()
        .expect("htpasswd is installed (apt-get install apache2-utils; scripts/test.sh does)");
    assert!(output.status.success(), "htpasswd {flag} failed");
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_config_is_set_from_yaml_and_a_bad_key_is_named() {
    let scratch = tempfile::tempdir().unwrap();
    let server = AuthServer::start(scratch.path());
    let admin = server.as_admin();

    let bad = scratch.path().join("bad.yaml");
    std::fs::write(&bad, "jobs:\n  controler:\n    resources:\n      cpus: 2\n").unwrap();
    admin
        .run(&["config", "set", bad.to_str().unwrap()])
        .await
        .expect_failure()
        .stderr_has(&["jobs.controler", "bad.yaml was not applied"]);

    let good = scratch.path().join("good.yaml");
    std::fs::write(
        &good,
        "jobs:\n  controller:\n    resources:\n      cpus: 2\n",
    )
    .unwrap();
    admin
        .run(&["config", "set", good.to_str().unwrap()])
        .await
        .expect_success()
        .stdout_has(&["Saved the API server config"]);
    let json = admin.run(&["config", "get", "-o", "json"]).await;
    json.expect_success();
    let answer: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        answer["config"]["jobs"]["controller"]["resources"]["cpus"],
        2,
        "{}",
        json.describe()
    );
    assert!(answer["version"].as_i64().is_some(), "{}", json.describe());
    admin
        .run(&["config", "get"])
        .await
        .expect_success()
        .stdout_has(&["# Skydeck API server config", "controller:", "cpus: 2"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_password_in_the_endpoint_is_never_printed() {
    let scratch = tempfile::tempdir().unwrap();
    let server = AuthServer::start(scratch.path());

    // Each run asserts the password is absent; these are the places an
    // endpoint is shown.
    server
        .as_admin()
        .run(&["api", "info"])
        .await
        .expect_success()
        .stdout_has(&["admin:***@127.0.0.1", "User: admin"]);
    // `api login` keeps the credentials (in a file only the user can
    // read) and shows them hidden; later commands use them.
    let admin = server.as_admin();
    let endpoint = admin.endpoint.clone().unwrap();
    admin
        .run(&["api", "login", "-e", &endpoint])
        .await
        .expect_success()
        .stdout_has(&["admin:***@127.0.0.1"]);
    let saved = As {
        endpoint: None,
        ..server.as_admin()
    };
    saved
        .run(&["users", "list"])
        .await
        .expect_success()
        .stdout_has(&["admin"]);
    saved
        .run(&["api", "info"])
        .await
        .expect_success()
        .stdout_has(&["admin:***@127.0.0.1", "User: admin"]);
    server
        .as_user("admin", "Wrong-Pw-0000")
        .run(&["users", "list"])
        .await
        .expect_failure()
        .stderr_has(&["skydeck api login"]);

    // Nothing listens on a port that was free a moment ago.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let unreachable = As {
        server: &server,
        endpoint: Some(format!("http://admin:{ADMIN_PASSWORD}@127.0.0.1:{port}")),
        token: None,
        secret: Some(ADMIN_PASSWORD.to_owned()),
    };
    unreachable
        .run(&["users", "list"])
        .await
        .expect_failure()
        .stderr_has(&[&format!("admin:***@127.0.0.1:{port}")]);
}

/// `/api/health` answers anyone, so a login with a wrong password must be
/// caught from the answer, refused, and leave the saved login alone.
#[tokio::test(flavor = "multi_thread")]
async fn a_login_the_server_does_not_accept_is_refused_and_saves_nothing() {
    let scratch = tempfile::tempdir().unwrap();
    let server = AuthServer::start(scratch.path());
    let admin = server.as_admin();
    let endpoint = admin.endpoint.clone().unwrap();
    admin
        .run(&["api", "login", "-e", &endpoint])
        .await
        .expect_success();
    let saved = As {
        endpoint: None,
        ..server.as_admin()
    };

    let wrong = server.as_user("admin", "Wrong-Pw-0000");
    let wrong_endpoint = wrong.endpoint.clone().unwrap();
    let refused = As {
        endpoint: None,
        ..wrong
    }
    .run(&["api", "login", "-e", &wrong_endpoint])
    .await;
    refused
        .expect_failure()
        .stderr_has(&["did not accept the user name and password", "admin:***@"]);
    assert!(
        !refused.stderr.contains("Wrong-Pw-0000"),
        "{}",
        refused.stderr
    );
    let anonymous = server.anonymous();
    let bare = anonymous.endpoint.clone().unwrap();
    As {
        endpoint: None,
        ..anonymous
    }
    .run(&["api", "login", "-e", &bare])
    .await
    .expect_failure()
    .stderr_has(&["requires a login", "--token"]);
    saved
        .run(&["users", "list"])
        .await
        .expect_success()
        .stdout_has(&["admin"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_credentials_the_cli_says_how_to_log_in() {
    let scratch = tempfile::tempdir().unwrap();
    let server = AuthServer::start(scratch.path());
    server
        .anonymous()
        .run(&["users", "list"])
        .await
        .expect_failure()
        .stderr_has(&[
            "Authentication required",
            "skydeck api login -e http://USER:PASSWORD@HOST:PORT",
            "SKYDECK_SERVICE_ACCOUNT_TOKEN",
        ]);
}

/// `active_workspace` in the client's config.yaml (or SKYDECK_WORKSPACE)
/// picks the workspace; a private one refuses users it does not list.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_acts_in_the_workspace_its_config_names() {
    let scratch = tempfile::tempdir().unwrap();
    let server = AuthServer::start(scratch.path());
    let admin = server.as_admin();
    for (name, password) in [("alice", "alice-pw-1"), ("bob", "bob-pw-1")] {
        admin
            .run_with_stdin(
                &["users", "add", name, "--password-stdin"],
                Some(&format!("{password}\n")),
            )
            .await
            .expect_success();
    }
    let team = scratch.path().join("team.yaml");
    std::fs::write(
        &team,
        "workspaces:\n  team-a:\n    private: true\n    allowed_users: [alice]\n",
    )
    .unwrap();
    admin
        .run(&["config", "set", team.to_str().unwrap()])
        .await
        .expect_success();
    std::fs::write(
        server.client_home.join("config.yaml"),
        "active_workspace: team-a\n",
    )
    .unwrap();
    server
        .as_user("bob", "bob-pw-1")
        .run(&["status"])
        .await
        .expect_failure()
        .stderr_has(&["team-a", "not allowed"]);
    server
        .as_user("alice", "alice-pw-1")
        .run(&["status"])
        .await
        .expect_success();
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_given_on_the_command_line_are_never_stored_or_shown() {
    let scratch = tempfile::tempdir().unwrap();
    let server = AuthServer::start(scratch.path());
    let admin = server.as_admin();
    let secrets = ["hf_Sekrit_9f2c41", "wandb_Sekrit_77e0"];
    admin
        .run(&[
            "launch",
            "-y",
            "-c",
            "sec",
            "--secret",
            &format!("HF_TOKEN={}", secrets[0]),
            &format!("--secret=WANDB_KEY={}", secrets[1]),
            "--",
            "echo",
            "job-ran",
        ])
        .await
        .expect_success()
        .stdout_has(&["job-ran"]);

    // What `status -v` shows (the command that last used the cluster)…
    let status = admin.run(&["status", "-v"]).await;
    status.expect_success().stdout_has(&["HF_TOKEN=<redacted>"]);
    // … what `/api/status` shows (the body holds the command line)…
    let shown = skydeck_client::http_client()
        .unwrap()
        .get(format!("{}/api/status?all_status=true", server.server.url))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(shown.contains("HF_TOKEN=<redacted>"), "{shown}");
    // … and the server's own state: the database, request logs, its log.
    // (The cluster's files hold the job's environment: it needs them.)
    let mut checked = vec![status.describe(), shown];
    for path in files_under(&server.server.home) {
        if path.components().any(|c| c.as_os_str() == "clusters") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        checked.push(format!(
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&bytes)
        ));
    }
    for text in &checked {
        for secret in secrets {
            assert!(!text.contains(secret), "{secret} stored or shown in {text}");
        }
    }
    admin.run(&["down", "sec", "-y"]).await.expect_success();
}
