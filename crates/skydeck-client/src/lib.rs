//! A typed HTTP client for the Skydeck API server (and any server speaking
//! SkyPilot's protocol). The CLI and the tests use it.

pub mod admin;
pub mod glob;
pub mod session;
pub mod upload;

use futures_util::StreamExt;
use serde::Serialize;
use skydeck_types::client_tool::HEADER_CLIENT;
use skydeck_types::version::{
    API_VERSION, HEADER_API_VERSION, HEADER_REQUEST_ID, HEADER_VERSION, SKYPILOT_COMPAT_VERSION,
};
use skydeck_types::{ClientTool, HealthResponse, RequestError, RequestPayload, RequestStatus};
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
    /// The server's URL without credentials: what requests are sent to.
    base_url: String,
    /// The URL as people may see it: the password, if any, is `***`.
    shown_endpoint: String,
    http: reqwest::Client,
    token: Option<String>,
    basic: Option<BasicCredentials>,
}

/// A user name and password from the endpoint URL. Debug output never
/// shows the password.
#[derive(Clone, PartialEq)]
struct BasicCredentials {
    user: String,
    password: Option<String>,
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BasicCredentials({}, <redacted>)", self.user)
    }
}

impl Client {
    /// A client for `endpoint`. Credentials in the URL
    /// (`http://USER:PASSWORD@HOST:PORT`) are sent as basic auth on every
    /// request; a `token` is sent instead when there is one.
    pub fn new(endpoint: &str, token: Option<String>) -> Result<Self> {
        let http = http_client().map_err(|e| ClientError::Decode(e.to_string()))?;
        let split = split_credentials(endpoint.trim_end_matches('/'));
        Ok(Self {
            base_url: split.base_url,
            shown_endpoint: split.shown,
            http,
            token,
            basic: split.credentials,
        })
    }

    /// The endpoint to show people: any password in it reads `***`.
    pub fn endpoint(&self) -> &str {
        &self.shown_endpoint
    }

    /// The endpoint without credentials, e.g. for telling someone with a
    /// token where to log in.
    pub fn url(&self) -> &str {
        &self.base_url
    }

    /// Whether the endpoint carried a user name (and password) to send.
    pub fn has_basic_credentials(&self) -> bool {
        self.basic.is_some()
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut builder = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .header(HEADER_API_VERSION, API_VERSION.to_string())
            .header(HEADER_VERSION, SKYPILOT_COMPAT_VERSION)
            // So the server's hints name `skydeck` commands, not `sky` ones.
            .header(HEADER_CLIENT, ClientTool::skydeck_header_value());
        // One Authorization header: the token is the more specific choice
        // (set for this shell or this login) over a password in the URL.
        if let Some(token) = &self.token {
            builder = builder.bearer_auth(token);
        } else if let Some(basic) = &self.basic {
            builder = builder.basic_auth(&basic.user, basic.password.as_deref());
        }
        builder
    }

    async fn send(&self, builder: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        builder
            .send()
            .await
            .map_err(|err| ClientError::Unreachable {
                endpoint: self.shown_endpoint.clone(),
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

    /// Writes the log to `out` as it arrives, without its control lines,
    /// piece by piece: a line of any length is never held whole (a job may
    /// print megabytes without a newline). Fails when `out` does (a closed
    /// pipe), which ends the stream and so the server's follow.
    pub async fn copy_to(self, out: &mut (impl std::io::Write + ?Sized)) -> Result<()> {
        let mut body = self.response.bytes_stream();
        let mut filter = ControlLineFilter::default();
        let local =
            |err: std::io::Error| ClientError::Local(format!("cannot write the log: {err}"));
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| ClientError::Decode(e.to_string()))?;
            filter.push(&chunk, out).map_err(local)?;
            out.flush().map_err(local)?;
        }
        filter.finish(out).map_err(local)?;
        out.flush().map_err(local)
    }
}

/// What starts a control line, which people never see.
const PAYLOAD_PREFIX: &[u8] = b"<sky-payload>";

/// Drops control lines from a byte stream while passing every other line
/// through as it comes. Only the start of a line (never more than the
/// prefix) waits until it is known which kind the line is.
#[derive(Default)]
struct ControlLineFilter {
    /// The start of the current line while undecided.
    head: Vec<u8>,
    /// Whether the current line is a control line, once known.
    control: Option<bool>,
}

impl ControlLineFilter {
    fn push(
        &mut self,
        mut bytes: &[u8],
        out: &mut (impl std::io::Write + ?Sized),
    ) -> std::io::Result<()> {
        while !bytes.is_empty() {
            let end = bytes.iter().position(|b| *b == b'\n');
            let (piece, rest) = match end {
                Some(at) => bytes.split_at(at + 1),
                None => (bytes, &[][..]),
            };
            bytes = rest;
            if self.control.is_none() {
                let wanted = PAYLOAD_PREFIX.len().saturating_sub(self.head.len());
                let take = wanted.min(piece.len());
                self.head.extend_from_slice(&piece[..take]);
                let piece = &piece[take..];
                let decided = self.head.len() >= PAYLOAD_PREFIX.len()
                    || !PAYLOAD_PREFIX.starts_with(&self.head)
                    || self.head.ends_with(b"\n");
                if decided {
                    let control = self.head.starts_with(PAYLOAD_PREFIX);
                    if !control {
                        out.write_all(&self.head)?;
                    }
                    self.head.clear();
                    self.control = Some(control);
                }
                if self.control == Some(false) {
                    out.write_all(piece)?;
                }
            } else if self.control == Some(false) {
                out.write_all(piece)?;
            }
            if end.is_some() {
                self.head.clear();
                self.control = None;
            }
        }
        Ok(())
    }

    /// The end of the stream: a last line without its newline gets one, as
    /// [`LogStream::for_each_line`] prints it.
    fn finish(&mut self, out: &mut (impl std::io::Write + ?Sized)) -> std::io::Result<()> {
        let open = !self.head.is_empty() || self.control == Some(false);
        if !self.head.is_empty() {
            out.write_all(&self.head)?;
        }
        if open {
            out.write_all(b"\n")?;
        }
        self.head.clear();
        self.control = None;
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

/// An endpoint with its credentials taken out.
#[derive(Debug, PartialEq)]
struct SplitEndpoint {
    base_url: String,
    shown: String,
    credentials: Option<BasicCredentials>,
}

/// Takes `USER:PASSWORD@` out of an endpoint URL. reqwest would send them
/// itself, but it would keep them in the URL this client prints in errors
/// and `api info`, and send a second Authorization header beside a token.
fn split_credentials(endpoint: &str) -> SplitEndpoint {
    let unchanged = || SplitEndpoint {
        base_url: endpoint.to_owned(),
        shown: endpoint.to_owned(),
        credentials: None,
    };
    let Ok(mut url) = reqwest::Url::parse(endpoint) else {
        return unchanged();
    };
    if url.username().is_empty() && url.password().is_none() {
        return unchanged();
    }
    // As written (still escaped), for showing.
    let written_user = url.username().to_owned();
    let credentials = BasicCredentials {
        user: percent_decode(url.username()),
        password: url.password().map(percent_decode),
    };
    // Only URLs with an authority have userinfo, so neither can fail.
    let _ = url.set_password(None);
    let _ = url.set_username("");
    let bare = url.as_str().trim_end_matches('/').to_owned();
    let hidden = if credentials.password.is_some() {
        format!("{written_user}:***@")
    } else {
        format!("{written_user}@")
    };
    let shown = match bare.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{hidden}{rest}"),
        None => bare.clone(),
    };
    SplitEndpoint {
        base_url: bare,
        shown,
        credentials: Some(credentials),
    }
}

/// Undoes `%XX` escapes (URL userinfo escapes `@`, `:` and `/` in
/// passwords). An escape that is not valid hex is kept as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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
        return match web_page(&response) {
            Some(detail) => Err(detail),
            None => Ok(response),
        };
    }
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let detail = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(body) => detail_text(&body),
        Err(_) => page_summary(&text),
    };
    Err(ClientError::Http { status, detail })
}

/// Skydeck's API never answers a web page. A successful HTML answer is a
/// proxy in front of it: usually an SSO proxy (oauth2-proxy) that sent a
/// caller without a session to its sign-in page. That is a missing login,
/// so it reads as a 401 and the CLI says how to log in.
fn web_page(response: &reqwest::Response) -> Option<ClientError> {
    let html = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.to_ascii_lowercase().starts_with("text/html"));
    if !html {
        return None;
    }
    let url = response.url();
    let path = url.path().to_ascii_lowercase();
    let sign_in = ["oauth2", "login", "signin", "sign_in", "auth"]
        .iter()
        .any(|word| path.contains(word));
    // Where it landed, without the query (it may carry state or tokens).
    let landed = format!("{}{}", url.origin().ascii_serialization(), url.path());
    Some(if sign_in {
        ClientError::Http {
            status: 401,
            detail: format!(
                "the request was sent to the sign-in page {landed}: an auth proxy in front of \
                 the API server wants a browser login, which this CLI cannot do; use a \
                 service-account token"
            ),
        }
    } else {
        ClientError::Decode(format!(
            "a web page ({landed}) answered instead of Skydeck's API; check the endpoint"
        ))
    })
}

/// An error page that is not the server's JSON comes from something in
/// front of it (an ingress, a load balancer): its title says what happened
/// without pasting the page into the terminal.
fn page_summary(text: &str) -> String {
    let text = text.trim();
    let lower = text.to_ascii_lowercase();
    if !lower.starts_with('<') {
        return text.to_owned();
    }
    let title = ["title", "h1"].iter().find_map(|tag| {
        let start = lower.find(&format!("<{tag}>"))? + tag.len() + 2;
        let end = start + lower[start..].find(&format!("</{tag}>"))?;
        Some(text[start..end].trim().to_owned())
    });
    let what = title
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "an HTML page".to_owned());
    format!("{what} (answered by a proxy in front of the API server, not by Skydeck)")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn filtered(pieces: &[&[u8]]) -> String {
        let mut filter = ControlLineFilter::default();
        let mut out = Vec::new();
        for piece in pieces {
            filter.push(piece, &mut out).unwrap();
        }
        filter.finish(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn control_lines_are_dropped_wherever_the_pieces_split() {
        let text = b"a\n<sky-payload>\"x\"</sky-payload>\n<sky-pay no\nb";
        let expected = "a\n<sky-pay no\nb\n";
        assert_eq!(filtered(&[text]), expected);
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(filtered(&bytes), expected);
        for at in 0..text.len() {
            assert_eq!(
                filtered(&[&text[..at], &text[at..]]),
                expected,
                "split at {at}"
            );
        }
        assert_eq!(filtered(&[b"<sky"]), "<sky\n");
        assert_eq!(filtered(&[b""]), "");
    }
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn credentials_are_taken_out_of_the_endpoint_and_the_password_hidden() {
        let split = split_credentials("http://alice:s3cr%40t%3Ax@127.0.0.1:8080");
        assert_eq!(split.base_url, "http://127.0.0.1:8080");
        assert_eq!(split.shown, "http://alice:***@127.0.0.1:8080");
        assert_eq!(
            split.credentials,
            Some(BasicCredentials {
                user: "alice".into(),
                password: Some("s3cr@t:x".into()),
            })
        );
    }

    #[test]
    fn an_endpoint_without_credentials_is_used_as_written() {
        for endpoint in [
            "http://127.0.0.1:46580",
            "https://Sky.example.com/base",
            "not a url",
        ] {
            let split = split_credentials(endpoint);
            assert_eq!(split.base_url, endpoint);
            assert_eq!(split.shown, endpoint);
            assert_eq!(split.credentials, None);
        }
    }

    #[test]
    fn a_user_without_a_password_is_shown_as_is() {
        let split = split_credentials("http://bob@host:1/");
        assert_eq!(split.base_url, "http://host:1");
        assert_eq!(split.shown, "http://bob@host:1");
        assert_eq!(split.credentials.unwrap().password, None);
    }

    #[test]
    fn bad_escapes_are_kept_as_written() {
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("a%zz%41"), "a%zzA");
        assert_eq!(percent_decode("%+1"), "%+1");
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let client = Client::new("http://alice:hunter2@127.0.0.1:1", None).unwrap();
        assert!(!format!("{:?}", client.basic).contains("hunter2"));
        assert_eq!(client.endpoint(), "http://alice:***@127.0.0.1:1");
        assert_eq!(client.url(), "http://127.0.0.1:1");
    }

    /// Answers one HTTP request with `status` and a JSON `body`; the
    /// request's head (request line and headers) comes back.
    async fn answer_once(status: &str, body: &str) -> (String, tokio::task::JoinHandle<String>) {
        let reply = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        let (url, heads) = answer_in_turn(vec![reply]).await;
        let handle = tokio::spawn(async move { heads.await.unwrap().remove(0) });
        (url, handle)
    }

    /// Answers one connection after another with `replies`, each a whole
    /// HTTP response; the handle gives the heads of the requests.
    async fn answer_in_turn(
        replies: Vec<String>,
    ) -> (String, tokio::task::JoinHandle<Vec<String>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handle = tokio::spawn(async move {
            let mut heads = Vec::new();
            for reply in replies {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    socket.read_exact(&mut byte).await.unwrap();
                    head.push(byte[0]);
                }
                socket.write_all(reply.as_bytes()).await.unwrap();
                heads.push(String::from_utf8(head).unwrap());
            }
            heads
        });
        (url, handle)
    }

    fn authorization_headers(head: &str) -> Vec<&str> {
        head.lines()
            .filter_map(|line| line.split_once(": "))
            .filter(|(name, _)| name.eq_ignore_ascii_case("authorization"))
            .map(|(_, value)| value)
            .collect()
    }

    #[tokio::test]
    async fn credentials_in_the_endpoint_are_sent_as_basic_auth() {
        let (url, request) = answer_once("200 OK", "[]").await;
        let endpoint = url.replace("http://", "http://alice:s3cr%40t%3Ax@");
        let client = Client::new(&endpoint, None).unwrap();
        assert_eq!(client.list_users().await.unwrap(), []);
        let head = request.await.unwrap();
        assert!(head.starts_with("GET /users HTTP/1.1"), "{head}");
        // base64("alice:s3cr@t:x")
        assert_eq!(authorization_headers(&head), ["Basic YWxpY2U6czNjckB0Ong="]);
    }

    #[tokio::test]
    async fn a_token_is_sent_instead_of_credentials_in_the_endpoint() {
        let (url, request) = answer_once("200 OK", "[]").await;
        let endpoint = url.replace("http://", "http://alice:pw@");
        let client = Client::new(&endpoint, Some("sky_abc".into())).unwrap();
        client.list_tokens(true).await.unwrap();
        let head = request.await.unwrap();
        assert!(head.starts_with("GET /users/tokens?all=true "), "{head}");
        assert_eq!(authorization_headers(&head), ["Bearer sky_abc"]);
    }

    #[tokio::test]
    async fn a_refusal_carries_the_servers_detail() {
        let (url, _request) = answer_once(
            "403 Forbidden",
            r#"{"detail": "Only admins can read the config."}"#,
        )
        .await;
        let client = Client::new(&url, None).unwrap();
        match client.get_config().await {
            Err(ClientError::Http { status, detail }) => {
                assert_eq!(status, 403);
                assert_eq!(detail, "Only admins can read the config.");
            }
            other => panic!("expected a 403, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_proxys_error_page_is_summed_up_by_its_title() {
        let page = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
                    <center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n\
                    </body>\r\n</html>\r\n";
        let (url, _request) = answer_once("502 Bad Gateway", page).await;
        let client = Client::new(&url, None).unwrap();
        match client.get_config().await {
            Err(ClientError::Http { status, detail }) => {
                assert_eq!(status, 502);
                assert_eq!(
                    detail,
                    "502 Bad Gateway (answered by a proxy in front of the API server, not by \
                     Skydeck)"
                );
            }
            other => panic!("expected a 502, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_redirect_to_a_sign_in_page_is_a_missing_login() {
        let page = "<html><title>Sign In</title></html>";
        let (url, _requests) = answer_in_turn(vec![
            "HTTP/1.1 302 Found\r\nLocation: /oauth2/start?rd=%2Fapi%2Fhealth\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
                .to_owned(),
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            ),
        ])
        .await;
        let client = Client::new(&url, None).unwrap();
        match client.health().await {
            Err(ClientError::Http { status, detail }) => {
                assert_eq!(status, 401);
                assert!(detail.contains(&format!("{url}/oauth2/start")), "{detail}");
                assert!(!detail.contains("rd="), "{detail}");
                assert!(detail.contains("service-account token"), "{detail}");
            }
            other => panic!("expected a missing login, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_web_page_at_the_endpoint_is_not_taken_for_the_api() {
        let page = "<html><title>Welcome to nginx!</title></html>";
        let (url, _requests) = answer_in_turn(vec![format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{page}",
            page.len()
        )])
        .await;
        let client = Client::new(&url, None).unwrap();
        match client.health().await {
            Err(ClientError::Decode(detail)) => {
                assert!(detail.contains("check the endpoint"), "{detail}");
            }
            other => panic!("expected a decode error, got {other:?}"),
        }
    }

    #[test]
    fn plain_text_errors_are_kept_and_untitled_pages_named() {
        assert_eq!(page_summary("  upstream timed out\n"), "upstream timed out");
        assert_eq!(
            page_summary("<!DOCTYPE html><body>oops</body>"),
            "an HTML page (answered by a proxy in front of the API server, not by Skydeck)"
        );
    }

    #[tokio::test]
    async fn an_unreachable_server_is_named_without_its_password() {
        // A port that was free a moment ago: nothing answers there.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let client = Client::new(&format!("http://alice:hunter2@127.0.0.1:{port}"), None).unwrap();
        let err = client.me().await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ClientError::Unreachable { .. }), "{text}");
        assert!(text.contains("alice:***@127.0.0.1"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
