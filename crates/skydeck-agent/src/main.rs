//! `skydeck-agent`: the agent's commands without the rest of `skydeck`,
//! for tests that need real daemon processes.

use clap::Parser;
use skydeck_agent::cli::{self, AgentCommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "skydeck-agent", about = "The Skydeck node agent.")]
struct Cli {
    #[command(subcommand)]
    command: AgentCommand,
}

#[tokio::main]
async fn main() -> ExitCode {
    match cli::run(Cli::parse().command).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("Error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
