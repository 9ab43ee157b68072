//! Following work on the server: a request's log until the request
//! finishes, a job's log until the job ends. Ctrl-C stops following and
//! leaves the work running (the caller says how to pick it up again).

use super::base;
use serde_json::Value;
use skydeck_client::{Client, ClientError};
use skydeck_server::config::Paths;
use skydeck_types::bodies::LogsBody;
use skydeck_types::names::ClusterName;
use std::time::Duration;

pub enum Followed<T> {
    Finished(T),
    /// The user pressed Ctrl-C; the work goes on without us.
    Detached,
}

/// Streams request `id`'s log to stderr until it finishes; then its
/// value, or its error. The log is progress (launch stages), not the
/// command's output: stdout carries only what the job prints.
pub async fn request(client: &Client, id: &str) -> Result<Followed<Value>, ClientError> {
    let follow = async {
        let stream = client.open_stream(id, true, None).await?;
        tokio::select! {
            streamed = stream.for_each_line(|line| eprintln!("{line}")) => streamed?,
            Ok(()) = tokio::signal::ctrl_c() => return Ok(Followed::Detached),
        }
        client.wait(id).await.map(Followed::Finished)
    };
    super::waiting::noting_the_wait(client, id, follow).await
}

/// What to read of a job's log.
pub struct JobLog<'a> {
    pub cluster: &'a ClusterName,
    /// `None`: the cluster's latest job.
    pub job_id: Option<u64>,
    pub follow: bool,
    /// Only the last lines; 0 for the whole log.
    pub tail: u64,
}

/// Prints a job's log on stdout (following it while it runs, if asked);
/// then SkyPilot's job exit code: 0 succeeded, 100 failed, 101 not
/// finished, 102 not found, 103 cancelled.
pub async fn job_log(
    client: &Client,
    paths: &Paths,
    log: &JobLog<'_>,
) -> Result<Followed<i64>, ClientError> {
    let body = LogsBody {
        base: base(paths),
        cluster_name: log.cluster.clone(),
        job_id: log.job_id,
        follow: log.follow,
        tail: log.tail,
    };
    let (id, stream) = client.submit_streaming("/logs", &body).await?;
    let mut stdout = std::io::stdout();
    tokio::select! {
        streamed = stream.copy_to(&mut stdout) => streamed?,
        Ok(()) = tokio::signal::ctrl_c() => {
            stop_following(client, paths, &id).await;
            return Ok(Followed::Detached);
        }
    }
    let code = client.wait(&id).await?;
    Ok(Followed::Finished(code.as_i64().unwrap_or(1)))
}

/// The server would otherwise keep a worker following the job's log until
/// the job ends. Cancelling this `sky.logs` request only stops that
/// following; the job is untouched. Best effort: we are leaving anyway.
async fn stop_following(client: &Client, paths: &Paths, logs_request: &str) {
    let mut body = crate::endpoint::base_body(paths);
    let user = body["env_vars"]["SKYPILOT_USER_ID"].clone();
    body.insert("request_ids".into(), serde_json::json!([logs_request]));
    body.insert("user_id".into(), user);
    let cancel = async {
        if let Ok(id) = client.submit("/api/cancel", &body).await {
            let _ = client.wait(&id).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(3), cancel).await;
}

/// The job status a `sky logs` exit code stands for.
pub fn exit_code_meaning(code: i64) -> &'static str {
    match code {
        0 => "SUCCEEDED",
        100 => "FAILED",
        101 => "NOT FINISHED",
        102 => "NOT FOUND",
        103 => "CANCELLED",
        _ => "UNKNOWN",
    }
}

/// The process exit status for a job exit code (they fit in a byte).
pub fn exit_status(code: i64) -> std::process::ExitCode {
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}
