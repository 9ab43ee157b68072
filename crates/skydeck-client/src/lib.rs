//! A typed HTTP client for the Skydeck API server (and any server speaking
//! SkyPilot's protocol). The CLI and the tests use it.

pub mod glob;
pub mod upload;

use futures_util::StreamExt;
use serde::Serialize;
use skydeck_types::version::{
    API_VERSION, HEADER_API_VERSION, HEADER_REQUEST_ID, HEADER_VERSION, SKYPILOT_COMPAT_VERSION,
};
use skydeck_types::{HealthResponse, RequestError, RequestPayload, RequestStatus};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answered at the endpoint.
    #[error("cannot reach the API server at {endpoint}: {reason}")]
    Unreachable { endpoint: String, reason: String },
    /// The server answered with an error status.
    #[error("the API server answered {status}: {detail}")]
    Http { status: u16, detail: String },
    /// The request ran and failed.
    #[error("{0}")]
    Request(RequestError),
    /// The request was cancelled before it finished.
    #[error("request {0} was cancelled")]
    Cancelled(String),
    /// The server's answer did not have the expected shape.
    #[error("unexpected answer from the API server: {0}")]
    Decode(String),
    /// Something on this machine failed (e.g. zipping files to upload).
    #[error("{0}")]
    Local(String),
}

pub type Result<T> = std::result::Result<T, ClientError>;

#[derive(Clone)]
pub struct Client {
    endpoint: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl Client {
    pub fn new(endpoint: &str, token: Option<String>) -> Result<Self> {
        let http = http_client().map_err(|e| ClientError::Decode(e.to_string()))?;
        Ok(Self {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            http,
            token,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut builder = self
            .http
            .request(method, format!("{}{path}", self.endpoint))
            .header(HEADER_API_VERSION, API_VERSION.to_string())
            .header(HEADER_VERSION, SKYPILOT_COMPAT_VERSION);
        if let Some(token) = &self.token {
            builder = builder.bearer_auth(token);
        }
        builder
    }

    async fn send(&self, builder: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        builder
            .send()
            .await
            .map_err(|err| ClientError::Unreachable {
                endpoint: self.endpoint.clone(),
                reason: root_cause(&err),
            })
    }

    pub async fn health(&self) -> Result<HealthResponse> {
        let response = self
            .send(
                self.request(reqwest::Method::GET, "/api/health")
                    .timeout(Duration::from_secs(5)),
            )
            .await?;
        let response = check_status(response).await?;
        response
            .json()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Submits an operation and returns its request id.
    pub async fn submit<B: Serialize + ?Sized>(&self, path: &str, body: &B) -> Result<String> {
        let response = self
            .send(self.request(reqwest::Method::POST, path).json(body))
            .await?;
        let response = check_status(response).await?;
        request_id(&response)
    }

    /// Submits a GET operation (query parameters) and returns its request id.
    pub async fn submit_get(&self, path: &str, query: &[(&str, &str)]) -> Result<String> {
        let response = self
            .send(self.request(reqwest::Method::GET, path).query(query))
            .await?;
        let response = check_status(response).await?;
        request_id(&response)
    }

    /// Waits for a request to finish and returns its payload, failed or not.
    pub async fn get(&self, id: &str) -> Result<RequestPayload> {
        let response = self
            .send(
                self.request(reqwest::Method::GET, "/api/get")
                    .query(&[("request_id", id)]),
            )
            .await?;
        let status = response.status();
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        let payload = match status.as_u16() {
            200 => body,
            500 if body["detail"].is_object() => body["detail"].clone(),
            code => {
                return Err(ClientError::Http {
                    status: code,
                    detail: detail_text(&body),
                });
            }
        };
        serde_json::from_value(payload).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Waits for a request and returns its value, or its error.
    pub async fn wait(&self, id: &str) -> Result<serde_json::Value> {
        let payload = self.get(id).await?;
        if let Some(error) = payload.error() {
            return Err(ClientError::Request(error));
        }
        if payload.status == RequestStatus::Cancelled {
            return Err(ClientError::Cancelled(payload.request_id));
        }
        payload
            .return_value()
            .map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Streams a request's log, calling `on_line` for every line people
    /// should see (control payloads are dropped).
    pub async fn stream(
        &self,
        id: &str,
        follow: bool,
        tail: Option<u64>,
        on_line: impl FnMut(&str),
    ) -> Result<()> {
        self.open_stream(id, follow, tail)
            .await?
            .for_each_line(on_line)
            .await
    }

    /// Opens a request's log (`/api/stream`) without reading it yet, so a
    /// caller can stop reading (Ctrl-C) and still know what it followed.
    pub async fn open_stream(
        &self,
        id: &str,
        follow: bool,
        tail: Option<u64>,
    ) -> Result<LogStream> {
        let mut query = vec![
            ("request_id", id.to_owned()),
            ("follow", follow.to_string()),
        ];
        if let Some(tail) = tail {
            query.push(("tail", tail.to_string()));
        }
        let response = self
            .send(
                self.request(reqwest::Method::GET, "/api/stream")
                    .query(&query),
            )
            .await?;
        let response = check_status(response).await?;
        Ok(LogStream { response })
    }

    /// Submits an operation whose answer is its log itself (`/logs`), and
    /// returns the request id with the log to read.
    pub async fn submit_streaming<B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<(String, LogStream)> {
        let response = self
            .send(self.request(reqwest::Method::POST, path).json(body))
            .await?;
        let response = check_status(response).await?;
        let id = request_id(&response)?;
        Ok((id, LogStream { response }))
    }

    /// Lists requests (`/api/status`).
    pub async fn api_status(
        &self,
        request_ids: &[String],
        all_status: bool,
        limit: Option<u32>,
    ) -> Result<Vec<RequestPayload>> {
        let mut query: Vec<(&str, String)> = vec![("all_status", all_status.to_string())];
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        for id in request_ids {
            query.push(("request_ids", id.clone()));
        }
        let response = self
            .send(
                self.request(reqwest::Method::GET, "/api/status")
                    .query(&query),
            )
            .await?;
        let response = check_status(response).await?;
        response
            .json()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))
    }
}

/// A request's log as it arrives, line by line.
pub struct LogStream {
    response: reqwest::Response,
}

impl LogStream {
    /// Calls `on_line` for every line people should see (control payloads
    /// are dropped) until the log ends.
    pub async fn for_each_line(self, mut on_line: impl FnMut(&str)) -> Result<()> {
        let mut body = self.response.bytes_stream();
        let mut pending: Vec<u8> = Vec::new();
        let mut emit = |line: &[u8]| {
            let text = String::from_utf8_lossy(line);
            if !text.starts_with("<sky-payload>") {
                on_line(text.trim_end_matches('\r'));
            }
        };
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| ClientError::Decode(e.to_string()))?;
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                emit(&line[..line.len() - 1]);
            }
        }
        if !pending.is_empty() {
            emit(&pending);
        }
        Ok(())
    }
}

/// A `reqwest` client set up the way Skydeck needs it (TLS through ring).
pub fn http_client() -> reqwest::Result<reqwest::Client> {
    // reqwest is built without a bundled crypto provider; ring is ours.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
}

fn request_id(response: &reqwest::Response) -> Result<String> {
    response
        .headers()
        .get(HEADER_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| ClientError::Decode("the answer carries no request id".to_owned()))
}

async fn check_status(response: reqwest::Response) -> Result<reqwest::Response> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let detail = serde_json::from_str::<serde_json::Value>(&text)
        .map(|v| detail_text(&v))
        .unwrap_or(text);
    Err(ClientError::Http { status, detail })
}

/// The human part of a `{"detail": …}` body (or a version-mismatch body).
fn detail_text(body: &serde_json::Value) -> String {
    match (&body["detail"], &body["message"]) {
        (serde_json::Value::String(s), _) => s.clone(),
        (serde_json::Value::Null, serde_json::Value::String(s)) => s.clone(),
        (serde_json::Value::Array(items), _) => items
            .iter()
            .map(|item| item["msg"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
            .join("; "),
        (other, _) => other.to_string(),
    }
}

fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}
