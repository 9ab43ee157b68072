//! One module per command group.

mod api;
mod clusters;

use crate::cli::{ApiCommand, Cli, Command, StartArgs};
use crate::{daemon, endpoint};
use anyhow::Context;
use skydeck_client::Client;
use skydeck_server::config::Paths;
use std::process::ExitCode;

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Agent(command) = cli.command {
        return skydeck_agent::cli::run(command).await;
    }
    let paths = Paths::from_env()?;
    match cli.command {
        Command::Agent(_) => unreachable!("handled above"),
        Command::Api(ApiCommand::Start(args)) => api::start(&paths, &args).await,
        Command::Api(ApiCommand::Stop) => api::stop(&paths).await,
        Command::Api(ApiCommand::Login(args)) => api::login(&paths, &args).await,
        Command::Api(ApiCommand::Info) => api::info(&connect(&paths).await?).await,
        Command::Api(ApiCommand::Status(args)) => api::status(&connect(&paths).await?, &args).await,
        Command::Api(ApiCommand::Logs(args)) => api::logs(&connect(&paths).await?, &args).await,
        Command::Api(ApiCommand::Cancel(args)) => {
            api::cancel(&paths, &connect(&paths).await?, &args).await
        }
        Command::Status(args) => clusters::status(&paths, &connect(&paths).await?, &args).await,
        Command::Check(args) => clusters::check(&paths, &connect(&paths).await?, &args).await,
    }
}

/// A client for the configured server. With no server configured and none
/// answering at the local default, one is started in the background, as
/// SkyPilot does, so a new user needs no set-up step.
async fn connect(paths: &Paths) -> anyhow::Result<Client> {
    let target = endpoint::resolve(paths)?;
    let client = Client::new(&target.endpoint, target.token.clone())?;
    if !target.is_local_default || client.health().await.is_ok() {
        return Ok(client);
    }
    eprintln!(
        "Starting a local Skydeck API server (logs: {})…",
        paths.server_log().display()
    );
    let args = StartArgs {
        host: "127.0.0.1".to_owned(),
        port: endpoint::DEFAULT_PORT,
        deploy: false,
        foreground: false,
    };
    let url = daemon::start_background(paths, &args)
        .await
        .context("cannot start a local API server")?;
    eprintln!("Skydeck API server started at {url}.");
    Ok(Client::new(&url, target.token)?)
}
