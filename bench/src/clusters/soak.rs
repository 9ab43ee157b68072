//! `skydeck-bench soak`: many rounds of what users do all day — launch a
//! cluster, exec a job onto it, read both jobs' logs, tear it down — on one
//! server whose retention is short, and the state directory's size and the
//! server's RSS before, during and after. With retention working, both stay
//! bounded however many rounds run: requests, their logs and prepared
//! downloads go once they are older than the retention.

use super::api::{Api, task_yaml};
use super::{Created, agent_daemons};
use crate::progress;
use crate::server::{Memory, Server};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub struct Config {
    pub rounds: u32,
    /// Rounds in flight at once.
    pub concurrency: u32,
    /// The server's request retention.
    pub retention: Duration,
}

/// The state directory and the server at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub rounds_done: u32,
    pub state_bytes: u64,
    pub state_files: u64,
    pub memory: Memory,
}

pub struct SoakReport {
    pub config_rounds: u32,
    pub retention: Duration,
    pub took: Duration,
    pub samples: Vec<(&'static str, Sample)>,
}

impl SoakReport {
    pub fn to_table(&self) -> String {
        let mut out = format!(
            "soak: {} rounds (launch + exec + 2 log reads + down), retention {:.0} s, {:.1} s\n",
            self.config_rounds,
            self.retention.as_secs_f64(),
            self.took.as_secs_f64()
        );
        out.push_str(&format!(
            "{:<28} {:>8} {:>14} {:>8} {:>10} {:>10}\n",
            "when", "rounds", "state bytes", "files", "RSS KiB", "HWM KiB"
        ));
        for (when, s) in &self.samples {
            out.push_str(&format!(
                "{:<28} {:>8} {:>14} {:>8} {:>10} {:>10}\n",
                when,
                s.rounds_done,
                s.state_bytes,
                s.state_files,
                s.memory.rss_kib,
                s.memory.hwm_kib
            ));
        }
        out
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "rounds": self.config_rounds,
            "retention_s": self.retention.as_secs_f64(),
            "took_s": self.took.as_secs_f64(),
            "samples": self.samples.iter().map(|(when, s)| serde_json::json!({
                "when": when,
                "rounds_done": s.rounds_done,
                "state_bytes": s.state_bytes,
                "state_files": s.state_files,
                "rss_kib": s.memory.rss_kib,
                "hwm_kib": s.memory.hwm_kib,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Runs the soak on `server` (started with `config.retention`); clusters
/// are torn down even when a round fails.
pub async fn run(server: &Server, config: &Config) -> anyhow::Result<SoakReport> {
    let api = Arc::new(Api::new(server.addr)?);
    let created = Created::default();
    let outcome = soak(server, &api, &created, config).await;
    for name in created.names() {
        let _ = api.down(&name).await;
    }
    for pid in agent_daemons(&server.home()) {
        let _ = tokio::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await;
    }
    outcome
}

async fn soak(
    server: &Server,
    api: &Arc<Api>,
    created: &Created,
    config: &Config,
) -> anyhow::Result<SoakReport> {
    let started = Instant::now();
    let done = Arc::new(AtomicU32::new(0));
    let mut samples = vec![("before", sample(server, 0)?)];
    let next = Arc::new(AtomicU32::new(0));
    let quarter = (config.rounds / 4).max(1);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..config.concurrency {
        let (api, created, next, done) = (api.clone(), created.clone(), next.clone(), done.clone());
        let rounds = config.rounds;
        workers.spawn(async move {
            loop {
                let round = next.fetch_add(1, Ordering::Relaxed);
                if round >= rounds {
                    return anyhow::Ok(());
                }
                one_round(&api, &created, round).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let mut next_sample = quarter;
    let mut ticker = tokio::time::interval(Duration::from_millis(200));
    while !workers.is_empty() {
        tokio::select! {
            finished = workers.join_next() => {
                if let Some(result) = finished {
                    result??;
                }
            }
            _ = ticker.tick() => {}
        }
        let now = done.load(Ordering::Relaxed);
        if now >= next_sample && now < config.rounds {
            progress(&format!("soak: {now} of {} rounds", config.rounds));
            samples.push(("during", sample(server, now)?));
            next_sample += quarter;
        }
    }
    let took = started.elapsed();
    samples.push(("after the last round", sample(server, config.rounds)?));
    // One retention and a sweep later, what the rounds left is gone.
    let settle = config.retention + config.retention / 10 + Duration::from_secs(2);
    progress(&format!(
        "soak: waiting {:.0} s for the retention to pass",
        settle.as_secs_f64()
    ));
    tokio::time::sleep(settle).await;
    samples.push(("one retention later", sample(server, config.rounds)?));
    Ok(SoakReport {
        config_rounds: config.rounds,
        retention: config.retention,
        took,
        samples,
    })
}

/// Launch a fresh cluster, exec onto it, read both jobs' logs, tear it
/// down.
async fn one_round(api: &Api, created: &Created, round: u32) -> anyhow::Result<()> {
    let name = format!("soak-{round}");
    created.add(&name);
    let launch = api
        .submit_launch(&name, task_yaml("soak", Some("echo launched; seq 1 200")))
        .await?;
    let launched = Api::job_id(&api.wait(&launch).await?)?;
    let exec = api
        .submit_exec(&name, task_yaml("soak", Some("echo executed; seq 1 200")))
        .await?;
    let executed = Api::job_id(&api.wait(&exec).await?)?;
    for job in [launched, executed] {
        let follow = api.follow_log(&name, job).await?;
        if follow.exit_code != Some(0) {
            anyhow::bail!("job {job} on {name} ended with {:?}", follow.exit_code);
        }
    }
    created.down(api, &name).await
}

fn sample(server: &Server, rounds_done: u32) -> anyhow::Result<Sample> {
    let (state_bytes, state_files) = usage(&server.home());
    Ok(Sample {
        rounds_done,
        state_bytes,
        state_files,
        memory: server.memory()?,
    })
}

/// Bytes and files under `dir` (links not followed; unreadable parts, such
/// as a cluster torn down meanwhile, count as empty).
fn usage(dir: &Path) -> (u64, u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    let mut total = (0, 0);
    for entry in entries.flatten() {
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if meta.is_dir() {
            let (bytes, files) = usage(&entry.path());
            total = (total.0 + bytes, total.1 + files);
        } else {
            total = (total.0 + meta.len(), total.1 + 1);
        }
    }
    total
}
