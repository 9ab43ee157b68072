//! A task's files and variables reach its job as SkyPilot delivers them:
//! file mounts where SkyPilot places them (or a clear refusal before
//! anything is made), and a variable no process could carry refused when
//! the task is submitted. Real `skydeck` binary, real server, `local`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use support::TestServer;

const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn describe(&self) -> String {
        format!(
            "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

async fn skydeck(server: &TestServer, cwd: &Path, args: &[&str]) -> Run {
    let child = tokio::process::Command::new(support::BINARY)
        .args(args)
        .current_dir(cwd)
        .env("SKYDECK_HOME", &server.home)
        .env("SKYDECK_API_SERVER_ENDPOINT", &server.url)
        .env_remove("SKYDECK_SERVICE_ACCOUNT_TOKEN")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot start skydeck");
    let output = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("`skydeck {}` ran too long", args.join(" ")))
        .expect("skydeck ran");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn start(scratch: &Path) -> (TestServer, PathBuf) {
    let server = TestServer::start(&scratch.join("home"), &[]);
    let cwd = scratch.join("work");
    std::fs::create_dir_all(&cwd).unwrap();
    (server, cwd)
}

/// Names under the server's `clusters/` directory.
fn cluster_dirs(server: &TestServer) -> Vec<String> {
    std::fs::read_dir(server.home.join("clusters"))
        .map(|dir| {
            dir.flatten()
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn requests(server: &TestServer) -> String {
    let url = format!("{}/api/status?all_status=true", server.url);
    let listing = support::http("GET", &url, None).await;
    assert_eq!(listing.status, 200, "{}", listing.body);
    listing.body
}

#[tokio::test(flavor = "multi_thread")]
async fn an_env_value_with_a_nul_byte_is_refused_before_anything_is_made() {
    let scratch = tempfile::tempdir().unwrap();
    let (server, cwd) = start(scratch.path());
    let task = "envs:\n  GOOD: ok\n  BAD_ONE: \"before\\0after\"\nrun: echo never\n";

    // Straight to the server, as any client may send it: a 400 when the
    // request is submitted, naming the variable.
    let body = serde_json::json!({"cluster_name": "nul", "task": task}).to_string();
    for path in ["/launch", "/exec"] {
        let refused = support::http("POST", &format!("{}{path}", server.url), Some(&body)).await;
        assert_eq!(refused.status, 400, "{path}: {}", refused.body);
        assert!(
            refused.body.contains("BAD_ONE") && refused.body.contains("NUL byte"),
            "{path}: {}",
            refused.body
        );
        assert!(!refused.body.contains("after"), "{}", refused.body);
    }

    // Our CLI refuses it before sending anything.
    std::fs::write(cwd.join("task.yaml"), task).unwrap();
    let run = skydeck(&server, &cwd, &["launch", "-y", "-c", "nul2", "task.yaml"]).await;
    assert_ne!(run.code, Some(0), "{}", run.describe());
    let said = format!("{}{}", run.stdout, run.stderr);
    assert!(
        said.contains("BAD_ONE") && said.contains("NUL byte"),
        "{}",
        run.describe()
    );

    assert!(
        !requests(&server).await.contains("sky."),
        "a request was accepted"
    );
    assert_eq!(cluster_dirs(&server), Vec::<String>::new());
    let status = skydeck(&server, &cwd, &["status"]).await;
    assert!(
        !status.stdout.contains("nul"),
        "a cluster was recorded: {}",
        status.describe()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn file_mounts_land_where_skypilot_places_them() {
    let scratch = tempfile::tempdir().unwrap();
    let (server, cwd) = start(scratch.path());
    std::fs::create_dir_all(cwd.join("proj")).unwrap();
    std::fs::write(cwd.join("proj/in-workdir.txt"), "from-the-workdir\n").unwrap();
    std::fs::write(cwd.join("extra.txt"), "from-a-file-mount\n").unwrap();
    std::fs::write(
        cwd.join("task.yaml"),
        "workdir: proj\n\
         file_mounts:\n  \
           rel/extra.txt: extra.txt\n  \
           ~/in-home/extra.txt: extra.txt\n\
         run: |\n  \
           echo relative=$(cat rel/extra.txt) workdir=$(cat in-workdir.txt)\n  \
           echo home=$(cat ~/in-home/extra.txt)\n",
    )
    .unwrap();
    let run = skydeck(
        &server,
        &cwd,
        &["launch", "-y", "-c", "mounts", "task.yaml"],
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.describe());
    for line in [
        "relative=from-a-file-mount workdir=from-the-workdir",
        "home=from-a-file-mount",
    ] {
        assert!(run.stdout.contains(line), "{line}: {}", run.describe());
    }
    let node = server.home.join("clusters/mounts/nodes/0");
    assert!(node.join("sky_workdir/rel/extra.txt").is_file());
    assert!(node.join("in-home/extra.txt").is_file());
    assert!(
        !node.join("rel").exists(),
        "a relative mount left the workdir"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_absolute_mount_on_local_is_refused_at_launch_never_moved() {
    let scratch = tempfile::tempdir().unwrap();
    let (server, cwd) = start(scratch.path());
    std::fs::write(cwd.join("extra.txt"), "payload\n").unwrap();
    // A destination the server could write to: refused all the same.
    let target = scratch.path().join("absolute-target/extra.txt");
    std::fs::write(
        cwd.join("task.yaml"),
        format!(
            "file_mounts:\n  {}: extra.txt\nrun: echo never-ran\n",
            target.display()
        ),
    )
    .unwrap();
    let run = skydeck(&server, &cwd, &["launch", "-y", "-c", "abs", "task.yaml"]).await;
    assert_ne!(run.code, Some(0), "{}", run.describe());
    let said = format!("{}{}", run.stdout, run.stderr);
    for needle in [
        "is an absolute path",
        "local infrastructure cannot place",
        "~/sky_workdir",
    ] {
        assert!(said.contains(needle), "{needle}: {}", run.describe());
    }
    assert!(!said.contains("never-ran"));
    assert!(
        !target.exists(),
        "the file was written at the absolute path"
    );
    assert_eq!(cluster_dirs(&server), Vec::<String>::new());
    let status = skydeck(&server, &cwd, &["status"]).await;
    assert!(
        !status.stdout.contains("abs"),
        "a cluster was recorded: {}",
        status.describe()
    );
}
