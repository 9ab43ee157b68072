//! Which API server the CLI talks to, and who it says the user is.

use anyhow::Context;
use skydeck_server::config::Paths;
use std::collections::BTreeMap;

pub const DEFAULT_PORT: u16 = 46580;
pub const ENV_ENDPOINT: &str = "SKYDECK_API_SERVER_ENDPOINT";
pub const ENV_TOKEN: &str = "SKYDECK_SERVICE_ACCOUNT_TOKEN";
/// The workspace requests act in; overrides `active_workspace` in the
/// client's config.yaml.
pub const ENV_WORKSPACE: &str = "SKYDECK_WORKSPACE";

pub fn local_default() -> String {
    format!("http://127.0.0.1:{DEFAULT_PORT}")
}

/// Which API server the CLI talks to, and who it says it is. Every
/// command (`status`, `api status`, `api stop`…) asks [`resolve`], so
/// they all act on the same server.
pub struct Target {
    pub endpoint: String,
    pub token: Option<String>,
    pub source: Source,
}

/// Why [`Target::endpoint`] is the server to talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `SKYDECK_API_SERVER_ENDPOINT`.
    Environment,
    /// The endpoint saved by `api login`.
    Login,
    /// The server started from this state directory (its `server.json`),
    /// on whatever port it was given.
    HomeServer { pid: u32 },
    /// Nothing configured and nothing running from this state directory:
    /// the local default, which the CLI may start.
    LocalDefault,
}

impl Target {
    /// True when nothing names a server: the CLI may start one.
    pub fn is_local_default(&self) -> bool {
        self.source == Source::LocalDefault
    }
}

/// Where requests go: `SKYDECK_API_SERVER_ENDPOINT`, else the endpoint
/// saved by `api login`, else the server running from this state
/// directory (`SKYDECK_HOME`), else the local default.
pub fn resolve(paths: &Paths) -> anyhow::Result<Target> {
    let saved = read_client_config(paths)?;
    let token = std::env::var(ENV_TOKEN)
        .ok()
        .filter(|t| !t.is_empty())
        .or(saved.token);
    let target = |endpoint: String, source: Source| Target {
        endpoint,
        token: token.clone(),
        source,
    };
    if let Some(endpoint) = std::env::var(ENV_ENDPOINT).ok().filter(|e| !e.is_empty()) {
        return Ok(target(endpoint, Source::Environment));
    }
    if let Some(endpoint) = saved.endpoint {
        return Ok(target(endpoint, Source::Login));
    }
    if let Some(running) = crate::daemon::running_server(paths) {
        return Ok(target(running.url, Source::HomeServer { pid: running.pid }));
    }
    Ok(target(local_default(), Source::LocalDefault))
}

/// Whether two endpoints name the same server (`http://h:1/` and
/// `http://h:1`, credentials aside).
pub fn same_server(a: &str, b: &str) -> bool {
    let bare = |url: &str| {
        let url = url.trim_end_matches('/');
        match url.split_once("://") {
            Some((scheme, rest)) => {
                let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
                format!(
                    "{}://{}",
                    scheme.to_ascii_lowercase(),
                    host.to_ascii_lowercase()
                )
            }
            None => url.to_ascii_lowercase(),
        }
    };
    bare(a) == bare(b)
}

#[derive(Default)]
struct ClientConfig {
    endpoint: Option<String>,
    token: Option<String>,
}

fn read_config(paths: &Paths) -> anyhow::Result<serde_yaml_ng::Mapping> {
    let path = paths.config_file();
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().is_empty() => Ok(Default::default()),
        Ok(text) => serde_yaml_ng::from_str(&text)
            .with_context(|| format!("{} is not a YAML mapping", path.display())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Default::default()),
        Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn read_client_config(paths: &Paths) -> anyhow::Result<ClientConfig> {
    let config = read_config(paths)?;
    let section = config.get("api_server").and_then(|v| v.as_mapping());
    let text = |key: &str| {
        section
            .and_then(|s| s.get(key))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    Ok(ClientConfig {
        endpoint: text("endpoint"),
        token: text("service_account_token"),
    })
}

/// Saves the endpoint (and token) under `api_server:` in config.yaml,
/// keeping every other key.
pub fn save_login(paths: &Paths, endpoint: &str, token: Option<&str>) -> anyhow::Result<()> {
    let mut config = read_config(paths)?;
    let key = serde_yaml_ng::Value::from("api_server");
    let mut section = config
        .get(&key)
        .and_then(|v| v.as_mapping())
        .cloned()
        .unwrap_or_default();
    section.insert("endpoint".into(), endpoint.into());
    match token {
        Some(token) => section.insert("service_account_token".into(), token.into()),
        None => section.remove("service_account_token"),
    };
    config.insert(key, serde_yaml_ng::Value::Mapping(section));
    std::fs::create_dir_all(&paths.home)?;
    let path = paths.config_file();
    let text = serde_yaml_ng::to_string(&config)?;
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    // The token is a credential: only the owner may read the file.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// The base fields every request body carries: who is asking, and how.
pub fn base_body(paths: &Paths) -> serde_json::Map<String, serde_json::Value> {
    let user_id = std::fs::read_to_string(paths.user_hash())
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| skydeck_server::is_user_hash(s));
    let user_name = std::env::var("USER").unwrap_or_default();
    let mut env_vars = BTreeMap::new();
    if let Some(id) = user_id {
        env_vars.insert("SKYPILOT_USER_ID", id);
    }
    if !user_name.is_empty() {
        env_vars.insert("SKYPILOT_USER", user_name);
    }
    // `--secret` values stay on this machine: the server stores and shows
    // the command line.
    let args: Vec<String> = std::env::args().collect();
    let command = skydeck_types::command_line::redact_args(&args, &[]);
    let mut body = serde_json::Map::new();
    body.insert("env_vars".into(), serde_json::json!(env_vars));
    body.insert(
        "entrypoint".into(),
        serde_json::json!(command.get(1..3).map(|s| s.join(" ")).unwrap_or_default()),
    );
    body.insert(
        "entrypoint_command".into(),
        serde_json::json!(command.join(" ")),
    );
    body.insert("using_remote_api_server".into(), serde_json::json!(true));
    if let Some(workspace) = active_workspace(paths) {
        // Sent as SkyPilot's client sends it: an override of the server's
        // config.
        body.insert(
            "override_skypilot_config".into(),
            serde_json::json!({ "active_workspace": workspace }),
        );
    }
    body
}

/// `SKYDECK_WORKSPACE`, else `active_workspace` in config.yaml.
fn active_workspace(paths: &Paths) -> Option<String> {
    if let Some(workspace) = std::env::var(ENV_WORKSPACE).ok().filter(|w| !w.is_empty()) {
        return Some(workspace);
    }
    read_config(paths)
        .ok()?
        .get("active_workspace")?
        .as_str()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::same_server;

    #[test]
    fn same_server_ignores_credentials_case_and_a_trailing_slash() {
        assert!(same_server(
            "http://127.0.0.1:5000/",
            "http://127.0.0.1:5000"
        ));
        assert!(same_server("http://alice:pw@Host:1", "HTTP://host:1"));
        assert!(!same_server(
            "http://127.0.0.1:5000",
            "http://127.0.0.1:5001"
        ));
        assert!(!same_server("https://h:1", "http://h:1"));
    }
}
