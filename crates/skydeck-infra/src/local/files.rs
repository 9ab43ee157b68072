//! File work for node sandboxes: where a remote path lands in a node's
//! directory, copying trees into it, and crash-safe writes.

use skydeck_types::task::MountTarget;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

/// Where `remote` (as a task names it: `~/x`, or a path relative to the
/// home) is inside a node sandbox rooted at `node_dir`, the node's home. A
/// sandbox has no root filesystem of its own: an absolute path is refused,
/// never moved under the sandbox. `..` components are dropped so nothing
/// lands outside it (task destinations never hold any: see `MountTarget`).
pub fn node_path(node_dir: &Path, remote: &str) -> Result<PathBuf, String> {
    if remote.starts_with('/') {
        return Err(absolute_refusal(remote));
    }
    let relative = remote
        .strip_prefix("~/")
        .or_else(|| (remote == "~").then_some(""))
        .unwrap_or(remote);
    let mut path = node_dir.to_owned();
    for component in Path::new(relative).components() {
        if let Component::Normal(part) = component {
            path.push(part);
        }
    }
    Ok(path)
}

/// Whether a file mount can go where the task says on a `local` node.
pub fn placeable(target: &MountTarget) -> Result<(), String> {
    match target {
        MountTarget::Absolute(path) => Err(absolute_refusal(path)),
        MountTarget::Home(_) | MountTarget::Workdir(_) => Ok(()),
    }
}

/// A `local` node is a directory on the server's machine, shared with the
/// server and every other cluster: writing a task's files at an absolute
/// path there would let any user write wherever the server may.
fn absolute_refusal(path: &str) -> String {
    let name = path.trim_start_matches('/');
    format!(
        "file_mounts: {path} is an absolute path, and the local infrastructure cannot place \
         files there: its nodes are directories on the API server's machine, and a task writes \
         only inside its own node. Mount it at ~/{name} (the node's home) or at {name} (under \
         the workdir, ~/sky_workdir) and read it from there."
    )
}

/// Copies a file or a directory tree to `to`, replacing files that exist.
/// Symbolic links are copied as links, never followed.
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(from)?;
    if meta.file_type().is_symlink() {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let _ = std::fs::remove_file(to);
        return std::os::unix::fs::symlink(std::fs::read_link(from)?, to);
    }
    if meta.is_dir() {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        return Ok(());
    }
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::copy(from, to).map(|_| ())
}

/// Writes `bytes` to `path` so that a crash leaves the old or the new
/// content, never a torn file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    ));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_paths_stay_inside_the_node() {
        let node = Path::new("/c/nodes/0");
        let at = |remote| node_path(node, remote).unwrap();
        assert_eq!(at("~/sky_workdir"), Path::new("/c/nodes/0/sky_workdir"));
        assert_eq!(
            at("~/sky_workdir/rel/x.txt"),
            Path::new("/c/nodes/0/sky_workdir/rel/x.txt")
        );
        assert_eq!(at("../../etc/passwd"), Path::new("/c/nodes/0/etc/passwd"));
        assert_eq!(at("~"), Path::new("/c/nodes/0"));
    }

    #[test]
    fn absolute_destinations_are_refused_not_moved() {
        let err = node_path(Path::new("/c/nodes/0"), "/data/x.txt").unwrap_err();
        assert!(err.contains("/data/x.txt is an absolute path"), "{err}");
        let err = placeable(&MountTarget::parse("/data").unwrap()).unwrap_err();
        assert!(
            err.contains("~/data") && err.contains("~/sky_workdir"),
            "{err}"
        );
        for ok in ["~/data", "data"] {
            placeable(&MountTarget::parse(ok).unwrap()).unwrap();
        }
    }

    #[test]
    fn trees_are_copied_with_links_kept() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("sub/a.txt"), "a").unwrap();
        std::os::unix::fs::symlink("sub/a.txt", src.join("link")).unwrap();
        let dst = dir.path().join("dst");
        copy_tree(&src, &dst).unwrap();
        assert_eq!(std::fs::read_to_string(dst.join("sub/a.txt")).unwrap(), "a");
        assert_eq!(
            std::fs::read_link(dst.join("link")).unwrap(),
            Path::new("sub/a.txt")
        );
        copy_tree(&src, &dst).unwrap();
    }
}
