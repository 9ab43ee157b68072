//! `skydeck api …`: the server and its requests.

use crate::cli::{ApiCancelArgs, ApiLogsArgs, ApiStatusArgs, HealthArgs, LoginArgs, StartArgs};
use crate::endpoint::Source;
use crate::table::{Table, ago};
use crate::{daemon, endpoint};
use anyhow::bail;
use skydeck_client::{Client, ClientError};
use skydeck_server::config::Paths;
use skydeck_types::health::{HealthResponse, HealthStatus};
use std::process::ExitCode;

pub async fn start(paths: &Paths, args: &StartArgs) -> anyhow::Result<ExitCode> {
    if args.foreground {
        daemon::run_foreground(paths.clone(), args).await?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(running) = daemon::running_server(paths) {
        println!(
            "A Skydeck API server is already running at {} (pid {}).",
            running.url, running.pid
        );
        return Ok(ExitCode::SUCCESS);
    }
    let url = daemon::start_background(paths, args).await?;
    println!("Skydeck API server started at {url}.");
    println!("Logs: {}", paths.server_log().display());
    Ok(ExitCode::SUCCESS)
}

/// Stops the server the other commands talk to ([`endpoint::resolve`]),
/// which must be one started from this state directory: its pid file is
/// how it is stopped. Any other server is left alone, with a word on why.
pub async fn stop(paths: &Paths, target: &endpoint::Target) -> anyhow::Result<ExitCode> {
    let home = paths.home.display();
    let ours = daemon::running_server(paths);
    match (&target.source, &ours) {
        (Source::HomeServer { .. } | Source::LocalDefault, _) => {}
        (_, Some(running)) if endpoint::same_server(&running.url, &target.endpoint) => {}
        (source, _) => {
            let why = match source {
                Source::Environment => format!("{} names it", endpoint::ENV_ENDPOINT),
                _ => "you logged in to it (`skydeck api login`)".to_owned(),
            };
            eprintln!(
                "The API server at {} ({why}) was not started from {home}; `skydeck api stop` \
                 stops only the server started from this state directory (by the pid in its \
                 server.json). Stop it where it was started, with that SKYDECK_HOME.",
                target.endpoint
            );
            return Ok(ExitCode::FAILURE);
        }
    }
    if daemon::stop(paths).await? {
        let url = ours.map(|running| running.url).unwrap_or_default();
        println!("Skydeck API server at {url} stopped.");
    } else {
        println!("No Skydeck API server is running from {home}.");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn login(paths: &Paths, args: &LoginArgs) -> anyhow::Result<ExitCode> {
    let endpoint = args.endpoint.trim_end_matches('/');
    if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
        bail!("the endpoint must start with http:// or https://, got {endpoint:?}");
    }
    if let Some(token) = &args.token
        && !token.starts_with("sky_")
    {
        bail!("service-account tokens start with `sky_`; check the token you pasted");
    }
    let client = Client::new(endpoint, args.token.clone())?;
    let health = client.health().await?;
    check_login(&client, &health, args.token.is_some())?;
    endpoint::save_login(paths, endpoint, args.token.as_deref())?;
    let user = health
        .user
        .map(|u| format!(" as {} ({})", u.name, u.id))
        .unwrap_or_default();
    // The client's endpoint: any password in the URL shows as `***`.
    println!(
        "Logged into Skydeck API server at {}{user}.",
        client.endpoint()
    );
    Ok(ExitCode::SUCCESS)
}

/// Refuses a login the server did not accept, before anything is saved:
/// `/api/health` answers anyone, so a wrong password only shows as a
/// missing user while the server has authentication on.
fn check_login(client: &Client, health: &HealthResponse, has_token: bool) -> anyhow::Result<()> {
    let shown = client.endpoint();
    match health.status {
        HealthStatus::Healthy => {}
        HealthStatus::NeedsAuth => bail!(
            "the API server at {url} asks for a browser login through its auth proxy, which \
             `skydeck api login` does not do; ask an admin for a service-account token and run \
             `skydeck api login -e {url} --token sky_…`",
            url = client.url()
        ),
        status => bail!("the API server at {shown} is not healthy ({status:?})"),
    }
    let auth_on = health.basic_auth_enabled
        || health.service_account_token_enabled
        || health.ingress_basic_auth_enabled
        || health.external_proxy_auth_enabled;
    if health.user.is_none() && auth_on {
        if has_token {
            bail!(
                "the API server at {shown} did not accept the token: it is unknown, revoked or \
                 expired; ask an admin for a new one (`skydeck tokens create`)"
            );
        }
        if client.has_basic_credentials() {
            bail!(
                "the API server at {shown} did not accept the user name and password in the \
                 endpoint; check them, or ask an admin to reset the password"
            );
        }
        bail!(
            "the API server at {shown} requires a login: \
             `skydeck api login -e http://USER:PASSWORD@HOST:PORT`, or `--token sky_…` with a \
             service-account token"
        );
    }
    Ok(())
}

pub async fn health(args: &HealthArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.endpoint, None)?;
    match client.health().await {
        Ok(health) if health.status == skydeck_types::health::HealthStatus::Healthy => {
            println!("healthy");
            Ok(ExitCode::SUCCESS)
        }
        Ok(health) => {
            println!("unhealthy: {:?}", health.status);
            Ok(ExitCode::FAILURE)
        }
        Err(err) => {
            println!("unhealthy: {err}");
            Ok(ExitCode::FAILURE)
        }
    }
}

pub async fn info(client: &Client) -> anyhow::Result<ExitCode> {
    let health = client.health().await?;
    println!("Using Skydeck API server: {}", client.endpoint());
    println!(
        "Status: {:?}, version: {} (SkyPilot API {}, compatible with skypilot {}), commit: {}",
        health.status,
        health.skydeck_version.as_deref().unwrap_or("unknown"),
        health.api_version,
        health.version,
        health.commit
    );
    if let Some(user) = health.user {
        println!("User: {} ({})", user.name, user.id);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn status(client: &Client, args: &ApiStatusArgs) -> anyhow::Result<ExitCode> {
    let requests = client
        .api_status(&args.request_ids, args.all_status, Some(args.limit))
        .await?;
    let mut headers = vec!["ID", "USER", "NAME"];
    if args.verbose {
        headers.push("CLUSTER");
    }
    headers.extend(["CREATED", "STATUS"]);
    let mut table = Table::new(&headers);
    for request in &requests {
        let mut row = vec![
            request.request_id.clone(),
            request
                .user_name
                .clone()
                .unwrap_or_else(|| request.user_id.clone()),
            request.name.clone(),
        ];
        if args.verbose {
            row.push(request.cluster_name.clone().unwrap_or_else(|| "-".into()));
        }
        row.extend([ago(request.created_at), request.status.to_string()]);
        table.row(row);
    }
    if requests.is_empty() {
        println!(
            "No {}requests.",
            if args.all_status { "" } else { "unfinished " }
        );
    } else {
        println!("{}", table.render());
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn logs(client: &Client, args: &ApiLogsArgs) -> anyhow::Result<ExitCode> {
    client
        .stream(&args.request_id, !args.no_follow, args.tail, |line| {
            println!("{line}")
        })
        .await?;
    if args.no_follow {
        return Ok(ExitCode::SUCCESS);
    }
    finish(client.wait(&args.request_id).await.map(|_| ()))
}

pub async fn cancel(
    paths: &Paths,
    client: &Client,
    args: &ApiCancelArgs,
) -> anyhow::Result<ExitCode> {
    if args.request_ids.is_empty() && !args.all {
        bail!("name the requests to cancel, or pass --all");
    }
    let mut body = endpoint::base_body(paths);
    let ids = (!args.all).then(|| args.request_ids.clone());
    body.insert("request_ids".into(), serde_json::json!(ids));
    let user_id = if args.all_users {
        None
    } else {
        body["env_vars"]["SKYPILOT_USER_ID"]
            .as_str()
            .map(str::to_owned)
    };
    body.insert("user_id".into(), serde_json::json!(user_id));
    let id = client.submit("/api/cancel", &body).await?;
    let cancelled: Vec<String> = serde_json::from_value(client.wait(&id).await?)?;
    if cancelled.is_empty() {
        println!("No requests need to be cancelled.");
    } else {
        println!(
            "Cancelled {} request(s): {}",
            cancelled.len(),
            cancelled.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Maps a request's outcome to the exit code, printing its error.
pub fn finish(result: Result<(), ClientError>) -> anyhow::Result<ExitCode> {
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(ClientError::Request(error)) => {
            eprintln!("{}: {}", error.kind, error.message);
            Ok(ExitCode::FAILURE)
        }
        Err(ClientError::Cancelled(id)) => {
            eprintln!("Request {id} was cancelled.");
            Ok(ExitCode::FAILURE)
        }
        Err(other) => Err(other.into()),
    }
}
