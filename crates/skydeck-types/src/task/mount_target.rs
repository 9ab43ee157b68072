//! Where a file mount lands on a node, read as SkyPilot reads a
//! `file_mounts` key: `~/x` in the home directory, `/x` at that absolute
//! path, anything else relative to the workdir (`~/sky_workdir`).

use std::fmt;

/// SkyPilot's workdir on every node.
pub const REMOTE_WORKDIR: &str = "~/sky_workdir";

/// A checked `file_mounts` destination. The relative path inside `Home`
/// and `Workdir` is normalised (no `.`, no empty segment) and never climbs
/// out with `..`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum MountTarget {
    /// `~/x`: under the node's home directory.
    Home(String),
    /// `x`: under the workdir, `~/sky_workdir/x`.
    Workdir(String),
    /// `/x`: that path on the node.
    Absolute(String),
}

impl MountTarget {
    /// What a destination must look like, for error messages.
    pub const EXPECTED: &'static str = "a path on the nodes: absolute (/data), in the home \
         directory (~/data) or relative to the workdir (data), without a trailing / or ..";

    /// Reads a `file_mounts` key; `Err` says what is wrong with it.
    pub fn parse(target: &str) -> Result<Self, String> {
        if target.is_empty() {
            return Err("the destination is empty".into());
        }
        if target.contains('\0') {
            return Err("the destination contains a NUL byte".into());
        }
        // SkyPilot refuses these too ("Mount paths cannot end with a slash").
        if target.len() > 1 && target.ends_with('/') {
            return Err("the destination ends with /: drop the trailing slash".into());
        }
        if let Some(rest) = target.strip_prefix("~/") {
            return Ok(Self::Home(relative(rest)?));
        }
        if target.starts_with('~') {
            return Err(
                "~ alone or ~user is not a destination: write ~/path for the home directory".into(),
            );
        }
        if target.starts_with('/') {
            if target.split('/').any(|part| part == "..") {
                return Err("the destination contains ..: write the path it means".into());
            }
            return Ok(Self::Absolute(target.to_owned()));
        }
        Ok(Self::Workdir(relative(target)?))
    }

    /// The path as SkyPilot writes it on the node: `~/x`,
    /// `~/sky_workdir/x` or `/x`.
    pub fn remote_path(&self) -> String {
        match self {
            Self::Home(path) => format!("~/{path}"),
            Self::Workdir(path) => format!("{REMOTE_WORKDIR}/{path}"),
            Self::Absolute(path) => path.clone(),
        }
    }
}

impl fmt::Display for MountTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.remote_path())
    }
}

/// `a/./b//c` → `a/b/c`; `..` refused, as is a path naming its root itself.
fn relative(path: &str) -> Result<String, String> {
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("the destination contains ..: write the path it means".into()),
            part => parts.push(part),
        }
    }
    if parts.is_empty() {
        return Err("the destination names a directory itself, not a path inside it".into());
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_placed_as_skypilot_places_them() {
        let cases = [
            ("~/data", "~/data"),
            ("~/a/./b//c", "~/a/b/c"),
            ("data", "~/sky_workdir/data"),
            ("./sub/file.txt", "~/sky_workdir/sub/file.txt"),
            ("/data/x", "/data/x"),
            ("/", "/"),
        ];
        for (target, remote) in cases {
            let parsed = MountTarget::parse(target).unwrap();
            assert_eq!(parsed.remote_path(), remote, "{target}");
        }
        assert_eq!(
            MountTarget::parse("data").unwrap(),
            MountTarget::Workdir("data".into())
        );
    }

    #[test]
    fn destinations_that_would_climb_or_mean_nothing_are_refused() {
        for (target, why) in [
            ("", "empty"),
            ("../x", ".."),
            ("~/../x", ".."),
            ("a/../../x", ".."),
            ("/data/../etc", ".."),
            ("~", "~ alone"),
            ("~bob/x", "~user"),
            ("/data/", "trailing slash"),
            (".", "directory itself"),
            ("~/.", "directory itself"),
            ("a\0b", "NUL"),
        ] {
            let err = MountTarget::parse(target).unwrap_err();
            assert!(err.contains(why), "{target:?}: {err}");
        }
    }
}
