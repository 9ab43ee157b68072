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

/// The anchors GitHub gives a document's headings: lower case, punctuation
/// other than `-` and `_` dropped, spaces turned into `-`.
fn heading_anchors(markdown: &str) -> Vec<String> {
    let mut fenced = false;
    let mut anchors = Vec::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        let Some(heading) = line.strip_prefix('#').filter(|_| !fenced) else {
            continue;
        };
        let title = heading.trim_start_matches('#').trim();
        let slug: String = title
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        anchors.push(slug);
    }
    anchors
}

#[test]
fn heading_anchors_follow_github() {
    let markdown = "# Skydeck\n## Security: jobs on the `local` infrastructure\n\
                    ```\n# not a heading\n```\n### Your own ingress controller, TLS\n";
    assert_eq!(
        heading_anchors(markdown),
        [
            "skydeck",
            "security-jobs-on-the-local-infrastructure",
            "your-own-ingress-controller-tls"
        ]
    );
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
        let shown = doc
            .strip_prefix(&root)
            .unwrap_or(&doc)
            .display()
            .to_string();
        for target in link_targets(&markdown) {
            if is_external(&target) {
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let resolved = if file.is_empty() {
                doc.clone()
            } else {
                match dir.join(file).canonicalize() {
                    Ok(resolved) if resolved.starts_with(&root) => resolved,
                    Ok(_) => {
                        broken.push(format!("{shown}: {target} leads outside the repository"));
                        continue;
                    }
                    Err(_) => {
                        broken.push(format!("{shown}: {target} does not exist"));
                        continue;
                    }
                }
            };
            let is_markdown = resolved.extension().is_some_and(|ext| ext == "md");
            if !anchor.is_empty() && is_markdown {
                let text = std::fs::read_to_string(&resolved).expect("readable link target");
                if !heading_anchors(&text).iter().any(|a| a == anchor) {
                    broken.push(format!("{shown}: {target} names no heading"));
                }
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

#[test]
fn the_license_file_is_the_license_cargo_toml_names() {
    let root = repo_root();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
    assert!(
        manifest
            .lines()
            .any(|l| l.trim() == "license = \"Apache-2.0\""),
        "Cargo.toml declares Apache-2.0; update this test and LICENSE together"
    );
    let license = std::fs::read_to_string(root.join("LICENSE")).expect("a LICENSE file");
    assert!(license.trim_start().starts_with("Apache License"));
    assert!(license.contains("Version 2.0, January 2004"));
    assert!(
        license.contains("END OF TERMS AND CONDITIONS"),
        "the full terms"
    );
}

#[test]
fn no_placeholder_urls_in_the_manifests_and_docs() {
    let root = repo_root();
    let mut files = vec![root.join("Cargo.toml"), root.join("README.md")];
    files.extend(documents(&root));
    for entry in std::fs::read_dir(root.join("crates")).expect("crates/") {
        files.push(entry.expect("crates/ entry").path().join("Cargo.toml"));
    }
    for file in files.iter().filter(|f| f.exists()) {
        let text = std::fs::read_to_string(file).expect("readable file");
        for placeholder in ["example.invalid", "your-org", "CHANGEME"] {
            assert!(
                !text.contains(placeholder),
                "{} still holds the placeholder {placeholder}",
                file.display()
            );
        }
    }
}
