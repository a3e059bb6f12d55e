//! Every manifest under `examples/` parses and compiles cleanly: what users copy must work.
use std::path::Path;

use frontdesk_crds::catalog::Catalog;

/// Every `.yaml` file under `root`, with its text.
fn yaml_files(root: &Path) -> Vec<(String, Result<String, String>)> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
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
    files
}

/// Every object compiled cleanly: accepted, references resolved, no conflict.
fn assert_clean(files: &[(String, Result<String, String>)]) {
    assert!(!files.is_empty());
    let update = Catalog::default().update(files);
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

#[test]
fn examples_compile_without_problems() {
    assert_clean(&yaml_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples"),
    ));
}

/// `make demo` serves examples/demo behind the Gateway `frontdesk-demo tls` writes: every
/// Route and Aggregate there must attach to it (they live in another namespace).
#[test]
fn the_demo_gateway_serves_every_demo_example() {
    let tls = tempfile::tempdir().unwrap();
    frontdesk_demo::certs::write_demo_gateway(tls.path(), 8080, 8443).unwrap();
    let mut files = yaml_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo"));
    files.extend(yaml_files(tls.path()));
    assert_clean(&files);
}

/// The demo's transcoding reads demo/proto/catalog.proto from a ConfigMap of examples/demo:
/// the two say the same.
#[test]
fn the_demo_protos_config_map_holds_the_demo_proto() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let proto = std::fs::read_to_string(root.join("demo/proto/catalog.proto")).unwrap();
    let yaml = std::fs::read_to_string(root.join("examples/demo/catalog-protos.yaml")).unwrap();
    let map: k8s_openapi::api::core::v1::ConfigMap = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(map.data.unwrap()["catalog.proto"], proto);
}
