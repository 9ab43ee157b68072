//! One module per command group.

mod api;
mod clusters;
mod completion;
mod config;
mod follow;
mod jobs;
mod launch;
mod lifecycle;
mod man;
mod managed_jobs;
mod password;
mod prompt;
mod ssh;
mod ssh_session;
mod status_endpoints;
mod task_args;
mod tokens;
mod users;
mod waiting;

use crate::cli::{
    ApiCommand, Cli, Command, ConfigCommand, JobsCommand, SshArgs, SshCommand, StartArgs,
    TokensCommand, UsersCommand,
};
use crate::{daemon, endpoint};
use anyhow::Context;
use skydeck_client::{Client, ClientError};
use skydeck_server::config::Paths;
use skydeck_types::bodies::BaseBody;
use std::process::ExitCode;

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    dispatch(cli).await.map_err(with_next_step)
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Agent(command) = cli.command {
        return skydeck_agent::cli::run(command).await;
    }
    match &cli.command {
        Command::Completion(args) => return completion::print(args),
        Command::Man(args) => return man::write(args),
        _ => {}
    }
    let paths = Paths::from_env()?;
    match cli.command {
        Command::Agent(_) | Command::Completion(_) | Command::Man(_) => {
            unreachable!("handled above")
        }
        Command::Api(ApiCommand::Start(args)) => api::start(&paths, &args).await,
        Command::Api(ApiCommand::Stop) => api::stop(&paths, &endpoint::resolve(&paths)?).await,
        Command::Api(ApiCommand::Login(args)) => api::login(&paths, &args).await,
        Command::Api(ApiCommand::Health(args)) => api::health(&args).await,
        Command::Api(ApiCommand::Info) => api::info(&connect(&paths).await?).await,
        Command::Api(ApiCommand::Status(args)) => api::status(&connect(&paths).await?, &args).await,
        Command::Api(ApiCommand::Logs(args)) => api::logs(&connect(&paths).await?, &args).await,
        Command::Api(ApiCommand::Cancel(args)) => {
            api::cancel(&paths, &connect(&paths).await?, &args).await
        }
        Command::Status(args) => clusters::status(&paths, &connect(&paths).await?, &args).await,
        Command::Check(args) => clusters::check(&paths, &connect(&paths).await?, &args).await,
        Command::Ssh(SshArgs {
            pools: Some(command),
            ..
        }) => {
            let client = connect(&paths).await?;
            match command {
                SshCommand::Up(args) => ssh::up(&paths, &client, &args).await,
                SshCommand::Down(args) => ssh::down(&paths, &client, &args).await,
            }
        }
        Command::Ssh(args) => ssh_session::ssh(&connect(&paths).await?, &args).await,
        Command::Endpoints(args) => {
            clusters::endpoints(&paths, &connect(&paths).await?, &args).await
        }
        // The task is read and checked before a server is reached (or
        // started): a broken YAML says so and starts nothing.
        Command::Launch(args) => {
            let task = task_args::load(&args.entrypoint, &args.task)?;
            launch::launch(&paths, &connect(&paths).await?, &args, task).await
        }
        Command::Exec(args) => {
            let task = task_args::load(&args.entrypoint, &args.task)?;
            launch::exec(&paths, &connect(&paths).await?, &args, task).await
        }
        Command::Queue(args) => jobs::queue(&paths, &connect(&paths).await?, &args).await,
        Command::Logs(args) => jobs::logs(&paths, &connect(&paths).await?, &args).await,
        Command::Cancel(args) => jobs::cancel(&paths, &connect(&paths).await?, &args).await,
        Command::Jobs(JobsCommand::Launch(args)) => {
            let task = task_args::load_pipeline(&args.entrypoint, &args.task)?;
            managed_jobs::launch(&paths, &connect(&paths).await?, &args, task).await
        }
        Command::Jobs(command) => {
            let client = connect(&paths).await?;
            match command {
                JobsCommand::Launch(_) => unreachable!("handled above"),
                JobsCommand::Queue(args) => managed_jobs::queue(&paths, &client, &args).await,
                JobsCommand::Cancel(args) => managed_jobs::cancel(&paths, &client, &args).await,
                JobsCommand::Logs(args) => managed_jobs::logs(&paths, &client, &args).await,
            }
        }
        Command::Stop(args) => lifecycle::stop(&paths, &connect(&paths).await?, &args).await,
        Command::Start(args) => lifecycle::start(&paths, &connect(&paths).await?, &args).await,
        Command::Down(args) => lifecycle::down(&paths, &connect(&paths).await?, &args).await,
        Command::Autostop(args) => {
            lifecycle::autostop(&paths, &connect(&paths).await?, &args).await
        }
        Command::Users(command) => {
            let client = connect(&paths).await?;
            match command {
                UsersCommand::Add(args) => users::add(&client, &args).await,
                UsersCommand::List => users::list(&client).await,
                UsersCommand::SetRole(args) => users::set_role(&client, &args).await,
                UsersCommand::SetPassword(args) => users::set_password(&client, &args).await,
                UsersCommand::Delete(args) => users::delete(&client, &args).await,
                UsersCommand::Import(args) => users::import(&client, &args).await,
            }
        }
        Command::Tokens(command) => {
            let client = connect(&paths).await?;
            match command {
                TokensCommand::Create(args) => tokens::create(&client, &args).await,
                TokensCommand::List(args) => tokens::list(&client, &args).await,
                TokensCommand::Revoke(args) => tokens::revoke(&client, &args).await,
            }
        }
        Command::Config(command) => {
            let client = connect(&paths).await?;
            match command {
                ConfigCommand::Get(args) => config::get(&client, &args).await,
                ConfigCommand::Set(args) => config::set(&client, &args).await,
            }
        }
    }
}

/// How to log in with this CLI; the server's own message speaks to any
/// client (the official one included).
const LOGIN_HINT: &str = "To log in: `skydeck api login -e http://USER:PASSWORD@HOST:PORT` \
     (or put USER:PASSWORD@ in SKYDECK_API_SERVER_ENDPOINT), or set \
     SKYDECK_SERVICE_ACCOUNT_TOKEN to a service-account token (`skydeck tokens create`).";

/// Turns the server refusing who is calling into what to do about it: a
/// 401 gets how to log in, a 403 the server's reason alone. Other errors
/// pass unchanged.
fn with_next_step(err: anyhow::Error) -> anyhow::Error {
    match err.downcast_ref::<ClientError>() {
        Some(ClientError::Http {
            status: 401,
            detail,
        }) => anyhow::anyhow!("not logged in: {detail}\n{LOGIN_HINT}"),
        Some(ClientError::Http {
            status: 403,
            detail,
        }) => anyhow::anyhow!("permission denied: {detail}"),
        _ => err,
    }
}

/// The base fields of a request body (who asks, and how), typed.
fn base(paths: &Paths) -> BaseBody {
    serde_json::from_value(serde_json::Value::Object(endpoint::base_body(paths)))
        .expect("the base body has BaseBody's fields")
}

/// Streams a request's log to stdout until it finishes; then its value.
async fn stream_and_get(client: &Client, id: &str) -> Result<serde_json::Value, ClientError> {
    let work = async {
        client
            .stream(id, true, None, |line| println!("{line}"))
            .await?;
        client.wait(id).await
    };
    waiting::noting_the_wait(client, id, work).await
}

/// Prints what went wrong on the server (its error type and message).
fn print_error(err: &ClientError) {
    match err {
        ClientError::Request(error) => eprintln!("{}: {}", error.kind, error.message),
        other => eprintln!("{other}"),
    }
}

/// A failed request as the command's outcome: the server's message on
/// stderr and a failure exit status. Errors reaching the server at all
/// stay errors.
fn failed(err: ClientError) -> anyhow::Result<ExitCode> {
    api::finish(Err(err))
}

/// A client for the configured server. With no server configured and none
/// answering at the local default, one is started in the background, as
/// SkyPilot does, so a new user needs no set-up step.
async fn connect(paths: &Paths) -> anyhow::Result<Client> {
    let target = endpoint::resolve(paths)?;
    let client = Client::new(&target.endpoint, target.token.clone())?;
    if !target.is_local_default() || client.health().await.is_ok() {
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
        metrics: false,
        metrics_port: 0,
        auth: Default::default(),
    };
    let url = daemon::start_background(paths, &args)
        .await
        .context("cannot start a local API server")?;
    eprintln!("Skydeck API server started at {url}.");
    Ok(Client::new(&url, target.token)?)
}
