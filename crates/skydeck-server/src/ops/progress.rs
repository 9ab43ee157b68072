//! What the request log says about a long step: how much it moves, in
//! the units people read.

use std::path::{Path, PathBuf};

/// `12.3 MB in 40 files`: the size of the files under `path` (a file or a
/// directory; links are not followed). Walking a big tree is blocking
/// work: done off the async workers.
pub async fn tree_summary(path: PathBuf) -> String {
    let (bytes, files) = tokio::task::spawn_blocking(move || tree_size(&path))
        .await
        .unwrap_or((0, 0));
    format!(
        "{} in {files} file{}",
        human_size(bytes),
        if files == 1 { "" } else { "s" }
    )
}

/// Bytes and regular files under `path`.
fn tree_size(path: &Path) -> (u64, u64) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return (0, 0);
    };
    if meta.is_file() {
        return (meta.len(), 1);
    }
    if !meta.is_dir() {
        return (0, 0);
    }
    let mut total = (0, 0);
    for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
        let (bytes, files) = tree_size(&entry.path());
        total = (total.0 + bytes, total.1 + files);
    }
    total
}

/// `999 B`, `1.5 KB`, `95.0 MB`, as the CLI writes sizes.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = "B";
    for next in UNITS {
        if value < 1000.0 {
            break;
        }
        value /= 1000.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tree_is_summed_over_its_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/one"), vec![0u8; 1500]).unwrap();
        std::fs::write(dir.path().join("a/b/two"), vec![0u8; 500]).unwrap();
        assert_eq!(
            tree_summary(dir.path().to_owned()).await,
            "2.0 KB in 2 files"
        );
        assert_eq!(
            tree_summary(dir.path().join("a/b/two")).await,
            "500 B in 1 file"
        );
    }
}
