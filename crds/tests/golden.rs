//! Golden tests for the compiler: `testdata/compile/<case>.in.yaml` is compiled and the result
//! (parse errors, snapshots and statuses) compared with `<case>.out.json`.
//! `UPDATE_GOLDEN=1 cargo test -p frontdesk-crds --test golden` rewrites the expected files;
//! review the diff before committing.
use std::path::Path;

use frontdesk_crds::manifests::{parse_file, resources};
use serde_json::json;

fn render(name: &str, text: &str) -> String {
    let parsed = parse_file(name, text);
    let out = frontdesk_crds::compile(&resources(parsed.objects.iter().map(|(o, _)| o)));
    for snapshot in out.snapshots.values() {
        snapshot
            .validate()
            .unwrap_or_else(|e| panic!("{name}: the compiler produced an invalid snapshot: {e}"));
        // What the controller sends is what the proxy reads back.
        let json = serde_json::to_string(snapshot).unwrap();
        let back: frontdesk_snapshot::Snapshot = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("{name}: a snapshot does not read back: {e}"));
        assert_eq!(
            &back, snapshot,
            "{name}: the snapshot changed in a JSON round trip"
        );
    }
    let value = json!({
        "parseErrors": parsed.errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "snapshots": out.snapshots,
        "statuses": out.statuses,
    });
    serde_json::to_string_pretty(&value).unwrap() + "\n"
}

#[test]
fn compile_golden() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/compile");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".in.yaml"))
        .collect();
    cases.sort();
    assert!(!cases.is_empty());
    let mut failed = Vec::new();
    for input in cases {
        let case = input
            .file_name()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches(".in.yaml")
            .to_string();
        let expected_path = dir.join(format!("{case}.out.json"));
        let actual = render(
            &format!("{case}.in.yaml"),
            &std::fs::read_to_string(&input).unwrap(),
        );
        if update {
            std::fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != actual {
            eprintln!(
                "--- {case}: expected {}\n+++ actual\n{actual}",
                expected_path.display()
            );
            failed.push(case);
        }
    }
    assert!(
        failed.is_empty(),
        "golden cases differ: {failed:?} (UPDATE_GOLDEN=1 to accept)"
    );
}
