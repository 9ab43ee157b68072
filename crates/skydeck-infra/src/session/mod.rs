//! Interactive sessions on a node: a program with its input and output
//! relayed as they flow (`skydeck ssh CLUSTER [-- CMD]`), on a
//! pseudo-terminal or on plain pipes.
//!
//! A session is driven by one task that owns the process: the caller
//! talks to it through channels, so the same [`Session`] comes out of
//! every runner (a local pty, `ssh -tt` over a pool's master connection,
//! pipes). Dropping the session's output receiver kills the program, the
//! same contract as [`crate::CommandRunner::stream`]: a client that went
//! away leaves nothing running.

mod driver;
mod local;

pub(crate) use driver::{Input, Process, Reader, drive};

pub(crate) use local::{spawn_pipes, spawn_pty};

use std::path::PathBuf;
use tokio::sync::{mpsc, oneshot};

/// A terminal's size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtySize {
    pub cols: u16,
    pub rows: u16,
}

/// What to run and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSpec {
    /// The program and its arguments, passed as they are (no shell).
    pub argv: Vec<String>,
    /// A pseudo-terminal of this size, or plain pipes (stdout and stderr
    /// apart, stdin's end passed on) when `None`.
    pub tty: Option<TtySize>,
    /// `TERM` on a pseudo-terminal: the client's own.
    pub term: Option<String>,
    /// The node's sandbox root, its HOME and working directory where the
    /// node has no login of its own (a `local` node shares this machine's
    /// user); a runner that logs in (SSH) starts in the login's home.
    pub sandbox: Option<PathBuf>,
    /// The cluster's variables (`SKYPILOT_NODE_RANK`, …), set on top.
    pub env: Vec<(String, String)>,
}

/// What the client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionInput {
    Data(Vec<u8>),
    /// The client's input ended (ignored on a pseudo-terminal, where the
    /// user's ^D travels as data).
    Eof,
    Resize(TtySize),
}

/// What the program prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionOutput {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
}

/// A running session. Dropping `output` kills the program.
#[derive(Debug)]
pub struct Session {
    pub input: mpsc::Sender<SessionInput>,
    pub output: mpsc::Receiver<SessionOutput>,
    /// The exit code (-1 when killed by a signal), sent once all output
    /// was delivered.
    pub exit: oneshot::Receiver<crate::Result<i32>>,
}
