//! The cluster and job operations the benchmarks drive, over the typed
//! client the CLI uses, so bodies and headers are the ones real clients
//! send. Only `/logs` is done by hand: its answer is the log stream itself,
//! and the benchmark needs the moment each line arrives.

use anyhow::{Context, bail};
use serde_json::Value;
use skydeck_client::Client;
use skydeck_types::bodies::{
    ExecBody, JobStatusBody, LaunchBody, LogsBody, QueueBody, StopOrDownBody,
};
use skydeck_types::names::ClusterName;
use skydeck_types::version::{
    API_VERSION, HEADER_API_VERSION, HEADER_REQUEST_ID, HEADER_VERSION, SKYPILOT_COMPAT_VERSION,
};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// No single operation here should take anywhere near this on local
/// infrastructure; the bound only keeps a stuck server from hanging the
/// benchmark (and its clean-up) forever.
pub const OP_TIMEOUT: Duration = Duration::from_secs(120);

/// A task as the official client dumps it (`dump_dag_to_yaml_str`): a dag
/// header document, then the task. `run` goes in as a YAML string literal so
/// a command such as `true` is not read as a boolean.
pub fn task_yaml(name: &str, run: Option<&str>) -> String {
    task_yaml_on(name, run, None)
}

/// [`task_yaml`] on infrastructure `infra` (`ssh/<pool>`); none: `local`.
pub fn task_yaml_on(name: &str, run: Option<&str>, infra: Option<&str>) -> String {
    let mut yaml = format!("name: {name}\n---\nname: {name}\nnum_nodes: 1\n");
    if let Some(infra) = infra {
        yaml.push_str(&format!("resources:\n  infra: {infra}\n"));
    }
    if let Some(run) = run {
        let quoted = serde_json::to_string(run).expect("a string serializes");
        yaml.push_str(&format!("run: {quoted}\n"));
    }
    yaml
}

pub struct Api {
    client: Client,
    /// For `/logs` only; the same configured client the CLI uses.
    http: reqwest::Client,
    endpoint: String,
}

/// What following a job's log saw.
pub struct LogFollow {
    /// When the first line of the job's output arrived (not a control line).
    pub first_line_at: Option<Instant>,
    pub first_line: Option<String>,
    /// When the stream ended, which the server does once the job finished.
    pub ended_at: Instant,
    /// SkyPilot's job exit code, from the `/logs` request's result.
    pub exit_code: Option<i64>,
}

/// One job as `/queue` reports it; times are the agent's UNIX timestamps.
#[derive(Debug, Clone)]
pub struct QueuedJob {
    pub job_id: u64,
    pub status: String,
    pub submitted_at: Option<f64>,
    pub start_at: Option<f64>,
    pub end_at: Option<f64>,
}

/// SkyPilot's terminal job statuses.
pub const FINISHED: [&str; 5] = [
    "SUCCEEDED",
    "FAILED",
    "FAILED_SETUP",
    "FAILED_DRIVER",
    "CANCELLED",
];

impl QueuedJob {
    pub fn is_finished(&self) -> bool {
        FINISHED.contains(&self.status.as_str())
    }
}

impl Api {
    pub fn new(addr: SocketAddr) -> anyhow::Result<Self> {
        let endpoint = format!("http://{addr}");
        Ok(Self {
            client: Client::new(&endpoint, None)?,
            http: skydeck_client::http_client()?,
            endpoint,
        })
    }

    /// `POST /launch`; returns the request id as soon as it is accepted.
    pub async fn submit_launch(&self, cluster: &str, task: String) -> anyhow::Result<String> {
        let body = LaunchBody {
            task,
            cluster_name: Some(ClusterName::new(cluster)?),
            ..LaunchBody::default()
        };
        self.client
            .submit("/launch", &body)
            .await
            .with_context(|| format!("POST /launch of {cluster}"))
    }

    /// `POST /exec`; returns the request id as soon as it is accepted.
    pub async fn submit_exec(&self, cluster: &str, task: String) -> anyhow::Result<String> {
        let body = ExecBody {
            task,
            ..ExecBody::new(ClusterName::new(cluster)?)
        };
        self.client
            .submit("/exec", &body)
            .await
            .with_context(|| format!("POST /exec on {cluster}"))
    }

    /// `GET /api/get`: waits for the request and returns its value, or its
    /// error as an error.
    pub async fn wait(&self, id: &str) -> anyhow::Result<Value> {
        tokio::time::timeout(OP_TIMEOUT, self.client.wait(id))
            .await
            .with_context(|| format!("request {id} did not finish within {OP_TIMEOUT:?}"))?
            .with_context(|| format!("request {id}"))
    }

    /// The job id a finished `/launch` or `/exec` returned.
    pub fn job_id(value: &Value) -> anyhow::Result<u64> {
        value["job_id"]
            .as_u64()
            .with_context(|| format!("no job id in the result {value}"))
    }

    /// `POST /down`, waited for.
    pub async fn down(&self, cluster: &str) -> anyhow::Result<()> {
        let body = StopOrDownBody {
            ..StopOrDownBody::new(ClusterName::new(cluster)?)
        };
        let id = self
            .client
            .submit("/down", &body)
            .await
            .with_context(|| format!("POST /down of {cluster}"))?;
        self.wait(&id).await?;
        Ok(())
    }

    /// `POST /ssh_node_pools/{pool}/deploy` (`sky ssh up --infra POOL`) or
    /// `…/down`; returns the request id. The CLI sends no body.
    pub async fn submit_ssh_pool(&self, pool: &str, up: bool) -> anyhow::Result<String> {
        let action = if up { "deploy" } else { "down" };
        let path = format!("/ssh_node_pools/{pool}/{action}");
        self.client
            .submit(&path, &serde_json::json!({}))
            .await
            .with_context(|| format!("POST {path}"))
    }

    /// A request's log (`/api/stream`, followed until the request ends),
    /// each line with the moment it arrived.
    pub async fn request_log(&self, id: &str) -> anyhow::Result<Vec<(Instant, String)>> {
        let mut lines = Vec::new();
        tokio::time::timeout(
            OP_TIMEOUT,
            self.client.stream(id, true, None, |line| {
                lines.push((Instant::now(), line.to_owned()));
            }),
        )
        .await
        .with_context(|| format!("the log of request {id} did not end"))?
        .with_context(|| format!("GET /api/stream of {id}"))?;
        Ok(lines)
    }

    /// The head node's address of `cluster`, from `/status`.
    pub async fn head_ip(&self, cluster: &str) -> anyhow::Result<String> {
        let body =
            serde_json::json!({"cluster_names": [cluster], "refresh": "NONE", "all_users": true});
        let id = self
            .client
            .submit("/status", &body)
            .await
            .context("POST /status")?;
        let value = self.wait(&id).await?;
        value[0]["head_ip"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("/status of {cluster} names no head_ip: {value}"))
    }

    /// `POST /queue` for every user's jobs, finished ones included.
    pub async fn queue(&self, cluster: &str) -> anyhow::Result<Vec<QueuedJob>> {
        let body = QueueBody {
            skip_finished: false,
            all_users: true,
            ..QueueBody::new(ClusterName::new(cluster)?)
        };
        let id = self
            .client
            .submit("/queue", &body)
            .await
            .with_context(|| format!("POST /queue of {cluster}"))?;
        let value = self.wait(&id).await?;
        let records = value
            .as_array()
            .with_context(|| format!("/queue returned {value}, not a list"))?;
        records.iter().map(queued_job).collect()
    }

    /// `POST /job_status` for one job: its status, as `sky logs --status`
    /// asks for it. A small answer, so polling it costs the server little.
    pub async fn job_status(&self, cluster: &str, job_id: u64) -> anyhow::Result<String> {
        let body = JobStatusBody {
            job_ids: Some(vec![job_id]),
            ..JobStatusBody::new(ClusterName::new(cluster)?)
        };
        let id = self
            .client
            .submit("/job_status", &body)
            .await
            .with_context(|| format!("POST /job_status of {cluster}"))?;
        let value = self.wait(&id).await?;
        Ok(value[job_id.to_string()]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// `POST /logs` with follow, as `sky logs` and `sky launch` do: reads
    /// the streamed answer until it ends, noting when the first line of
    /// the job's output arrived, then fetches the job's exit code.
    pub async fn follow_log(&self, cluster: &str, job_id: u64) -> anyhow::Result<LogFollow> {
        tokio::time::timeout(OP_TIMEOUT, self.follow_log_inner(cluster, job_id))
            .await
            .with_context(|| format!("the log of job {job_id} on {cluster} did not end"))?
    }

    async fn follow_log_inner(&self, cluster: &str, job_id: u64) -> anyhow::Result<LogFollow> {
        let body = LogsBody {
            job_id: Some(job_id),
            follow: true,
            tail: 0,
            ..LogsBody::new(ClusterName::new(cluster)?)
        };
        let mut response = self
            .http
            .post(format!("{}/logs", self.endpoint))
            .header(HEADER_API_VERSION, API_VERSION.to_string())
            .header(HEADER_VERSION, SKYPILOT_COMPAT_VERSION)
            .json(&body)
            .send()
            .await
            .context("POST /logs")?;
        if !response.status().is_success() {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            bail!("POST /logs -> {status}: {}", text.trim());
        }
        let request_id = response
            .headers()
            .get(HEADER_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut lines = LineSplitter::default();
        let mut first: Option<(Instant, String)> = None;
        while let Some(chunk) = response.chunk().await.context("reading the /logs stream")? {
            if first.is_none()
                && let Some(line) = lines.push(&chunk).into_iter().next()
            {
                first = Some((Instant::now(), line));
            }
        }
        let ended_at = Instant::now();
        let exit_code = match request_id {
            Some(id) => self.wait(&id).await?.as_i64(),
            None => None,
        };
        let (first_line_at, first_line) = first.unzip();
        Ok(LogFollow {
            first_line_at,
            first_line,
            ended_at,
            exit_code,
        })
    }
}

fn queued_job(record: &Value) -> anyhow::Result<QueuedJob> {
    Ok(QueuedJob {
        job_id: record["job_id"]
            .as_u64()
            .with_context(|| format!("a /queue record without a job id: {record}"))?,
        status: record["status"].as_str().unwrap_or_default().to_owned(),
        submitted_at: record["submitted_at"].as_f64(),
        start_at: record["start_at"].as_f64(),
        end_at: record["end_at"].as_f64(),
    })
}

/// Splits a byte stream into the lines a person would see: control lines
/// (`<sky-payload>…`, heartbeats) are dropped, as the official client does.
#[derive(Default)]
struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]);
            let text = text.trim_end_matches('\r');
            if !text.starts_with("<sky-payload>") {
                out.push(text.to_owned());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_lines_are_not_output_and_lines_may_span_chunks() {
        let mut lines = LineSplitter::default();
        assert!(
            lines
                .push(b"<sky-payload>\"x\"</sky-payload>\nhel")
                .is_empty()
        );
        assert_eq!(lines.push(b"lo\r\nworld\n"), ["hello", "world"]);
    }

    #[test]
    fn the_task_is_a_dag_header_then_the_task_with_run_quoted() {
        let yaml = task_yaml("b", Some("true"));
        assert_eq!(yaml, "name: b\n---\nname: b\nnum_nodes: 1\nrun: \"true\"\n");
        let tasks = skydeck_types::task::parse_tasks(&yaml).unwrap();
        assert_eq!(tasks[0].run.as_deref(), Some("true"));
        assert!(!task_yaml("b", None).contains("run"));
        let on_pool = task_yaml_on("b", Some("true"), Some("ssh/bench"));
        let tasks = skydeck_types::task::parse_tasks(&on_pool).unwrap();
        assert_eq!(tasks[0].resources.infra.as_deref(), Some("ssh/bench"));
    }
}
