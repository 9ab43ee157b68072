//! Messages name the caller's tool: the same error reaches a `sky` caller
//! with `sky …` commands and a `skydeck` caller (which says so in
//! `X-Skydeck-Client`) with `skydeck …` ones, both for a request the
//! executor fails later and for a refusal at the HTTP boundary.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use skydeck_server::Server;
use skydeck_server::auth::settings::{AuthSettings, Credentials};
use skydeck_server::config::{Paths, ServerConfig};
use skydeck_store::{ClusterRecord, ClusterStatus};
use skydeck_types::ClientTool;
use skydeck_types::client_tool::HEADER_CLIENT;
use tower::ServiceExt;

async fn server(auth: AuthSettings) -> (Server, tempfile::TempDir) {
    let home = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::for_tests(Paths::new(home.path()));
    config.auth = auth;
    (Server::open(config).await.unwrap(), home)
}

/// Calls `uri` as `tool` would; the status and the body as text.
async fn call(
    router: &axum::Router,
    tool: ClientTool,
    method: &str,
    uri: &str,
    body: &str,
) -> (StatusCode, String, Option<String>) {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    if tool == ClientTool::Skydeck {
        request = request.header(HEADER_CLIENT, ClientTool::skydeck_header_value());
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let id = response
        .headers()
        .get("x-skypilot-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned(), id)
}

fn stopped_cluster(name: &str, user_id: &str) -> ClusterRecord {
    ClusterRecord {
        name: name.into(),
        status: ClusterStatus::Stopped,
        user_id: user_id.into(),
        workspace: "default".into(),
        infra: "local".into(),
        cluster_hash: "h".into(),
        launched_at: Some(1.0),
        status_updated_at: 1.0,
        num_nodes: 1,
        resources: serde_json::json!({}),
        handle: serde_json::json!({}),
        autostop_minutes: -1,
        autostop_down: false,
        ever_up: true,
        last_use: None,
    }
}

#[tokio::test]
async fn a_failed_request_names_the_command_of_the_tool_that_sent_it() {
    let (server, _home) = server(AuthSettings::default()).await;
    let router = server.router();
    let owner = server.state().local_user.id.clone();
    server
        .state()
        .store
        .put_cluster(&stopped_cluster("napper", &owner))
        .await
        .unwrap();
    for (tool, wanted, unwanted) in [
        (ClientTool::Sky, "`sky start napper`", "`skydeck start"),
        (ClientTool::Skydeck, "`skydeck start napper`", "`sky start"),
    ] {
        let (status, body, id) = call(
            &router,
            tool,
            "POST",
            "/queue",
            r#"{"cluster_name": "napper"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let id = id.expect("a request id");
        // Fetched by the other tool: the wording is the sender's.
        let other = match tool {
            ClientTool::Sky => ClientTool::Skydeck,
            ClientTool::Skydeck => ClientTool::Sky,
        };
        let (status, body, _) = call(
            &router,
            other,
            "GET",
            &format!("/api/get?request_id={id}"),
            "",
        )
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        assert!(body.contains(wanted), "{tool:?}: {wanted} not in {body}");
        assert!(!body.contains(unwanted), "{tool:?}: {unwanted} in {body}");
    }
}

#[tokio::test]
async fn a_login_refusal_names_the_callers_login_command_and_token_variable() {
    let (server, _home) = server(AuthSettings {
        basic_auth: true,
        service_accounts: true,
        initial_admin: Some(Credentials::parse("admin:admin-pw-1").unwrap()),
        ..Default::default()
    })
    .await;
    let router = server.router();
    for (tool, wanted) in [
        (
            ClientTool::Sky,
            ["`sky api login -e", "SKYPILOT_SERVICE_ACCOUNT_TOKEN"],
        ),
        (
            ClientTool::Skydeck,
            ["`skydeck api login -e", "SKYDECK_SERVICE_ACCOUNT_TOKEN"],
        ),
    ] {
        let (status, body, _) = call(&router, tool, "POST", "/status", "{}").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        for fragment in wanted {
            assert!(
                body.contains(fragment),
                "{tool:?}: {fragment} not in {body}"
            );
        }
    }
}
