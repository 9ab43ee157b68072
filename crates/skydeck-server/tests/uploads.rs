//! Uploads over HTTP, in process against a real SQLite store, with auth on
//! and two non-admin users: blobs are checked against their id, kept per
//! user, refused with a 4xx that leaves nothing behind, and a launch takes
//! its files from its own user's upload only, never from the server's disk.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::Engine;
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use skydeck_server::Server;
use skydeck_server::auth::settings::{AuthSettings, Credentials};
use skydeck_server::config::{Paths, ServerConfig};
use std::io::Write;
use std::path::{Path, PathBuf};
use tower::ServiceExt;

const ADMIN_PASSWORD: &str = "admin-pw-4a1f";

struct App {
    router: axum::Router,
    server: Server,
    home: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    body: serde_json::Value,
}

impl Answer {
    #[track_caller]
    fn expect_refused(&self, status: StatusCode, needle: &str) {
        assert_eq!(self.status, status, "{:?}", self.body);
        let detail = self.body["detail"].to_string();
        assert!(detail.contains(needle), "{needle:?} not in {detail}");
    }
}

/// Auth on, with alice and bob, neither an admin.
async fn app() -> App {
    app_with(|_| {}).await
}

async fn app_with(adjust: impl FnOnce(&mut ServerConfig)) -> App {
    let home = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::for_tests(Paths::new(home.path()));
    config.auth = AuthSettings {
        basic_auth: true,
        initial_admin: Some(Credentials::parse(&format!("admin:{ADMIN_PASSWORD}")).unwrap()),
        ..Default::default()
    };
    adjust(&mut config);
    let server = Server::open(config).await.unwrap();
    let app = App {
        router: server.router(),
        server,
        home,
    };
    for name in ["alice", "bob"] {
        let body = format!(r#"{{"name": "{name}", "password": "{name}-pw"}}"#);
        let answer = app
            .call(request(Method::POST, "/users/create", "admin", ADMIN_PASSWORD).json(&body))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    }
    app
}

struct Call(axum::http::request::Builder);

fn request(method: Method, uri: &str, user: &str, password: &str) -> Call {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    Call(
        Request::builder()
            .method(method)
            .uri(uri)
            .header("X-SkyPilot-API-Version", "62")
            .header("X-SkyPilot-Version", "0.14.1")
            .header("authorization", format!("Basic {encoded}")),
    )
}

/// A call as `user` (password `<user>-pw`).
fn as_user(method: Method, uri: &str, user: &str) -> Call {
    request(method, uri, user, &format!("{user}-pw"))
}

impl Call {
    fn json(self, body: &str) -> Request<Body> {
        self.0
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap()
    }

    fn bytes(self, body: Vec<u8>) -> Request<Body> {
        self.0
            .header("content-type", "application/octet-stream")
            .body(Body::from(body))
            .unwrap()
    }

    fn empty(self) -> Request<Body> {
        self.0.body(Body::empty()).unwrap()
    }
}

impl App {
    async fn call(&self, request: Request<Body>) -> Answer {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
        Answer { status, body }
    }

    /// Sends `zip` as blob `id`, as `user`, in one chunk.
    async fn upload(&self, user: &str, id: &str, zip: Vec<u8>) -> Answer {
        self.upload_chunk(user, id, 0, 1, zip).await
    }

    async fn upload_chunk(
        &self,
        user: &str,
        id: &str,
        index: usize,
        total: usize,
        bytes: Vec<u8>,
    ) -> Answer {
        let uri = format!(
            "/upload_v2?upload_id={id}&chunk_index={index}&total_chunks={total}&user_hash="
        );
        self.call(as_user(Method::POST, &uri, user).bytes(bytes))
            .await
    }

    async fn exists(&self, user: &str, id: &str) -> bool {
        let answer = self
            .call(
                as_user(
                    Method::GET,
                    &format!("/upload_v2/blob?blob_id={id}&user_hash="),
                    user,
                )
                .empty(),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        answer.body["exists"].as_bool().unwrap()
    }

    /// Submits `body` to `path` as `user` and waits for its result.
    async fn run(&self, user: &str, path: &str, body: &serde_json::Value) -> Answer {
        let response = self
            .router
            .clone()
            .oneshot(as_user(Method::POST, path, user).json(&body.to_string()))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let id = response.headers()["x-skypilot-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        self.call(as_user(Method::GET, &format!("/api/get?request_id={id}"), user).empty())
            .await
    }

    fn uploads(&self) -> PathBuf {
        self.home.path().join("uploads")
    }

    async fn user_id(&self, name: &str) -> String {
        let store = self.server.state().store.clone();
        store.get_user_by_name(name).await.unwrap().unwrap().id
    }
}

/// A zip of `(name, content)` files and the id the official client gives it.
fn zip_of(files: &[(&str, &[u8])]) -> (Vec<u8>, String) {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let mut digests = Vec::new();
    for (name, content) in files {
        writer
            .start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        writer.write_all(content).unwrap();
        digests.push((name.to_string(), Sha256::digest(content).into()));
    }
    let bytes = writer.finish().unwrap().into_inner();
    (bytes, skydeck_server::uploads::blob_id_of(digests))
}

/// Every path under `dir`, relative to it.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).into_iter().flatten().flatten() {
            let path = entry.path();
            out.push(path.strip_prefix(dir).unwrap().display().to_string());
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

/// `Type: message` of a failed request, as `/api/get` reports it.
fn request_error(answer: &Answer) -> String {
    assert_eq!(
        answer.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{:?}",
        answer.body
    );
    let error: serde_json::Value =
        serde_json::from_str(answer.body["detail"]["error"].as_str().unwrap()).unwrap();
    format!(
        "{}: {}",
        error["type"].as_str().unwrap(),
        error["message"].as_str().unwrap()
    )
}

/// A dry-run launch of a task whose workdir is `/home/alice/proj`, sent
/// with blob `id`.
fn launch_with_blob(id: &str) -> serde_json::Value {
    serde_json::json!({
        "cluster_name": "c1",
        "dryrun": true,
        "task": "workdir: /home/alice/proj\nrun: cat a.py\n\
                 file_mounts_mapping:\n  /home/alice/proj: /home/alice/proj\n",
        "file_mounts_blob_id": id,
    })
}

#[tokio::test]
async fn a_blob_is_its_uploaders_alone() {
    let app = app().await;
    let (zip, id) = zip_of(&[("home/alice/proj/a.py", b"print('alice')")]);
    let answer = app.upload("alice", &id, zip.clone()).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.body["status"], "completed");
    assert!(app.exists("alice", &id).await);
    assert!(
        !app.exists("bob", &id).await,
        "bob does not see alice's blob"
    );

    // Bob cannot plant other files under alice's id: the content must hash
    // to it.
    let (evil, _) = zip_of(&[("home/alice/proj/a.py", b"print('bob was here')")]);
    app.upload("bob", &id, evil)
        .await
        .expect_refused(StatusCode::BAD_REQUEST, "hashes to");
    // Sending the same content gives bob his own copy; alice's is untouched.
    let answer = app.upload("bob", &id, zip).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let alice_id = app.user_id("alice").await;
    let file = app
        .uploads()
        .join("users")
        .join(&alice_id)
        .join(&id)
        .join("files/home/alice/proj/a.py");
    assert_eq!(std::fs::read_to_string(file).unwrap(), "print('alice')");

    // A stranger can neither ask nor send.
    let (stranger_zip, stranger_id) = zip_of(&[("s", b"stranger")]);
    for request in [
        Request::get(format!("/upload_v2/blob?blob_id={id}&user_hash={alice_id}"))
            .header("X-SkyPilot-API-Version", "62")
            .body(Body::empty())
            .unwrap(),
        Request::post(format!(
            "/upload_v2?upload_id={stranger_id}&user_hash={alice_id}"
        ))
        .header("X-SkyPilot-API-Version", "62")
        .body(Body::from(stranger_zip))
        .unwrap(),
    ] {
        assert_eq!(app.call(request).await.status, StatusCode::UNAUTHORIZED);
    }
    assert!(!app.exists("alice", &stranger_id).await);

    // Alice's launch finds her blob; bob's launch naming it finds none of
    // his own (until he uploads it, as above).
    let mine = app.run("alice", "/launch", &launch_with_blob(&id)).await;
    assert_eq!(mine.status, StatusCode::OK, "{:?}", mine.body);
    let (only_hers, other) = zip_of(&[("x", b"only alice has this")]);
    assert_eq!(
        app.upload("alice", &other, only_hers).await.status,
        StatusCode::OK
    );
    let error = request_error(&app.run("bob", "/launch", &launch_with_blob(&other)).await);
    assert!(error.contains("ValueError"), "{error}");
    assert!(
        error.contains("not on the API server among yours"),
        "{error}"
    );
}

#[tokio::test]
async fn a_refused_upload_is_a_4xx_that_leaves_nothing_behind() {
    let app = app_with(|config| config.max_upload_bytes = 64 * 1024).await;
    let (zip, id) = zip_of(&[("a.txt", b"hello")]);
    let wrong = "0".repeat(64);
    for (bytes, upload_id, status, needle) in [
        (
            b"PK\x03\x04 not a zip".to_vec(),
            id.as_str(),
            StatusCode::BAD_REQUEST,
            "not a valid zip",
        ),
        (
            zip.clone(),
            wrong.as_str(),
            StatusCode::BAD_REQUEST,
            "hashes to",
        ),
        (
            zip_of(&[("a", b"x"), ("a/b", b"y")]).0,
            id.as_str(),
            StatusCode::BAD_REQUEST,
            "cannot unpack zip member",
        ),
        (
            zip_of(&[("zeros", &vec![0u8; 1 << 20])]).0,
            id.as_str(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "SKYDECK_MAX_UPLOAD_BYTES",
        ),
    ] {
        app.upload("alice", upload_id, bytes)
            .await
            .expect_refused(status, needle);
        assert_eq!(
            tree(&app.uploads().join("users")),
            vec![app.user_id("alice").await],
            "nothing but alice's directory is left"
        );
    }
    // Chunks count together against the limit, whatever their number.
    let chunk = vec![b'x'; 40 * 1024];
    let first = app.upload_chunk("alice", &id, 0, 3, chunk.clone()).await;
    assert_eq!(first.body["status"], "uploading", "{:?}", first.body);
    app.upload_chunk("alice", &id, 1, 3, chunk)
        .await
        .expect_refused(StatusCode::PAYLOAD_TOO_LARGE, "SKYDECK_MAX_UPLOAD_BYTES");
    assert_eq!(
        tree(&app.uploads().join("users")),
        vec![app.user_id("alice").await]
    );
    // An id that is no SHA-256 is refused with the rule.
    app.upload("alice", "../../etc", zip)
        .await
        .expect_refused(StatusCode::BAD_REQUEST, "64 lower-case hex digits");
}

#[tokio::test]
async fn without_an_upload_no_server_path_reaches_a_cluster() {
    let app = app().await;
    std::fs::write(app.home.path().join("secret.txt"), "server-only").unwrap();
    let secret = app.home.path().join("secret.txt").display().to_string();
    for (task, source) in [
        (
            "workdir: /\nrun: ls\n".to_owned(),
            "workdir: \"/\"".to_owned(),
        ),
        (
            "file_mounts:\n  /x: ~/.skydeck/state.db\nrun: ls\n".to_owned(),
            "~/.skydeck/state.db".to_owned(),
        ),
        (
            format!("file_mounts:\n  /x: {secret}\nrun: cat /x\n"),
            secret.clone(),
        ),
    ] {
        let body = serde_json::json!({"cluster_name": "c1", "task": task});
        let error = request_error(&app.run("alice", "/launch", &body).await);
        assert!(error.contains("ValueError"), "{error}");
        assert!(error.contains(&source), "{source} not in {error}");
        assert!(error.contains("no files were uploaded"), "{error}");
    }
    // With an upload that lacks the source, too.
    let (zip, id) = zip_of(&[("home/alice/proj/a.py", b"1")]);
    app.upload("alice", &id, zip).await;
    let body = serde_json::json!({
        "cluster_name": "c1",
        "task": format!("workdir: /home/alice/proj\nfile_mounts:\n  /x: {secret}\nrun: ls\n"),
        "file_mounts_blob_id": id,
    });
    let error = request_error(&app.run("alice", "/launch", &body).await);
    assert!(error.contains("not among the files uploaded"), "{error}");
    assert!(error.contains(&secret), "{error}");
    let store = app.server.state().store.clone();
    assert!(
        store.get_cluster("c1").await.unwrap().is_none(),
        "nothing was launched"
    );
    assert!(!app.home.path().join("clusters/c1").exists());
}

#[tokio::test]
async fn with_auth_off_blobs_are_kept_per_named_user() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::open(ServerConfig::for_tests(Paths::new(home.path())))
        .await
        .unwrap();
    let router = server.router();
    let (zip, id) = zip_of(&[("f", b"1")]);
    let call = |request: Request<Body>| {
        let router = router.clone();
        async move {
            let response = router.oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            (
                status,
                serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
            )
        }
    };
    let upload = Request::post(format!("/upload_v2?upload_id={id}&user_hash=aaaa1111"))
        .header("X-SkyPilot-API-Version", "62")
        .body(Body::from(zip))
        .unwrap();
    let (status, body) = call(upload).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    for (user, exists) in [("aaaa1111", true), ("bbbb2222", false)] {
        let (status, body) = call(
            Request::get(format!("/upload_v2/blob?blob_id={id}&user_hash={user}"))
                .header("X-SkyPilot-API-Version", "62")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body:?}");
        assert_eq!(body["exists"], exists, "{user}");
    }
    let (status, body) = call(
        Request::get(format!("/upload_v2/blob?blob_id={id}&user_hash=../x"))
            .header("X-SkyPilot-API-Version", "62")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
}
