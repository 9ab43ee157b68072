//! `skydeck completion SHELL`: a completion script generated from the
//! command-line definition, so it never lags behind the commands.

use crate::cli::{Cli, CompletionArgs};
use clap::CommandFactory;
use std::process::ExitCode;

pub fn print(args: &CompletionArgs) -> anyhow::Result<ExitCode> {
    let mut command = Cli::command();
    clap_complete::generate(args.shell, &mut command, "skydeck", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}
