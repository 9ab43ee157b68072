//! Shell-style wildcards, shared with the server: see `skydeck_types::glob`.

pub use skydeck_types::glob::{is_pattern, matches};
