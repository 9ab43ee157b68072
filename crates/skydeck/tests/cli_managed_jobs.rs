//! `skydeck jobs launch|queue|logs|cancel`: the native CLI runs a managed
//! job to its end with the job's exit status, lists it, reads its log and
//! its controller's, cancels a running one, restarts a job that exits
//! with a code in `recover_on_exit_codes`, and runs a pipeline whose tasks
//! each bring a workdir. Real binary, real server,
//! `local`.

mod support;

use support::{TestServer, skydeck_cli};

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_launches_lists_reads_and_cancels_managed_jobs() {
    let scratch = tempfile::tempdir().unwrap();
    let server = TestServer::start(&scratch.path().join("home"), &[]);
    let cwd = scratch.path().join("work");
    std::fs::create_dir_all(&cwd).unwrap();
    std::fs::write(
        cwd.join("ok.yaml"),
        "name: ok\nrun: echo native-$SKYPILOT_MANAGED_JOB_ID\n",
    )
    .unwrap();
    std::fs::write(cwd.join("bad.yaml"), "name: bad\nrun: exit 7\n").unwrap();

    let ok = skydeck_cli(&server, &cwd, &["jobs", "launch", "-y", "ok.yaml"]).await;
    assert_eq!(ok.code, Some(0), "{}", ok.describe());
    assert!(ok.stdout.contains("native-1"), "{}", ok.describe());
    assert!(ok.stdout.contains("status: SUCCEEDED"), "{}", ok.describe());

    let bad = skydeck_cli(&server, &cwd, &["jobs", "launch", "-y", "bad.yaml"]).await;
    assert_eq!(
        bad.code,
        Some(100),
        "a failed job exits 100: {}",
        bad.describe()
    );

    let queue = skydeck_cli(&server, &cwd, &["jobs", "queue"]).await;
    assert_eq!(queue.code, Some(0), "{}", queue.describe());
    let lines: Vec<&str> = queue.stdout.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("2 ") && l.contains("FAILED"))
            && lines
                .iter()
                .any(|l| l.starts_with("1 ") && l.contains("SUCCEEDED")),
        "{}",
        queue.describe()
    );

    let logs = skydeck_cli(&server, &cwd, &["jobs", "logs", "--no-follow", "1"]).await;
    assert!(logs.stdout.contains("native-1"), "{}", logs.describe());
    let controller = skydeck_cli(&server, &cwd, &["jobs", "logs", "--controller", "2"]).await;
    assert!(
        controller.stdout.contains("User program crashed (FAILED)"),
        "{}",
        controller.describe()
    );
    assert_eq!(controller.code, Some(100), "{}", controller.describe());

    let gate = scratch.path().join("gate");
    std::fs::write(
        cwd.join("wait.yaml"),
        format!(
            "name: wait\nrun: |\n  while [ ! -e '{}' ]; do sleep 0.1; done\n",
            gate.display()
        ),
    )
    .unwrap();
    let detached = skydeck_cli(&server, &cwd, &["jobs", "launch", "-y", "-d", "wait.yaml"]).await;
    assert_eq!(detached.code, Some(0), "{}", detached.describe());
    let cancel = skydeck_cli(&server, &cwd, &["jobs", "cancel", "-y", "3"]).await;
    assert!(
        cancel
            .stdout
            .contains("Job with ID 3 is scheduled to be cancelled"),
        "{}",
        cancel.describe()
    );
    // Following the cancelled job ends with SkyPilot's CANCELLED code.
    let followed = skydeck_cli(&server, &cwd, &["jobs", "logs", "3"]).await;
    assert_eq!(followed.code, Some(103), "{}", followed.describe());
    // An exit code in recover_on_exit_codes restarts the job without
    // max_restarts_on_errors: the first run exits 33, the second succeeds.
    let marker = scratch.path().join("first-run-done");
    std::fs::write(
        cwd.join("retry.yaml"),
        format!(
            "name: retry\nresources:\n  job_recovery:\n    recover_on_exit_codes: [33]\n\
             run: |\n  if [ ! -e '{m}' ]; then touch '{m}'; exit 33; fi\n  echo second-run\n",
            m = marker.display()
        ),
    )
    .unwrap();
    let retried = skydeck_cli(&server, &cwd, &["jobs", "launch", "-y", "retry.yaml"]).await;
    assert_eq!(retried.code, Some(0), "{}", retried.describe());
    assert!(
        retried.stdout.contains("recover_on_exit_codes") && retried.stdout.contains("second-run"),
        "{}",
        retried.describe()
    );

    // A pipeline whose tasks each have a workdir of their own: both go up
    // in one upload, and each task runs in its own.
    for (dir, text) in [("prep-dir", "prepared"), ("train-dir", "trained")] {
        std::fs::create_dir_all(cwd.join(dir)).unwrap();
        std::fs::write(cwd.join(dir).join("what.txt"), text).unwrap();
    }
    std::fs::write(
        cwd.join("pipe.yaml"),
        "name: pipe\n---\nname: prep\nworkdir: prep-dir\nrun: cat what.txt; echo\n---\n\
         name: train\nworkdir: train-dir\nrun: cat what.txt; echo\n",
    )
    .unwrap();
    let piped = skydeck_cli(&server, &cwd, &["jobs", "launch", "-y", "pipe.yaml"]).await;
    assert_eq!(piped.code, Some(0), "{}", piped.describe());
    let out = &piped.stdout;
    assert!(
        out.find("prepared")
            .is_some_and(|prep| out.find("trained").is_some_and(|train| prep < train)),
        "{}",
        piped.describe()
    );

    let none = skydeck_cli(&server, &cwd, &["jobs", "cancel", "-y"]).await;
    assert_ne!(none.code, Some(0), "{}", none.describe());
    assert!(
        none.stderr.contains("Say which jobs to cancel"),
        "{}",
        none.describe()
    );
}
