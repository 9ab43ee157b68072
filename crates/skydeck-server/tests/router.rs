//! In-process tests of the HTTP layer with a real SQLite store.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use http_body_util::BodyExt;
use skydeck_server::Server;
use skydeck_server::config::{Paths, ServerConfig};
use tower::ServiceExt;

struct App {
    router: axum::Router,
    _server: Server,
    _home: tempfile::TempDir,
}

async fn app() -> App {
    let home = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::for_tests(Paths::new(home.path()));
    config.max_body_bytes = 64 * 1024;
    let server = Server::open(config).await.unwrap();
    let boom = axum::Router::new().route(
        "/test/panic",
        get(|| async {
            panic!("boom");
            #[allow(unreachable_code)]
            ""
        }),
    );
    let router = skydeck_server::routes::router_with(server.state().clone(), boom);
    App {
        router,
        _server: server,
        _home: home,
    }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: serde_json::Value,
}

async fn call(app: &App, request: Request<Body>) -> Answer {
    let response = app.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
    Answer {
        status,
        headers,
        body,
    }
}

fn client_get(uri: &str) -> Request<Body> {
    Request::get(uri)
        .header("X-SkyPilot-API-Version", "62")
        .header("X-SkyPilot-Version", "0.14.1")
        .body(Body::empty())
        .unwrap()
}

fn client_post(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header("X-SkyPilot-API-Version", "62")
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

#[tokio::test]
async fn health_answers_in_skypilots_shape_with_version_headers() {
    let app = app().await;
    let answer = call(&app, client_get("/api/health")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["x-skypilot-api-version"], "62");
    assert_eq!(answer.headers["x-skypilot-version"], "0.14.1");
    assert!(answer.headers.contains_key("x-skypilot-request-id"));
    for field in ["api_version", "version", "commit"] {
        assert!(
            answer.body[field].is_string(),
            "{field} must be set: {}",
            answer.body
        );
    }
    assert_eq!(answer.body["status"], "healthy");
    assert_eq!(answer.body["basic_auth_enabled"], false);
    assert!(answer.body["user"]["id"].is_string());
}

#[tokio::test]
async fn a_bare_probe_gets_only_the_status() {
    let app = app().await;
    let answer = call(
        &app,
        Request::get("/api/health").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(answer.body, serde_json::json!({"status": "healthy"}));
    let plain = call(&app, Request::get("/health").body(Body::empty()).unwrap()).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert_eq!(plain.body, "ok\n");
}

#[tokio::test]
async fn clients_older_than_api_version_24_get_version_mismatch() {
    let app = app().await;
    let request = Request::get("/api/health")
        .header("X-SkyPilot-API-Version", "23")
        .body(Body::empty())
        .unwrap();
    let answer = call(&app, request).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.body["error"], "version_mismatch");
    assert!(
        answer.body["message"]
            .as_str()
            .unwrap()
            .contains("pip install")
    );
    assert_eq!(answer.headers["x-skypilot-api-version"], "62");
}

#[tokio::test]
async fn malformed_json_and_wrong_types_are_422_naming_the_problem() {
    let app = app().await;
    let answer = call(&app, client_post("/status", "{not json")).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.body["detail"][0]["type"], "json_invalid");

    let answer = call(&app, client_post("/status", r#"{"all_users": "everyone"}"#)).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        answer.body["detail"][0]["loc"],
        serde_json::json!(["body", "all_users"])
    );
    assert!(
        answer.body["detail"][0]["msg"]
            .as_str()
            .unwrap()
            .contains("all_users")
    );
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let app = app().await;
    let big = format!(r#"{{"cluster_names": ["{}"]}}"#, "x".repeat(100 * 1024));
    let answer = call(&app, client_post("/status", &big)).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(answer.body["detail"].is_string());
}

#[tokio::test]
async fn unknown_and_ambiguous_request_ids_are_404_and_400() {
    let app = app().await;
    let answer = call(&app, client_get("/api/get?request_id=ffffffff")).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.body["detail"], "Request \"ffffffff\" not found");

    // Not an id at all: the rule, not a lookup.
    let answer = call(&app, client_get("/api/get?request_id=../../etc/passwd")).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer.body["detail"]
            .as_str()
            .unwrap()
            .contains("request id")
    );

    let answer = call(&app, client_get("/api/get")).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Submit until two ids share a first character, then ask for it.
    let mut ids: Vec<String> = Vec::new();
    let shared = loop {
        let answer = call(&app, client_post("/status", "{}")).await;
        assert_eq!(answer.status, StatusCode::OK);
        let id = answer.headers["x-skypilot-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        if let Some(twin) = ids.iter().find(|other| other[..1] == id[..1]) {
            break twin[..1].to_owned();
        }
        ids.push(id);
    };
    let answer = call(&app, client_get(&format!("/api/get?request_id={shared}"))).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer.body["detail"],
        format!("Multiple requests found for request ID prefix: {shared}")
    );
}

#[tokio::test]
async fn a_scheduled_request_answers_200_at_once_and_get_returns_its_result() {
    let app = app().await;
    let answer = call(
        &app,
        client_post(
            "/status",
            r#"{"env_vars": {"SKYPILOT_USER_ID": "abcd1234", "SKYPILOT_USER": "alice"}}"#,
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, serde_json::Value::Null);
    let id = answer.headers["x-skypilot-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let result = call(
        &app,
        client_get(&format!("/api/get?request_id={}", &id[..8])),
    )
    .await;
    assert_eq!(result.status, StatusCode::OK);
    assert_eq!(result.body["request_id"], id);
    assert_eq!(result.body["status"], "SUCCEEDED");
    assert_eq!(result.body["return_value"], "[]");
    assert_eq!(result.body["error"], "null");
    assert_eq!(result.body["entrypoint"], "gAROLg==");
    assert_eq!(result.body["user_name"], "alice");
    assert!(
        result.body.get("pid").is_some(),
        "pid must be present, even null"
    );

    let listed = call(
        &app,
        client_get(&format!("/api/status?request_ids={id}&fields=request_id")),
    )
    .await;
    assert_eq!(listed.body[0]["user_id"], "abcd1234");
    let bad = call(&app, client_get("/api/status?fields=secret")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn endpoints_a_bare_sky_status_touches_answer_empty_results() {
    let app = app().await;
    for (request, expected) in [
        (
            client_post("/jobs/queue/v2", "{}"),
            serde_json::json!({"jobs": [], "total": 0, "total_no_filter": 0, "status_counts": {}}),
        ),
        (client_post("/serve/status", "{}"), serde_json::json!([])),
        (
            client_post("/jobs/pool_status", "{}"),
            serde_json::json!([]),
        ),
        (
            client_get("/workspaces"),
            serde_json::json!({"default": {}}),
        ),
        (
            client_get("/enabled_clouds?expand=True"),
            serde_json::json!(["Local"]),
        ),
    ] {
        let answer = call(&app, request).await;
        assert_eq!(answer.status, StatusCode::OK);
        let id = answer.headers["x-skypilot-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let result = call(&app, client_get(&format!("/api/get?request_id={id}"))).await;
        let value: serde_json::Value =
            serde_json::from_str(result.body["return_value"].as_str().unwrap()).unwrap();
        assert_eq!(value, expected, "{}", result.body["name"]);
    }
    let workspace = call(&app, client_get("/users/me/workspace")).await;
    assert_eq!(workspace.body["workspace"], "default");
}

#[tokio::test]
async fn a_panicking_handler_is_a_500_and_the_server_keeps_serving() {
    let app = app().await;
    let answer = call(&app, client_get("/test/panic")).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        answer.body["detail"]
            .as_str()
            .unwrap()
            .contains("Internal server error")
    );
    let health = call(&app, client_get("/api/health")).await;
    assert_eq!(health.status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_routes_are_404_in_fastapis_shape() {
    let app = app().await;
    let answer = call(&app, client_get("/no/such/route")).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.body, serde_json::json!({"detail": "Not Found"}));
    let answer = call(&app, client_get("/status")).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
}
