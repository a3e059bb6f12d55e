//! Every manifest under `examples/` parses and compiles cleanly: what users copy must work.
use std::path::Path;

use frontdesk_crds::catalog::Catalog;

#[test]
fn examples_compile_without_problems() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push((
                    path.display().to_string(),
                    Ok(std::fs::read_to_string(&path).unwrap()),
                ));
            }
        }
    }
    assert!(!files.is_empty());
    let update = Catalog::default().update(&files);
    assert!(update.problems.is_empty(), "{:#?}", update.problems);
    for status in &update.output.statuses {
        for c in &status.conditions {
            let fine = if c.type_ == "Conflicted" {
                !c.status
            } else {
                c.status
            };
            assert!(
                fine,
                "{} {}/{}: {} {}",
                status.kind, status.namespace, status.name, c.type_, c.message
            );
        }
    }
}
