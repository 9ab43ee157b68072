//! What `skydeck --version` prints: the release and the commit it was built
//! from, so a bug report names the exact build.

use std::sync::LazyLock;

/// `0.1.0 (commit 0123456789ab)`, or `(commit unknown)` when the build had
/// neither a git checkout nor `SKYDECK_COMMIT`.
pub static VERSION: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{} (commit {})",
        env!("CARGO_PKG_VERSION"),
        skydeck_server::skypilot::COMMIT
    )
});
