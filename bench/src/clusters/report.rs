//! The cluster benchmark's table and JSON document. There are no targets
//! for these numbers yet, so they are only reported.

use super::fleet::FleetRun;
use super::jobs::JobsRun;
use super::latency::Latency;
use crate::report::{format_mib, format_ms, kib_to_mib, round2, thousands};
use crate::server::{CpuTimes, Memory};
use crate::stats::Summary;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

pub struct ClusterReport {
    pub binary: PathBuf,
    pub cpus: usize,
    pub launch: Latency,
    pub exec: Latency,
    pub jobs: JobsRun,
    pub fleet: FleetRun,
    /// The server after everything was torn down.
    pub end_memory: Memory,
}

impl ClusterReport {
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Skydeck cluster benchmark: {}", self.binary.display());
        let _ = writeln!(
            out,
            "{} CPUs, local infrastructure, client on the same machine\n",
            self.cpus
        );
        latency_table(
            &mut out,
            &format!(
                "Launch to first log line ({} fresh clusters, one at a time)",
                self.launch.first_line.len()
            ),
            "POST /launch answered",
            "launch done (cluster UP, job queued)",
            &self.launch,
        );
        latency_table(
            &mut out,
            &format!(
                "Exec onto an UP cluster to first log line ({} runs)",
                self.exec.first_line.len()
            ),
            "POST /exec answered",
            "exec done (job queued)",
            &self.exec,
        );
        jobs_table(&mut out, &self.jobs);
        fleet_table(&mut out, &self.fleet);
        let _ = writeln!(
            out,
            "Server after every cluster was torn down: RSS {}, peak {}",
            format_mib(self.end_memory.rss_kib),
            format_mib(self.end_memory.hwm_kib)
        );
        out
    }

    pub fn to_json(&self) -> Value {
        let jobs = &self.jobs;
        let fleet = &self.fleet;
        json!({
            "binary": self.binary,
            "cpus": self.cpus,
            "launch_to_first_line": latency_json(&self.launch),
            "exec_to_first_line": latency_json(&self.exec),
            "short_jobs": jobs_json(jobs),
            "concurrent_launches": {
                "clusters": fleet.clusters,
                "launch_total_s": secs(fleet.launch_total),
                "launch_ms": summary_json(&fleet.launch),
                "launch_errors": fleet.launch_errors,
                "server_cpu_s": cpu_json(fleet.cpu_launch),
                "rss_after_launch_mib": round2(kib_to_mib(fleet.memory_after_launch.rss_kib)),
                "agents": fleet.agents,
                "agents_rss_mib": round2(kib_to_mib(fleet.agents_rss_kib)),
                "down_total_s": secs(fleet.down_total),
                "down_ms": summary_json(&fleet.down),
                "down_errors": fleet.down_errors,
                "agents_left": fleet.agents_left,
            },
            "rss_end_mib": round2(kib_to_mib(self.end_memory.rss_kib)),
            "peak_rss_mib": round2(kib_to_mib(self.end_memory.hwm_kib)),
        })
    }
}

/// The short-jobs run as JSON (shared with the SSH benchmark).
pub(crate) fn jobs_json(jobs: &JobsRun) -> Value {
    json!({
        "jobs": jobs.jobs,
        "succeeded": jobs.succeeded,
        "other_statuses": jobs.other,
        "submitted_s": secs(jobs.submitted),
        "submitted_per_s": round2(jobs.jobs as f64 / jobs.submitted.as_secs_f64()),
        "queued_s": secs(jobs.queued),
        "finished_s": secs(jobs.finished),
        "jobs_per_s": round2(jobs.rate()),
        "wall_per_job_ms": ms(jobs.per_job()),
        "command_alone_ms": summary_json(&jobs.alone),
        "agent_job_runtime_ms": summary_json(&jobs.runtime),
        "overhead_per_job_ms": jobs.overhead().map(ms),
        "agent_queue_wait_ms": summary_json(&jobs.wait),
        "max_running": jobs.max_running,
        "server_cpu_s": cpu_json(jobs.cpu),
        "agent_daemon_cpu_s": jobs.agent_cpu.map(cpu_json),
        "agent_state_bytes": jobs.agent_state_bytes,
        "rss_after_mib": round2(kib_to_mib(jobs.memory_after.rss_kib)),
    })
}

fn latency_table(out: &mut String, title: &str, accepted: &str, done: &str, l: &Latency) {
    let row = |name: &str, s: &Summary| {
        vec![
            format!("  {name}"),
            format_ms(s.median()),
            format_ms(s.percentile(90.0)),
            format_ms(s.max()),
        ]
    };
    let rows = vec![
        vec![
            title.to_owned(),
            "median".into(),
            "p90".into(),
            "max".into(),
        ],
        row(accepted, &l.accepted),
        row(done, &l.request_done),
        row("job started (agent's record)", &l.agent_started),
        row("first line of the job's log", &l.first_line),
        row("job ended (agent's record)", &l.agent_ended),
        row("job done (log stream ended)", &l.job_done),
    ];
    out.push_str(&render(&rows));
    out.push('\n');
}

pub(crate) fn jobs_table(out: &mut String, jobs: &JobsRun) {
    let runtime = &jobs.runtime;
    let mut rows = vec![
        vec![format!(
            "{} short jobs (`true`) through one cluster",
            jobs.jobs
        )],
        detail(
            "all POST /exec answered",
            format!(
                "{} ({} /s)",
                format_secs(jobs.submitted),
                thousands(jobs.jobs as f64 / jobs.submitted.as_secs_f64())
            ),
        ),
        detail("all jobs queued (/exec done)", format_secs(jobs.queued)),
        detail(
            "all jobs finished",
            format!("{} ({:.1} jobs/s)", format_secs(jobs.finished), jobs.rate()),
        ),
        detail(
            "succeeded",
            format!("{} of {}{}", jobs.succeeded, jobs.jobs, others(jobs)),
        ),
        detail("wall time per job", format_ms(Some(jobs.per_job()))),
        detail(
            "job's own run time (`bash -c` alone, p50)",
            format_ms(jobs.alone.median()),
        ),
        detail("overhead per job", format_ms(jobs.overhead())),
        detail(
            "start to end in the agent, p50 / p90 / max",
            format!(
                "{} / {} / {}",
                format_ms(runtime.median()),
                format_ms(runtime.percentile(90.0)),
                format_ms(runtime.max())
            ),
        ),
        detail(
            "wait in the agent's queue p50 / max",
            format!(
                "{} / {}",
                format_ms(jobs.wait.median()),
                format_ms(jobs.wait.max())
            ),
        ),
        detail("most jobs running at once", jobs.max_running.to_string()),
        detail("server CPU (own + agent commands)", format_cpu(jobs.cpu)),
        detail(
            "agent daemon CPU (own + jobs)",
            jobs.agent_cpu.map_or_else(|| "—".to_owned(), format_cpu),
        ),
        detail(
            "agent state file after",
            jobs.agent_state_bytes.map_or_else(
                || "—".to_owned(),
                |b| format!("{:.0} KiB", b as f64 / 1024.0),
            ),
        ),
        detail("server RSS after", format_mib(jobs.memory_after.rss_kib)),
    ];
    rows[0].resize(2, String::new());
    out.push_str(&render(&rows));
    out.push('\n');
}

pub(crate) fn fleet_table(out: &mut String, fleet: &FleetRun) {
    let mut rows = vec![
        vec![format!("{} clusters launched at once", fleet.clusters)],
        detail("all launches done", format_secs(fleet.launch_total)),
        detail(
            "per launch median / p90 / max",
            format!(
                "{} / {} / {}",
                format_ms(fleet.launch.median()),
                format_ms(fleet.launch.percentile(90.0)),
                format_ms(fleet.launch.max())
            ),
        ),
        detail(
            "launches failed",
            format!("{} of {}", fleet.launch_errors.len(), fleet.clusters),
        ),
        detail(
            "server CPU (own + agent commands)",
            format_cpu(fleet.cpu_launch),
        ),
        detail(
            "server RSS after",
            format_mib(fleet.memory_after_launch.rss_kib),
        ),
        detail(
            "agent daemons, RSS together",
            format!("{}, {}", fleet.agents, format_mib(fleet.agents_rss_kib)),
        ),
        detail("all downs done (at once)", format_secs(fleet.down_total)),
        detail(
            "per down median / max",
            format!(
                "{} / {}",
                format_ms(fleet.down.median()),
                format_ms(fleet.down.max())
            ),
        ),
        detail(
            "downs failed",
            format!("{} of {}", fleet.down_errors.len(), fleet.clusters),
        ),
        detail("agent daemons left", fleet.agents_left.to_string()),
    ];
    rows[0].resize(2, String::new());
    out.push_str(&render(&rows));
    for error in fleet.launch_errors.iter().chain(&fleet.down_errors).take(5) {
        let _ = writeln!(out, "  error: {error}");
    }
    out.push('\n');
}

pub(crate) fn detail(name: &str, value: String) -> Vec<String> {
    vec![format!("  {name}"), value]
}

fn others(jobs: &JobsRun) -> String {
    if jobs.other.is_empty() {
        return String::new();
    }
    let list: Vec<String> = jobs
        .other
        .iter()
        .map(|(status, n)| format!("{n} {status}"))
        .collect();
    format!(" ({})", list.join(", "))
}

/// Left-aligned columns, each as wide as its widest cell.
pub(crate) fn render(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|row| row.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            let _ = write!(line, "{cell:<width$}  ");
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

pub(crate) fn format_secs(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

pub(crate) fn format_cpu(cpu: CpuTimes) -> String {
    format!("{:.2} s + {:.2} s", cpu.own_s, cpu.children_s)
}

pub(crate) fn ms(duration: Duration) -> f64 {
    round2(duration.as_secs_f64() * 1e3)
}

pub(crate) fn secs(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1000.0).round() / 1000.0
}

fn latency_json(latency: &Latency) -> Value {
    json!({
        "runs": latency.first_line.len(),
        "accepted_ms": summary_json(&latency.accepted),
        "request_done_ms": summary_json(&latency.request_done),
        "agent_started_ms": summary_json(&latency.agent_started),
        "first_line_ms": summary_json(&latency.first_line),
        "agent_ended_ms": summary_json(&latency.agent_ended),
        "job_done_ms": summary_json(&latency.job_done),
    })
}

pub(crate) fn summary_json(summary: &Summary) -> Value {
    json!({
        "median": summary.median().map(ms),
        "p90": summary.percentile(90.0).map(ms),
        "max": summary.max().map(ms),
        "mean": summary.mean().map(ms),
    })
}

pub(crate) fn cpu_json(cpu: CpuTimes) -> Value {
    json!({"own": round2(cpu.own_s), "children": round2(cpu.children_s)})
}
