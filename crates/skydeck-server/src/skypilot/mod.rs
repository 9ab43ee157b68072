//! The SkyPilot wire adapter: the one place that knows the JSON shapes the
//! official `sky` 0.14.1 client expects, and maps Skydeck's domain records to
//! them. Nothing outside this module builds SkyPilot-shaped JSON.

pub mod handle_pickle;
pub mod pickle;
pub mod records;
pub mod resources_pickle;

use base64::Engine;
use pickle::PickleValue;
use skydeck_store::RequestRecord;
use skydeck_types::version::{API_VERSION, SKYDECK_VERSION, SKYPILOT_COMPAT_VERSION};
use skydeck_types::{HealthResponse, HealthStatus, HealthUser, RequestError, RequestPayload};

/// `pickle.dumps(None)`: what the client unpickles for `entrypoint` and
/// `request_body` of a request it fetches with `/api/get` (it never uses them).
pub const EMPTY_PICKLED_VALUE: &str = "gAROLg==";

/// The build's git commit, reported by `/api/health`.
pub const COMMIT: &str = env!("SKYDECK_COMMIT");

/// Exception types the client can rebuild from `(message,)` alone.
pub mod exception {
    pub const RUNTIME_ERROR: &str = "RuntimeError";
    pub const VALUE_ERROR: &str = "ValueError";
    pub const REQUEST_INTERRUPTED: &str = "RequestInterruptedError";
    pub const CLUSTER_DOES_NOT_EXIST: &str = "ClusterDoesNotExist";
    pub const NOT_SUPPORTED: &str = "NotSupportedError";
    pub const PERMISSION_DENIED: &str = "PermissionDeniedError";
    pub const REJECTED_BY_POLICY: &str = "UserRequestRejectedByPolicy";
    pub const POLICY_FAILED: &str = "RestfulPolicyError";
}

/// `{"object": <pickled serialize_exception dict>, "type", "message"}`, the
/// envelope `Request.set_error` stores and the client's `get_error` reads.
pub fn error_envelope(error: &RequestError) -> serde_json::Value {
    let serialized = PickleValue::Dict(vec![
        ("type".into(), PickleValue::Str(error.kind.clone())),
        ("message".into(), PickleValue::Str(error.message.clone())),
        (
            "args".into(),
            PickleValue::List(vec![PickleValue::Str(error.message.clone())]),
        ),
        ("attributes".into(), PickleValue::Dict(vec![])),
        ("stacktrace".into(), PickleValue::None),
    ]);
    let object = base64::engine::general_purpose::STANDARD.encode(pickle::dumps(&serialized));
    serde_json::json!({"object": object, "type": error.kind, "message": error.message})
}

fn json_string(value: &serde_json::Value) -> String {
    serde_json::to_string(value).expect("a JSON value always serializes")
}

/// The request as `/api/get` returns it: pickled placeholders for the Python
/// objects, and `return_value`/`error` encoded a second time.
pub fn request_payload(record: &RequestRecord, user_name: Option<String>) -> RequestPayload {
    RequestPayload {
        request_id: record.id.clone(),
        name: record.name.clone(),
        entrypoint: EMPTY_PICKLED_VALUE.to_owned(),
        request_body: EMPTY_PICKLED_VALUE.to_owned(),
        ..readable_payload(record, user_name, true)
    }
}

/// The request as `/api/status` lists it: plain text instead of pickles, and
/// the body only for its owner (`show_body`).
pub fn readable_payload(
    record: &RequestRecord,
    user_name: Option<String>,
    show_body: bool,
) -> RequestPayload {
    let return_value = record
        .return_value
        .as_ref()
        .map_or_else(|| "null".to_owned(), json_string);
    let error = record
        .error
        .as_ref()
        .map_or_else(|| "null".to_owned(), |e| json_string(&error_envelope(e)));
    RequestPayload {
        request_id: record.id.clone(),
        name: record.name.clone(),
        entrypoint: record.entrypoint.clone(),
        request_body: if show_body {
            json_string(&record.body)
        } else {
            "null".to_owned()
        },
        status: record.status,
        created_at: record.created_at,
        user_id: record.user_id.clone(),
        user_name,
        return_value,
        error,
        pid: None,
        schedule_type: record.schedule_type,
        cluster_name: record.cluster_name.clone(),
        status_msg: record.status_msg.clone(),
        should_retry: false,
        finished_at: record.finished_at,
    }
}

/// Every field `sky api status` may ask for with `fields=`.
pub const REQUEST_FIELDS: &[&str] = &[
    "request_id",
    "name",
    "entrypoint",
    "request_body",
    "status",
    "return_value",
    "error",
    "pid",
    "created_at",
    "cluster_name",
    "schedule_type",
    "user_id",
    "status_msg",
    "should_retry",
    "finished_at",
    "file_mounts_blob_id",
];

/// What the server tells `/api/health` callers about itself and them.
pub struct HealthFacts {
    pub user: Option<HealthUser>,
    pub basic_auth_enabled: bool,
    pub service_account_token_enabled: bool,
    pub ingress_basic_auth_enabled: bool,
    pub external_proxy_auth_enabled: bool,
}

pub fn health(facts: HealthFacts) -> HealthResponse {
    HealthResponse {
        status: HealthStatus::Healthy,
        api_version: API_VERSION.to_string(),
        version: SKYPILOT_COMPAT_VERSION.to_owned(),
        version_on_disk: SKYPILOT_COMPAT_VERSION.to_owned(),
        commit: COMMIT.to_owned(),
        basic_auth_enabled: facts.basic_auth_enabled,
        user: facts.user,
        service_account_token_enabled: facts.service_account_token_enabled,
        ingress_basic_auth_enabled: facts.ingress_basic_auth_enabled,
        external_proxy_auth_enabled: facts.external_proxy_auth_enabled,
        latest_version: None,
        telemetry_enabled: false,
        restrict_config_to_admins: true,
        skydeck_version: Some(SKYDECK_VERSION.to_owned()),
    }
}

/// The `<sky-payload>` control lines of a log stream.
pub mod control {
    fn payload(tag: &str, text: &str) -> String {
        let inner = format!("<{tag}>{text}</{tag}>");
        let quoted = serde_json::to_string(&inner).expect("strings always serialize");
        format!("<sky-payload>{quoted}</sky-payload>\n")
    }

    /// Keeps an idle stream alive; the client never prints it.
    pub fn heartbeat() -> String {
        payload("heartbeat", "")
    }

    /// Tells the client to re-request the stream (it skips what it printed).
    pub fn retry() -> String {
        payload("retry", "")
    }

    /// Starts a spinner with `text`.
    pub fn spinner_start(text: &str) -> Vec<String> {
        vec![payload("rich_init", text), payload("rich_start", text)]
    }

    /// Stops the spinner.
    pub fn spinner_stop() -> String {
        payload("rich_exit", "")
    }

    /// True for a line the client treats as a control payload.
    pub fn is_payload_line(line: &[u8]) -> bool {
        line.starts_with(b"<sky-payload>")
    }
}

/// The line a cancelled request's stream ends with, as the client prints it.
pub fn cancelled_line(name: &str, id: &str) -> String {
    format!("'{name}' request {id} cancelled\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_is_a_json_quoted_payload_line() {
        assert_eq!(
            control::heartbeat(),
            "<sky-payload>\"<heartbeat></heartbeat>\"</sky-payload>\n"
        );
        assert!(control::is_payload_line(control::retry().as_bytes()));
    }

    #[test]
    fn error_envelope_carries_type_message_and_a_pickle() {
        let envelope = error_envelope(&RequestError::new("ValueError", "bad"));
        assert_eq!(envelope["type"], "ValueError");
        assert_eq!(envelope["message"], "bad");
        let object = envelope["object"].as_str().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(object)
            .unwrap();
        assert!(bytes.starts_with(b"\x80\x02}"));
        assert!(bytes.ends_with(b"u."));
    }
}
