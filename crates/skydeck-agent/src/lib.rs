//! The Skydeck node agent, Skydeck's counterpart of SkyPilot's skylet: one
//! per cluster, it keeps the cluster's job queue and runs jobs on the
//! cluster's nodes.
//!
//! Everything lives under the cluster directory:
//!
//! ```text
//! cluster.json          the provider's description of the cluster (ClusterInfo)
//! nodes/<rank>/         a node's sandbox root: HOME of job processes;
//!                       jobs start in nodes/<rank>/sky_workdir
//! agent/state.json      the job queue and autostop setting (under agent/state.lock)
//! agent/daemon.lock     held by the one live daemon
//! agent/daemon.pid      the daemon's pid
//! agent/daemon.log      the daemon's own log (the provider redirects to it)
//! agent/autostop.json   written when the daemon exits idle (AutostopFile)
//! jobs/<id>/run.log     a job's output
//! jobs/<id>/secrets.json  a job's secrets, mode 0600, deleted when it ends
//! ```
//!
//! The server drives it with `skydeck agent <subcommand> --cluster-dir DIR`
//! ([`cli`]); the documents exchanged are in [`protocol`].

pub mod cli;
pub mod cluster;
pub mod paths;
pub mod protocol;

mod daemon;
mod env;
mod fsutil;
mod jobs;
mod logs;
mod node_exec;
mod node_link;
mod process;
mod remote;
mod runner;
mod schedule;
mod shell;
mod state;
mod supervisor;
