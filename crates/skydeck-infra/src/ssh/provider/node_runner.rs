//! A runner for one pool host that connects on first use: a provider's
//! `head_runner` is not async, and a host that does not answer should fail
//! the command that needs it, not the provider.

use crate::runner::{CommandOutput, CommandRunner};
use crate::ssh::{SshPool, SshRunner, SshTarget};
use crate::{InfraError, Result};
use async_trait::async_trait;
use tokio::sync::{OnceCell, mpsc};

pub struct NodeRunner {
    pool: SshPool,
    target: SshTarget,
    /// The connection, once made; a failed attempt leaves it empty, so the
    /// next command tries again.
    runner: OnceCell<SshRunner>,
}

impl NodeRunner {
    pub fn new(pool: SshPool, target: SshTarget) -> Self {
        Self {
            pool,
            target,
            runner: OnceCell::new(),
        }
    }

    /// The connected runner.
    pub async fn get(&self) -> Result<&SshRunner> {
        self.runner
            .get_or_try_init(|| self.pool.connect(&self.target))
            .await
    }
}

#[async_trait]
impl CommandRunner for NodeRunner {
    async fn run(&self, argv: &[String], stdin: Option<Vec<u8>>) -> Result<CommandOutput> {
        self.get().await?.run(argv, stdin).await
    }

    async fn stream(&self, argv: &[String], out: mpsc::Sender<Vec<u8>>) -> Result<i32> {
        self.get().await?.stream(argv, out).await
    }
}

/// A runner for a node the provider cannot find (a handle naming a host
/// the pool file no longer lists): every command fails, saying so.
pub struct Unreachable(pub String);

#[async_trait]
impl CommandRunner for Unreachable {
    async fn run(&self, _argv: &[String], _stdin: Option<Vec<u8>>) -> Result<CommandOutput> {
        Err(InfraError::Command(self.0.clone()))
    }

    async fn stream(&self, _argv: &[String], _out: mpsc::Sender<Vec<u8>>) -> Result<i32> {
        Err(InfraError::Command(self.0.clone()))
    }
}
