//! The [`crate::Provider`] on one Kubernetes context: pods, exec, sync.
