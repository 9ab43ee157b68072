//! Job operations on a cluster's agent: queue, cancel, logs, job status,
//! endpoints.

use super::{OpResult, RequestContext, internal};
use crate::clusters::handle_of;
use crate::request_log::LossyUtf8;
use crate::skypilot::exception;
use serde_json::{Value, json};
use skydeck_infra::{LogFollow, READER_GONE};
use skydeck_store::{ClusterRecord, ClusterStatus};
use skydeck_types::RequestError;
use skydeck_types::bodies::{
    CancelBody, DownloadLogsBody, EndpointsBody, JobStatusBody, LogsBody, QueueBody,
};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

async fn up_cluster(ctx: &RequestContext, name: &str) -> Result<ClusterRecord, RequestError> {
    let cluster = ctx
        .store
        .get_cluster(name)
        .await
        .map_err(internal)?
        .ok_or_else(|| {
            RequestError::new(
                exception::CLUSTER_DOES_NOT_EXIST,
                format!("Cluster {name:?} does not exist."),
            )
        })?;
    // Checked here, in the operation, not only when the request came in.
    super::ownership::check_owner(ctx, &cluster).await?;
    // A cluster a check flipped to INIT (a host does not answer) still has
    // its jobs on its head: they are reached while the head answers.
    let unhealthy =
        cluster.status == ClusterStatus::Init && ctx.infra.health.is_unhealthy(&cluster);
    if cluster.status != ClusterStatus::Up && !unhealthy {
        return Err(RequestError::new(
            "ClusterNotUpError",
            format!(
                "Cluster {name:?} is {}; its jobs can only be reached while it is UP \
                 (`sky start {name}`).",
                cluster.status
            ),
        ));
    }
    Ok(cluster)
}

fn agent_error(err: skydeck_infra::InfraError) -> RequestError {
    RequestError::new(exception::RUNTIME_ERROR, err.to_string())
}

pub async fn queue(ctx: &RequestContext, body: QueueBody) -> OpResult {
    let cluster = up_cluster(ctx, &body.cluster_name).await?;
    let user = (!body.all_users).then_some(ctx.user_id.as_str());
    let jobs = ctx
        .infra
        .agent(&cluster)?
        .queue(user, body.skip_finished)
        .await
        .map_err(agent_error)?;
    serde_json::to_value(crate::skypilot::records::job_records(jobs)).map_err(internal)
}

pub async fn cancel(ctx: &RequestContext, body: CancelBody) -> OpResult {
    let cluster = up_cluster(ctx, &body.cluster_name).await?;
    let ids = body.job_ids.unwrap_or_default();
    let user = (!body.all_users).then_some(ctx.user_id.as_str());
    // `sky cancel -u CLUSTER` with no ids cancels every user's jobs.
    let all = body.all || (body.all_users && ids.is_empty());
    let cancelled = ctx
        .infra
        .agent(&cluster)?
        .cancel(&ids, all, user)
        .await
        .map_err(agent_error)?;
    if cancelled.is_empty() {
        ctx.log.line("No jobs to cancel.");
    } else {
        let list: Vec<String> = cancelled.iter().map(u64::to_string).collect();
        ctx.log.line(&format!(
            "Cancelled job(s) {} on cluster {}.",
            list.join(", "),
            cluster.name
        ));
    }
    Ok(Value::Null)
}

/// Streams the job's log to this request's reader (or, with none attached,
/// into its log); the value is SkyPilot's job exit code, which becomes the
/// exit status of `sky logs`. Output is bytes: it reaches the reader as
/// text with invalid UTF-8 replaced, in bounded pieces.
pub async fn logs(ctx: &RequestContext, body: LogsBody) -> OpResult {
    let cluster = up_cluster(ctx, &body.cluster_name).await?;
    let agent = ctx.infra.agent(&cluster)?;
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(4);
    let follow = agent.logs(
        body.job_id,
        LogFollow {
            follow: body.follow,
            tail: body.tail,
        },
        tx,
    );
    let relay = async {
        let mut text = LossyUtf8::default();
        while let Some(chunk) = rx.recv().await {
            // A reader that left ends the relay; dropping `rx` then stops
            // the agent's follow.
            if ctx.log.send(text.push(&chunk)).await.is_err() {
                return;
            }
        }
        let _ = ctx.log.send(text.finish()).await;
    };
    let (code, ()) = tokio::join!(follow, relay);
    let code = code.map_err(agent_error)?;
    if code == READER_GONE {
        return Err(RequestError::new(
            exception::RUNTIME_ERROR,
            "The client stopped reading the log.",
        ));
    }
    if code == 102 {
        ctx.log.line(&match body.job_id {
            Some(id) => format!("Job {id} not found on cluster {}.", cluster.name),
            None => format!("No jobs on cluster {}.", cluster.name),
        });
    }
    Ok(json!(code))
}

pub async fn job_status(ctx: &RequestContext, body: JobStatusBody) -> OpResult {
    let cluster = up_cluster(ctx, &body.cluster_name).await?;
    let ids = body.job_ids.unwrap_or_default();
    let statuses = ctx
        .infra
        .agent(&cluster)?
        .job_status(&ids)
        .await
        .map_err(agent_error)?;
    // SkyPilot's own server answers `{"None": null}` when there is no job,
    // which its client cannot decode; say so plainly instead.
    if statuses.is_empty() {
        return Err(RequestError::new(
            exception::VALUE_ERROR,
            format!("No jobs found on cluster {:?}.", cluster.name),
        ));
    }
    serde_json::to_value(statuses).map_err(internal)
}

/// Ports the task exposed, at the head node's address.
pub async fn endpoints(ctx: &RequestContext, body: EndpointsBody) -> OpResult {
    let cluster = up_cluster(ctx, &body.cluster).await?;
    let handle = handle_of(&cluster)?;
    let head = handle
        .nodes
        .first()
        .map_or_else(|| "127.0.0.1".to_owned(), |n| n.ip.clone());
    let wanted: Option<u16> = body.port.as_ref().and_then(|p| match p {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    });
    let addresses = match super::kube_endpoints::endpoints(ctx, &cluster, &handle).await? {
        Some(addresses) => addresses,
        None => handle
            .ports
            .iter()
            .map(|port| (*port, format!("{head}:{port}")))
            .collect(),
    };
    let mut out = serde_json::Map::new();
    for (port, address) in addresses {
        if wanted.is_none_or(|w| w == port) {
            out.insert(port.to_string(), json!(address));
        }
    }
    if let Some(port) = wanted
        && out.is_empty()
    {
        return Err(RequestError::new(
            exception::VALUE_ERROR,
            format!(
                "Port {port} is not exposed on cluster {:?}; add it to `resources.ports` \
                 of the task.",
                cluster.name
            ),
        ));
    }
    Ok(Value::Object(out))
}

/// Copies job logs to where `/download` serves them from; answers with
/// each job's folder as the client names it.
pub async fn download_logs(ctx: &RequestContext, body: DownloadLogsBody) -> OpResult {
    let cluster = up_cluster(ctx, &body.cluster_name).await?;
    let agent = ctx.infra.agent(&cluster)?;
    let ids: Vec<u64> = match &body.job_ids {
        Some(ids) => ids
            .iter()
            .map(|id| {
                id.trim().parse().map_err(|_| {
                    RequestError::new(
                        exception::VALUE_ERROR,
                        format!("Invalid job ID {id:?}: job IDs are integers."),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
        None => agent
            .job_status(&[])
            .await
            .map_err(agent_error)?
            .keys()
            .filter_map(|id| id.parse().ok())
            .collect(),
    };
    if ids.is_empty() {
        return Err(RequestError::new(
            exception::VALUE_ERROR,
            format!("No jobs found on cluster {:?}.", cluster.name),
        ));
    }
    let mut out = serde_json::Map::new();
    for id in ids {
        let (dir, client_path) = ctx
            .infra
            .downloads
            .job_dir(&ctx.user_id, &cluster.name, id)
            .ok_or_else(|| {
                RequestError::new(exception::VALUE_ERROR, "Invalid user or cluster name.")
            })?;
        tokio::fs::create_dir_all(&dir).await.map_err(internal)?;
        let code = save_job_log(&agent, id, &dir.join("run.log")).await?;
        if code == 102 {
            let _ = tokio::fs::remove_dir_all(&dir).await;
            return Err(RequestError::new(
                exception::VALUE_ERROR,
                format!("Job {id} not found on cluster {:?}.", cluster.name),
            ));
        }
        ctx.log
            .line(&format!("Job {id}'s log is ready to download."));
        out.insert(id.to_string(), json!(client_path));
    }
    Ok(Value::Object(out))
}

/// Writes job `id`'s whole log to `path` as the job wrote it (bytes, not
/// text, as SkyPilot's rsync copies it), piece by piece; returns the job's
/// exit code.
async fn save_job_log(
    agent: &skydeck_infra::AgentClient,
    id: u64,
    path: &std::path::Path,
) -> Result<i32, RequestError> {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(4);
    let read = agent.logs(
        Some(id),
        LogFollow {
            follow: false,
            tail: 0,
        },
        tx,
    );
    let write = async {
        let mut file = tokio::fs::File::create(path).await?;
        while let Some(chunk) = rx.recv().await {
            file.write_all(&chunk).await?;
        }
        file.flush().await
    };
    let (code, written) = tokio::join!(read, write);
    written.map_err(internal)?;
    code.map_err(agent_error)
}
