//! Turns the measurements into the human table or the JSON document, with
//! each number next to its target.

use crate::load::LoadResult;
use crate::server::{Memory, Stop};
use crate::stats::Summary;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// Decimal megabytes: the targets are stated in MB.
const MB: f64 = 1_000_000.0;
const MIB: f64 = 1024.0 * 1024.0;

pub struct Startup {
    pub listening: Summary,
    pub healthy: Summary,
}

pub struct StatusRun {
    pub concurrency: usize,
    pub result: LoadResult,
}

pub struct Report {
    pub binary: PathBuf,
    pub cpus: usize,
    pub duration: Duration,
    pub startup: Startup,
    pub idle_rss_kib: u64,
    pub health: LoadResult,
    pub status_runs: Vec<StatusRun>,
    pub after_load: Memory,
    pub stop: Stop,
}

/// One number held against the goal the project set for it.
struct Target {
    name: String,
    goal: &'static str,
    value: f64,
    unit: &'static str,
    met: bool,
}

impl Report {
    fn targets(&self) -> Vec<Target> {
        let startup_ms = millis(self.startup.healthy.median());
        let mut targets = vec![
            Target {
                name: "start-up to healthy (median)".into(),
                goal: "< 100 ms",
                value: startup_ms,
                unit: "ms",
                met: startup_ms < 100.0,
            },
            Target {
                name: "idle RSS".into(),
                goal: "< 30 MB",
                value: kib_to_mib(self.idle_rss_kib),
                unit: "MiB",
                met: kib_to_bytes(self.idle_rss_kib) < 30.0 * MB,
            },
            Target {
                name: format!("/api/health, {} connections", self.health.concurrency),
                goal: "> 20,000 req/s",
                value: self.health.rate(),
                unit: "req/s",
                met: self.health.rate() > 20_000.0,
            },
        ];
        for run in &self.status_runs {
            targets.push(Target {
                name: format!("/status round trips, {} connection(s)", run.concurrency),
                goal: "> 2,000 /s",
                value: run.result.rate(),
                unit: "/s",
                met: run.result.rate() > 2_000.0,
            });
        }
        targets.push(Target {
            name: "RSS after load".into(),
            goal: "< 100 MB",
            value: kib_to_mib(self.after_load.rss_kib),
            unit: "MiB",
            met: kib_to_bytes(self.after_load.rss_kib) < 100.0 * MB,
        });
        targets
    }

    pub fn to_json(&self) -> Value {
        let targets: Vec<Value> = self
            .targets()
            .into_iter()
            .map(|t| json!({"name": t.name, "target": t.goal, "value": round2(t.value), "unit": t.unit, "met": t.met}))
            .collect();
        json!({
            "binary": self.binary,
            "cpus": self.cpus,
            "run_duration_s": self.duration.as_secs_f64(),
            "startup": {
                "runs": self.startup.healthy.len(),
                "healthy_ms": summary_json(&self.startup.healthy),
                "listening_line_ms": summary_json(&self.startup.listening),
            },
            "idle_rss_mib": round2(kib_to_mib(self.idle_rss_kib)),
            "health": load_json(&self.health),
            "status_round_trips": self.status_runs.iter().map(|run| load_json(&run.result)).collect::<Vec<_>>(),
            "rss_after_load_mib": round2(kib_to_mib(self.after_load.rss_kib)),
            "peak_rss_mib": round2(kib_to_mib(self.after_load.hwm_kib)),
            "stop": {
                "took_ms": round2(self.stop.took.as_secs_f64() * 1e3),
                "graceful": self.stop.graceful,
                "exit": self.stop.exit,
            },
            "targets": targets,
        })
    }

    pub fn to_table(&self) -> String {
        let mut rows = Vec::new();
        let mut targets = self.targets().into_iter();
        let mut next_target = || targets.next().expect("one target per headline row");

        rows.push(Row::target(
            next_target(),
            format_ms(self.startup.healthy.median()),
        ));
        rows.push(Row::detail(
            "  min / max",
            format!(
                "{} / {}",
                format_ms(self.startup.healthy.min()),
                format_ms(self.startup.healthy.max())
            ),
        ));
        rows.push(Row::detail(
            "  to the listening line (median)",
            format_ms(self.startup.listening.median()),
        ));
        rows.push(Row::target(next_target(), format_mib(self.idle_rss_kib)));
        rows.push(Row::target(
            next_target(),
            format!("{} req/s", thousands(self.health.rate())),
        ));
        rows.extend(load_details(&self.health));
        for run in &self.status_runs {
            rows.push(Row::target(
                next_target(),
                format!("{} /s", thousands(run.result.rate())),
            ));
            rows.extend(load_details(&run.result));
        }
        rows.push(Row::target(
            next_target(),
            format_mib(self.after_load.rss_kib),
        ));
        rows.push(Row::detail(
            "peak RSS (VmHWM)",
            format_mib(self.after_load.hwm_kib),
        ));
        rows.push(Row::detail(
            "stop on SIGTERM",
            format!(
                "{} ({}{})",
                format_ms(Some(self.stop.took)),
                self.stop.exit,
                if self.stop.graceful {
                    ""
                } else {
                    ", needed SIGKILL"
                }
            ),
        ));

        let mut out = String::new();
        let _ = writeln!(out, "Skydeck benchmark: {}", self.binary.display());
        let _ = writeln!(
            out,
            "{} CPUs, {} start-ups, {:.1} s per load run, load generator on the same machine\n",
            self.cpus,
            self.startup.healthy.len(),
            self.duration.as_secs_f64()
        );
        out.push_str(&render_rows(&rows));
        out.push_str(&error_section(self));
        out
    }
}

/// A table line: headline rows carry a target and a verdict, detail rows
/// only a value.
struct Row {
    metric: String,
    result: String,
    goal: String,
    verdict: String,
}

impl Row {
    fn target(target: Target, result: String) -> Self {
        Self {
            metric: target.name,
            result,
            goal: target.goal.to_owned(),
            verdict: if target.met { "met" } else { "MISSED" }.to_owned(),
        }
    }

    fn detail(metric: &str, result: String) -> Self {
        Self {
            metric: metric.to_owned(),
            result,
            goal: String::new(),
            verdict: String::new(),
        }
    }
}

fn load_details(result: &LoadResult) -> Vec<Row> {
    vec![
        Row::detail(
            "  latency p50 / p99",
            format!(
                "{} / {}",
                format_ms(result.latency.percentile(50.0)),
                format_ms(result.latency.percentile(99.0))
            ),
        ),
        Row::detail(
            "  errors",
            format!(
                "{} of {}",
                result.errors,
                thousands((result.completed + result.errors) as f64)
            ),
        ),
    ]
}

fn render_rows(rows: &[Row]) -> String {
    let headers = Row {
        metric: "Metric".into(),
        result: "Result".into(),
        goal: "Target".into(),
        verdict: String::new(),
    };
    let width = |get: fn(&Row) -> &str| {
        rows.iter()
            .chain(std::iter::once(&headers))
            .map(|row| get(row).chars().count())
            .max()
            .unwrap_or(0)
    };
    let metric_w = width(|r| &r.metric);
    let result_w = width(|r| &r.result);
    let goal_w = width(|r| &r.goal);
    let mut out = String::new();
    for row in std::iter::once(&headers).chain(rows) {
        let line = format!(
            "{:<metric_w$}  {:<result_w$}  {:<goal_w$}  {}",
            row.metric, row.result, row.goal, row.verdict
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// The most frequent error messages of each load run, if any: numbers
/// measured while the server was failing mean little without them.
fn error_section(report: &Report) -> String {
    let runs = std::iter::once(("/api/health", &report.health)).chain(
        report
            .status_runs
            .iter()
            .map(|run| ("/status round trips", &run.result)),
    );
    let mut out = String::new();
    for (name, result) in runs {
        if result.error_samples.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "\nerrors in {name}, {} connection(s):",
            result.concurrency
        );
        for (message, count) in result.error_samples.iter().take(5) {
            let _ = writeln!(out, "  {count} x {message}");
        }
    }
    out
}

fn summary_json(summary: &Summary) -> Value {
    json!({
        "min": summary.min().map(|d| round2(d.as_secs_f64() * 1e3)),
        "median": summary.median().map(|d| round2(d.as_secs_f64() * 1e3)),
        "max": summary.max().map(|d| round2(d.as_secs_f64() * 1e3)),
    })
}

fn load_json(result: &LoadResult) -> Value {
    let ms = |d: Option<Duration>| d.map(|d| round3(d.as_secs_f64() * 1e3));
    json!({
        "concurrency": result.concurrency,
        "elapsed_s": round3(result.elapsed.as_secs_f64()),
        "completed": result.completed,
        "errors": result.errors,
        "per_second": round2(result.rate()),
        "latency_ms": {
            "p50": ms(result.latency.percentile(50.0)),
            "p99": ms(result.latency.percentile(99.0)),
            "max": ms(result.latency.max()),
        },
        "error_samples": result
            .error_samples
            .iter()
            .map(|(message, count)| json!({"message": message, "count": count}))
            .collect::<Vec<_>>(),
    })
}

fn millis(duration: Option<Duration>) -> f64 {
    duration.map_or(f64::INFINITY, |d| d.as_secs_f64() * 1e3)
}

pub(crate) fn format_ms(duration: Option<Duration>) -> String {
    match duration {
        None => "-".into(),
        Some(d) if d < Duration::from_millis(10) => format!("{:.2} ms", d.as_secs_f64() * 1e3),
        Some(d) => format!("{:.1} ms", d.as_secs_f64() * 1e3),
    }
}

fn kib_to_bytes(kib: u64) -> f64 {
    kib as f64 * 1024.0
}

pub(crate) fn kib_to_mib(kib: u64) -> f64 {
    kib_to_bytes(kib) / MIB
}

pub(crate) fn format_mib(kib: u64) -> String {
    format!("{:.1} MiB", kib_to_mib(kib))
}

/// `12345.6` → `12,346`: rates are easier to compare with separators.
pub(crate) fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(crate) fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

pub(crate) fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1_234_567.8), "1,234,568");
    }
}
