//! The committed CRD YAML must be what the types generate: run `make crds` after changing them.
use std::path::Path;

#[test]
fn committed_crds_match_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/frontdesk/crds");
    for (name, yaml) in frontdesk_crds::crd_manifests() {
        let committed = std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| {
            panic!("{name} is missing ({e}): run `make crds` and commit the result")
        });
        assert!(
            committed == yaml,
            "{name} differs from the types in crds/src: run `make crds` and commit the result"
        );
    }
}

#[test]
fn every_field_is_documented_for_kubectl_explain() {
    // Walk the schema: every property must have a description.
    fn walk(path: &str, v: &serde_json::Value, missing: &mut Vec<String>) {
        if let Some(props) = v.get("properties").and_then(|p| p.as_object()) {
            for (k, p) in props {
                let here = format!("{path}.{k}");
                let is_meta =
                    path.is_empty() && (k == "metadata" || k == "apiVersion" || k == "kind");
                if !is_meta && p.get("description").is_none() {
                    missing.push(here.clone());
                }
                walk(&here, p, missing);
            }
        }
        if let Some(items) = v.get("items") {
            walk(&format!("{path}[]"), items, missing);
        }
    }
    use kube::CustomResourceExt;
    let mut missing = Vec::new();
    for crd in [
        serde_json::to_value(frontdesk_crds::Route::crd()).unwrap(),
        serde_json::to_value(frontdesk_crds::Policy::crd()).unwrap(),
        serde_json::to_value(frontdesk_crds::Aggregate::crd()).unwrap(),
    ] {
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_string();
        let mut found = Vec::new();
        walk("", schema, &mut found);
        missing.extend(found.into_iter().map(|m| format!("{kind}{m}")));
    }
    // Conditions come from Kubernetes' own documented type.
    missing.retain(|m| !m.contains(".status.conditions[]"));
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:?}"
    );
}
