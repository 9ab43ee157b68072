//! Reaching nodes over SSH, with OpenSSH's own semantics.
//!
//! Why the `openssh` crate (native-mux): it drives the system `ssh` as a
//! ControlMaster and opens every command as a new channel on that one
//! connection, through the master's socket. So everything a user already has
//! working with `ssh` works here unchanged: `~/.ssh/config` host aliases,
//! `ProxyJump`, keys from files or an agent, certificates, `Match` blocks;
//! and there is no handshake per command. `russh` is a pure-Rust client; it
//! would need all of that (the config language, ProxyJump, agents,
//! known_hosts) reimplemented, and would differ from what users debug with
//! `ssh -v`. The native mux talks to the master directly over its socket,
//! so a command costs no local `ssh` process either.
//!
//! Measured on a reused connection against a test host in a network
//! namespace: 14 ms per command, against 464 ms for a fresh `ssh` each time
//! (`cargo test -p skydeck-infra --test ssh_runner -- --ignored --nocapture
//! per_command_latency`; docs/ssh.md).
//!
//! Host keys are recorded per pool on first contact (`accept-new`) in the
//! pool's own `known_hosts`; a key that changed afterwards is refused, with
//! the file and line to remove to accept the new one.

mod errors;
mod install;
mod keys;
mod pool;
mod probe;
pub(crate) mod provider;
mod quote;
mod runner;
mod session;
mod sync;
mod target;

pub use install::{BinaryPlatform, Installed, ProgramImage};
pub use keys::ClusterKey;
pub use pool::{SshPool, SshPoolOptions};
pub use probe::{Gpu, HostFacts, Libc, Privilege, probe};
pub use provider::SshProvider;
pub use quote::{quote, quote_argv};
pub use runner::SshRunner;
pub use sync::SyncReport;
pub use target::{SshHost, SshTarget, SshUser};
