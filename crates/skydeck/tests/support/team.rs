//! A server with basic auth on, an admin and named users, and API clients
//! logged in as each: the set-up of every test about who may do what.

use super::TestServer;
use serde_json::json;
use skydeck_client::Client;
use skydeck_client::admin::NewUser;
use std::path::Path;

/// The first admin's `name:password`.
pub const ADMIN: &str = "admin:admin-pw-61";

/// A server on `home` with basic auth (and `extra` settings), and `users`
/// created by the admin, each with the password `<name>-pw`.
pub async fn start(home: &Path, extra: &[(&str, &str)], users: &[&str]) -> TestServer {
    let mut envs = vec![
        ("SKYDECK_ENABLE_BASIC_AUTH", "1"),
        ("SKYDECK_INITIAL_BASIC_AUTH", ADMIN),
    ];
    envs.extend_from_slice(extra);
    let server = TestServer::start(home, &envs);
    let admin = client(&server, ADMIN);
    for name in users {
        admin
            .create_user(&NewUser {
                name: (*name).into(),
                password: Some(format!("{name}-pw")),
                role: None,
            })
            .await
            .unwrap();
    }
    server
}

/// An API client logged in with `credentials` (`name:password`).
pub fn client(server: &TestServer, credentials: &str) -> Client {
    let url = server
        .url
        .replacen("http://", &format!("http://{credentials}@"), 1);
    Client::new(&url, None).unwrap()
}

/// The status of cluster `name` as `client` sees it; `None` when it does
/// not see one.
pub async fn cluster_status(client: &Client, name: &str) -> Option<String> {
    let id = client
        .submit("/status", &json!({ "cluster_names": [name] }))
        .await
        .unwrap();
    let rows = client.wait(&id).await.unwrap();
    rows.as_array()?
        .iter()
        .find(|row| row["name"] == name)
        .and_then(|row| row["status"].as_str().map(str::to_owned))
}
