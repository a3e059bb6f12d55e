//! Provisioning passes against kube's mock client: the exact requests the API server gets.

use std::collections::BTreeMap;

use frontdesk_crds::gateway_api::{Gateway, GatewayClass};
use http::{Request, Response, StatusCode};
use k8s_openapi::api::core::v1::Service;
use kube::client::Body;
use serde_json::{Value, json};

use super::*;

fn read<T: serde::de::DeserializeOwned>(yaml: &str) -> T {
    let value: Value = serde_saphyr::from_str(yaml).unwrap();
    serde_json::from_value(value).unwrap()
}

fn settings() -> Settings {
    Settings {
        image: "ghcr.io/frontdesk-dev/frontdesk-proxy:1.0.0".into(),
        image_pull_policy: "IfNotPresent".into(),
        controller_url: "https://frontdesk-controller.frontdesk.svc:7070".into(),
        credentials_secret: "frontdesk-proxy-{gateway}-tls".into(),
        admin_port: 9901,
        refuse_internal_upstreams: true,
        issue_credentials: None,
    }
}

/// Class `frontdesk` (ours, parameters in frontdesk/class-params) and `other` (another
/// controller's).
fn classes(class_params: &str) -> Vec<GatewayClass> {
    vec![
        read(&format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\n\
             metadata: {{name: frontdesk, uid: class-uid}}\n\
             spec:\n  controllerName: frontdesk.dev/gateway-controller\n  \
             parametersRef: {{group: '', kind: ConfigMap, name: {class_params}, namespace: frontdesk}}\n"
        )),
        read(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\n\
             metadata: {name: other}\nspec: {controllerName: example.com/other}\n",
        ),
    ]
}

fn gateway(name: &str, class: &str, params: Option<&str>) -> Gateway {
    let infrastructure = params.map_or(String::new(), |p| {
        format!("  infrastructure: {{parametersRef: {{group: '', kind: ConfigMap, name: {p}}}}}\n")
    });
    read(&format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n\
         metadata: {{name: {name}, namespace: edge, uid: {name}-uid}}\n\
         spec:\n  gatewayClassName: {class}\n{infrastructure}  \
         listeners: [{{name: http, port: 80, protocol: HTTP}}]\n"
    ))
}

/// The ConfigMaps the mock API server holds, by path.
fn config_maps() -> BTreeMap<String, Value> {
    let cm = |namespace: &str, name: &str, text: &str| {
        (
            format!("/api/v1/namespaces/{namespace}/configmaps/{name}"),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": namespace},
                "data": {"proxy.yaml": text}}),
        )
    };
    BTreeMap::from([
        cm(
            "frontdesk",
            "class-params",
            "image: example/proxy:2\nservice: {annotations: {team: edge, tier: class}}\n\
             autoscaling: {enabled: true, maxReplicas: 4}\n",
        ),
        cm(
            "frontdesk",
            "bad-class-params",
            "autoscaling: {enabled: yes-please}\n",
        ),
        cm(
            "edge",
            "public-params",
            "service: {type: ClusterIP, annotations: {tier: gateway}}\n",
        ),
        cm("edge", "broken-params", "service: {type: Loadbalancer}\n"),
    ])
}

type Stored = std::sync::Arc<std::sync::Mutex<BTreeMap<String, Value>>>;

/// One request as the API server saw it.
#[derive(Debug)]
struct Seen {
    method: http::Method,
    path: String,
    query: String,
    content_type: String,
    body: Value,
}

/// Runs `pass` against a mock API server holding [`config_maps`], returning what it reported
/// and every request made.
async fn against_mock<F, Fut>(pass: F) -> (Report, Vec<Seen>)
where
    F: FnOnce(KubeProvisioner) -> Fut,
    Fut: std::future::Future<Output = Report>,
{
    let stored = std::sync::Arc::new(std::sync::Mutex::new(config_maps()));
    against(stored, pass).await
}

/// [`against_mock`] with the objects the API server holds, by path, shared with the test.
async fn against<F, Fut>(stored: Stored, pass: F) -> (Report, Vec<Seen>)
where
    F: FnOnce(KubeProvisioner) -> Fut,
    Fut: std::future::Future<Output = Report>,
{
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let server = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some((request, send)) = handle.next_request().await {
            let method = request.method().clone();
            let path = request.uri().path().to_string();
            let query = request.uri().query().unwrap_or_default().to_string();
            let content_type = request
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let held = stored.lock().unwrap().get(&path).cloned();
            let response = match (method.as_str(), held) {
                ("GET", Some(cm)) => Response::new(Body::from(serde_json::to_vec(&cm).unwrap())),
                ("GET", None) => {
                    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "reason": "NotFound", "code": 404, "message": "not found"});
                    let mut response =
                        Response::new(Body::from(serde_json::to_vec(&status).unwrap()));
                    *response.status_mut() = StatusCode::NOT_FOUND;
                    response
                }
                _ => Response::new(Body::from(serde_json::to_vec(&body).unwrap())),
            };
            send.send_response(response);
            seen.push(Seen {
                method,
                path,
                query,
                content_type,
                body,
            });
        }
        seen
    });
    let report = pass(KubeProvisioner { client }).await;
    (report, server.await.unwrap())
}

fn applied(seen: &[Seen]) -> Vec<&Seen> {
    seen.iter()
        .filter(|s| s.method == http::Method::PATCH)
        .collect()
}

/// Service `edge/frontdesk-gw-public` with a load balancer address.
fn public_service() -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": "frontdesk-gw-public", "namespace": "edge"},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.9"},
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}},
    }))
    .unwrap()
}

#[tokio::test]
async fn a_gateway_of_our_class_gets_its_objects_applied_with_owner_and_parameters() {
    let gateways = [
        gateway("public", "frontdesk", Some("public-params")),
        gateway("theirs", "other", None),
    ];
    let services = [public_service()];
    let (report, seen) = against_mock(|sink| async move {
        let mut provisioner = Provisioner::new(settings());
        let first = provisioner
            .pass(&sink, &classes("class-params"), &gateways, &services)
            .await;
        // Nothing changed: the second pass neither fetches the parameters again nor applies.
        let second = provisioner
            .pass(&sink, &classes("class-params"), &gateways, &services)
            .await;
        assert_eq!(first, second);
        // The Gateway edited: its parameters are fetched again at once, the class's are not.
        let mut edited = gateways.clone();
        edited[0].metadata.resource_version = Some("2".into());
        provisioner
            .pass(&sink, &classes("class-params"), &edited, &services)
            .await;
        first
    })
    .await;

    let patches = applied(&seen);
    let paths: Vec<&str> = patches.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/api/v1/namespaces/edge/serviceaccounts/frontdesk-gw-public",
            "/apis/apps/v1/namespaces/edge/deployments/frontdesk-gw-public",
            "/api/v1/namespaces/edge/services/frontdesk-gw-public",
            "/apis/autoscaling/v2/namespaces/edge/horizontalpodautoscalers/frontdesk-gw-public",
            "/apis/policy/v1/namespaces/edge/poddisruptionbudgets/frontdesk-gw-public",
        ],
        "applied once each, nothing for the other class's Gateway"
    );
    for p in &patches {
        assert_eq!(p.content_type, "application/apply-patch+yaml");
        assert!(
            p.query.contains("fieldManager=frontdesk-controller") && p.query.contains("force=true"),
            "{}",
            p.query
        );
        assert_eq!(
            p.body["metadata"]["ownerReferences"],
            json!([{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                "name": "public", "uid": "public-uid", "controller": true, "blockOwnerDeletion": true}])
        );
    }
    // The class's image and autoscaling; the Gateway's Service type; annotations merged key by
    // key, the Gateway's winning.
    let deployment = &patches[1].body;
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "example/proxy:2"
    );
    assert!(
        deployment["spec"].get("replicas").is_none(),
        "the HPA decides"
    );
    let service = &patches[2].body;
    assert_eq!(service["spec"]["type"], "ClusterIP");
    assert_eq!(
        service["metadata"]["annotations"],
        json!({"team": "edge", "tier": "gateway"})
    );
    assert_eq!(patches[3].body["spec"]["maxReplicas"], 4);

    let gets: Vec<&str> = seen
        .iter()
        .filter(|s| s.method == http::Method::GET)
        .map(|s| s.path.as_str())
        .collect();
    assert_eq!(
        gets,
        [
            "/api/v1/namespaces/frontdesk/configmaps/class-params",
            "/api/v1/namespaces/edge/configmaps/public-params",
            "/api/v1/namespaces/edge/configmaps/public-params",
        ]
    );

    assert!(report.invalid.is_empty(), "{:?}", report.invalid);
    assert_eq!(
        report.addresses[&("edge".to_string(), "public".to_string())],
        [frontdesk_crds::gateway_api::GatewayStatusAddress {
            type_: Some("IPAddress".into()),
            value: "203.0.113.9".into()
        }]
    );
    assert!(
        !report
            .addresses
            .contains_key(&("edge".to_string(), "theirs".to_string()))
    );
}

#[tokio::test]
async fn a_gateway_of_an_older_gateways_name_in_another_namespace_gets_nothing() {
    let older = gateway("public", "frontdesk", None);
    let mut younger = gateway("public", "frontdesk", None);
    younger.metadata.namespace = Some("dev".into());
    younger.metadata.uid = Some("dev-public-uid".into());
    let mut older = older;
    older.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::from_second(1_000).unwrap(),
    ));
    younger.metadata.creation_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::from_second(2_000).unwrap(),
        ));
    let gateways = [younger, older];
    let (_, seen) = against_mock(|sink| async move {
        Provisioner::new(settings())
            .pass(&sink, &classes("class-params"), &gateways, &[])
            .await
    })
    .await;
    // edge/public's objects only: nothing in dev names gateway `public`.
    let patches = applied(&seen);
    assert_eq!(patches.len(), 5);
    assert!(
        patches.iter().all(|p| p.path.contains("/namespaces/edge/")),
        "{:?}",
        patches.iter().map(|p| &p.path).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn invalid_or_missing_parameters_refuse_that_gateway_alone() {
    let gateways = [
        gateway("broken", "frontdesk", Some("broken-params")),
        gateway("missing", "frontdesk", Some("no-such-params")),
        gateway("public", "frontdesk", None),
    ];
    let (report, seen) = against_mock(|sink| async move {
        Provisioner::new(settings())
            .pass(&sink, &classes("class-params"), &gateways, &[])
            .await
    })
    .await;
    let key = |name: &str| ("Gateway".to_string(), "edge".to_string(), name.to_string());
    let broken = &report.invalid[&key("broken")];
    assert!(
        broken.starts_with("ConfigMap edge/broken-params, key proxy.yaml, service.type: "),
        "{broken}"
    );
    assert_eq!(
        report.invalid[&key("missing")],
        "ConfigMap edge/no-such-params (parametersRef) not found"
    );
    // Only `public` was applied.
    let patches = applied(&seen);
    assert_eq!(patches.len(), 5);
    assert!(
        patches
            .iter()
            .all(|p| p.path.ends_with("/frontdesk-gw-public"))
    );
}

#[tokio::test]
async fn a_class_with_invalid_parameters_is_refused_and_none_of_its_gateways_provisioned() {
    let gateways = [gateway("public", "frontdesk", None)];
    let (report, seen) = against_mock(|sink| async move {
        Provisioner::new(settings())
            .pass(&sink, &classes("bad-class-params"), &gateways, &[])
            .await
    })
    .await;
    let message = &report.invalid[&(
        "GatewayClass".to_string(),
        String::new(),
        "frontdesk".to_string(),
    )];
    assert!(
        message.contains(
            "ConfigMap frontdesk/bad-class-params, key proxy.yaml, autoscaling.enabled: "
        ),
        "{message}"
    );
    assert!(applied(&seen).is_empty());

    // The status the leader writes for it: Accepted=False, InvalidParameters, that message.
    let computed: frontdesk_crds::ObjectStatus = serde_json::from_value(json!({
        "kind": "GatewayClass", "namespace": "", "name": "frontdesk", "generation": 1,
        "conditions": [{"type": "Accepted", "status": true, "reason": "Accepted", "message": ""}],
    }))
    .unwrap();
    let refused = crate::gateway_status::refuse_parameters(&computed, message);
    let status = crate::gateway_status::class_status(
        &refused,
        None,
        &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::from_second(100).unwrap(),
        ),
    );
    let accepted = &status.conditions[0];
    assert_eq!(
        (accepted.status.as_str(), accepted.reason.as_str()),
        ("False", "InvalidParameters")
    );
    assert_eq!(&accepted.message, message);
}

/// Answers every GET with "not found" and refuses every apply, counting them.
#[derive(Default)]
struct Refusing(std::sync::atomic::AtomicUsize);

impl ProvisionSink for Refusing {
    async fn get_config_map(
        &self,
        _: &str,
        _: &str,
    ) -> Result<Option<k8s_openapi::api::core::v1::ConfigMap>, String> {
        Ok(None)
    }
    async fn get_secret(
        &self,
        _: &str,
        _: &str,
    ) -> Result<Option<k8s_openapi::api::core::v1::Secret>, String> {
        Ok(None)
    }
    async fn apply(&self, _: &Value) -> Result<(), String> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Err("forbidden".into())
    }
    async fn delete(&self, _: &Key) -> Result<(), String> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn refused_applies_wait_longer_each_time() {
    let class: Vec<GatewayClass> = vec![read(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\n\
         metadata: {name: frontdesk}\nspec: {controllerName: frontdesk.dev/gateway-controller}\n",
    )];
    let gateways = [gateway("public", "frontdesk", None)];
    let sink = Refusing::default();
    let calls = || sink.0.load(std::sync::atomic::Ordering::Relaxed);
    let mut provisioner = Provisioner::new(settings());
    provisioner.pass(&sink, &class, &gateways, &[]).await;
    let first = calls();
    assert_eq!(
        first, 4,
        "ServiceAccount, Deployment, Service, PDB tried once"
    );
    provisioner.pass(&sink, &class, &gateways, &[]).await;
    assert_eq!(calls(), first, "not before a second has passed");
    tokio::time::advance(std::time::Duration::from_millis(1100)).await;
    provisioner.pass(&sink, &class, &gateways, &[]).await;
    assert_eq!(calls(), 2 * first);
    tokio::time::advance(std::time::Duration::from_millis(1100)).await;
    provisioner.pass(&sink, &class, &gateways, &[]).await;
    assert_eq!(calls(), 2 * first, "then two seconds");
}

/// The certs job's CA Secret holding `state`.
fn ca_secret(state: &crate::certs::State) -> Value {
    let secret = k8s_openapi::api::core::v1::Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("frontdesk-ca".into()),
            namespace: Some("frontdesk".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "state.json".to_string(),
            k8s_openapi::ByteString(state.to_json()),
        )])),
        ..Default::default()
    };
    let mut value = serde_json::to_value(secret).unwrap();
    value["apiVersion"] = "v1".into();
    value["kind"] = "Secret".into();
    value
}

/// The certificate in an applied credentials Secret: its URI SAN and its issuer's CN.
fn issued_identity(secret: &Value) -> (String, String) {
    use base64::Engine;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["tls.crt"].as_str().unwrap())
        .unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let cert = pem.parse_x509().unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    let uri = san
        .value
        .general_names
        .iter()
        .find_map(|n| match n {
            x509_parser::extensions::GeneralName::URI(u) => Some(u.to_string()),
            _ => None,
        })
        .unwrap();
    let issuer = cert
        .issuer()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    (uri, issuer)
}

/// With --issue-gateway-credentials, each Gateway's Secret is issued from the job's CA state,
/// owned by the Gateway, once per rotation of the job: not again while the state is the same,
/// and again, signed by the new signing CA, once the job has rotated.
#[tokio::test(start_paused = true)]
async fn issued_credentials_follow_the_jobs_rotations() {
    use crate::certs::tests::{POLICY, gateway_set};
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let names = ["frontdesk-controller".to_string()];
    let (first, _, _) = crate::certs::rotate(
        None,
        now - 7200,
        &POLICY,
        &names,
        &gateway_set(&["default"]),
    )
    .unwrap();
    let (second, _, _) = crate::certs::rotate(
        Some(&first),
        now,
        &POLICY,
        &names,
        &gateway_set(&["default"]),
    )
    .unwrap();
    let ca_path = "/api/v1/namespaces/frontdesk/secrets/frontdesk-ca".to_string();
    let stored: Stored = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::from([(
        ca_path.clone(),
        ca_secret(&first),
    )])));
    let mut with_issuing = settings();
    with_issuing.issue_credentials = Some(("frontdesk".into(), "frontdesk-ca".into()));
    let class: Vec<GatewayClass> = vec![read(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\n\
         metadata: {name: frontdesk}\nspec: {controllerName: frontdesk.dev/gateway-controller}\n",
    )];
    let gateways = [gateway("public", "frontdesk", None)];
    let job = stored.clone();
    let rotated = ca_secret(&second);
    let (_, seen) = against(stored, |sink| async move {
        let mut provisioner = Provisioner::new(with_issuing);
        provisioner.pass(&sink, &class, &gateways, &[]).await;
        provisioner.pass(&sink, &class, &gateways, &[]).await;
        // The job rotates; the controller sees it within 30 s.
        job.lock().unwrap().insert(ca_path, rotated);
        tokio::time::advance(std::time::Duration::from_secs(31)).await;
        provisioner.pass(&sink, &class, &gateways, &[]).await
    })
    .await;
    let secrets: Vec<&Seen> = applied(&seen)
        .into_iter()
        .filter(|s| s.path == "/api/v1/namespaces/edge/secrets/frontdesk-proxy-public-tls")
        .collect();
    assert_eq!(
        secrets.len(),
        2,
        "issued at the start and after the rotation only"
    );
    for (secret, signing) in secrets.iter().zip([&first, &second]) {
        let body = &secret.body;
        assert_eq!(body["type"], "kubernetes.io/tls");
        assert_eq!(
            body["metadata"]["labels"]["app.kubernetes.io/managed-by"], "frontdesk-certs",
            "left out of the controller's Secret watches"
        );
        assert_eq!(body["metadata"]["ownerReferences"][0]["uid"], "public-uid");
        let (uri, issuer) = issued_identity(body);
        assert_eq!(uri, "spiffe://frontdesk/gateway/public");
        assert_eq!(issuer, signing.signing.name);
    }
    assert_ne!(
        first.signing.name, second.signing.name,
        "the rotation promoted"
    );
    // Every other object was applied once: nothing else changed.
    assert_eq!(applied(&seen).len(), 4 + 2);
}
