//! SkyPilot's REST admin policy: the server asks a policy service to accept,
//! mutate or reject each launch and exec.
//!
//! The protocol is SkyPilot 0.14's `RestfulAdminPolicy`
//! (`sky/admin_policy.py`): POST the request, get back the task and config
//! to go on with (200), a rejection shown to the user (400), or anything
//! else, which fails the request naming the policy URL.
//!
//! Both bodies are JSON *strings* holding the JSON object, not the object
//! itself: SkyPilot passes the already-encoded `UserRequest.encode()` to
//! `requests.post(json=…)`, which encodes it again, and its policy servers
//! answer `JSONResponse(content=mutated.encode())`. We send the same, so
//! stock SkyPilot policy servers work unchanged, and accept a plain object
//! back too.
//!
//! [`apply_policy`] also runs Skydeck's built-in declarative rules, so the
//! server has one entry point whichever kind the config names.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use skydeck_types::config::{AdminPolicy, PolicyRequestOptions, PolicyRules, parse_config};
use skydeck_types::task::parse_dag;
use std::fmt;
use std::time::Duration;

/// SkyPilot's timeout for a policy call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The user a request is made for, as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyUser {
    pub id: String,
    pub name: String,
}

/// What the policy is asked about: one request, its task and the config
/// it would run with.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyInput {
    /// The task (or chain of tasks) as task YAML.
    pub task_yaml: String,
    /// The effective server config as YAML.
    pub config_yaml: String,
    /// SkyPilot's request name: `launch`, `exec`, `jobs.launch`…
    pub request_name: String,
    /// `None` for requests that are not about one cluster (managed jobs),
    /// as in SkyPilot.
    pub request_options: Option<PolicyRequestOptions>,
    pub user: Option<PolicyUser>,
    pub client_api_version: Option<u32>,
    pub client_version: Option<String>,
}

/// What the request goes on with.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyOutput {
    pub task_yaml: String,
    pub config_yaml: String,
    /// The request options, with the autostop a policy forced.
    pub request_options: Option<PolicyRequestOptions>,
    /// What the built-in rules changed, to tell the user; a REST policy
    /// does not say.
    pub notes: Vec<String>,
}

/// Why a request may not go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// The policy refused the request; `message` is its reason, for the
    /// user. `url` is `None` for the built-in rules.
    Rejected {
        url: Option<String>,
        message: String,
    },
    /// The policy could not give an answer (SkyPilot's
    /// `RestfulPolicyError`); `reason` completes "The admin policy at URL …".
    Failed { url: String, reason: String },
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rejected {
                url: Some(url),
                message,
            } => write!(
                f,
                "The admin policy at {url} rejected the request: {message}"
            ),
            // The built-in rules' message says who rejected it already.
            Self::Rejected { url: None, message } => f.write_str(message),
            Self::Failed { url, reason } => {
                write!(
                    f,
                    "The admin policy at {url} {reason}; the request was not run"
                )
            }
        }
    }
}

impl std::error::Error for PolicyError {}

/// A `reqwest` client for policy calls (TLS through ring).
pub fn http_client() -> reqwest::Result<reqwest::Client> {
    // reqwest is built without a bundled crypto provider; ring is ours.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build()
}

/// Runs the configured policy on a request: the built-in rules in
/// process, a REST policy over HTTP with `timeout`.
pub async fn apply_policy(
    policy: &AdminPolicy,
    http: &reqwest::Client,
    timeout: Duration,
    input: &PolicyInput,
) -> Result<PolicyOutput, PolicyError> {
    match policy {
        AdminPolicy::Rules(rules) => apply_rules(rules, input),
        AdminPolicy::Rest { url } => {
            RestPolicy::new(url.clone(), http.clone(), timeout)
                .apply(input)
                .await
        }
    }
}

/// The built-in rules on every task of the request. A task that comes out
/// unchanged keeps its text as sent, comments and all.
fn apply_rules(rules: &PolicyRules, input: &PolicyInput) -> Result<PolicyOutput, PolicyError> {
    let rejected = |message: String| PolicyError::Rejected { url: None, message };
    let mut dag = parse_dag(&input.task_yaml).map_err(|e| {
        rejected(format!(
            "Task rejected by the admin policy: the task could not be read: {e}"
        ))
    })?;
    let mut request_options = input.request_options.clone();
    let mut notes = Vec::new();
    for task in &mut dag.tasks {
        let applied = match request_options.as_mut() {
            Some(options) => rules.apply(task, options),
            None => rules.apply_to_task(task),
        };
        notes.extend(applied.map_err(|violation| rejected(violation.to_string()))?);
    }
    let task_yaml = if notes.is_empty() {
        input.task_yaml.clone()
    } else if document_count(&input.task_yaml) == 1 {
        dag.tasks[0].to_yaml()
    } else {
        dag.to_yaml()
    };
    Ok(PolicyOutput {
        task_yaml,
        config_yaml: input.config_yaml.clone(),
        request_options,
        notes,
    })
}

fn document_count(text: &str) -> usize {
    serde_yaml_ng::Deserializer::from_str(text).count()
}

/// A client for one REST policy service.
#[derive(Debug, Clone)]
pub struct RestPolicy {
    url: String,
    http: reqwest::Client,
    timeout: Duration,
}

/// SkyPilot's `_UserRequestBody`.
#[derive(Serialize)]
struct UserRequestBody<'a> {
    task: &'a str,
    skypilot_config: &'a str,
    request_name: &'a str,
    request_options: Option<&'a PolicyRequestOptions>,
    at_client_side: bool,
    /// YAML text of `{id, name}`, or empty when there is no user.
    user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_api_version: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_version: Option<&'a str>,
}

/// SkyPilot's `_MutatedUserRequestBody`.
#[derive(Deserialize)]
struct MutatedBody {
    task: String,
    /// A policy that leaves the config alone may leave it out.
    skypilot_config: Option<String>,
}

/// How much of an unexpected body an error quotes.
const EXCERPT_CHARS: usize = 300;

impl RestPolicy {
    pub fn new(url: impl Into<String>, http: reqwest::Client, timeout: Duration) -> Self {
        Self {
            url: url.into(),
            http,
            timeout,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Asks the policy about one request.
    pub async fn apply(&self, input: &PolicyInput) -> Result<PolicyOutput, PolicyError> {
        let response = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .timeout(self.timeout)
            .body(encode_request(input))
            .send()
            .await
            .map_err(|e| self.transport_failure(&e))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| self.transport_failure(&e))?;
        if status == reqwest::StatusCode::BAD_REQUEST {
            return Err(PolicyError::Rejected {
                url: Some(self.url.clone()),
                message: rejection_reason(&body),
            });
        }
        if !status.is_success() {
            return Err(self.failed(format!("answered HTTP {status}: {}", excerpt(&body))));
        }
        let mutated = decode_response(&body).map_err(|detail| {
            self.failed(format!(
                "answered with a body that is not a policy response ({detail}): {}",
                excerpt(&body)
            ))
        })?;
        if let Err(e) = parse_dag(&mutated.task) {
            return Err(self.failed(format!("returned a task that is not valid task YAML: {e}")));
        }
        let config_yaml = mutated
            .skypilot_config
            .unwrap_or_else(|| input.config_yaml.clone());
        if let Err(e) = parse_config(&config_yaml) {
            return Err(self.failed(format!("returned a config Skydeck cannot use: {e}")));
        }
        Ok(PolicyOutput {
            task_yaml: mutated.task,
            config_yaml,
            request_options: input.request_options.clone(),
            notes: Vec::new(),
        })
    }

    fn failed(&self, reason: String) -> PolicyError {
        PolicyError::Failed {
            url: self.url.clone(),
            reason,
        }
    }

    fn transport_failure(&self, error: &reqwest::Error) -> PolicyError {
        let reason = if error.is_timeout() {
            format!("did not answer within {}", human_duration(self.timeout))
        } else if error.is_connect() {
            format!("could not be reached: {}", error_chain(error))
        } else {
            format!("could not be called: {}", error_chain(error))
        };
        self.failed(reason)
    }
}

/// The request body, JSON-encoded twice as SkyPilot sends it.
fn encode_request(input: &PolicyInput) -> String {
    let user = input.user.as_ref().map_or_else(String::new, |user| {
        serde_yaml_ng::to_string(user).expect("a user serializes to YAML")
    });
    let body = UserRequestBody {
        task: &input.task_yaml,
        skypilot_config: &input.config_yaml,
        request_name: &input.request_name,
        request_options: input.request_options.as_ref(),
        at_client_side: false,
        user,
        client_api_version: input.client_api_version,
        client_version: input.client_version.as_deref(),
    };
    let inner = serde_json::to_string(&body).expect("the request body serializes");
    serde_json::to_string(&inner).expect("a string serializes")
}

/// The mutated request, from a JSON string holding the object (what
/// SkyPilot's servers send) or the object itself.
fn decode_response(body: &str) -> Result<MutatedBody, String> {
    let outer: Json = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    let inner = match outer {
        Json::String(encoded) => serde_json::from_str(&encoded)
            .map_err(|e| format!("the JSON string inside is not JSON: {e}"))?,
        object => object,
    };
    serde_json::from_value(inner)
        .map_err(|e| format!("expected {{\"task\": <YAML>, \"skypilot_config\": <YAML>}}: {e}"))
}

/// The reason a 400 gives: SkyPilot's example server sends it as a JSON
/// string, FastAPI's `HTTPException` as `{"detail": …}`, others as text.
fn rejection_reason(body: &str) -> String {
    let text = body.trim();
    let reason = match serde_json::from_str::<Json>(text) {
        Ok(Json::String(reason)) => reason,
        Ok(Json::Object(map)) => match map.get("detail") {
            Some(Json::String(detail)) => detail.clone(),
            _ => text.to_owned(),
        },
        _ => text.to_owned(),
    };
    if reason.trim().is_empty() {
        "(the policy gave no reason)".to_owned()
    } else {
        reason
    }
}

fn excerpt(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        return "(empty body)".to_owned();
    }
    if body.chars().count() <= EXCERPT_CHARS {
        return body.to_owned();
    }
    let head: String = body.chars().take(EXCERPT_CHARS).collect();
    format!("{head}…")
}

/// `30 s`, `200 ms`.
fn human_duration(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{} ms", duration.as_millis())
    }
}

/// An error's causes, which carry the useful part ("connection refused")
/// of a transport error; reqwest's own message only repeats the URL that
/// `PolicyError` names already.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = error.source().or(Some(error));
    while let Some(cause) = next {
        let text = cause.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        next = cause.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::routing::post;
    use skydeck_types::config::{ForcedAutostop, PolicyRules};
    use skydeck_types::task::parse_tasks;
    use std::sync::{Arc, Mutex};

    /// The last request body the policy server decoded.
    type Seen = Arc<Mutex<Option<Json>>>;

    /// Decodes a body the way SkyPilot's policy servers do:
    /// `UserRequest.decode(await request.json())`.
    fn decode_user_request(body: &str) -> Json {
        let outer: Json = serde_json::from_str(body).expect("the body is JSON");
        let encoded = outer.as_str().expect("the body is a JSON string");
        serde_json::from_str(encoded).expect("holding a JSON object")
    }

    /// Adds `team: ml` to the task's labels, as a policy that tags every
    /// task would, and answers the way SkyPilot's example server does.
    async fn add_label(State(seen): State<Seen>, body: String) -> String {
        let request = decode_user_request(&body);
        let mut task: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(request["task"].as_str().unwrap()).unwrap();
        task["resources"]["labels"]["team"] = "ml".into();
        let mutated = serde_json::json!({
            "task": serde_yaml_ng::to_string(&task).unwrap(),
            "skypilot_config": request["skypilot_config"],
        });
        *seen.lock().unwrap() = Some(request);
        serde_json::to_string(&mutated.to_string()).unwrap()
    }

    async fn reject() -> (StatusCode, String) {
        // SkyPilot's example server: JSONResponse(content=str(e), status_code=400).
        (
            StatusCode::BAD_REQUEST,
            "\"GPUs are not allowed in this workspace\"".to_owned(),
        )
    }

    async fn crash() -> (StatusCode, &'static str) {
        (StatusCode::INTERNAL_SERVER_ERROR, "Traceback: boom")
    }

    async fn not_json() -> &'static str {
        "<html>maintenance</html>"
    }

    async fn bad_task() -> String {
        serde_json::json!({"task": "runn: echo\n", "skypilot_config": "{}\n"}).to_string()
    }

    async fn never_answer() -> &'static str {
        std::future::pending().await
    }

    /// A policy server on a free port; its base URL and what it saw.
    async fn policy_server() -> (String, Seen) {
        let seen = Seen::default();
        let app = Router::new()
            .route("/label", post(add_label))
            .route("/reject", post(reject))
            .route("/crash", post(crash))
            .route("/not-json", post(not_json))
            .route("/bad-task", post(bad_task))
            .route("/hang", post(never_answer))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{address}"), seen)
    }

    fn input() -> PolicyInput {
        PolicyInput {
            task_yaml: "name: train\nresources:\n  cpus: 2\nrun: echo hi\n".to_owned(),
            config_yaml: "allowed_clouds: [local]\n".to_owned(),
            request_name: "launch".to_owned(),
            request_options: Some(PolicyRequestOptions {
                cluster_name: Some("c1".to_owned()),
                ..PolicyRequestOptions::default()
            }),
            user: Some(PolicyUser {
                id: "u-1".to_owned(),
                name: "alice".to_owned(),
            }),
            client_api_version: Some(62),
            client_version: Some("0.14.1".to_owned()),
        }
    }

    async fn call(url: &str, timeout: Duration) -> Result<PolicyOutput, PolicyError> {
        RestPolicy::new(url, http_client().unwrap(), timeout)
            .apply(&input())
            .await
    }

    #[tokio::test]
    async fn a_mutating_policy_changes_the_task() {
        let (base, seen) = policy_server().await;
        let output = call(&format!("{base}/label"), DEFAULT_TIMEOUT)
            .await
            .unwrap();
        let task = parse_tasks(&output.task_yaml).unwrap().remove(0);
        assert_eq!(task.resources.labels["team"], "ml");
        assert_eq!(task.run.as_deref(), Some("echo hi"));
        assert_eq!(output.config_yaml, "allowed_clouds: [local]\n");
        assert_eq!(output.request_options, input().request_options);

        // What the policy received, in SkyPilot's shape.
        let request = seen.lock().unwrap().take().unwrap();
        assert_eq!(request["request_name"], "launch");
        assert_eq!(request["task"], input().task_yaml);
        assert_eq!(request["skypilot_config"], input().config_yaml);
        assert_eq!(request["at_client_side"], false);
        assert_eq!(request["user"], "id: u-1\nname: alice\n");
        assert_eq!(
            request["request_options"],
            serde_json::json!({"cluster_name": "c1", "idle_minutes_to_autostop": null,
                               "down": false, "dryrun": false})
        );
        assert_eq!(request["client_api_version"], 62);
        assert_eq!(request["client_version"], "0.14.1");
    }

    #[tokio::test]
    async fn a_400_is_a_rejection_with_the_policy_text() {
        let (base, _) = policy_server().await;
        let url = format!("{base}/reject");
        let error = call(&url, DEFAULT_TIMEOUT).await.unwrap_err();
        assert_eq!(
            error,
            PolicyError::Rejected {
                url: Some(url.clone()),
                message: "GPUs are not allowed in this workspace".to_owned()
            }
        );
        assert_eq!(
            error.to_string(),
            format!(
                "The admin policy at {url} rejected the request: GPUs are not allowed in this workspace"
            )
        );
    }

    #[tokio::test]
    async fn a_500_fails_naming_the_url() {
        let (base, _) = policy_server().await;
        let url = format!("{base}/crash");
        let error = call(&url, DEFAULT_TIMEOUT).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "The admin policy at {url} answered HTTP 500 Internal Server Error: \
                 Traceback: boom; the request was not run"
            )
        );
    }

    #[tokio::test]
    async fn a_body_that_is_not_a_policy_answer_fails() {
        let (base, _) = policy_server().await;
        let url = format!("{base}/not-json");
        let error = call(&url, DEFAULT_TIMEOUT).await.unwrap_err();
        let PolicyError::Failed { url: named, reason } = &error else {
            panic!("{error:?}");
        };
        assert_eq!(named, &url);
        assert!(
            reason.starts_with("answered with a body that is not a policy response (not JSON"),
            "{reason}"
        );
        assert!(reason.ends_with("<html>maintenance</html>"), "{reason}");

        let url = format!("{base}/bad-task");
        let error = call(&url, DEFAULT_TIMEOUT).await.unwrap_err();
        let text = error.to_string();
        assert!(
            text.starts_with(&format!(
                "The admin policy at {url} returned a task that is not valid task YAML"
            )),
            "{text}"
        );
        assert!(text.contains("runn"), "{text}");
    }

    #[tokio::test]
    async fn a_policy_that_never_answers_times_out() {
        let (base, _) = policy_server().await;
        let url = format!("{base}/hang");
        let error = call(&url, Duration::from_millis(200)).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "The admin policy at {url} did not answer within 200 ms; the request was not run"
            )
        );
    }

    #[tokio::test]
    async fn an_unreachable_policy_fails_naming_the_url() {
        // Nothing can listen on port 0, so the connection is refused.
        let url = "http://127.0.0.1:0/policy";
        let error = call(url, DEFAULT_TIMEOUT).await.unwrap_err();
        let PolicyError::Failed { url: named, reason } = &error else {
            panic!("{error:?}");
        };
        assert_eq!(named, url);
        assert!(reason.starts_with("could not be reached: "), "{reason}");
        assert!(!reason.contains(url), "the URL is named once: {reason}");
    }

    #[tokio::test]
    async fn apply_policy_dispatches_to_the_rest_policy() {
        let (base, _) = policy_server().await;
        let policy = AdminPolicy::Rest {
            url: format!("{base}/label"),
        };
        let output = apply_policy(&policy, &http_client().unwrap(), DEFAULT_TIMEOUT, &input())
            .await
            .unwrap();
        assert!(
            output.task_yaml.contains("team: ml"),
            "{}",
            output.task_yaml
        );
    }

    fn rules_policy(rules: PolicyRules) -> AdminPolicy {
        AdminPolicy::Rules(rules)
    }

    #[tokio::test]
    async fn built_in_rules_reject_with_their_message() {
        let policy = rules_policy(PolicyRules {
            required_labels: vec!["team".to_owned()],
            ..PolicyRules::default()
        });
        let error = apply_policy(&policy, &http_client().unwrap(), DEFAULT_TIMEOUT, &input())
            .await
            .unwrap_err();
        assert!(
            matches!(&error, PolicyError::Rejected { url: None, .. }),
            "{error:?}"
        );
        assert!(
            error.to_string().starts_with(
                "Task rejected by the admin policy: resources.labels has no `team` label"
            ),
            "{error}"
        );
    }

    #[tokio::test]
    async fn built_in_rules_force_autostop_on_launch() {
        let policy = rules_policy(PolicyRules {
            autostop: Some(ForcedAutostop {
                idle_minutes: 30,
                down: true,
            }),
            ..PolicyRules::default()
        });
        let http = http_client().unwrap();
        let output = apply_policy(&policy, &http, DEFAULT_TIMEOUT, &input())
            .await
            .unwrap();
        let options = output.request_options.unwrap();
        assert_eq!(options.idle_minutes_to_autostop, Some(30));
        assert!(options.down);
        let task = parse_tasks(&output.task_yaml).unwrap().remove(0);
        let autostop = task.resources.autostop.unwrap();
        assert_eq!(
            (autostop.idle_minutes, autostop.down),
            (Some(30), Some(true))
        );
        assert_eq!(output.notes.len(), 1, "{:?}", output.notes);

        // Managed jobs carry no request options, and get no forced autostop.
        let jobs = PolicyInput {
            request_name: "jobs.launch".to_owned(),
            request_options: None,
            ..input()
        };
        let output = apply_policy(&policy, &http, DEFAULT_TIMEOUT, &jobs)
            .await
            .unwrap();
        assert_eq!(
            output.task_yaml, jobs.task_yaml,
            "unchanged text is kept as sent"
        );
        assert_eq!(output.request_options, None);
    }

    #[test]
    fn rejection_reasons_in_every_form() {
        assert_eq!(rejection_reason("\"no GPUs\""), "no GPUs");
        assert_eq!(rejection_reason("{\"detail\": \"no GPUs\"}"), "no GPUs");
        assert_eq!(rejection_reason("no GPUs\n"), "no GPUs");
        assert_eq!(rejection_reason(""), "(the policy gave no reason)");
    }

    #[test]
    fn responses_decode_double_encoded_or_plain() {
        let object = serde_json::json!({"task": "run: x\n", "skypilot_config": "{}\n"});
        let double = serde_json::to_string(&object.to_string()).unwrap();
        assert_eq!(decode_response(&double).unwrap().task, "run: x\n");
        assert_eq!(
            decode_response(&object.to_string()).unwrap().task,
            "run: x\n"
        );
        assert!(decode_response("{\"tsk\": \"x\"}").is_err());
        assert!(decode_response("\"not json inside\"").is_err());
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(DEFAULT_TIMEOUT), "30 s");
        assert_eq!(human_duration(Duration::from_millis(200)), "200 ms");
    }
}
