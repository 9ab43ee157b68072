//! `skydeck ssh CLUSTER [-- CMD]`: a shell or a command on the cluster's
//! head node, relayed through this server so users need no route to the
//! hosts.
//!
//! The transport is a plain HTTP/1.1 upgrade (`Upgrade: skydeck-session`)
//! to a raw byte stream carrying the small frame protocol of
//! `skydeck_types::ssh_session`, rather than a WebSocket: it needs no new
//! dependency on either side (hyper upgrades on the server, reqwest's
//! `Response::upgrade` on the client), the request passes the same
//! authentication middleware as every other route, and every refusal
//! (401, 403, 404, a stopped cluster) is an ordinary HTTP answer before
//! anything runs. Proxies that pass WebSockets pass any `Upgrade`.
//!
//! Bounds: at most [`PER_USER`] sessions per user at once; a session with
//! no input and no output for [`IDLE`] is ended; the program is killed
//! when the client's connection closes (the runner's session contract).

use super::SharedState;
use crate::auth::Caller;
use crate::clusters::handle_of;
use crate::error::ApiError;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use skydeck_infra::session::{Session, SessionInput, SessionOutput, SessionSpec, TtySize};
use skydeck_store::ClusterStatus;
use skydeck_types::names::ClusterName;
use skydeck_types::ssh_session::{Decoder, Frame, PROTOCOL};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, mpsc, oneshot};

/// Sessions one user may hold at once: enough for a few terminals, too few
/// to exhaust the server's processes or file descriptors.
pub const PER_USER: usize = 8;
/// A session with neither input nor output this long is ended.
pub const IDLE: Duration = Duration::from_secs(60 * 60);

/// What the client asked for, parsed once.
struct Ask {
    cluster: ClusterName,
    argv: Vec<String>,
    tty: Option<TtySize>,
    term: Option<String>,
}

fn parse(query: Option<&str>) -> Result<Ask, ApiError> {
    let (mut cluster, mut argv, mut cols, mut rows, mut term) =
        (None, Vec::new(), None, None, None);
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "cluster" => cluster = Some(value.into_owned()),
            "arg" => argv.push(value.into_owned()),
            "cols" => cols = Some(value.into_owned()),
            "rows" => rows = Some(value.into_owned()),
            "term" => term = Some(value.into_owned()),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter {other:?}; this endpoint takes cluster, arg, cols, rows \
                     and term"
                )));
            }
        }
    }
    let cluster =
        cluster.ok_or_else(|| ApiError::bad_request("name the cluster: ?cluster=NAME"))?;
    let cluster =
        ClusterName::new(&cluster).map_err(|err| ApiError::bad_request(err.to_string()))?;
    let cell = |value: Option<String>, what: &str| -> Result<Option<u16>, ApiError> {
        value
            .map(|v| {
                v.parse::<u16>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "{what} must be a number from 1 to 65535, not {v:?}"
                    ))
                })
            })
            .transpose()
    };
    let tty = match (cell(cols, "cols")?, cell(rows, "rows")?) {
        (Some(cols), Some(rows)) => Some(TtySize { cols, rows }),
        (None, None) => None,
        _ => {
            return Err(ApiError::bad_request(
                "give both cols and rows for a terminal, or neither",
            ));
        }
    };
    let term = term
        .map(|t| {
            let plain = !t.is_empty()
                && t.len() <= 64
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._+".contains(&b));
            plain.then_some(t.clone()).ok_or_else(|| {
                ApiError::bad_request(format!("term {t:?} is not a terminal type name"))
            })
        })
        .transpose()?;
    if tty.is_none() && argv.is_empty() {
        return Err(ApiError::bad_request(
            "without a terminal (cols and rows), name a command to run (arg=…)",
        ));
    }
    Ok(Ask {
        cluster,
        argv,
        tty,
        term,
    })
}

/// A user's count of open sessions; the slot is given back on drop.
struct Slot(String);

fn open_sessions() -> &'static Mutex<HashMap<String, usize>> {
    static OPEN: OnceLock<Mutex<HashMap<String, usize>>> = OnceLock::new();
    OPEN.get_or_init(Mutex::default)
}

impl Slot {
    fn take(user: &str) -> Option<Self> {
        let mut open = open_sessions().lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(user.to_owned()).or_default();
        if *count >= PER_USER {
            return None;
        }
        *count += 1;
        Some(Self(user.to_owned()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = open_sessions().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.0) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.0);
            }
        }
    }
}

pub async fn ssh(State(state): State<SharedState>, mut request: Request) -> Response {
    match start(&state, &mut request).await {
        Ok((session, slot)) => {
            let upgrade = hyper::upgrade::on(&mut request);
            tokio::spawn(async move {
                match upgrade.await {
                    Ok(upgraded) => relay(TokioIo::new(upgraded), session).await,
                    Err(err) => tracing::debug!(error = %err, "a session's upgrade failed"),
                }
                drop(slot);
            });
            let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, HeaderValue::from_static(PROTOCOL));
            response
        }
        Err(err) => err.into_response(),
    }
}

/// Checks everything and starts the program: every refusal is an HTTP
/// answer, before the connection changes protocol.
async fn start(state: &SharedState, request: &mut Request) -> Result<(Session, Slot), ApiError> {
    let wants_us = request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case(PROTOCOL));
    if !wants_us {
        return Err(ApiError::bad_request(format!(
            "this endpoint is a terminal session (Upgrade: {PROTOCOL}); use `skydeck ssh CLUSTER`"
        )));
    }
    let ask = parse(request.uri().query())?;
    let caller = request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| ApiError::internal("no caller on an authenticated route"))?;
    let user_id = caller
        .user()
        .map_or_else(|| state.local_user.id.clone(), |user| user.id.clone());
    // Looked up now, as the program starts: who owns the name is checked on
    // the row it runs on.
    let Some(cluster) = state.store.get_cluster(ask.cluster.as_str()).await? else {
        return Err(ApiError::not_found(format!(
            "Cluster {:?} does not exist; `skydeck status` lists yours.",
            ask.cluster.as_str()
        )));
    };
    if !caller.may_act_for(&cluster.user_id) {
        return Err(ApiError::forbidden(
            crate::ops::not_owner(&cluster.name).message,
        ));
    }
    if cluster.status != ClusterStatus::Up {
        return Err(ApiError::conflict(format!(
            "Cluster {:?} is {}, not UP: start it first (`skydeck start {}`).",
            cluster.name,
            cluster.status.as_str(),
            cluster.name
        )));
    }
    let slot = Slot::take(&user_id).ok_or_else(|| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("You have {PER_USER} sessions open, the most one user may; close one first."),
        )
    })?;
    let refused = |err: skydeck_types::RequestError| ApiError::conflict(err.message);
    let provider = state.infra.provider(&cluster.infra).map_err(refused)?;
    let handle = handle_of(&cluster).map_err(refused)?;
    let head = handle
        .nodes
        .first()
        .ok_or_else(|| ApiError::conflict(format!("Cluster {:?} has no nodes.", cluster.name)))?;
    let spec = SessionSpec {
        argv: if ask.argv.is_empty() {
            // A login shell, so the user's profile is read as over ssh.
            vec![
                "/bin/sh".to_owned(),
                "-c".to_owned(),
                "exec \"${SHELL:-/bin/sh}\" -l".to_owned(),
            ]
        } else {
            ask.argv
        },
        tty: ask.tty,
        term: ask.term,
        sandbox: Some(head.dir.clone()),
        env: cluster_env(&cluster.name, &handle),
    };
    let session = provider
        .head_runner(&handle)
        .session(spec)
        .await
        .map_err(|err| {
            ApiError::conflict(format!(
                "Cannot start a session on {:?}: {err}",
                cluster.name
            ))
        })?;
    Ok((session, slot))
}

/// The cluster's variables, as the head node's jobs see them.
fn cluster_env(name: &str, handle: &skydeck_infra::Handle) -> Vec<(String, String)> {
    let ips: Vec<&str> = handle.nodes.iter().map(|n| n.ip.as_str()).collect();
    let mut env = vec![
        ("SKYPILOT_NODE_RANK".to_owned(), "0".to_owned()),
        ("SKYPILOT_NODE_IPS".to_owned(), ips.join("\n")),
        (
            "SKYPILOT_NUM_NODES".to_owned(),
            handle.nodes.len().to_string(),
        ),
        ("SKYDECK_CLUSTER".to_owned(), name.to_owned()),
    ];
    if let Some(gpus) = handle.nodes.first().and_then(|n| n.gpus.as_ref()) {
        let list: Vec<String> = gpus.iter().map(u32::to_string).collect();
        env.push(("CUDA_VISIBLE_DEVICES".to_owned(), list.join(",")));
    }
    env
}

/// Relays frames between the connection and the program until it exits
/// (its code goes last) or the client leaves (the program is killed as
/// `session` is dropped). Input is read on a task of its own: a program
/// that reads no input while it prints must not stall its output behind
/// input that waits for it.
async fn relay<S: AsyncRead + AsyncWrite + Send + 'static>(stream: S, session: Session) {
    let Session {
        input,
        mut output,
        exit,
    } = session;
    let (reader, mut writer) = tokio::io::split(stream);
    let activity = Arc::new(Notify::new());
    let (left, mut client_left) = oneshot::channel();
    let reading = tokio::spawn(read_client(reader, input, Arc::clone(&activity), left));
    let end = loop {
        tokio::select! {
            out = output.recv() => {
                let frame = match out {
                    Some(SessionOutput::Stdout(data)) => Frame::Stdout(data),
                    Some(SessionOutput::Stderr(data)) => Frame::Stderr(data),
                    None => break None,
                };
                if writer.write_all(&frame.encode()).await.is_err() {
                    break Some(None);
                }
            }
            left = &mut client_left => break Some(left.ok().flatten()),
            () = activity.notified() => {}
            () = tokio::time::sleep(IDLE) => {
                break Some(Some(format!(
                    "the session was idle for {} minutes and was ended",
                    IDLE.as_secs() / 60
                )));
            }
        }
    };
    reading.abort();
    let last = match end {
        // The client left, or broke the protocol: the program is killed
        // as the session's output is dropped.
        Some(None) => return,
        Some(Some(message)) => Frame::Error(message),
        None => match exit.await {
            Ok(Ok(code)) => Frame::Exit(code),
            Ok(Err(err)) => Frame::Error(err.to_string()),
            Err(_) => Frame::Error("the session ended without an exit code".to_owned()),
        },
    };
    let _ = writer.write_all(&last.encode()).await;
    let _ = writer.shutdown().await;
}

/// Passes the client's frames on until it leaves (`None`) or sends
/// something that is not this protocol (why).
async fn read_client(
    mut reader: impl AsyncRead + Unpin,
    input: mpsc::Sender<SessionInput>,
    activity: Arc<Notify>,
    left: oneshot::Sender<Option<String>>,
) {
    let mut decoder = Decoder::default();
    let mut buf = vec![0; 32 * 1024];
    let why = loop {
        // The client never half-closes (the end of its input is a frame):
        // the end of the stream is the client gone.
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break None,
            Ok(n) => n,
        };
        activity.notify_one();
        decoder.push(&buf[..n]);
        let broken = loop {
            let message = match decoder.next_frame() {
                Ok(Some(Frame::Stdin(data))) => SessionInput::Data(data),
                Ok(Some(Frame::StdinEof)) => SessionInput::Eof,
                Ok(Some(Frame::Resize { cols, rows })) => {
                    SessionInput::Resize(TtySize { cols, rows })
                }
                Ok(Some(_)) => continue,
                Ok(None) => break None,
                Err(err) => break Some(err),
            };
            // A program that stopped reading still has output and an exit
            // code to come: its input is dropped, the client is not.
            let _ = input.send(message).await;
        };
        if broken.is_some() {
            break broken;
        }
    };
    let _ = left.send(why);
}
