//! `skydeck-bench managed-jobs`: many managed jobs at once through one
//! server on `local` — the server's memory per active job, the CPU its
//! controller spends, submission to RUNNING — and how long `jobs queue`
//! takes to answer with a long history.
//!
//! Jobs go through the server's API as the official client sends them.
//! The history is written straight into the server's SQLite file as
//! finished jobs (a server never drives a finished job), so that it costs
//! seconds instead of ten thousand cluster launches.

use crate::progress;
use crate::report::{format_mib, kib_to_mib, round2};
use crate::server::Server;
use crate::stats::Summary;
use anyhow::{Context, bail};
use serde_json::{Value, json};
use skydeck_client::Client;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

pub struct Config {
    /// Jobs submitted at once.
    pub jobs: u32,
    /// How long each job's `run` sleeps.
    pub sleep_secs: u32,
    /// Finished jobs in the history when the queue is timed.
    pub history: u32,
}

/// The longest the benchmark waits for every job to end.
const RUN_LIMIT: Duration = Duration::from_secs(1800);
/// Queue answers timed with the history in place.
const QUEUE_CALLS: usize = 20;

pub struct ManagedJobsReport {
    pub jobs: u32,
    pub submit_total: Duration,
    /// From submission to RUNNING, per job (the server's own times).
    pub to_running: Summary,
    pub all_done: Duration,
    pub succeeded: usize,
    /// RSS before any job, at its highest while jobs ran, and the most
    /// jobs in progress at one sample.
    pub rss_before_kib: u64,
    pub rss_peak_kib: u64,
    pub peak_active: usize,
    /// RSS at the last sample where every job was RUNNING at once (none if
    /// that never happened: raise --sleep).
    pub rss_all_running_kib: Option<u64>,
    /// RSS once every job ended (and its cluster is gone).
    pub rss_after_kib: u64,
    /// The same RSS samples in the second wave.
    pub second_rss_before_kib: u64,
    pub second_rss_all_running_kib: Option<u64>,
    pub second_rss_after_kib: u64,
    pub cpu_secs: f64,
    pub history: u32,
    pub queue_all: Summary,
    pub queue_page: Summary,
}

/// One wave: `config.jobs` jobs submitted at once and followed to their
/// end.
async fn wave(server: &Server, client: &Client, config: &Config) -> anyhow::Result<Wave> {
    let rss_before_kib = server.memory()?.rss_kib;
    let cpu_before = server.cpu()?;
    progress(&format!("submitting {} managed jobs at once", config.jobs));
    let started = Instant::now();
    let mut submits = tokio::task::JoinSet::new();
    for i in 0..config.jobs {
        let client = client.clone();
        let task = format!(
            "name: mj-{i}\n---\nname: mj-{i}\nrun: \"sleep {}\"\n",
            config.sleep_secs
        );
        submits.spawn(async move {
            let id = client
                .submit("/jobs/launch", &json!({ "task": task }))
                .await?;
            let value = client.wait(&id).await?;
            value["job_id"]
                .as_u64()
                .context("the launch answered no job id")
        });
    }
    let mut ids = Vec::new();
    while let Some(joined) = submits.join_next().await {
        ids.push(joined??);
    }
    let submit_total = started.elapsed();

    progress("waiting for every job to end");
    // Polled through the counts alone: the server keeps its last answers
    // for `/api/get`, and full listings every half second would be what
    // its memory measures.
    let mut rss_peak_kib = rss_before_kib;
    let mut peak_active = 0;
    let mut rss_all_running_kib = None;
    loop {
        let (active, running) = active_counts(client).await?;
        peak_active = peak_active.max(active);
        let rss = server.memory()?.rss_kib;
        rss_peak_kib = rss_peak_kib.max(rss);
        if running == ids.len() {
            rss_all_running_kib = Some(rss);
        }
        if active == 0 {
            break;
        }
        if started.elapsed() > RUN_LIMIT {
            bail!(
                "{active} of {} jobs still running after {RUN_LIMIT:?}",
                ids.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let all_done = started.elapsed();
    let rss_after_kib = server.memory()?.rss_kib;
    let cpu = server.cpu()?.since(cpu_before);
    let cpu_secs = cpu.own_s + cpu.children_s;
    let rows = queue(client, None).await?;
    let mine: Vec<&Value> = rows
        .iter()
        .filter(|row| row["job_id"].as_u64().is_some_and(|id| ids.contains(&id)))
        .collect();
    let to_running = Summary::of(
        mine.iter()
            .filter_map(|row| {
                let waited = row["start_at"].as_f64()? - row["submitted_at"].as_f64()?;
                Some(Duration::from_secs_f64(waited.max(0.0)))
            })
            .collect(),
    );
    let succeeded = mine
        .iter()
        .filter(|row| row["status"] == "SUCCEEDED")
        .count();

    Ok(Wave {
        submit_total,
        to_running,
        all_done,
        succeeded,
        rss_before_kib,
        rss_peak_kib,
        peak_active,
        rss_all_running_kib,
        rss_after_kib,
        cpu_secs,
    })
}

/// What one wave of jobs measured.
struct Wave {
    submit_total: Duration,
    to_running: Summary,
    all_done: Duration,
    succeeded: usize,
    rss_before_kib: u64,
    rss_peak_kib: u64,
    peak_active: usize,
    rss_all_running_kib: Option<u64>,
    rss_after_kib: u64,
    cpu_secs: f64,
}

pub async fn run(server: &Server, config: &Config) -> anyhow::Result<ManagedJobsReport> {
    let client = Client::new(&format!("http://{}", server.addr), None)?;
    let first = wave(server, &client, config).await?;
    // The first wave leaves the allocator holding what the burst of
    // launches used; a second wave on top shows what running jobs cost.
    progress("a second wave, on the memory the first left");
    let second = wave(server, &client, config).await?;
    progress(&format!(
        "writing {} finished jobs into the history",
        config.history
    ));
    write_history(server, config.history).await?;
    let mut all = Vec::new();
    let mut page = Vec::new();
    for _ in 0..QUEUE_CALLS {
        let at = Instant::now();
        queue(&client, None).await?;
        all.push(at.elapsed());
        let at = Instant::now();
        queue(&client, Some(50)).await?;
        page.push(at.elapsed());
    }
    Ok(ManagedJobsReport {
        jobs: config.jobs,
        submit_total: first.submit_total,
        to_running: first.to_running,
        all_done: first.all_done,
        succeeded: first.succeeded + second.succeeded,
        rss_before_kib: first.rss_before_kib,
        rss_peak_kib: first.rss_peak_kib,
        peak_active: first.peak_active,
        rss_all_running_kib: first.rss_all_running_kib,
        rss_after_kib: first.rss_after_kib,
        second_rss_before_kib: second.rss_before_kib,
        second_rss_all_running_kib: second.rss_all_running_kib,
        second_rss_after_kib: second.rss_after_kib,
        cpu_secs: first.cpu_secs,
        history: config.history,
        queue_all: Summary::of(all),
        queue_page: Summary::of(page),
    })
}

fn is_terminal(status: &str) -> bool {
    matches!(
        status,
        "SUCCEEDED"
            | "CANCELLED"
            | "FAILED"
            | "FAILED_SETUP"
            | "FAILED_PRECHECKS"
            | "FAILED_NO_RESOURCE"
            | "FAILED_CONTROLLER"
    )
}

/// Jobs in progress, and how many of them run: from `status_counts` of a
/// one-row page of the unfinished jobs.
async fn active_counts(client: &Client) -> anyhow::Result<(usize, usize)> {
    let id = client
        .submit(
            "/jobs/queue/v2",
            &json!({ "all_users": true, "skip_finished": true, "limit": 1 }),
        )
        .await?;
    let value = client.wait(&id).await?;
    let counts = value["status_counts"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let count = |status: &str| counts.get(status).and_then(Value::as_u64).unwrap_or(0) as usize;
    let active = counts
        .iter()
        .filter(|(status, _)| !is_terminal(status))
        .map(|(_, n)| n.as_u64().unwrap_or(0) as usize)
        .sum();
    Ok((active, count("RUNNING")))
}

/// Every user's jobs (the first `limit`), as `sky jobs queue -u` asks.
async fn queue(client: &Client, limit: Option<u64>) -> anyhow::Result<Vec<Value>> {
    let id = client
        .submit(
            "/jobs/queue/v2",
            &json!({ "all_users": true, "limit": limit }),
        )
        .await?;
    let value = client.wait(&id).await?;
    Ok(value["jobs"].as_array().cloned().unwrap_or_default())
}

/// `count` finished one-task jobs, inserted in one transaction beside the
/// running server (SQLite takes a second writer; it waits its turn).
async fn write_history(server: &Server, count: u32) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut conn = server.state_db().await?;
    let mut tx = conn.begin().await?;
    let first: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(job_id), 0) + 1 FROM managed_jobs")
        .fetch_one(&mut *tx)
        .await?;
    for n in 0..i64::from(count) {
        let id = first + n;
        let at = 1.7e9 + n as f64;
        sqlx::query(
            "INSERT INTO managed_jobs (job_id, request_id, name, user_id, workspace, dag_yaml, \
             entrypoint, submitted_at, cancel_requested, done) VALUES ($1, $2, $3, 'bench', \
             'default', 'run: true', 'skydeck-bench', $4, 0, 1)",
        )
        .bind(id)
        .bind(format!("bench-history-{id}"))
        .bind(format!("history-{id}"))
        .bind(at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO managed_job_tasks (job_id, task_id, task_name, resources, status, \
             schedule_state, start_at, end_at, run_seconds, attempt) VALUES ($1, 0, $2, \
             '1x[CPU:0.5]', 'SUCCEEDED', 'DONE', $3, $4, 1.0, 1)",
        )
        .bind(id)
        .bind(format!("history-{id}"))
        .bind(at + 1.0)
        .bind(at + 2.0)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

impl ManagedJobsReport {
    fn per_job_kib(&self) -> f64 {
        let grown = self.rss_peak_kib.saturating_sub(self.rss_before_kib) as f64;
        grown / self.peak_active.max(1) as f64
    }

    /// Second wave: growth per job over what the first wave left.
    fn second_per_running_job_kib(&self) -> Option<f64> {
        self.second_rss_all_running_kib.map(|rss| {
            rss.saturating_sub(self.second_rss_before_kib) as f64 / f64::from(self.jobs.max(1))
        })
    }

    /// Memory per job while every job runs: the cost of driving one.
    fn per_running_job_kib(&self) -> Option<f64> {
        self.rss_all_running_kib
            .map(|rss| rss.saturating_sub(self.rss_before_kib) as f64 / f64::from(self.jobs.max(1)))
    }

    pub fn to_json(&self) -> Value {
        let ms = |summary: &Summary| {
            json!({
                "median_ms": summary.median().map(|d| round2(d.as_secs_f64() * 1e3)),
                "p90_ms": summary.percentile(90.0).map(|d| round2(d.as_secs_f64() * 1e3)),
                "max_ms": summary.max().map(|d| round2(d.as_secs_f64() * 1e3)),
            })
        };
        json!({
            "jobs": self.jobs,
            "submit_total_s": round2(self.submit_total.as_secs_f64()),
            "to_running": ms(&self.to_running),
            "all_done_s": round2(self.all_done.as_secs_f64()),
            "succeeded": self.succeeded,
            "rss_before_mib": round2(kib_to_mib(self.rss_before_kib)),
            "rss_peak_mib": round2(kib_to_mib(self.rss_peak_kib)),
            "peak_active_jobs": self.peak_active,
            "rss_per_active_job_kib": round2(self.per_job_kib()),
            "rss_all_running_mib": self.rss_all_running_kib.map(|kib| round2(kib_to_mib(kib))),
            "rss_per_running_job_kib": self.per_running_job_kib().map(round2),
            "rss_after_mib": round2(kib_to_mib(self.rss_after_kib)),
            "second_wave": {
                "rss_before_mib": round2(kib_to_mib(self.second_rss_before_kib)),
                "rss_all_running_mib": self.second_rss_all_running_kib.map(|kib| round2(kib_to_mib(kib))),
                "rss_after_mib": round2(kib_to_mib(self.second_rss_after_kib)),
                "rss_per_running_job_kib": self.second_per_running_job_kib().map(round2),
            },
            "server_cpu_s": round2(self.cpu_secs),
            "history_jobs": self.history,
            "queue_all": ms(&self.queue_all),
            "queue_first_50": ms(&self.queue_page),
        })
    }

    pub fn to_table(&self) -> String {
        let ms = |summary: &Summary| {
            format!(
                "median {:.1} ms, p90 {:.1} ms, max {:.1} ms",
                summary.median().unwrap_or_default().as_secs_f64() * 1e3,
                summary.percentile(90.0).unwrap_or_default().as_secs_f64() * 1e3,
                summary.max().unwrap_or_default().as_secs_f64() * 1e3,
            )
        };
        let mut out = String::new();
        let _ = writeln!(out, "Managed jobs on local ({} at once, twice)", self.jobs);
        let _ = writeln!(
            out,
            "  submitted in            {:.2} s",
            self.submit_total.as_secs_f64()
        );
        let _ = writeln!(out, "  submission to RUNNING   {}", ms(&self.to_running));
        let _ = writeln!(
            out,
            "  all ended after         {:.1} s ({} succeeded)",
            self.all_done.as_secs_f64(),
            self.succeeded
        );
        let _ = writeln!(
            out,
            "  server RSS              {} before, {} at peak ({} jobs in progress): {:.0} KiB per job",
            format_mib(self.rss_before_kib),
            format_mib(self.rss_peak_kib),
            self.peak_active,
            self.per_job_kib()
        );
        match (self.rss_all_running_kib, self.per_running_job_kib()) {
            (Some(rss), Some(per_job)) => {
                let _ = writeln!(
                    out,
                    "  server RSS, all running {}: {per_job:.0} KiB per running job",
                    format_mib(rss)
                );
            }
            _ => {
                let _ = writeln!(out, "  (the jobs never all ran at once: raise --sleep)");
            }
        }
        let _ = writeln!(
            out,
            "  server RSS, all ended   {}",
            format_mib(self.rss_after_kib)
        );
        let _ = writeln!(
            out,
            "  second wave             {} before, {} all running ({}), {} after",
            format_mib(self.second_rss_before_kib),
            self.second_rss_all_running_kib
                .map_or_else(|| "-".to_owned(), format_mib),
            self.second_per_running_job_kib().map_or_else(
                || "-".to_owned(),
                |kib| format!("{kib:.0} KiB per running job")
            ),
            format_mib(self.second_rss_after_kib)
        );
        let _ = writeln!(out, "  server CPU              {:.2} s", self.cpu_secs);
        let _ = writeln!(
            out,
            "  jobs queue, {} jobs     all: {}",
            self.history + 2 * self.jobs,
            ms(&self.queue_all)
        );
        let _ = writeln!(
            out,
            "                          first 50: {}",
            ms(&self.queue_page)
        );
        out
    }
}
