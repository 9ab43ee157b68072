//! The command line, as SkyPilot users know it.

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "skydeck",
    version,
    about = "Skydeck: a control plane for AI compute."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage the API server and its requests.
    #[command(subcommand)]
    Api(ApiCommand),
    /// Show clusters.
    Status(StatusArgs),
    /// Show which infrastructure is available.
    Check(CheckArgs),
    /// The node runtime each cluster runs (started by the server, not by hand).
    #[command(subcommand)]
    Agent(skydeck_agent::cli::AgentCommand),
}

#[derive(Debug, Subcommand)]
pub enum ApiCommand {
    /// Start the API server (in the background unless --foreground).
    Start(StartArgs),
    /// Stop the API server started from this state directory.
    Stop,
    /// List requests.
    Status(ApiStatusArgs),
    /// Show the API server's endpoint, version and your user.
    Info,
    /// Stream a request's log.
    Logs(ApiLogsArgs),
    /// Cancel requests.
    Cancel(ApiCancelArgs),
    /// Save the endpoint (and token) of a remote API server.
    Login(LoginArgs),
}

#[derive(Debug, Clone, Args)]
pub struct StartArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = crate::endpoint::DEFAULT_PORT)]
    pub port: u16,
    /// Listen on all interfaces (0.0.0.0), for a shared team server.
    #[arg(long)]
    pub deploy: bool,
    /// Run in this process instead of in the background.
    #[arg(long)]
    pub foreground: bool,
}

impl StartArgs {
    pub fn bind_host(&self) -> &str {
        if self.deploy { "0.0.0.0" } else { &self.host }
    }
}

#[derive(Debug, Args)]
pub struct ApiStatusArgs {
    /// Request ids (or prefixes) to show.
    pub request_ids: Vec<String>,
    /// Include finished requests.
    #[arg(short = 'a', long = "all-status")]
    pub all_status: bool,
    /// Show at most this many requests.
    #[arg(short, long, default_value_t = 50)]
    pub limit: u32,
    /// Show more columns.
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct ApiLogsArgs {
    /// The request id (or a unique prefix).
    pub request_id: String,
    /// Print what is there and return instead of following.
    #[arg(long)]
    pub no_follow: bool,
    /// Start with only the last N lines.
    #[arg(long)]
    pub tail: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ApiCancelArgs {
    /// Request ids (or prefixes) to cancel.
    pub request_ids: Vec<String>,
    /// Cancel all of your unfinished requests.
    #[arg(short, long)]
    pub all: bool,
    /// With --all: everyone's requests, not only yours.
    #[arg(short = 'u', long)]
    pub all_users: bool,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The API server's URL, e.g. http://skydeck.example.com:46580.
    #[arg(short, long)]
    pub endpoint: String,
    /// A service-account token (sky_…).
    #[arg(long)]
    pub token: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only these clusters.
    pub clusters: Vec<String>,
    /// Query the infrastructure for the latest state.
    #[arg(short, long)]
    pub refresh: bool,
    /// Show every user's clusters.
    #[arg(short = 'u', long)]
    pub all_users: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Only check these kinds of infrastructure.
    pub infra: Vec<String>,
    /// Show details.
    #[arg(short, long)]
    pub verbose: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn deploy_binds_every_interface() {
        let cli = Cli::parse_from(["skydeck", "api", "start", "--deploy"]);
        let Command::Api(ApiCommand::Start(args)) = cli.command else {
            panic!("parsed the wrong command");
        };
        assert_eq!(args.bind_host(), "0.0.0.0");
        assert_eq!(args.port, 46580);
    }
}
