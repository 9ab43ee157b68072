//! The command line, as SkyPilot users know it.

use clap::builder::FalseyValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use skydeck_types::names::ClusterName;
use skydeck_types::task::Overrides;

#[derive(Debug, Parser)]
#[command(
    name = "skydeck",
    version = crate::version::VERSION.as_str(),
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
    /// Launch a cluster (or reuse one) and run a task on it.
    Launch(LaunchArgs),
    /// Run a task on an existing cluster.
    Exec(ExecArgs),
    /// Show clusters.
    Status(StatusArgs),
    /// Show the job queue of clusters.
    Queue(QueueArgs),
    /// Show (and follow) a job's log.
    Logs(LogsArgs),
    /// Cancel jobs.
    Cancel(CancelArgs),
    /// Managed jobs: tasks the server keeps running, relaunching their
    /// cluster when it is lost and restarting them on failure.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Stop clusters (restart them with `skydeck start`).
    Stop(StopOrDownArgs),
    /// Restart stopped clusters.
    Start(ClusterStartArgs),
    /// Tear clusters down.
    Down(StopOrDownArgs),
    /// Stop or tear down clusters once they have been idle for a while.
    Autostop(AutostopArgs),
    /// Show the ports a cluster exposes.
    Endpoints(EndpointsArgs),
    /// Show which infrastructure is available.
    Check(CheckArgs),
    /// Open a shell on a cluster's head node, or run a command there,
    /// through the API server (`skydeck ssh CLUSTER [-- COMMAND…]`); or
    /// set up or take down SSH Node Pools (`skydeck ssh up|down`, admins
    /// only).
    Ssh(SshArgs),
    /// Manage the users of an API server with authentication on.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Manage service-account tokens (for CI and other programs).
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Show or replace the API server's shared config (admins only).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The node runtime each cluster runs (started by the server, not by hand).
    #[command(subcommand)]
    Agent(skydeck_agent::cli::AgentCommand),
    /// Print a shell completion script, e.g. `skydeck completion bash > ~/.local/share/bash-completion/completions/skydeck`.
    Completion(CompletionArgs),
    /// Print the man page (roff), generated from this command line.
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write one page per command (skydeck.1, skydeck-launch.1, …) into this
    /// directory instead of printing skydeck(1).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,
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
    /// Exit 0 if the API server answers healthy (for container health
    /// checks; never starts a server).
    Health(HealthArgs),
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The API server to ask.
    #[arg(long, default_value = "http://127.0.0.1:46580")]
    pub endpoint: String,
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
    /// Serve Prometheus metrics at `/metrics` on --metrics-port.
    #[arg(long, env = "SKYDECK_METRICS", value_parser = FalseyValueParser::new())]
    pub metrics: bool,
    /// Port of the metrics endpoint, on the same address as the API.
    #[arg(long, env = "SKYDECK_METRICS_PORT", default_value_t = 9090)]
    pub metrics_port: u16,
    #[command(flatten)]
    pub auth: AuthArgs,
}

/// How callers prove who they are. With none of these, the server trusts
/// what clients say and refuses to listen anywhere but loopback.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Authentication")]
pub struct AuthArgs {
    /// Users log in with a password (bcrypt). The first admin comes from
    /// SKYDECK_INITIAL_BASIC_AUTH=user:password.
    #[arg(long, env = "SKYDECK_ENABLE_BASIC_AUTH", value_parser = FalseyValueParser::new())]
    pub enable_basic_auth: bool,
    /// Accept service-account tokens (`Authorization: Bearer sky_…`).
    #[arg(long, env = "SKYDECK_ENABLE_SERVICE_ACCOUNTS", value_parser = FalseyValueParser::new())]
    pub enable_service_accounts: bool,
    /// An auth proxy (oauth2-proxy) in front names the user in a header.
    #[arg(long, env = "SKYDECK_EXTERNAL_PROXY_AUTH", value_parser = FalseyValueParser::new())]
    pub external_proxy_auth: bool,
    /// The header the auth proxy puts the user's identity in.
    #[arg(
        long,
        env = "SKYDECK_AUTH_PROXY_HEADER",
        default_value = "X-Auth-Request-Email"
    )]
    pub auth_proxy_header: String,
    /// An ingress in front checks basic auth and passes the user on.
    #[arg(long, env = "SKYDECK_INGRESS_BASIC_AUTH", value_parser = FalseyValueParser::new())]
    pub ingress_basic_auth: bool,
    /// The header the ingress passes the user in (`Authorization`: the
    /// user name of the Basic credentials it checked).
    #[arg(
        long,
        env = "SKYDECK_INGRESS_USER_HEADER",
        default_value = "Authorization"
    )]
    pub ingress_user_header: String,
    /// Addresses (CIDRs) the proxy or ingress connects from; their identity
    /// headers are ignored from anywhere else. Repeat or comma-separate.
    #[arg(
        long = "trusted-proxy",
        env = "SKYDECK_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Import users and passwords from this htpasswd file at start.
    #[arg(long, env = "SKYDECK_HTPASSWD_FILE")]
    pub htpasswd: Option<std::path::PathBuf>,
    /// Serve without authentication even off loopback. Anyone who can reach
    /// the server can then run commands as it.
    #[arg(long, env = "SKYDECK_INSECURE_NO_AUTH", value_parser = FalseyValueParser::new())]
    pub insecure_no_auth: bool,
}

impl AuthArgs {
    /// The server's settings from these flags, on top of `base` (which
    /// holds what comes from the environment only, e.g. the first admin).
    pub fn settings(
        &self,
        base: skydeck_server::auth::settings::AuthSettings,
    ) -> anyhow::Result<skydeck_server::auth::settings::AuthSettings> {
        use anyhow::Context;
        let header = |name: &str| {
            axum_header_name(name).with_context(|| format!("{name:?} is not a valid header name"))
        };
        Ok(skydeck_server::auth::settings::AuthSettings {
            basic_auth: self.enable_basic_auth,
            service_accounts: self.enable_service_accounts,
            proxy_header: self
                .external_proxy_auth
                .then(|| header(&self.auth_proxy_header))
                .transpose()?,
            ingress_header: self
                .ingress_basic_auth
                .then(|| header(&self.ingress_user_header))
                .transpose()?,
            trusted_proxies: self.trusted_proxies.clone(),
            htpasswd_file: self.htpasswd.clone(),
            ..base
        })
    }

    /// The same flags, for the server started in the background.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let mut flag = |on: bool, name: &str| {
            if on {
                args.push(name.to_owned());
            }
        };
        flag(self.enable_basic_auth, "--enable-basic-auth");
        flag(self.enable_service_accounts, "--enable-service-accounts");
        flag(self.external_proxy_auth, "--external-proxy-auth");
        flag(self.ingress_basic_auth, "--ingress-basic-auth");
        flag(self.insecure_no_auth, "--insecure-no-auth");
        if self.external_proxy_auth {
            args.extend(["--auth-proxy-header".into(), self.auth_proxy_header.clone()]);
        }
        if self.ingress_basic_auth {
            args.extend([
                "--ingress-user-header".into(),
                self.ingress_user_header.clone(),
            ]);
        }
        for cidr in &self.trusted_proxies {
            args.extend(["--trusted-proxy".into(), cidr.to_string()]);
        }
        if let Some(path) = &self.htpasswd {
            args.extend(["--htpasswd".into(), path.display().to_string()]);
        }
        args
    }
}

fn axum_header_name(name: &str) -> Option<skydeck_server::auth::settings::HeaderName> {
    name.to_ascii_lowercase().parse().ok()
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

#[derive(Debug, Subcommand)]
pub enum SshCommand {
    /// Check every host of the pools in the server's ssh_node_pools.yaml,
    /// install the agent there and record each host's capacity.
    Up(SshPoolArgs),
    /// Remove the agent from the pools' hosts and forget them (refused
    /// while a cluster uses the pool).
    Down(SshPoolArgs),
}

#[derive(Debug, Clone, Args)]
pub struct SshPoolArgs {
    /// One pool (`POOL` or `ssh/POOL`); every pool of the file without it.
    #[arg(long)]
    pub infra: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user (admins only).
    Add(UserAddArgs),
    /// List users.
    List,
    /// Make a user an admin, or a plain user again (admins only).
    SetRole(UserSetRoleArgs),
    /// Set a user's password (admins; anyone for their own).
    SetPassword(UserSetPasswordArgs),
    /// Delete a user and revoke their tokens (admins only).
    Delete(UserDeleteArgs),
    /// Add the users of an htpasswd file, as `htpasswd -nbB` writes it
    /// (admins only).
    Import(UserImportArgs),
}

/// A user's role, as the command line takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    Admin,
    User,
}

impl From<RoleArg> for skydeck_client::admin::Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Admin => Self::Admin,
            RoleArg::User => Self::User,
        }
    }
}

/// Where a new password comes from: the terminal (asked twice, not
/// echoed) unless a flag says otherwise.
#[derive(Debug, Clone, Args)]
pub struct PasswordSource {
    /// Read the password from stdin (one line), e.g. from a secret store.
    /// To change your own password: two lines, the current one first.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct UserAddArgs {
    /// The user's name (what they log in with).
    pub name: String,
    /// What the user may do.
    #[arg(long, value_enum, default_value_t = RoleArg::User)]
    pub role: RoleArg,
    #[command(flatten)]
    pub password: PasswordSource,
    /// No password: the user can only use service-account tokens.
    #[arg(long, conflicts_with = "password_stdin")]
    pub no_password: bool,
}

#[derive(Debug, Args)]
pub struct UserSetRoleArgs {
    /// The user's name or id.
    pub name: String,
    /// The new role.
    #[arg(value_enum)]
    pub role: RoleArg,
}

#[derive(Debug, Args)]
pub struct UserSetPasswordArgs {
    /// The user's name or id (default: you).
    pub name: Option<String>,
    #[command(flatten)]
    pub password: PasswordSource,
}

#[derive(Debug, Args)]
pub struct UserDeleteArgs {
    /// The user's name or id.
    pub name: String,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct UserImportArgs {
    /// The htpasswd file (bcrypt, MD5 `$apr1$` and SHA-1 `{SHA}` entries).
    pub file: std::path::PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Make a token; it is shown once.
    Create(TokenCreateArgs),
    /// List tokens (never their secrets).
    List(TokenListArgs),
    /// Revoke a token: it stops working at once.
    Revoke(TokenRevokeArgs),
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// What uses the token, e.g. `ci`.
    pub name: String,
    /// Stop working after this many days (default: never).
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..))]
    pub expires_in_days: Option<u32>,
    /// Make it for this user instead of you (admins only).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
}

#[derive(Debug, Args)]
pub struct TokenListArgs {
    /// Everyone's tokens, not only yours (admins only).
    #[arg(short, long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// The token's id (from `skydeck tokens list`).
    pub id: String,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the config (secrets read `<redacted>`).
    Get(ConfigGetArgs),
    /// Replace the config with a YAML file.
    Set(ConfigSetArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConfigFormat {
    Yaml,
    Json,
}

#[derive(Debug, Args)]
pub struct ConfigGetArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = ConfigFormat::Yaml)]
    pub output: ConfigFormat,
}

#[derive(Debug, Args)]
pub struct ConfigSetArgs {
    /// A YAML file holding the whole config (`-` reads stdin).
    pub file: std::path::PathBuf,
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
    /// Show more columns and untruncated values.
    #[arg(short, long)]
    pub verbose: bool,
    /// Show the exposed ports of the one cluster named, at its head's
    /// address (as `skydeck endpoints CLUSTER`).
    #[arg(long, conflicts_with = "endpoint")]
    pub endpoints: bool,
    /// Show where port PORT of the one cluster named is reached.
    #[arg(long, value_name = "PORT")]
    pub endpoint: Option<u16>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Only check these kinds of infrastructure.
    pub infra: Vec<String>,
    /// Show details.
    #[arg(short, long)]
    pub verbose: bool,
}

/// Flags that change the task read from the YAML (or the command), as
/// `sky launch` and `sky exec` take them.
#[derive(Debug, Clone, Default, Args)]
pub struct TaskFlags {
    /// The task's name.
    #[arg(short = 'n', long)]
    pub name: Option<String>,
    /// A local directory synced to ~/sky_workdir on every node, where
    /// setup and run start.
    #[arg(long)]
    pub workdir: Option<String>,
    /// Where to run: local, k8s, aws/us-east-1, …
    #[arg(long)]
    pub infra: Option<String>,
    /// CPUs per node: 4, or 4+ for at least 4.
    #[arg(long)]
    pub cpus: Option<String>,
    /// Memory per node in GB: 16, or 16+ for at least 16.
    #[arg(long)]
    pub memory: Option<String>,
    /// Accelerators per node: H100, or H100:2.
    #[arg(long)]
    pub gpus: Option<String>,
    /// Instance type, on clouds that have them.
    #[arg(long)]
    pub instance_type: Option<String>,
    /// Number of nodes.
    #[arg(long)]
    pub num_nodes: Option<u32>,
    /// Use spot instances.
    #[arg(long)]
    pub use_spot: bool,
    /// Image to boot the nodes from.
    #[arg(long)]
    pub image_id: Option<String>,
    /// Ports to expose (8080, or a range 10000-10010); repeatable.
    #[arg(long)]
    pub ports: Vec<String>,
    /// Disk size in GB (or with a unit, 1TB).
    #[arg(long)]
    pub disk_size: Option<String>,
    /// Environment variable NAME=VALUE, or NAME to take its value from
    /// this shell; repeatable.
    #[arg(long = "env", value_name = "NAME[=VALUE]", value_parser = parse_env)]
    pub envs: Vec<(String, Option<String>)>,
    /// Secret NAME=VALUE (or NAME, from this shell): like --env, but
    /// redacted wherever the task is shown; repeatable.
    #[arg(long = "secret", value_name = "NAME[=VALUE]", value_parser = parse_secret)]
    pub secrets: Vec<(String, Option<String>)>,
}

fn parse_env(arg: &str) -> Result<(String, Option<String>), String> {
    Overrides::parse_env_arg(arg).map_err(|e| e.to_string())
}

fn parse_secret(arg: &str) -> Result<(String, Option<String>), String> {
    Overrides::parse_secret_arg(arg).map_err(|e| e.to_string())
}

#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// A task YAML file, or a command to run (put it after `--` when it
    /// has options of its own). Nothing: only bring the cluster up.
    #[arg(value_name = "YAML | COMMAND")]
    pub entrypoint: Vec<String>,
    /// The cluster to launch or reuse (default: a generated name).
    #[arg(short = 'c', long)]
    pub cluster: Option<ClusterName>,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    /// Return once the job is submitted instead of following its log.
    #[arg(short = 'd', long)]
    pub detach_run: bool,
    /// Keep retrying until the resources are available.
    #[arg(short = 'r', long)]
    pub retry_until_up: bool,
    /// Stop the cluster after this many idle minutes.
    #[arg(short = 'i', long, value_name = "MINUTES")]
    pub idle_minutes_to_autostop: Option<i64>,
    /// Tear the cluster down instead of stopping it when idle (right after
    /// its jobs finish, unless -i gives a delay).
    #[arg(long)]
    pub down: bool,
    /// Check the task and where it would run; launch nothing.
    #[arg(long)]
    pub dryrun: bool,
    /// Skip the task's setup.
    #[arg(long)]
    pub no_setup: bool,
    #[command(flatten)]
    pub task: TaskFlags,
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Launch a managed job.
    Launch(Box<JobsLaunchArgs>),
    /// Show managed jobs.
    Queue(JobsQueueArgs),
    /// Cancel managed jobs.
    Cancel(JobsCancelArgs),
    /// Show (and follow) a managed job's log.
    Logs(JobsLogsArgs),
}

#[derive(Debug, Args)]
pub struct JobsLaunchArgs {
    /// A task YAML file (several documents make a pipeline), or a command
    /// to run.
    #[arg(value_name = "YAML | COMMAND", required = true)]
    pub entrypoint: Vec<String>,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    /// Return once the job is submitted instead of following its log.
    #[arg(short = 'd', long)]
    pub detach_run: bool,
    #[command(flatten)]
    pub task: TaskFlags,
}

#[derive(Debug, Args)]
pub struct JobsQueueArgs {
    /// Show every user's jobs (admins; everyone when auth is off).
    #[arg(short = 'u', long)]
    pub all_users: bool,
    /// Show only jobs still in progress.
    #[arg(short = 's', long)]
    pub skip_finished: bool,
    /// Show every job, not only the latest 50.
    #[arg(short = 'a', long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct JobsCancelArgs {
    /// The jobs to cancel.
    pub job_ids: Vec<u64>,
    /// Cancel the running job of this name.
    #[arg(short = 'n', long, conflicts_with = "job_ids")]
    pub name: Option<skydeck_types::names::JobName>,
    /// Cancel all of your jobs.
    #[arg(short = 'a', long, conflicts_with_all = ["job_ids", "name"])]
    pub all: bool,
    /// Cancel every user's jobs (admins).
    #[arg(short = 'u', long, conflicts_with_all = ["job_ids", "name", "all"])]
    pub all_users: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct JobsLogsArgs {
    /// The job (default: your latest).
    pub job_id: Option<u64>,
    /// The job of this name (your latest of that name).
    #[arg(short = 'n', long, conflicts_with = "job_id")]
    pub name: Option<skydeck_types::names::JobName>,
    /// Print the log so far and exit instead of following it.
    #[arg(long)]
    pub no_follow: bool,
    /// What the controller did for the job instead of its output.
    #[arg(long)]
    pub controller: bool,
    /// Only the last N lines (0: all).
    #[arg(long, value_name = "N")]
    pub tail: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The cluster to run on.
    pub cluster: ClusterName,
    /// A task YAML file, or a command to run (put it after `--` when it
    /// has options of its own).
    #[arg(value_name = "YAML | COMMAND", required = true)]
    pub entrypoint: Vec<String>,
    /// Return once the job is submitted instead of following its log.
    #[arg(short = 'd', long)]
    pub detach_run: bool,
    /// Check the task against the cluster; run nothing.
    #[arg(long)]
    pub dryrun: bool,
    #[command(flatten)]
    pub task: TaskFlags,
}

#[derive(Debug, Args)]
pub struct QueueArgs {
    /// Clusters (default: all of yours).
    pub clusters: Vec<String>,
    /// Show only pending and running jobs.
    #[arg(short, long)]
    pub skip_finished: bool,
    /// Show every user's jobs.
    #[arg(short = 'u', long)]
    pub all_users: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The cluster.
    pub cluster: ClusterName,
    /// The job (default: the latest); several only with --sync-down.
    pub job_ids: Vec<u64>,
    /// Print the log so far and return instead of following it.
    #[arg(long)]
    pub no_follow: bool,
    /// Start with the last N lines (0: the whole log; default 1000 when
    /// following, else the whole log).
    #[arg(long, value_name = "N")]
    pub tail: Option<u64>,
    /// Print the job's status instead of its log; exit 0 only if it
    /// SUCCEEDED (100 failed, 101 not finished, 102 not found, 103
    /// cancelled).
    #[arg(long, conflicts_with = "sync_down")]
    pub status: bool,
    /// Save the logs to ./skydeck_logs/<cluster>/job-<id>/run.log.
    #[arg(short, long)]
    pub sync_down: bool,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The cluster (or a glob pattern).
    pub cluster: String,
    /// Jobs to cancel (default: the latest running one).
    pub job_ids: Vec<u64>,
    /// Cancel all of your jobs on the cluster.
    #[arg(short, long)]
    pub all: bool,
    /// Cancel every user's jobs on the cluster.
    #[arg(short = 'u', long)]
    pub all_users: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct StopOrDownArgs {
    /// Clusters (names or glob patterns).
    pub clusters: Vec<String>,
    /// All of your clusters.
    #[arg(short, long)]
    pub all: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    /// Forget the cluster even if its infrastructure reports an error.
    #[arg(short, long)]
    pub purge: bool,
}

#[derive(Debug, Args)]
pub struct ClusterStartArgs {
    /// Clusters (names or glob patterns).
    pub clusters: Vec<String>,
    /// All of your stopped clusters.
    #[arg(short, long)]
    pub all: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    /// Stop the cluster after this many idle minutes.
    #[arg(short = 'i', long, value_name = "MINUTES")]
    pub idle_minutes_to_autostop: Option<i64>,
    /// With -i: tear down instead of stopping.
    #[arg(long)]
    pub down: bool,
    /// Keep retrying until the resources are available.
    #[arg(short = 'r', long)]
    pub retry_until_up: bool,
    /// Start even if the cluster looks UP.
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct AutostopArgs {
    /// Clusters (names or glob patterns).
    pub clusters: Vec<String>,
    /// All of your clusters.
    #[arg(short, long)]
    pub all: bool,
    /// Idle minutes before the cluster stops (default 5).
    #[arg(short = 'i', long, value_name = "MINUTES", conflicts_with = "cancel")]
    pub idle_minutes: Option<i64>,
    /// Turn autostop off.
    #[arg(long)]
    pub cancel: bool,
    /// Tear the cluster down instead of stopping it.
    #[arg(long)]
    pub down: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
}

/// `skydeck ssh CLUSTER [-- COMMAND…]`. The SSH Node Pools commands
/// (`skydeck ssh up`/`down`) share the name as subcommands
/// (`args_conflicts_with_subcommands`): a cluster named `up` or `down` is
/// reached with `--cluster up`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SshArgs {
    #[command(subcommand)]
    pub pools: Option<SshCommand>,
    /// The cluster; without a command, a login shell on a terminal.
    #[arg(value_name = "CLUSTER")]
    pub name: Option<ClusterName>,
    /// The cluster, for one whose name is also a subcommand (`up`, `down`).
    #[arg(long = "cluster", value_name = "CLUSTER", conflicts_with = "name")]
    pub cluster: Option<ClusterName>,
    /// The command and its arguments, run as given (no shell: write
    /// `bash -c '…'` for one), after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

impl SshArgs {
    pub fn cluster(&self) -> Option<&str> {
        self.name
            .as_ref()
            .or(self.cluster.as_ref())
            .map(ClusterName::as_str)
    }
}

#[derive(Debug, Args)]
pub struct EndpointsArgs {
    /// The cluster.
    pub cluster: ClusterName,
    /// Only this port.
    pub port: Option<u16>,
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
    fn auth_flags_become_server_settings_and_survive_the_background_restart() {
        let parse_start = |args: &[&str]| {
            let mut argv = vec!["skydeck", "api", "start"];
            argv.extend_from_slice(args);
            match Cli::parse_from(argv).command {
                Command::Api(ApiCommand::Start(args)) => args,
                _ => panic!("parsed the wrong command"),
            }
        };
        let args = parse_start(&[
            "--enable-basic-auth",
            "--external-proxy-auth",
            "--auth-proxy-header",
            "X-Forwarded-Email",
            "--trusted-proxy",
            "10.0.0.0/8,192.168.1.0/24",
        ]);
        let settings = args.auth.settings(Default::default()).unwrap();
        assert!(settings.basic_auth && !settings.service_accounts);
        assert_eq!(settings.proxy_header.unwrap(), "x-forwarded-email");
        assert_eq!(settings.trusted_proxies.len(), 2);
        assert!(settings.ingress_header.is_none());

        let forwarded: Vec<String> = args.auth.to_args();
        let forwarded: Vec<&str> = forwarded.iter().map(String::as_str).collect();
        let again = parse_start(&forwarded);
        assert_eq!(again.auth.to_args(), args.auth.to_args());
        assert!(
            Cli::try_parse_from(["skydeck", "api", "start", "--trusted-proxy", "10.0.0.0/33"])
                .is_err()
        );
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

    #[test]
    fn a_cluster_name_that_breaks_the_rule_is_refused_before_anything_is_sent() {
        for args in [
            &["launch", "-c", "../state", "echo", "hi"][..],
            &["exec", "a/b", "echo", "hi"],
            &["logs", "/etc"],
            &["endpoints", ".."],
        ] {
            let err = Cli::try_parse_from(std::iter::once("skydeck").chain(args.iter().copied()))
                .unwrap_err()
                .to_string();
            assert!(err.contains(ClusterName::RULE), "{args:?}: {err}");
        }
    }

    fn parse(args: &[&str]) -> Command {
        Cli::try_parse_from(std::iter::once("skydeck").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
            .command
    }

    #[test]
    fn launch_takes_a_command_with_flags_around_it() {
        let Command::Launch(args) = parse(&[
            "launch", "-c", "dev", "echo", "hi", "-y", "--env", "A=1", "--env", "B", "--cpus",
            "4+", "-i", "10", "--down",
        ]) else {
            panic!("parsed the wrong command");
        };
        assert_eq!(args.entrypoint, ["echo", "hi"]);
        assert_eq!(args.cluster.as_deref(), Some("dev"));
        assert!(args.yes && args.down);
        assert_eq!(args.idle_minutes_to_autostop, Some(10));
        assert_eq!(args.task.cpus.as_deref(), Some("4+"));
        assert_eq!(
            args.task.envs,
            [
                ("A".to_owned(), Some("1".to_owned())),
                ("B".to_owned(), None)
            ]
        );
    }

    #[test]
    fn words_after_a_double_dash_belong_to_the_command() {
        let Command::Exec(args) = parse(&["exec", "c1", "-d", "--", "ls", "-la", "--env", "X"])
        else {
            panic!("parsed the wrong command");
        };
        assert_eq!(args.cluster, "c1");
        assert_eq!(args.entrypoint, ["ls", "-la", "--env", "X"]);
        assert!(args.detach_run);
        assert!(args.task.envs.is_empty());
    }

    #[test]
    fn a_bad_env_name_is_refused_by_the_parser() {
        let err = Cli::try_parse_from(["skydeck", "launch", "--env", "1X=2", "echo"]).unwrap_err();
        assert!(err.to_string().contains("--env"), "{err}");
    }

    #[test]
    fn exec_needs_something_to_run() {
        assert!(Cli::try_parse_from(["skydeck", "exec", "c1"]).is_err());
    }

    #[test]
    fn ssh_takes_a_cluster_and_a_command_after_the_separator() {
        let Command::Ssh(args) = parse(&["ssh", "c1", "--", "ls", "-la", "--env"]) else {
            panic!("not ssh");
        };
        assert_eq!(args.cluster(), Some("c1"));
        assert_eq!(args.command, ["ls", "-la", "--env"]);
        let Command::Ssh(args) = parse(&["ssh", "--cluster", "up", "--", "true"]) else {
            panic!("not ssh");
        };
        assert_eq!(args.cluster(), Some("up"));
        let Command::Ssh(args) = parse(&["ssh", "c1"]) else {
            panic!("not ssh");
        };
        assert!(args.command.is_empty());
        assert!(Cli::try_parse_from(["skydeck", "ssh", "../x"]).is_err());
    }

    #[test]
    fn logs_status_and_sync_down_exclude_each_other() {
        assert!(Cli::try_parse_from(["skydeck", "logs", "c1", "--status", "-s"]).is_err());
        let Command::Logs(args) = parse(&["logs", "c1", "2", "--tail", "5", "--no-follow"]) else {
            panic!("parsed the wrong command");
        };
        assert_eq!(args.job_ids, [2]);
        assert_eq!(args.tail, Some(5));
        assert!(args.no_follow);
    }

    #[test]
    fn autostop_cancel_and_minutes_exclude_each_other() {
        assert!(Cli::try_parse_from(["skydeck", "autostop", "c1", "-i", "5", "--cancel"]).is_err());
        let Command::Autostop(args) = parse(&["autostop", "c1", "c2", "-i", "30", "--down"]) else {
            panic!("parsed the wrong command");
        };
        assert_eq!(args.clusters, ["c1", "c2"]);
        assert_eq!(args.idle_minutes, Some(30));
        assert!(args.down);
    }

    #[test]
    fn users_add_takes_a_role_and_where_the_password_comes_from() {
        let Command::Users(UsersCommand::Add(args)) =
            parse(&["users", "add", "bob", "--role", "admin", "--password-stdin"])
        else {
            panic!("parsed the wrong command");
        };
        assert_eq!(args.name, "bob");
        assert_eq!(args.role, RoleArg::Admin);
        assert!(args.password.password_stdin && !args.no_password);
        let Command::Users(UsersCommand::Add(args)) =
            parse(&["users", "add", "ci", "--no-password"])
        else {
            panic!("parsed the wrong command");
        };
        assert_eq!(args.role, RoleArg::User);
        assert!(args.no_password);
        assert!(
            Cli::try_parse_from([
                "skydeck",
                "users",
                "add",
                "x",
                "--no-password",
                "--password-stdin"
            ])
            .is_err()
        );
        assert!(Cli::try_parse_from(["skydeck", "users", "add", "x", "--role", "root"]).is_err());
    }

    #[test]
    fn a_token_expires_after_at_least_a_day() {
        let Command::Tokens(TokensCommand::Create(args)) = parse(&[
            "tokens",
            "create",
            "ci",
            "--expires-in-days",
            "30",
            "--user",
            "bob",
        ]) else {
            panic!("parsed the wrong command");
        };
        assert_eq!(args.expires_in_days, Some(30));
        assert_eq!(args.user.as_deref(), Some("bob"));
        assert!(
            Cli::try_parse_from([
                "skydeck",
                "tokens",
                "create",
                "ci",
                "--expires-in-days",
                "0"
            ])
            .is_err()
        );
    }

    #[test]
    fn config_get_prints_yaml_unless_asked_for_json() {
        let Command::Config(ConfigCommand::Get(args)) = parse(&["config", "get"]) else {
            panic!("parsed the wrong command");
        };
        assert_eq!(args.output, ConfigFormat::Yaml);
        let Command::Config(ConfigCommand::Get(args)) = parse(&["config", "get", "-o", "json"])
        else {
            panic!("parsed the wrong command");
        };
        assert_eq!(args.output, ConfigFormat::Json);
    }

    #[test]
    fn cluster_verbs_take_several_clusters() {
        let Command::Down(args) = parse(&["down", "a", "b*", "-y"]) else {
            panic!("parsed the wrong command");
        };
        assert_eq!(args.clusters, ["a", "b*"]);
        assert!(args.yes);
        let Command::Queue(args) = parse(&["queue", "-s", "-u"]) else {
            panic!("parsed the wrong command");
        };
        assert!(args.clusters.is_empty() && args.skip_finished && args.all_users);
    }
}
