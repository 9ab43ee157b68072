//! Managed jobs on a shared server, from a non-admin's side: another
//! user's job is not listed, cannot be cancelled and its log cannot be
//! read; `--all-users` is for admins; the admin policy sees `jobs.launch`
//! and can refuse it; a job never takes over another user's cluster. Real
//! server with basic auth, `local`.

mod support;

use serde_json::{Value, json};
use skydeck_client::{Client, ClientError};
use std::time::{Duration, Instant};
use support::TestServer;
use support::team::{self, ADMIN, client as as_user};

async fn queue(client: &Client, all_users: bool) -> Vec<Value> {
    let id = client
        .submit("/jobs/queue/v2", &json!({ "all_users": all_users }))
        .await
        .unwrap();
    client.wait(&id).await.expect("the queue answers")["jobs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn refusal(result: Result<Value, ClientError>) -> String {
    match result {
        Err(ClientError::Request(error)) => format!("{}: {}", error.kind, error.message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn another_users_managed_jobs_are_out_of_reach() {
    let scratch = tempfile::tempdir().unwrap();
    let gate = scratch.path().join("gate");
    let server = team::start(&scratch.path().join("server"), &[], &["alice", "mallory"]).await;
    let admin = as_user(&server, ADMIN);
    let alice = as_user(&server, "alice:alice-pw");
    let mallory = as_user(&server, "mallory:mallory-pw");

    let task = format!(
        "name: secret-work\nrun: |\n  echo alice-private-output\n  \
         while [ ! -e '{}' ]; do sleep 0.1; done\n",
        gate.display()
    );
    let id = alice
        .submit("/jobs/launch", &json!({ "task": task }))
        .await
        .unwrap();
    let job = alice.wait(&id).await.unwrap()["job_id"].as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !queue(&alice, false)
        .await
        .iter()
        .any(|r| r["status"] == "RUNNING")
    {
        assert!(Instant::now() < deadline, "alice's job never ran");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Not listed, with or without --all-users, nor counted, whether the
    // queue is read whole or a page at a time (as `sky jobs queue` asks,
    // paged in the database).
    assert!(queue(&mallory, false).await.is_empty());
    assert!(queue(&mallory, true).await.is_empty());
    for all_users in [false, true] {
        let id = mallory
            .submit(
                "/jobs/queue/v2",
                &json!({ "all_users": all_users, "limit": 50 }),
            )
            .await
            .unwrap();
        let page = mallory.wait(&id).await.unwrap();
        assert_eq!(page["jobs"], json!([]), "{page}");
        assert_eq!(page["total"], 0, "{page}");
        assert_eq!(page["status_counts"], json!({}), "{page}");
    }
    let id = alice
        .submit("/jobs/queue/v2", &json!({ "limit": 50 }))
        .await
        .unwrap();
    let page = alice.wait(&id).await.unwrap();
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(page["jobs"][0]["job_id"], job, "{page}");
    assert_eq!(page["status_counts"], json!({ "RUNNING": 1 }), "{page}");
    // Neither cancelled by id nor by everyone's-jobs.
    let id = mallory
        .submit("/jobs/cancel", &json!({ "job_ids": [job] }))
        .await
        .unwrap();
    mallory.wait(&id).await.unwrap();
    let id = mallory
        .submit("/jobs/cancel", &json!({ "job_ids": [], "all_users": true }))
        .await
        .unwrap();
    let refused = refusal(mallory.wait(&id).await);
    assert!(refused.contains("Only an admin"), "{refused}");
    let id = mallory
        .submit("/jobs/cancel", &json!({ "job_ids": [], "all": true }))
        .await
        .unwrap();
    mallory.wait(&id).await.unwrap();
    let rows = queue(&alice, false).await;
    assert_eq!(rows[0]["status"], "RUNNING", "{rows:?}");
    // Nor its log read.
    let (id, stream) = mallory
        .submit_streaming("/jobs/logs", &json!({ "job_id": job, "follow": false }))
        .await
        .unwrap();
    let mut seen = Vec::new();
    stream.copy_to(&mut seen).await.unwrap();
    let seen = String::from_utf8_lossy(&seen).into_owned();
    assert!(!seen.contains("alice-private-output"), "{seen}");
    let code = mallory.wait(&id).await.unwrap();
    assert_eq!(code, json!(102), "an unknown job to mallory");
    // Nor copied out for download.
    let id = mallory
        .submit("/jobs/download_logs", &json!({ "job_id": job }))
        .await
        .unwrap();
    let refused = refusal(mallory.wait(&id).await);
    assert!(
        refused.contains(&format!("Job {job} not found")),
        "{refused}"
    );
    // Alice may: her folder, named as her client saves it.
    let id = alice
        .submit("/jobs/download_logs", &json!({ "job_id": job }))
        .await
        .unwrap();
    let folders = alice.wait(&id).await.unwrap();
    let folder = folders[job.to_string()].as_str().unwrap_or_default();
    assert!(
        folder.ends_with(&format!("/sky_logs/managed_jobs/managed-job-{job}")),
        "{folders}"
    );

    // The admin sees it with --all-users and may cancel it.
    let everyone = queue(&admin, true).await;
    assert!(everyone.iter().any(|r| r["job_id"] == job), "{everyone:?}");
    let id = admin
        .submit("/jobs/cancel", &json!({ "job_ids": [job] }))
        .await
        .unwrap();
    admin.wait(&id).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while queue(&alice, false).await[0]["status"] != "CANCELLED" {
        assert!(Instant::now() < deadline, "the job was never cancelled");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_policy_sees_and_may_refuse_a_managed_job() {
    let scratch = tempfile::tempdir().unwrap();
    let home = scratch.path().join("server");
    std::fs::create_dir_all(&home).unwrap();
    // The built-in policy: at most one node.
    std::fs::write(
        home.join("config.yaml"),
        "admin_policy:\n  max_num_nodes: 1\n",
    )
    .unwrap();
    let server = TestServer::start(&home, &[]);
    let client = Client::new(&server.url, None).unwrap();
    let id = client
        .submit(
            "/jobs/launch",
            &json!({ "task": "name: wide\nnum_nodes: 2\nrun: echo no\n" }),
        )
        .await
        .unwrap();
    let refused = refusal(client.wait(&id).await);
    assert!(
        refused.contains("UserRequestRejectedByPolicy") && refused.contains("max_num_nodes"),
        "{refused}"
    );
    assert!(queue(&client, true).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_never_takes_over_another_users_cluster_of_its_name() {
    let scratch = tempfile::tempdir().unwrap();
    let server = team::start(&scratch.path().join("server"), &[], &["alice", "mallory"]).await;
    let admin = as_user(&server, ADMIN);
    let alice = as_user(&server, "alice:alice-pw");
    let mallory = as_user(&server, "mallory:mallory-pw");
    // Mallory holds the name alice's first job's cluster would get.
    let id = mallory
        .submit(
            "/launch",
            &json!({ "task": "run: echo mallory\n", "cluster_name": "train-1" }),
        )
        .await
        .unwrap();
    mallory.wait(&id).await.expect("mallory's launch");

    let id = alice
        .submit(
            "/jobs/launch",
            &json!({ "task": "name: train\nrun: echo alice\n" }),
        )
        .await
        .unwrap();
    assert_eq!(alice.wait(&id).await.unwrap()["job_id"], 1);
    let deadline = Instant::now() + Duration::from_secs(60);
    let row = loop {
        let rows = queue(&alice, false).await;
        if let Some(row) = rows.first().filter(|r| r["status"] == "FAILED_PRECHECKS") {
            break row.clone();
        }
        assert!(Instant::now() < deadline, "the job did not fail: {rows:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let reason = row["failure_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("train-1 exists"), "{row}");
    // Mallory's cluster is untouched.
    let id = admin
        .submit("/status", &json!({ "all_users": true }))
        .await
        .unwrap();
    let clusters = admin.wait(&id).await.unwrap();
    let names: Vec<&str> = clusters
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["train-1"], "{clusters}");
}
