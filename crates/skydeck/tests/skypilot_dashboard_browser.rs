//! SkyPilot 0.14.1's own dashboard, against Skydeck, in a real browser.
//!
//! SkyPilot's server serves the dashboard's built pages (a Next.js export
//! shipped in the `skypilot` wheel, `sky/dashboard/out`) at `/dashboard`
//! and its API under `/internal/dashboard/`. Skydeck serves its own pages
//! at `/dashboard`, so this test puts a small front server of its own in
//! front: SkyPilot's built pages at `/dashboard`, everything else passed
//! to Skydeck with one user's basic-auth credentials, as an ingress with
//! basic auth would. Headless Chromium then reads the pages as SkyPilot's
//! users do: alice sees her cluster (its infra drawn), its page, a job's
//! page with its log, and her managed job's page with its log; mallory's
//! clusters list has her own cluster and none of alice's, and alice's
//! managed job is "not found" to her.
//!
//! Needs `SKYDECK_TEST_SKY` (the wheel's dashboard is found beside the
//! official `sky`) and `SKYDECK_TEST_CHROMEDRIVER`.

mod support;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use fantoccini::{Client, Locator};
use serde_json::json;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use support::browser::{browser, chromedriver};
use support::sky::official_sky;
use support::team::{self, client as as_client};

/// Longer than any page takes to draw its data here.
const DEADLINE: Duration = Duration::from_secs(60);
/// The most of one request body the front server passes on.
const BODY_LIMIT: usize = 16 << 20;

/// SkyPilot's built dashboard in the virtual environment of `sky`.
fn skypilot_dashboard(sky: &Path) -> PathBuf {
    let venv = sky
        .parent()
        .and_then(Path::parent)
        .expect("sky is in <venv>/bin");
    let lib = venv.join("lib");
    std::fs::read_dir(&lib)
        .unwrap_or_else(|e| panic!("{}: {e}", lib.display()))
        .filter_map(Result::ok)
        .map(|python| python.path().join("site-packages/sky/dashboard/out"))
        .find(|out| out.join("index.html").is_file())
        .unwrap_or_else(|| panic!("no sky/dashboard/out under {}", lib.display()))
}

struct Front {
    pages: PathBuf,
    api: String,
    /// The user this front server stands for, and their password.
    user: String,
    password: String,
    http: reqwest::Client,
}

/// A front server on 127.0.0.1 for one user; answers its address.
async fn front(pages: &Path, api: &str, credentials: &str) -> String {
    let (user, password) = credentials.split_once(':').unwrap();
    let front = Arc::new(Front {
        pages: pages.to_owned(),
        api: api.to_owned(),
        user: user.to_owned(),
        password: password.to_owned(),
        http: skydeck_client::http_client().unwrap(),
    });
    let app = axum::Router::new().fallback(serve).with_state(front);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn serve(State(front): State<Arc<Front>>, request: Request) -> Response {
    match request.uri().path().strip_prefix("/dashboard") {
        Some(page) if request.method() == axum::http::Method::GET => built_page(&front.pages, page),
        _ => pass_on(&front, request).await,
    }
}

/// A file of the Next.js export: the path itself, its `.html` or its
/// `index.html`, where each segment that is not there is the folder's
/// dynamic route (`clusters/alice-box/1` is `clusters/[cluster]/[job].html`).
fn built_page(pages: &Path, path: &str) -> Response {
    let path = path.replace("%5B", "[").replace("%5D", "]");
    let relative = Path::new(path.trim_start_matches('/'));
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return StatusCode::NOT_FOUND.into_response();
    }
    let mut file = pages.to_owned();
    for segment in relative.iter() {
        let literal = file.join(segment);
        let html = file.join(format!("{}.html", segment.to_string_lossy()));
        file = if literal.exists() || html.is_file() {
            literal
        } else {
            match dynamic_route(&file) {
                Some(route) => file.join(route),
                None => return StatusCode::NOT_FOUND.into_response(),
            }
        };
    }
    let found = [
        file.clone(),
        file.with_extension("html"),
        file.join("index.html"),
    ]
    .into_iter()
    .find(|candidate| candidate.is_file());
    let Some(found) = found else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let content_type = match found.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "application/javascript",
        Some("css") => "text/css",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    };
    (
        [(header::CONTENT_TYPE, content_type)],
        std::fs::read(found).unwrap(),
    )
        .into_response()
}

/// The `[name]` of a folder's dynamic route, from its `[name].html` or
/// its `[name]` folder.
fn dynamic_route(folder: &Path) -> Option<String> {
    std::fs::read_dir(folder)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .map(|name| name.trim_end_matches(".html").to_owned())
        .find(|name| name.starts_with('[') && name.ends_with(']'))
}

/// Passes a request on to Skydeck as this front server's user.
async fn pass_on(front: &Front, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let target = format!(
        "{}{}",
        front.api,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let body = axum::body::to_bytes(body, BODY_LIMIT).await.unwrap();
    let mut outgoing = front.http.request(parts.method, target);
    for (name, value) in &parts.headers {
        if name != header::HOST && name != header::CONTENT_LENGTH && name != header::AUTHORIZATION {
            outgoing = outgoing.header(name, value);
        }
    }
    let answer = outgoing
        .basic_auth(&front.user, Some(&front.password))
        .body(body)
        .send()
        .await
        .expect("Skydeck answers");
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if name != header::TRANSFER_ENCODING && name != header::CONTENT_LENGTH {
            response = response.header(name, value);
        }
    }
    response
        .body(Body::from(answer.bytes().await.unwrap_or_default()))
        .unwrap()
}

/// Waits until the page shows `text` somewhere; answers the page's text.
async fn wait_for_text(browser: &Client, text: &str) -> String {
    let xpath = format!("//body[contains(., '{text}')]");
    let found = browser
        .wait()
        .at_most(DEADLINE)
        .for_element(Locator::XPath(&xpath))
        .await;
    let page = page_text(browser).await;
    assert!(found.is_ok(), "the page never showed {text:?}: {page}");
    page
}

async fn page_text(browser: &Client) -> String {
    browser
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn skypilots_own_dashboard_shows_each_user_their_clusters_and_jobs() {
    let Some(sky) = official_sky() else { return };
    let Some(driver) = chromedriver() else { return };
    let pages = skypilot_dashboard(&sky);
    let scratch = tempfile::tempdir().unwrap();
    let server = team::start(&scratch.path().join("server"), &[], &["alice", "mallory"]).await;
    let alice_api = as_client(&server, "alice:alice-pw");

    let id = alice_api
        .submit(
            "/launch",
            &json!({ "task": "run: echo hello-from-alice\n", "cluster_name": "alice-box" }),
        )
        .await
        .unwrap();
    alice_api.wait(&id).await.unwrap();
    let mallory_api = as_client(&server, "mallory:mallory-pw");
    let id = mallory_api
        .submit(
            "/launch",
            &json!({ "task": "run: echo hers\n", "cluster_name": "mallory-box" }),
        )
        .await
        .unwrap();
    mallory_api.wait(&id).await.unwrap();
    let id = alice_api
        .submit(
            "/jobs/launch",
            &json!({ "task": "name: nightly-train\nrun: echo managed-hello\n" }),
        )
        .await
        .unwrap();
    let job = alice_api.wait(&id).await.unwrap()["job_id"]
        .as_u64()
        .unwrap();

    let alice_front = front(&pages, &server.url, "alice:alice-pw").await;
    let alice = browser(&driver, &scratch.path().join("alice-profile")).await;
    // The clusters list, with the infra column SkyPilot draws from each
    // record's cloud (a null cloud broke the whole page).
    alice
        .goto(&format!("{alice_front}/dashboard/clusters"))
        .await
        .unwrap();
    let listed = wait_for_text(&alice, "alice-box").await;
    assert!(
        listed.contains("Local") && !listed.contains("Application error"),
        "{listed}"
    );
    // The cluster's own page and its job.
    alice
        .goto(&format!("{alice_front}/dashboard/clusters/alice-box"))
        .await
        .unwrap();
    let cluster = wait_for_text(&alice, "Cluster Jobs").await;
    assert!(cluster.contains("alice-box"), "{cluster}");
    // The job's page and its log.
    alice
        .goto(&format!("{alice_front}/dashboard/clusters/alice-box/1"))
        .await
        .unwrap();
    wait_for_text(&alice, "hello-from-alice").await;
    // The managed job's page asks for it by the id in its address, a
    // string (`job_ids: ["1"]`), as SkyPilot's server accepts.
    alice
        .goto(&format!("{alice_front}/dashboard/jobs/{job}"))
        .await
        .unwrap();
    let managed = wait_for_text(&alice, "nightly-train").await;
    assert!(!managed.contains("Job not found"), "{managed}");
    // Its log, asked for with the id as a string too.
    wait_for_text(&alice, "managed-hello").await;

    // Mallory's dashboard lists her cluster, and none of alice's.
    let mallory_front = front(&pages, &server.url, "mallory:mallory-pw").await;
    let mallory = browser(&driver, &scratch.path().join("mallory-profile")).await;
    mallory
        .goto(&format!("{mallory_front}/dashboard/clusters"))
        .await
        .unwrap();
    let theirs = wait_for_text(&mallory, "mallory-box").await;
    assert!(!theirs.contains("alice-box"), "{theirs}");
    // Nor alice's managed job, asked for by its id.
    mallory
        .goto(&format!("{mallory_front}/dashboard/jobs/{job}"))
        .await
        .unwrap();
    let refused = wait_for_text(&mallory, "Job not found").await;
    assert!(
        !refused.contains("nightly-train") && !refused.contains("managed-hello"),
        "{refused}"
    );

    alice.close().await.unwrap();
    mallory.close().await.unwrap();
    let id = alice_api
        .submit("/down", &json!({ "cluster_name": "alice-box" }))
        .await
        .unwrap();
    alice_api.wait(&id).await.unwrap();
    let id = mallory_api
        .submit("/down", &json!({ "cluster_name": "mallory-box" }))
        .await
        .unwrap();
    mallory_api.wait(&id).await.unwrap();
}
