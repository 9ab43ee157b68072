//! Conformance cases for managed jobs: ids, tasks, leases and the writes
//! that only the lease holder may make. Run on both databases by the
//! `conformance!` list in `conformance.rs`.

use skydeck_store::{ManagedJobFilter, ManagedJobPage, NewManagedJob, SqlStore, Store};
use skydeck_types::managed_jobs::{ManagedJobStatus, ScheduleState};
use std::collections::HashSet;
use std::sync::Arc;

fn job(name: &str, user: &str, tasks: &[&str]) -> NewManagedJob {
    NewManagedJob {
        request_id: format!("req-{name}"),
        name: name.to_owned(),
        user_id: user.to_owned(),
        workspace: "default".to_owned(),
        dag_yaml: format!("name: {name}\n---\nrun: echo {name}\n"),
        file_mounts_blob: None,
        entrypoint: format!("sky jobs launch {name}"),
        submitted_at: 100.0,
        tasks: tasks
            .iter()
            .map(|task| ((*task).to_owned(), "1x[CPU:1]".to_owned()))
            .collect(),
    }
}

pub async fn managed_jobs_get_ids_in_order_and_keep_their_tasks(store: Arc<SqlStore>) {
    let first = store
        .insert_managed_job(&job("a", "u1", &["a"]))
        .await
        .unwrap();
    let second = store
        .insert_managed_job(&job("pipe", "u2", &["prep", "train"]))
        .await
        .unwrap();
    assert_eq!((first, second), (1, 2));

    let pipe = store.get_managed_job(second).await.unwrap().unwrap();
    assert_eq!(pipe.name, "pipe");
    assert_eq!(pipe.user_id, "u2");
    assert!(!pipe.done && !pipe.cancel_requested && pipe.lease_owner.is_none());
    let names: Vec<&str> = pipe.tasks.iter().map(|t| t.task_name.as_str()).collect();
    assert_eq!(names, ["prep", "train"]);
    assert!(
        pipe.tasks
            .iter()
            .all(|t| t.status == ManagedJobStatus::Pending
                && t.schedule_state == ScheduleState::Waiting
                && t.attempt == 0)
    );
    assert_eq!(
        store.managed_job_dag(second).await.unwrap().unwrap(),
        "name: pipe\n---\nrun: echo pipe\n"
    );
    assert!(store.get_managed_job(99).await.unwrap().is_none());
    // The same request again (resumed after a crash) makes no second job.
    assert_eq!(
        store
            .insert_managed_job(&job("a", "u1", &["a"]))
            .await
            .unwrap(),
        first
    );

    let all = store.list_managed_jobs(None).await.unwrap();
    assert_eq!(all.iter().map(|j| j.job_id).collect::<Vec<_>>(), [2, 1]);
    assert_eq!(all[0].tasks.len(), 2);
    assert_eq!(all.len(), 2);
    assert_eq!(store.list_active_managed_jobs(None).await.unwrap(), all);
    let mine = store.list_managed_jobs(Some("u1")).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].tasks.len(), 1);
}

pub async fn racing_inserts_get_distinct_ids(store: Arc<SqlStore>) {
    let inserts = (0..16).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .insert_managed_job(&job(&format!("j{i}"), "u", &["t"]))
                .await
                .unwrap()
        })
    });
    let mut ids = HashSet::new();
    for insert in inserts {
        assert!(ids.insert(insert.await.unwrap()));
    }
    assert_eq!(ids, (1..=16).collect());
}

pub async fn only_the_lease_holder_drives_a_job(store: Arc<SqlStore>) {
    let id = store
        .insert_managed_job(&job("a", "u", &["a"]))
        .await
        .unwrap();
    assert_eq!(
        store
            .claim_managed_jobs("s1", 10.0, 40.0, 100)
            .await
            .unwrap(),
        [id]
    );
    // Held by s1 until 40: s2 gets nothing, s1 renews.
    assert!(
        store
            .claim_managed_jobs("s2", 20.0, 50.0, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .claim_managed_jobs("s1", 30.0, 60.0, 100)
            .await
            .unwrap(),
        [id]
    );

    let mut task = store.get_managed_job(id).await.unwrap().unwrap().tasks[0].clone();
    // Times unset, then set, through the same statement (PostgreSQL once
    // refused the second after a cached prepare of the first).
    task.status = ManagedJobStatus::Starting;
    assert!(store.update_managed_task("s1", &task).await.unwrap());
    task.status = ManagedJobStatus::Running;
    task.schedule_state = ScheduleState::Alive;
    task.attempt = 1;
    task.cluster_name = Some("a-1".into());
    task.cluster_job_id = Some(3);
    assert!(store.managed_cluster_names().await.unwrap().is_empty());
    task.start_at = Some(31.0);
    task.last_started_at = Some(31.0);
    assert!(!store.update_managed_task("s2", &task).await.unwrap());
    assert!(store.update_managed_task("s1", &task).await.unwrap());
    assert_eq!(
        store.get_managed_job(id).await.unwrap().unwrap().tasks[0],
        task
    );

    // s1 stops renewing: once the lease has run out, s2 takes the job over
    // and s1's writes are refused.
    assert_eq!(
        store
            .claim_managed_jobs("s2", 61.0, 90.0, 100)
            .await
            .unwrap(),
        [id]
    );
    task.status = ManagedJobStatus::Failed;
    assert!(!store.update_managed_task("s1", &task).await.unwrap());
    assert!(!store.finish_managed_job("s1", id).await.unwrap());

    assert!(store.cancel_managed_job(id).await.unwrap());
    assert!(
        store
            .get_managed_job(id)
            .await
            .unwrap()
            .unwrap()
            .cancel_requested
    );
    assert!(store.finish_managed_job("s2", id).await.unwrap());
    let done = store.get_managed_job(id).await.unwrap().unwrap();
    assert!(done.done && done.lease_owner.is_none());
    assert!(store.managed_cluster_names().await.unwrap().is_empty());
    assert!(
        store
            .list_active_managed_jobs(None)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.list_managed_jobs(None).await.unwrap().len(), 1);
    // A done job is claimed by no one, takes no writes and no cancel.
    assert!(
        store
            .claim_managed_jobs("s2", 100.0, 130.0, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!store.update_managed_task("s2", &task).await.unwrap());
    assert!(!store.cancel_managed_job(id).await.unwrap());
}

pub async fn released_leases_are_taken_at_once_and_claims_split_jobs(store: Arc<SqlStore>) {
    for i in 0..20 {
        store
            .insert_managed_job(&job(&format!("j{i}"), "u", &["t"]))
            .await
            .unwrap();
    }
    let (a, b) = tokio::join!(
        store.claim_managed_jobs("s1", 1.0, 100.0, 1000),
        store.claim_managed_jobs("s2", 1.0, 100.0, 1000),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let a_set: HashSet<i64> = a.iter().copied().collect();
    assert!(b.iter().all(|id| !a_set.contains(id)), "{a:?} {b:?}");
    assert_eq!(a.len() + b.len(), 20);

    let limited = store.claim_managed_jobs("s1", 2.0, 100.0, 3).await.unwrap();
    assert!(limited.len() <= 3);
    let held_by_s1 = a.len() as u64;
    assert_eq!(store.release_managed_jobs("s1").await.unwrap(), held_by_s1);
    let taken = store
        .claim_managed_jobs("s3", 3.0, 100.0, 1000)
        .await
        .unwrap();
    assert_eq!(taken, a);
}

pub async fn pages_of_managed_jobs_count_the_whole_selection(store: Arc<SqlStore>) {
    // u1: jobs 1 (done), 2 (a pipeline) and 3; u2 in workspace "team": 4, 5.
    for (name, user, tasks) in [
        ("a", "u1", &["a"][..]),
        ("pipe", "u1", &["prep", "train"][..]),
        ("c", "u1", &["c"][..]),
        ("d", "u2", &["d"][..]),
        ("e", "u2", &["e"][..]),
    ] {
        let mut new = job(name, user, tasks);
        if user == "u2" {
            new.workspace = "team".to_owned();
        }
        store.insert_managed_job(&new).await.unwrap();
    }
    store.claim_managed_jobs("s", 1.0, 9.0, 100).await.unwrap();
    let mut task = store.get_managed_job(1).await.unwrap().unwrap().tasks[0].clone();
    task.status = ManagedJobStatus::Succeeded;
    assert!(store.update_managed_task("s", &task).await.unwrap());
    assert!(store.finish_managed_job("s", 1).await.unwrap());

    let everyone = ManagedJobFilter::default();
    let ids = |page: &ManagedJobPage| page.jobs.iter().map(|j| j.job_id).collect::<Vec<_>>();
    let first = store.page_managed_jobs(&everyone, 0, 2).await.unwrap();
    assert_eq!(ids(&first), [5, 4]);
    assert_eq!(first.total, 5);
    assert_eq!(
        first.status_counts,
        [
            (ManagedJobStatus::Pending, 5),
            (ManagedJobStatus::Succeeded, 1)
        ]
    );
    let second = store.page_managed_jobs(&everyone, 2, 2).await.unwrap();
    assert_eq!(ids(&second), [3, 2]);
    let names: Vec<&str> = second.jobs[1]
        .tasks
        .iter()
        .map(|t| t.task_name.as_str())
        .collect();
    assert_eq!(names, ["prep", "train"], "a page's jobs carry their tasks");
    assert_eq!(
        ids(&store.page_managed_jobs(&everyone, 4, 2).await.unwrap()),
        [1]
    );
    let past = store.page_managed_jobs(&everyone, 10, 2).await.unwrap();
    assert!(past.jobs.is_empty());
    assert_eq!(past.total, 5, "the count does not depend on the page");

    let u1 = ManagedJobFilter {
        user_id: Some("u1".to_owned()),
        ..ManagedJobFilter::default()
    };
    let page = store.page_managed_jobs(&u1, 0, 10).await.unwrap();
    assert_eq!((ids(&page), page.total), (vec![3, 2, 1], 3));
    let active = ManagedJobFilter {
        active_only: true,
        ..u1.clone()
    };
    let page = store.page_managed_jobs(&active, 0, 10).await.unwrap();
    assert_eq!((ids(&page), page.total), (vec![3, 2], 2));
    assert_eq!(page.status_counts, [(ManagedJobStatus::Pending, 3)]);

    let team = ManagedJobFilter {
        workspaces: Some(vec!["team".to_owned()]),
        ..ManagedJobFilter::default()
    };
    assert_eq!(
        ids(&store.page_managed_jobs(&team, 0, 10).await.unwrap()),
        [5, 4]
    );
    let nowhere = ManagedJobFilter {
        workspaces: Some(Vec::new()),
        ..ManagedJobFilter::default()
    };
    let page = store.page_managed_jobs(&nowhere, 0, 10).await.unwrap();
    assert_eq!((page.jobs.len(), page.total), (0, 0));
    assert!(page.status_counts.is_empty());
}
