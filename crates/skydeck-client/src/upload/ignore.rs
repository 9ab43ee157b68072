//! Which files of a directory stay on the user's machine: the entries of
//! its `.skyignore`, or else what git ignores there, as the official client
//! decides (`sky/data/storage_utils.py`).

use crate::glob;
use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

pub(super) enum Ignore {
    Nothing,
    /// `.skyignore` entries.
    Patterns(Vec<Pattern>),
    /// What git reports as ignored, relative to the directory.
    Paths(HashSet<PathBuf>),
}

/// One `.skyignore` line, split into path components.
pub(super) struct Pattern {
    parts: Vec<String>,
    dir_only: bool,
}

impl Ignore {
    pub(super) fn for_dir(dir: &Path) -> Self {
        match std::fs::read_to_string(dir.join(".skyignore")) {
            Ok(text) => Self::Patterns(text.lines().filter_map(Pattern::parse).collect()),
            Err(_) => git_ignored(dir).map_or(Self::Nothing, Self::Paths),
        }
    }

    /// Whether `relative` (inside the directory) stays home. An excluded
    /// directory is skipped with everything under it.
    pub(super) fn excludes(&self, relative: &Path, is_dir: bool) -> bool {
        match self {
            Self::Nothing => false,
            Self::Paths(paths) => paths.contains(relative),
            Self::Patterns(patterns) => {
                let parts: Vec<String> = relative
                    .components()
                    .filter_map(|c| match c {
                        Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
                        _ => None,
                    })
                    .collect();
                patterns
                    .iter()
                    .any(|p| (is_dir || !p.dir_only) && match_parts(&p.parts, &parts))
            }
        }
    }
}

impl Pattern {
    /// SkyPilot globs `/name` from the directory itself and any other
    /// entry at every depth (`**/name`), as rsync reads such files.
    fn parse(line: &str) -> Option<Self> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let (anchored, rest) = match line.strip_prefix('/') {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let mut parts: Vec<String> = Vec::new();
        if !anchored {
            parts.push("**".to_owned());
        }
        parts.extend(
            rest.split('/')
                .filter(|p| !p.is_empty() && *p != ".")
                .map(str::to_owned),
        );
        Some(Self {
            parts,
            dir_only: rest.ends_with('/'),
        })
    }
}

/// Python's recursive glob: `**` stands for any number of directories, and
/// wildcards never match names starting with a dot unless the pattern
/// does. Patterns are kept this way so the same files stay home as with
/// the official client.
fn match_parts(pattern: &[String], path: &[String]) -> bool {
    let hidden = |name: &str| name.starts_with('.');
    match pattern.first() {
        None => path.is_empty(),
        Some(any) if any == "**" => {
            match_parts(&pattern[1..], path)
                || (!path.is_empty() && !hidden(&path[0]) && match_parts(pattern, &path[1..]))
        }
        Some(part) => match path.first() {
            Some(name) => {
                (!hidden(name) || part.starts_with('.'))
                    && glob::matches(part, name)
                    && match_parts(&pattern[1..], &path[1..])
            }
            None => false,
        },
    }
}

/// Paths git ignores under `dir`, or `None` outside a repository, without
/// git, or when git ignores the directory as a whole (then SkyPilot
/// uploads everything rather than nothing). Submodules are not consulted.
fn git_ignored(dir: &Path) -> Option<HashSet<PathBuf>> {
    let output = Command::new("git")
        .args(["-c", "safe.directory=*", "-C"])
        .arg(dir)
        .args([
            "ls-files",
            "-z",
            "--others",
            "--ignored",
            "--exclude-standard",
            "--directory",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let entries: Vec<&str> = text.split('\0').filter(|e| !e.is_empty()).collect();
    if entries.contains(&"./") {
        return None;
    }
    Some(
        entries
            .into_iter()
            .map(|e| PathBuf::from(e.trim_end_matches('/')))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skyignore(lines: &str) -> Ignore {
        Ignore::Patterns(lines.lines().filter_map(Pattern::parse).collect())
    }

    #[test]
    fn entries_match_at_any_depth_unless_anchored() {
        let ignore = skyignore("*.pyc\n/build\n# a comment\n\ndata/*.csv\nlogs/\n");
        assert!(ignore.excludes(Path::new("a.pyc"), false));
        assert!(ignore.excludes(Path::new("pkg/sub/a.pyc"), false));
        assert!(ignore.excludes(Path::new("build"), true));
        assert!(!ignore.excludes(Path::new("src/build"), true));
        assert!(ignore.excludes(Path::new("x/data/t.csv"), false));
        assert!(!ignore.excludes(Path::new("data/t.json"), false));
        assert!(ignore.excludes(Path::new("logs"), true));
        assert!(!ignore.excludes(Path::new("logs"), false));
        assert!(!ignore.excludes(Path::new("main.py"), false));
    }

    #[test]
    fn wildcards_skip_hidden_names_as_python_glob_does() {
        let ignore = skyignore("*.pyc\n.env\n");
        assert!(!ignore.excludes(Path::new(".hidden.pyc"), false));
        assert!(!ignore.excludes(Path::new(".venv/a.pyc"), false));
        assert!(ignore.excludes(Path::new(".env"), false));
    }
}
