//! Every task YAML under `examples/` parses and validates, so the examples
//! the README points new users to never rot. (`scripts/demo.sh` also runs
//! one for real.)

use std::path::{Path, PathBuf};

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read examples/") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

#[test]
fn every_example_task_is_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut files = Vec::new();
    yaml_files(&root, &mut files);
    assert!(files.len() >= 5, "examples/ lost its tasks: {files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let tasks = skydeck_types::task::parse_tasks(&text)
            .unwrap_or_else(|err| panic!("{}: {err}", file.display()));
        for task in &tasks {
            task.validate()
                .unwrap_or_else(|err| panic!("{}: {err}", file.display()));
            assert!(task.run.is_some(), "{}: no run command", file.display());
        }
    }
}
