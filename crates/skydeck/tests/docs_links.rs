//! The README and docs/ are what a new user reads first: every relative link
//! in them must lead to a file of this repository, and the README's examples
//! table must name every example task, so neither goes stale unnoticed.

use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

/// The documents a reader follows links through.
fn documents(root: &Path) -> Vec<PathBuf> {
    let mut docs = vec![root.join("README.md")];
    let mut in_docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .map(|entry| entry.expect("readable docs/ entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    in_docs.sort();
    docs.extend(in_docs);
    docs
}

/// Text outside fenced code blocks and inline code spans, where Markdown
/// would render a link.
fn prose(markdown: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            out.push('\n');
            continue;
        }
        if !fenced {
            let mut in_code = false;
            for part in line.split('`') {
                if !in_code {
                    out.push_str(part);
                }
                in_code = !in_code;
            }
        }
        out.push('\n');
    }
    out
}

/// Targets of inline links `[text](target "title")` and reference
/// definitions `[label]: target`.
fn link_targets(markdown: &str) -> Vec<String> {
    let text = prose(markdown);
    let mut targets = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        let target = match rest.strip_prefix('<') {
            Some(bracketed) => bracketed.split('>').next().unwrap_or(""),
            None => rest.split([')', ' ', '\n']).next().unwrap_or(""),
        };
        targets.push(target.to_owned());
    }
    for line in text.lines() {
        let line = line.trim_start();
        if let Some(close) = line.strip_prefix('[').and_then(|l| l.find("]:")) {
            let target = line[close + 3..].split_whitespace().next().unwrap_or("");
            targets.push(target.to_owned());
        }
    }
    targets
}

fn is_external(target: &str) -> bool {
    target.contains("://") || target.starts_with("mailto:")
}

#[test]
fn link_targets_are_found_outside_code() {
    let markdown = "See [a](docs/a.md) and [b](<b c.md> \"title\").\n\
                    `[not](code.md)`\n```\n[not](fence.md)\n```\n[ref]: ../up.md\n";
    assert_eq!(link_targets(markdown), ["docs/a.md", "b c.md", "../up.md"]);
}

#[test]
fn every_relative_link_in_the_readme_and_docs_resolves_inside_the_repository() {
    let root = repo_root();
    let mut broken = Vec::new();
    for doc in documents(&root) {
        let markdown = std::fs::read_to_string(&doc).expect("readable document");
        let dir = doc.parent().expect("a document has a directory");
        for target in link_targets(&markdown) {
            let file = target.split('#').next().unwrap_or("");
            if is_external(&target) || file.is_empty() {
                continue;
            }
            let shown = doc
                .strip_prefix(&root)
                .unwrap_or(&doc)
                .display()
                .to_string();
            match dir.join(file).canonicalize() {
                Ok(resolved) if resolved.starts_with(&root) => {}
                Ok(_) => broken.push(format!("{shown}: {target} leads outside the repository")),
                Err(_) => broken.push(format!("{shown}: {target} does not exist")),
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

fn yaml_files(dir: &Path, root: &Path, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("readable examples directory") {
        let path = entry.expect("readable examples entry").path();
        if path.is_dir() {
            yaml_files(&path, root, found);
        } else if path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
        {
            let relative = path.strip_prefix(root).expect("under the repository");
            found.push(relative.display().to_string());
        }
    }
}

#[test]
fn the_readme_examples_table_lists_every_example_task() {
    let root = repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let table_rows: Vec<&str> = readme
        .lines()
        .filter(|line| line.starts_with("| `examples/"))
        .collect();
    let mut examples = Vec::new();
    yaml_files(&root.join("examples"), &root, &mut examples);
    examples.sort();
    assert!(!examples.is_empty(), "examples/ holds task YAMLs");
    let missing: Vec<&String> = examples
        .iter()
        .filter(|example| {
            let cell = format!("| `{example}` |");
            !table_rows.iter().any(|row| row.starts_with(&cell))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "README.md's examples table does not list: {missing:?}"
    );
}
