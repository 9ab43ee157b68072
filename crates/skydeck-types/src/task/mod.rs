//! SkyPilot task YAML: parsing, validation, CLI overrides and redaction.
//!
//! A task YAML (<https://docs.skypilot.co/en/latest/reference/yaml-spec.html>)
//! is read in two passes: the YAML parser builds a tree, then typed readers
//! check every field against SkyPilot 0.14.1's schema. When a reader
//! rejects something, the error is placed at the line and column of the
//! offending key or value (see `locate`), so users see where to look.
//!
//! The usual flow: [`parse_tasks`] (or [`parse_dag`]), then
//! [`TaskSpec::apply_overrides`] with the CLI flags, then
//! [`TaskSpec::validate`]. Before a task is logged or shown to other users,
//! use [`TaskSpec::redacted`] or [`redact_task_yaml`].

mod accelerators;
mod autostop;
mod collect;
mod dag;
mod error;
mod file_mount;
mod infra;
pub mod limits;
mod locate;
mod mount_target;
mod overrides;
mod ports;
mod quantity;
mod redact;
mod resources;
mod spec;
mod validate;
mod yaml;

#[cfg(test)]
mod tests;

pub use accelerators::{Accelerator, Accelerators};
pub use autostop::Autostop;
pub use dag::{TaskDag, parse_dag, parse_tasks};
pub use error::{FieldPath, PathSegment, TaskError, TaskErrorKind};
pub use file_mount::{FileMount, StorageMount};
pub use infra::{INFRA_KINDS, Infra};
pub use mount_target::{MountTarget, REMOTE_WORKDIR};
pub use overrides::Overrides;
pub use ports::PortRange;
pub use quantity::{CpuRequest, MemoryRequest};
pub use redact::{REDACTED, redact_task_yaml};
pub use resources::{ImageId, Resources};
pub use spec::{EnvValue, MAX_NUM_NODES, TaskSpec, Workdir};
