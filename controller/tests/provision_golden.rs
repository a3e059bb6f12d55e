//! Golden tests for provisioning: `testdata/provision/<case>.in.yaml` (GatewayClasses, Gateways,
//! parameters ConfigMaps, Services) goes through one provisioning pass, and what it applies and
//! reports is compared with `<case>.out.json`.
//! `UPDATE_GOLDEN=1 cargo test -p frontdesk-controller --test provision_golden` rewrites the
//! expected files; review the diff before committing.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use frontdesk_controller::provision::{Key, ProvisionSink, Provisioner, Settings};
use frontdesk_crds::gateway_api::{Gateway, GatewayClass};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use serde_json::{Value, json};

/// The API server of a case: its ConfigMaps, and every apply and delete it receives.
#[derive(Default)]
struct Recorder {
    config_maps: BTreeMap<(String, String), ConfigMap>,
    calls: Mutex<Vec<Value>>,
}

impl ProvisionSink for Recorder {
    async fn get_config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ConfigMap>, String> {
        Ok(self
            .config_maps
            .get(&(namespace.to_string(), name.to_string()))
            .cloned())
    }
    async fn get_secret(&self, _: &str, _: &str) -> Result<Option<Secret>, String> {
        Ok(None)
    }
    async fn apply(&self, object: &Value) -> Result<(), String> {
        self.calls.lock().unwrap().push(json!({"apply": object}));
        Ok(())
    }
    async fn delete(&self, (kind, namespace, name): &Key) -> Result<(), String> {
        self.calls
            .lock()
            .unwrap()
            .push(json!({"delete": format!("{kind} {namespace}/{name}")}));
        Ok(())
    }
}

fn settings() -> Settings {
    Settings {
        image: "ghcr.io/frontdesk-dev/frontdesk-proxy:0.1.0".into(),
        image_pull_policy: "IfNotPresent".into(),
        controller_url: "https://frontdesk-controller.frontdesk-system.svc:7070".into(),
        credentials_secret: "frontdesk-proxy-{gateway}-tls".into(),
        admin_port: 9901,
        refuse_internal_upstreams: true,
        issue_credentials: None,
    }
}

async fn render(text: &str) -> String {
    let mut classes: Vec<GatewayClass> = Vec::new();
    let mut gateways: Vec<Gateway> = Vec::new();
    let mut services: Vec<Service> = Vec::new();
    let mut sink = Recorder::default();
    for doc in text.split("\n---\n") {
        let value: Value = serde_saphyr::from_str(doc).unwrap();
        match value["kind"].as_str() {
            Some("GatewayClass") => classes.push(serde_json::from_value(value).unwrap()),
            Some("Gateway") => gateways.push(serde_json::from_value(value).unwrap()),
            Some("Service") => services.push(serde_json::from_value(value).unwrap()),
            Some("ConfigMap") => {
                let cm: ConfigMap = serde_json::from_value(value).unwrap();
                let key = (
                    cm.metadata.namespace.clone().unwrap_or_default(),
                    cm.metadata.name.clone().unwrap_or_default(),
                );
                sink.config_maps.insert(key, cm);
            }
            other => panic!("a document of kind {other:?}"),
        }
    }
    let report = Provisioner::new(settings())
        .pass(&sink, &classes, &gateways, &services)
        .await;
    let invalid: BTreeMap<String, &String> = report
        .invalid
        .iter()
        .map(|((kind, namespace, name), why)| {
            let object = if namespace.is_empty() {
                format!("{kind} {name}")
            } else {
                format!("{kind} {namespace}/{name}")
            };
            (object, why)
        })
        .collect();
    let addresses: BTreeMap<String, _> = report
        .addresses
        .iter()
        .map(|((namespace, name), a)| (format!("{namespace}/{name}"), a))
        .collect();
    let value = json!({
        "calls": *sink.calls.lock().unwrap(),
        "invalidParameters": invalid,
        "addresses": addresses,
    });
    serde_json::to_string_pretty(&value).unwrap() + "\n"
}

#[tokio::test]
async fn provision_golden() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/provision");
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
        let actual = render(&std::fs::read_to_string(&input).unwrap()).await;
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
