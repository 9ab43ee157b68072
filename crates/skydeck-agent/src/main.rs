//! `skydeck-agent`: the agent's commands without the rest of `skydeck`,
//! for tests that need real daemon processes.

use clap::Parser;
use skydeck_agent::cli::{self, AgentCommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "skydeck-agent", about = "The Skydeck node agent.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    #[command(flatten)]
    Agent(AgentCommand),
    /// `skydeck-agent agent …` as `skydeck agent …`: the head's agent
    /// starts workers' `node-exec` so, whichever binary is installed.
    #[command(name = "agent", hide = true)]
    Nested {
        #[command(subcommand)]
        command: AgentCommand,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let (Command::Agent(command) | Command::Nested { command }) = Cli::parse().command;
    match cli::run(command).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("Error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
