//! One keep-alive HTTP/1.1 connection to the server, built directly on
//! hyper's connection API: no pool, no retries, nothing that would hide what
//! the server itself costs.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{HeaderMap, Request};
use hyper_util::rt::TokioIo;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// The official SkyPilot 0.14.1 client sends these on every call, and the
/// server may gate behaviour on them, so the load looks like real traffic.
const CLIENT_HEADERS: [(&str, &str); 2] = [
    ("X-SkyPilot-API-Version", "62"),
    ("X-SkyPilot-Version", "0.14.1"),
];

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    fn as_hyper(self) -> hyper::Method {
        match self {
            Self::Get => hyper::Method::GET,
            Self::Post => hyper::Method::POST,
        }
    }
}

/// A complete response: the body is read to the end so the connection can
/// carry the next request.
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// A one-line account of an unexpected answer, for error samples.
    pub fn describe(&self, what: &str) -> String {
        let body = String::from_utf8_lossy(&self.body);
        let body: String = body.chars().take(160).collect();
        format!("{what} -> {}: {}", self.status, body.trim())
    }
}

/// Why a request produced no response. Every variant leaves the connection
/// in an unknown state, so the caller should open a new one.
#[derive(Debug)]
pub enum SendError {
    Timeout(Duration),
    Transport(hyper::Error),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(limit) => write!(f, "no response within {limit:?}"),
            Self::Transport(err) => write!(f, "transport error: {err}"),
        }
    }
}

impl std::error::Error for SendError {}

pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: String,
    driver: JoinHandle<()>,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| anyhow::anyhow!("connecting to {addr} took over {CONNECT_TIMEOUT:?}"))??;
        // Requests are small and latency is what we measure: do not let
        // Nagle's algorithm hold them back.
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        let driver = tokio::spawn(async move {
            // Errors surface on the next send; nothing to do with them here.
            let _ = connection.await;
        });
        Ok(Self {
            sender,
            host: addr.to_string(),
            driver,
        })
    }

    /// Sends one request and reads the whole response, within `timeout`.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        json_body: Option<&'static str>,
        timeout: Duration,
    ) -> Result<Reply, SendError> {
        let request = self.build(method, path, json_body);
        let exchange = async {
            self.sender.ready().await?;
            let response = self.sender.send_request(request).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok(Reply {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result.map_err(SendError::Transport),
            Err(_) => Err(SendError::Timeout(timeout)),
        }
    }

    fn build(
        &self,
        method: Method,
        path: &str,
        json_body: Option<&'static str>,
    ) -> Request<Full<Bytes>> {
        let mut builder = Request::builder()
            .method(method.as_hyper())
            .uri(path)
            .header(HOST, &self.host);
        for (name, value) in CLIENT_HEADERS {
            builder = builder.header(name, value);
        }
        let body = match json_body {
            Some(json) => {
                builder = builder.header(CONTENT_TYPE, "application/json");
                Full::new(Bytes::from_static(json.as_bytes()))
            }
            None => Full::new(Bytes::new()),
        };
        builder
            .body(body)
            .expect("static method, path and headers form a valid request")
    }
}

impl Drop for Conn {
    /// Closes the socket now rather than whenever the driver task notices.
    fn drop(&mut self) {
        self.driver.abort();
    }
}
