//! Editing SSH Node Pools through the API (`POST /ssh_node_pools`,
//! `DELETE /ssh_node_pools/{pool}`, `GET`/`POST /ssh_node_pools/keys`),
//! against the real binary with basic auth on: only admins may, every name
//! is checked before anything is written, keys land 0600 in the server's
//! key store, and a pool a cluster runs on cannot be deleted.

mod support;

use skydeck_client::Client;
use skydeck_client::admin::{NewUser, Role};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use support::TestServer;

const ADMIN_PASSWORD: &str = "Adm1n-Pool-Editor-7";
const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
/// A request body: its content type and bytes.
type Body = (&'static str, Vec<u8>);

const BOUNDARY: &str = "skydeck-test-boundary-5f2c";

fn start(scratch: &Path) -> TestServer {
    let home = scratch.join("server");
    std::fs::create_dir_all(&home).unwrap();
    // Ours, so a `~/.sky` pool file on this machine is neither read nor written.
    std::fs::write(
        home.join("ssh_node_pools.yaml"),
        "rack:\n  user: root\n  hosts: [h1]\n",
    )
    .unwrap();
    TestServer::start(
        &home,
        &[
            ("SKYDECK_ENABLE_BASIC_AUTH", "true"),
            (
                "SKYDECK_INITIAL_BASIC_AUTH",
                &format!("admin:{ADMIN_PASSWORD}"),
            ),
        ],
    )
}

/// An HTTP call as `user`; status and body.
async fn call(
    server: &TestServer,
    user: (&str, &str),
    method: &str,
    path: &str,
    body: Option<(&str, Vec<u8>)>,
) -> (u16, String) {
    let client = skydeck_client::http_client().unwrap();
    let mut request = client
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", server.url),
        )
        .basic_auth(user.0, Some(user.1))
        .header("X-SkyPilot-API-Version", "62")
        .header("X-SkyPilot-Version", "0.14.1");
    if let Some((content_type, bytes)) = body {
        request = request.header("Content-Type", content_type).body(bytes);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The multipart form the official client sends (`requests`' `files=`
/// and `data=`): `key_file` with the key name as its file name, then
/// `key_name`.
fn key_form(name: &str, content: &[u8]) -> (&'static str, Vec<u8>) {
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"key_name\"\r\n\r\n{name}\r\n\
             --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"key_file\"; filename=\"{name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    (
        "multipart/form-data; boundary=skydeck-test-boundary-5f2c",
        body,
    )
}

fn json(text: &str) -> (&'static str, Vec<u8>) {
    ("application/json", text.as_bytes().to_vec())
}

async fn add_user(server: &TestServer, name: &str, role: Role) -> String {
    let admin = Client::new(
        &server
            .url
            .replace("http://", &format!("http://admin:{ADMIN_PASSWORD}@")),
        None,
    )
    .unwrap();
    let password = format!("{name}-pw-1234");
    admin
        .create_user(&NewUser {
            name: name.to_owned(),
            password: Some(password.clone()),
            role: Some(role),
        })
        .await
        .unwrap();
    password
}

fn pool_file(server: &TestServer) -> String {
    std::fs::read_to_string(server.home.join("ssh_node_pools.yaml")).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn only_admins_edit_pools_and_keys() {
    let scratch = tempfile::tempdir().unwrap();
    let server = start(scratch.path());
    let password = add_user(&server, "bob", Role::User).await;
    let bob = ("bob", password.as_str());
    let before = pool_file(&server);
    let attempts: Vec<(&str, &str, Option<Body>)> = vec![
        (
            "POST",
            "/ssh_node_pools",
            Some(json(r#"{"mine": {"hosts": ["10.0.0.9"]}}"#)),
        ),
        ("DELETE", "/ssh_node_pools/rack", None),
        ("GET", "/ssh_node_pools/keys", None),
        (
            "POST",
            "/ssh_node_pools/keys",
            Some(key_form("bob-key", KEY.as_bytes())),
        ),
        ("GET", "/ssh_node_pools", None),
    ];
    for (method, path, body) in attempts {
        let (status, text) = call(&server, bob, method, path, body).await;
        assert_eq!(status, 403, "{method} {path}: {text}");
        assert!(text.contains("Only admins can"), "{method} {path}: {text}");
    }
    assert_eq!(pool_file(&server), before, "a refused edit changes nothing");
    assert!(
        !server.home.join("ssh_keys").exists(),
        "a refused upload stores nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_names_and_contents_are_refused_before_anything_is_written() {
    let scratch = tempfile::tempdir().unwrap();
    let server = start(scratch.path());
    let admin = ("admin", ADMIN_PASSWORD);
    for name in [
        "../evil",
        ".hidden",
        "a/b",
        "/etc/passwd",
        "",
        &"k".repeat(64),
    ] {
        let (status, text) = call(
            &server,
            admin,
            "POST",
            "/ssh_node_pools/keys",
            Some(key_form(name, KEY.as_bytes())),
        )
        .await;
        assert_eq!(status, 400, "key name {name:?}: {text}");
        assert!(
            text.contains("SSH key name") || text.contains("Missing key_name"),
            "key name {name:?}: {text}"
        );
    }
    for (content, why) in [
        (
            b"ssh-ed25519 AAAAC3Nza me@host\n".to_vec(),
            "not a private key",
        ),
        (vec![b'k'; 64 * 1024 + 1], "larger than"),
        (vec![0xff, 0xfe, 0x00], "not a private key"),
    ] {
        let (status, text) = call(
            &server,
            admin,
            "POST",
            "/ssh_node_pools/keys",
            Some(key_form("fine-name", &content)),
        )
        .await;
        assert_eq!(status, 400, "{why}: {text}");
        assert!(
            text.contains(why) || text.contains("not text"),
            "{why}: {text}"
        );
    }
    let stored: Vec<String> = std::fs::read_dir(server.home.join("ssh_keys"))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(stored.is_empty(), "nothing stored: {stored:?}");
    assert!(!scratch.path().join("evil").exists());

    let before = pool_file(&server);
    for (body, why) in [
        (r#"{"../x": {"hosts": ["h"]}}"#, "invalid pool name"),
        (
            r#"{"p": {"hosts": ["-oProxyCommand=id"]}}"#,
            "is not a host",
        ),
        (
            r#"{"p": {"hosts": [{"ip": "h", "user": "a;b"}]}}"#,
            "is not a user name",
        ),
        (r#"{"p": {"hosts": []}}"#, "has no hosts"),
        (r#"{"p": {"hosts": ["h"], "port": 22}}"#, "unknown field"),
        (r#"{}"#, "no pools sent"),
        (r#"[1]"#, "Failed to update"),
    ] {
        let (status, text) =
            call(&server, admin, "POST", "/ssh_node_pools", Some(json(body))).await;
        assert_eq!(status, 400, "{body}: {text}");
        assert!(text.contains(why), "{body}: {text}");
    }
    assert_eq!(pool_file(&server), before, "a refused edit changes nothing");
    let (status, text) = call(&server, admin, "DELETE", "/ssh_node_pools/..%2Frack", None).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("invalid pool name"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_stores_keys_edits_pools_and_cannot_delete_one_in_use() {
    let scratch = tempfile::tempdir().unwrap();
    let server = start(scratch.path());
    let admin = ("admin", ADMIN_PASSWORD);
    // Another admin may as well: the role decides, not the name.
    let carol_password = add_user(&server, "carol", Role::Admin).await;

    let (status, text) = call(
        &server,
        ("carol", &carol_password),
        "POST",
        "/ssh_node_pools/keys",
        Some(key_form("rack-0-ab12", KEY.as_bytes())),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["status"], "success");
    let key_path = answer["key_path"].as_str().unwrap().to_owned();
    assert_eq!(
        Path::new(&key_path),
        server.home.join("ssh_keys/rack-0-ab12")
    );
    assert_eq!(std::fs::read_to_string(&key_path).unwrap(), KEY);
    let mode = std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the key is the server user's alone");

    let (status, text) = call(&server, admin, "GET", "/ssh_node_pools/keys", None).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(text, r#"["rack-0-ab12"]"#);

    // What `sky ssh up -f` sends: resolved hosts, '' for what is unset.
    let update = format!(
        r#"{{"rack": {{"hosts": [{{"ip": "10.0.0.7", "user": "ubuntu", "identity_file": "{key_path}",
            "password": "", "use_ssh_config": false}}]}},
           "spare": {{"hosts": ["10.0.0.8"]}}}}"#
    );
    let (status, text) = call(
        &server,
        admin,
        "POST",
        "/ssh_node_pools",
        Some(json(&update)),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(text, r#"{"status":"success"}"#);
    let file = std::fs::metadata(server.home.join("ssh_node_pools.yaml")).unwrap();
    assert_eq!(file.permissions().mode() & 0o777, 0o600);
    let (status, text) = call(&server, admin, "GET", "/ssh_node_pools", None).await;
    assert_eq!(status, 200, "{text}");
    let pools: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        pools,
        serde_json::json!({
            "rack": {"hosts": [{"ip": "10.0.0.7", "user": "ubuntu", "identity_file": key_path,
                                "use_ssh_config": false}]},
            "spare": {"hosts": ["10.0.0.8"]},
        })
    );

    // A cluster placed on `rack` holds it.
    hold_pool(&server.home, "rack", "c-on-rack").await;
    let (status, text) = call(&server, admin, "DELETE", "/ssh_node_pools/rack", None).await;
    assert_eq!(status, 409, "{text}");
    assert!(
        text.contains("in use by cluster c-on-rack"),
        "the refusal names the cluster: {text}"
    );
    assert!(pool_file(&server).contains("rack:"));

    let (status, text) = call(&server, admin, "DELETE", "/ssh_node_pools/spare", None).await;
    assert_eq!(status, 200, "{text}");
    assert!(!pool_file(&server).contains("spare"));
    let (status, text) = call(&server, admin, "DELETE", "/ssh_node_pools/spare", None).await;
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("not found"), "{text}");
}

/// Records a host of `pool` and a cluster placed on it, as `ssh up` and a
/// launch would.
async fn hold_pool(home: &Path, pool: &str, cluster: &str) {
    use skydeck_store::{ClusterRecord, ClusterStatus, Store};
    use skydeck_types::placement::{Allocation, Host};
    let store =
        skydeck_store::SqlStore::open(&format!("sqlite://{}", home.join("state.db").display()))
            .await
            .expect("open the server's database");
    let host = Host {
        id: format!("ssh/{pool}/10.0.0.7"),
        pool: format!("ssh/{pool}"),
        cpus: 4.0,
        memory_gb: 8.0,
        gpus: Vec::new(),
    };
    store.put_host(&host).await.unwrap();
    store
        .put_cluster(&ClusterRecord {
            name: cluster.to_owned(),
            status: ClusterStatus::Init,
            user_id: "someone".to_owned(),
            workspace: "default".to_owned(),
            infra: format!("ssh/{pool}"),
            cluster_hash: format!("hash-{cluster}"),
            launched_at: None,
            status_updated_at: 1.0,
            num_nodes: 1,
            resources: serde_json::json!({}),
            handle: serde_json::json!({}),
            autostop_minutes: -1,
            autostop_down: false,
            ever_up: false,
            last_use: None,
        })
        .await
        .unwrap();
    let id = host.id.clone();
    let cluster_name = cluster.to_owned();
    let placed = store
        .place_cluster(&format!("ssh/{pool}"), cluster, &move |_, _| {
            Ok(vec![Allocation {
                cluster: cluster_name.clone(),
                node_rank: 0,
                host: id.clone(),
                cpus: 1.0,
                memory_gb: 1.0,
                gpus: Vec::new(),
                ports: Vec::new(),
            }])
        })
        .await
        .unwrap();
    assert!(placed.is_ok(), "{placed:?}");
}
