//! The official SkyPilot CLI (`skypilot==0.14.1`, from `SKYDECK_TEST_SKY`)
//! launches tasks that check the shell SkyPilot runs jobs in: the checks of
//! SkyPilot's own `examples/env_check.yaml` (a `~/.bashrc` extended by setup
//! and seen by run, the workdir, `SKYPILOT_*` variables on two nodes, no
//! GPU assignment in setup), a relative file mount, and stdout and stderr
//! in one ordered log. Skipped without the client, except under CI.

mod support;

use support::TestServer;
use support::sky::{Report, Sky, official_sky, temp_dir};

/// The run checks each node; any failure exits non-zero with a reason.
const RUN: &str = r#"run: |
  set -u
  [[ "$TEST_VAR" == test ]] || { echo "TEST_VAR from ~/.bashrc is missing"; exit 1; }
  [[ -d ~/sky_workdir/sky ]] || { echo "the workdir is not ~/sky_workdir"; exit 1; }
  [[ "$PWD" == "$HOME/sky_workdir" ]] || { echo "the job starts in $PWD"; exit 1; }
  [[ -n "$SKYPILOT_NODE_RANK" ]] || { echo "no SKYPILOT_NODE_RANK"; exit 1; }
  [[ $(echo "$SKYPILOT_NODE_IPS" | wc -l) == 2 ]] || { echo "SKYPILOT_NODE_IPS: $SKYPILOT_NODE_IPS"; exit 1; }
  [[ "$SKYPILOT_TASK_ID" =~ ^sky-[0-9]{4}(-[0-9]{2}){5}-[0-9]{6}_envc_1$ ]] || { echo "task id: $SKYPILOT_TASK_ID"; exit 1; }
  [[ "$(cat data/mounted.txt)" == mounted-payload ]] || { echo "relative file mount missing"; exit 1; }
  echo "order-1"; echo "order-2" >&2; echo "order-3"
  echo "node $SKYPILOT_NODE_RANK checks passed"
"#;

/// Setup writes a `~/.bashrc` that returns early unless the shell is
/// interactive (as Debian's does) and exports after the guard.
const SETUP: &str = r#"setup: |
  echo setup-on-$SKYPILOT_SETUP_NODE_RANK
  echo '[ -z "$PS1" ] && return' >> ~/.bashrc
  echo 'export TEST_VAR=test' >> ~/.bashrc
  [[ -v CUDA_VISIBLE_DEVICES ]] && exit 1 || exit 0
"#;

#[tokio::test(flavor = "multi_thread")]
async fn official_sky_client_runs_skypilots_env_check() {
    let Some(executable) = official_sky() else {
        return;
    };
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let server = TestServer::start(&temp_dir(scratch.path(), "server"), &[]);
    let sky = Sky {
        executable,
        home: temp_dir(scratch.path(), "client-home"),
    };
    let mut report = Report {
        server: &server,
        failures: String::new(),
    };
    let project = temp_dir(scratch.path(), "project");
    std::fs::create_dir_all(project.join("sky")).unwrap();
    std::fs::write(project.join("sky/__init__.py"), "").unwrap();
    let mounted = scratch.path().join("mounted.txt");
    std::fs::write(&mounted, "mounted-payload\n").unwrap();
    let task = project.join("env_check.yaml");
    std::fs::write(
        &task,
        format!(
            "num_nodes: 2\nworkdir: {}\nfile_mounts:\n  data/mounted.txt: {}\n{SETUP}{RUN}",
            project.display(),
            mounted.display()
        ),
    )
    .unwrap();
    let task = task.to_str().unwrap();

    let login = sky.run(&["api", "login", "-e", &server.url]).await;
    report.expect(&login, &["Logged into SkyPilot API server"]);

    let launch = sky.run(&["launch", "-y", "-c", "envc", task]).await;
    report.expect(
        &launch,
        &[
            "setup-on-0",
            "setup-on-1",
            "node 0 checks passed",
            "node 1 checks passed",
        ],
    );

    let status = sky.run(&["logs", "--status", "envc", "1"]).await;
    report.expect(&status, &["SUCCEEDED"]);

    let logs = sky.run(&["logs", "envc", "1"]).await;
    report.expect(&logs, &["node 0 checks passed"]);
    // Each node's stdout and stderr lines in the order they were written.
    for rank in ["rank=0", "rank=1"] {
        let order: Vec<&str> = logs
            .stdout
            .lines()
            .filter(|line| line.contains(rank))
            .filter_map(|line| line.split_whitespace().last())
            .filter(|word| word.starts_with("order-"))
            .collect();
        report.check(
            &logs,
            order == ["order-1", "order-2", "order-3"],
            &format!("stdout and stderr of {rank} in order in the log: {order:?}"),
        );
    }

    // An absolute destination cannot be honoured on `local`: a clean error
    // at launch, and no cluster.
    let absolute = project.join("absolute.yaml");
    std::fs::write(
        &absolute,
        format!(
            "file_mounts:\n  /opt/skydeck-never/mounted.txt: {}\nrun: echo never-ran\n",
            mounted.display()
        ),
    )
    .unwrap();
    let refused = sky
        .run(&["launch", "-y", "-c", "absmount", absolute.to_str().unwrap()])
        .await;
    let said = refused.output();
    report.check(
        &refused,
        !refused.success()
            && said.contains("is an absolute path")
            && said.contains("~/sky_workdir")
            && !said.contains("Traceback")
            && !said.contains("never-ran"),
        "an absolute file mount on local is refused at launch, cleanly",
    );
    let status = sky.run(&["status"]).await;
    report.check(
        &status,
        !status.output().contains("absmount"),
        "the refused launch left no cluster",
    );

    let down = sky.run(&["down", "-y", "envc"]).await;
    report.expect(&down, &[]);
    report.finish();
}
