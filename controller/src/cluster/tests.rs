use super::status_writer::*;
use super::*;
use crate::progress::ReplicaProgress;
use crate::status::StatusSink;
use frontdesk_crds::route::RouteStatus;
use http::{Request, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::client::Body;
use kube::runtime::reflector;

/// A reflector store holding `objects` (JSON) of the kind `ar`.
/// A PATCH by the controller's field manager to `path`: its JSON body and its query.
async fn applied(request: Request<Body>, path: &str) -> (serde_json::Value, String) {
    assert_eq!(request.method(), http::Method::PATCH);
    assert_eq!(request.uri().path(), path);
    let query = request.uri().query().unwrap_or_default().to_string();
    assert!(
        query.contains("fieldManager=frontdesk-controller"),
        "{query}"
    );
    let body = request.into_body().collect_bytes().await.unwrap();
    (serde_json::from_slice(&body).unwrap(), query)
}

fn store(ar: ApiResource, objects: Vec<serde_json::Value>) -> Vec<Store<DynamicObject>> {
    let mut writer = reflector::store::Writer::new(ar.clone());
    for o in objects {
        let mut d: DynamicObject = serde_json::from_value(o).unwrap();
        d.types = Some(kube::core::TypeMeta {
            api_version: ar.api_version.clone(),
            kind: ar.kind.clone(),
        });
        writer.apply_watcher_event(&watcher::Event::Apply(d));
    }
    vec![writer.as_reader()]
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_a_thousand_changes_compiles_a_handful_of_times_and_a_lone_change_at_once() {
    let changed = Arc::new(Notify::new());
    let compiles = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (c, n) = (changed.clone(), compiles.clone());
    tokio::spawn(async move {
        let mut last = None;
        loop {
            c.notified().await;
            throttle(&mut last).await;
            n.lock().unwrap().push(tokio::time::Instant::now());
        }
    });
    // 1,000 applies over 3 s, then quiet.
    for _ in 0..1000 {
        changed.notify_one();
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let count = compiles.lock().unwrap().len();
    assert!(
        (4..=9).contains(&count),
        "{count} compiles for 1,000 changes"
    );
    // After a quiet spell, one change compiles without waiting.
    let before = tokio::time::Instant::now();
    changed.notify_one();
    tokio::time::sleep(Duration::from_millis(1)).await;
    let all = compiles.lock().unwrap().clone();
    assert_eq!(all.len(), count + 1);
    assert!(
        all[count] - before < Duration::from_millis(1),
        "a lone change waited"
    );
}

#[test]
fn an_unreadable_route_is_reported_and_the_others_still_compile() {
    let ar = ApiResource::erase::<Route>(&());
    let mut writer = reflector::store::Writer::new(ar.clone());
    let object = |name: &str, spec: serde_json::Value| {
        let mut o = DynamicObject::new(name, &ar).within("shop");
        o.metadata.generation = Some(2);
        o.data = serde_json::json!({"spec": spec});
        o
    };
    let good = object(
        "good",
        serde_json::json!({"rules": [{"backends": [{"url": "http://127.0.0.1:1"}]}]}),
    );
    let newer = object(
        "newer",
        serde_json::json!({"rules": [{"backends": [{"url": "http://127.0.0.1:1"}], "mirror": {}}]}),
    );
    writer.apply_watcher_event(&watcher::Event::InitApply(good));
    writer.apply_watcher_event(&watcher::Event::InitApply(newer));
    writer.apply_watcher_event(&watcher::Event::InitDone);
    let (routes, unreadable) = read_objects::<Route>("Route", &[writer.as_reader()]);
    assert_eq!(routes.len(), 1);
    assert_eq!(unreadable.len(), 1);
    let u = &unreadable[0].status;
    assert_eq!((u.kind.as_str(), u.namespace.as_str()), ("Route", "shop"));
    assert_eq!(
        (u.name.as_str(), u.generation, u.accepted()),
        ("newer", 2, false)
    );
    assert_eq!(u.diagnostics[0].field, "spec.rules[0].mirror");
}

#[test]
fn a_rejected_or_unreadable_generation_leaves_the_accepted_one_serving() {
    let ar = ApiResource::erase::<Route>(&());
    let mut writer = reflector::store::Writer::new(ar.clone());
    let sources = Sources {
        routes: vec![writer.as_reader()],
        aggregates: vec![],
        policies: vec![],
        services: vec![],
        slices: vec![],
        gateway_api: watch::channel(None).1,
        namespaces: vec![],
        health: Default::default(),
    };
    let compile_sources = |sources: &Sources, accepted: &mut LastAccepted| {
        let (objects, unreadable) = sources.read();
        accepted.compile(objects, unreadable).0
    };
    let route = |generation: i64, rules: serde_json::Value| {
        let mut o = DynamicObject::new("r", &ar).within("shop");
        o.metadata.uid = Some("u1".into());
        o.metadata.generation = Some(generation);
        o.data = serde_json::json!({"spec": {"rules": rules}});
        watcher::Event::Apply(o)
    };
    let path = |p: &str| {
        serde_json::json!([{"matches": [{"path": {"value": p}}],
                            "backends": [{"url": "http://127.0.0.1:1"}]}])
    };
    let served = |out: &Output| {
        let routes = out.snapshot("default").routes;
        routes
            .iter()
            .flat_map(|r| &r.rules)
            .flat_map(|r| &r.matches)
            .map(|m| format!("{:?}", m.path))
            .collect::<String>()
    };
    let mut accepted = LastAccepted::default();

    writer.apply_watcher_event(&route(1, path("/v1")));
    let out = compile_sources(&sources, &mut accepted);
    assert!(served(&out).contains("\"/v1\""), "{}", served(&out));

    // Generation 2 is invalid: reported, and generation 1 keeps serving.
    writer.apply_watcher_event(&route(2, path("no-slash")));
    let out = compile_sources(&sources, &mut accepted);
    let status = out.status("Route", "shop", "r").unwrap();
    assert_eq!(
        (
            status.generation,
            status.accepted(),
            status.served_generation
        ),
        (2, false, Some(1))
    );
    assert!(served(&out).contains("\"/v1\""), "{}", served(&out));

    // Generation 3 cannot even be read: the same.
    let unknown = serde_json::json!([{"backends": [{"url": "http://127.0.0.1:1"}], "mirror": {}}]);
    writer.apply_watcher_event(&route(3, unknown));
    let out = compile_sources(&sources, &mut accepted);
    let status = out.status("Route", "shop", "r").unwrap();
    assert_eq!((status.generation, status.served_generation), (3, Some(1)));
    assert!(served(&out).contains("\"/v1\""), "{}", served(&out));

    // Fixed: generation 4 serves.
    writer.apply_watcher_event(&route(4, path("/v4")));
    let out = compile_sources(&sources, &mut accepted);
    assert!(out.status("Route", "shop", "r").unwrap().accepted());
    assert!(served(&out).contains("/v4") && !served(&out).contains("/v1"));
}

#[tokio::test(start_paused = true)]
async fn each_replica_shares_its_progress_in_a_labelled_configmap() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "frontdesk");
    let push = Arc::new(PushServer::new(Default::default()));
    let share = ProgressShare {
        name: progress_name("fd-controller", "Ctl_0"),
        group: "fd-controller".into(),
        pod: Some(("ctl_0".into(), "uid-1".into())),
    };
    let task = tokio::spawn(share_progress(
        Api::namespaced(client, "frontdesk"),
        share,
        push,
    ));
    let (request, send) = handle.next_request().await.expect("a request");
    let (sent, _) = applied(
        request,
        "/api/v1/namespaces/frontdesk/configmaps/fd-controller-progress-ctl-0",
    )
    .await;
    assert_eq!(
        sent["metadata"]["labels"]["frontdesk.dev/controller-progress"],
        "fd-controller"
    );
    assert_eq!(sent["metadata"]["ownerReferences"][0]["uid"], "uid-1");
    let progress: ReplicaProgress =
        serde_json::from_str(sent["data"]["progress.json"].as_str().unwrap()).unwrap();
    assert!(progress.gateways.is_empty());
    send.send_response(Response::new(Body::from(
        serde_json::to_vec(&sent).unwrap(),
    )));
    task.abort();
}

#[tokio::test]
async fn a_policy_compiles_with_the_secret_its_watch_lists_and_a_stand_in_keeps_its_own() {
    use crate::secret_refs::WatchKey;
    use crate::watch::tests::{fake_secrets_api, secret};
    let mut users = secret("shop", "users", &[]);
    let htpasswd = b"dave:{SHA}6ZvKOGrLWBzWMhX7BDvf9vZP2BM=\n".to_vec();
    users.data = Some([("htpasswd".into(), k8s_openapi::ByteString(htpasswd))].into());
    let (client, seen) = fake_secrets_api(vec![users]);
    let mut secrets = RefWatchSet::new(client, Default::default());
    let (route_type, policy_type) = (api_resource("Route"), api_resource("Policy"));
    let mut routes = reflector::store::Writer::new(route_type.clone());
    let mut policies = reflector::store::Writer::new(policy_type.clone());
    let sources = Sources {
        routes: vec![routes.as_reader()],
        aggregates: vec![],
        policies: vec![policies.as_reader()],
        services: vec![],
        slices: vec![],
        gateway_api: watch::channel(None).1,
        namespaces: vec![],
        health: Default::default(),
    };
    let mut route = DynamicObject::new("orders", &route_type).within("shop");
    route.data = serde_json::json!({"spec": {"policies": ["auth"],
        "rules": [{"backends": [{"url": "http://127.0.0.1:1"}]}]}});
    routes.apply_watcher_event(&watcher::Event::Apply(route));
    let policy = |generation: i64, basic: serde_json::Value| {
        let mut o = DynamicObject::new("auth", &policy_type).within("shop");
        o.metadata.uid = Some("p1".into());
        o.metadata.generation = Some(generation);
        o.data = serde_json::json!({"spec": {"authentication": {"basic": basic}}});
        o
    };
    let users_served = |out: &Output| -> Vec<String> {
        let snapshot = out.snapshot("default");
        let basic = snapshot
            .policies
            .into_values()
            .flat_map(|p| p.authentication?.basic);
        basic.flat_map(|b| b.users).map(|u| u.user).collect()
    };
    let mut accepted = LastAccepted::default();

    // A new Policy: its Secret is listed before the compile that reads it.
    let first = policy(1, serde_json::json!({"secretRef": {"name": "users"}}));
    policies.apply_watcher_event(&watcher::Event::Apply(first));
    let (out, _, _) = compile_once(&sources, &mut secrets, &mut accepted, None).await;
    let status = out.status("Policy", "shop", "auth").unwrap();
    let resolved = status
        .condition(frontdesk_crds::status::RESOLVED_REFS)
        .unwrap();
    assert!(status.accepted() && resolved.status, "{status:?}");
    assert_eq!(users_served(&out), ["dave"]);

    // Generation 2 is rejected: generation 1 stands in, its Secret still watched and read.
    let rejected = serde_json::json!({"secretRef": {"name": "other"}, "realm": "\"x\""});
    let second = policy(2, rejected);
    policies.apply_watcher_event(&watcher::Event::Apply(second.clone()));
    let (out, _, _) = compile_once(&sources, &mut secrets, &mut accepted, None).await;
    let status = out.status("Policy", "shop", "auth").unwrap();
    assert_eq!(
        (status.accepted(), status.served_generation),
        (false, Some(1))
    );
    assert_eq!(users_served(&out), ["dave"]);
    assert_eq!(
        secrets.secrets.running(),
        [
            WatchKey::name("shop", "other"),
            WatchKey::name("shop", "users")
        ]
    );

    // Deleted: nothing references a Secret any more, no watch is left.
    policies.apply_watcher_event(&watcher::Event::Delete(second));
    compile_once(&sources, &mut secrets, &mut accepted, None).await;
    assert_eq!(secrets.secrets.running(), []);
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty());
    assert!(
        seen.iter()
            .all(|r| r.query["fieldSelector"].starts_with("metadata.name=")),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_gateways_certificate_secrets_are_watched_by_name_and_compiled_into_its_listener() {
    use crate::secret_refs::WatchKey;
    use crate::watch::tests::secret;
    use frontdesk_crds::certificate::testing;
    use frontdesk_crds::gateway_api::{Gateway, GatewayClass, ReferenceGrant};
    // A CA bundle's shape (the compiler checks the PEM shape; the proxy parses it).
    let pem = |label: &str| format!("-----BEGIN {label}-----\nMIIBfake\n-----END {label}-----\n");
    let tls = |namespace: &str, name: &str| {
        let mut s = secret(namespace, name, &[]);
        s.type_ = Some("kubernetes.io/tls".into());
        s.data = Some(
            [
                (
                    "tls.crt".to_string(),
                    k8s_openapi::ByteString(testing::CERT.as_bytes().to_vec()),
                ),
                (
                    "tls.key".to_string(),
                    k8s_openapi::ByteString(testing::KEY.as_bytes().to_vec()),
                ),
            ]
            .into(),
        );
        s
    };
    let ca = |name: &str| {
        let mut m = ConfigMap::default();
        m.metadata.namespace = Some("edge".into());
        m.metadata.name = Some(name.into());
        m.data = Some([("ca.crt".to_string(), pem("CERTIFICATE"))].into());
        m
    };
    let (client, seen) = crate::watch::tests::fake_objects_api(
        vec![tls("edge", "own-tls"), tls("certs", "shared-tls")],
        vec![ca("partners-ca"), ca("unrelated")],
    );
    let mut secrets = RefWatchSet::new(client, Default::default());
    let stores = GatewayApiStores {
        classes: store(
            ApiResource::erase::<GatewayClass>(&()),
            vec![serde_json::json!({"metadata": {"name": "frontdesk"},
                "spec": {"controllerName": "frontdesk.dev/gateway-controller"}})],
        ),
        gateways: store(
            ApiResource::erase::<Gateway>(&()),
            vec![
                serde_json::json!({"metadata": {"name": "public", "namespace": "edge", "generation": 1},
                "spec": {"gatewayClassName": "frontdesk",
                    "tls": {"frontend": {"default": {"validation": {"caCertificateRefs": [
                        {"group": "", "kind": "ConfigMap", "name": "partners-ca"}]}}}},
                    "listeners": [{"name": "https", "port": 443,
                    "protocol": "HTTPS", "tls": {"certificateRefs": [
                        {"name": "own-tls"}, {"name": "shared-tls", "namespace": "certs"}]}}]}}),
            ],
        ),
        grants: store(
            ApiResource::erase::<ReferenceGrant>(&()),
            vec![
                serde_json::json!({"metadata": {"name": "edge", "namespace": "certs"},
                "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "edge"}],
                         "to": [{"group": "", "kind": "Secret"}]}}),
            ],
        ),
        backend_tls_policies: vec![],
        http_routes: vec![],
        grpc_routes: vec![],
        namespaces: vec![],
    };
    let sources = Sources {
        routes: vec![],
        aggregates: vec![],
        policies: vec![],
        services: vec![],
        slices: vec![],
        gateway_api: watch::channel(Some(stores)).1,
        namespaces: vec![],
        health: Default::default(),
    };
    let (out, _, _) =
        compile_once(&sources, &mut secrets, &mut LastAccepted::default(), None).await;
    assert_eq!(
        secrets.secrets.running(),
        [
            WatchKey::name("certs", "shared-tls"),
            WatchKey::name("edge", "own-tls")
        ]
    );
    let status = out.status("Gateway", "edge", "public").unwrap();
    let listener = &status.listeners[0];
    assert!(listener.served, "{status:?}");
    assert!(
        listener
            .condition(frontdesk_crds::status::RESOLVED_REFS)
            .unwrap()
            .status
    );
    let served = out.snapshot("public").listeners;
    let certificates: Vec<&str> = served[0]
        .certificates
        .iter()
        .map(|c| c.source.as_str())
        .collect();
    assert_eq!(certificates, ["edge/own-tls", "certs/shared-tls"]);
    // The CA bundle its client validation names: watched by name, compiled in.
    assert_eq!(
        secrets.config_maps.running(),
        [WatchKey::name("edge", "partners-ca")]
    );
    let validation = served[0].client_validation.as_ref().expect("mutual TLS");
    let sources: Vec<&str> = validation
        .ca_certificates
        .iter()
        .map(|c| c.source.as_str())
        .collect();
    assert_eq!(sources, ["ConfigMap edge/partners-ca"]);
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .all(|r| r.query["fieldSelector"].starts_with("metadata.name=")),
    );
}

/// A KubeSink on a mock API server, and the handle that answers its requests.
fn mock_sink() -> (
    KubeSink,
    tower_test::mock::Handle<Request<Body>, Response<Body>>,
) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: FIELD_MANAGER.into(),
            instance: None,
        },
    );
    (KubeSink { client, recorder }, handle)
}

#[tokio::test]
async fn statuses_are_written_by_server_side_apply_on_the_status_subresource() {
    let (sink, mut handle) = mock_sink();
    let server = tokio::spawn(async move {
        let (request, send) = handle.next_request().await.expect("a request");
        assert_eq!(
            request.headers()["content-type"],
            "application/apply-patch+yaml"
        );
        let (sent, query) = applied(
            request,
            "/apis/frontdesk.dev/v1alpha1/namespaces/shop/routes/orders/status",
        )
        .await;
        assert!(query.contains("force=true"), "{query}");
        assert_eq!(sent["status"]["observedGeneration"], 4);
        assert_eq!(sent["kind"], "Route");
        let route = serde_json::json!({
            "apiVersion": "frontdesk.dev/v1alpha1", "kind": "Route",
            "metadata": {"name": "orders", "namespace": "shop"},
            "spec": {"rules": []}, "status": sent["status"],
        });
        send.send_response(Response::new(Body::from(
            serde_json::to_vec(&route).unwrap(),
        )));
    });
    let status = RouteStatus {
        observed_generation: Some(4),
        conditions: vec![],
        ancestors: vec![],
    };
    sink.apply_status("Route", "shop", "orders", &status)
        .await
        .unwrap();
    server.await.unwrap();
}

/// A Warning Event names the object by uid too: without it `kubectl describe` shows none.
#[tokio::test]
async fn warning_events_carry_the_objects_uid() {
    let (sink, mut handle) = mock_sink();
    let server = tokio::spawn(async move {
        let (request, send) = handle.next_request().await.expect("a request");
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(
            request.uri().path(),
            "/apis/events.k8s.io/v1/namespaces/shop/events"
        );
        let body = request.into_body().collect_bytes().await.unwrap();
        let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(event["regarding"]["uid"], "4f1c-uid");
        assert_eq!(event["regarding"]["kind"], "Route");
        assert_eq!(event["regarding"]["name"], "orders");
        assert_eq!(event["type"], "Warning");
        assert_eq!(event["reason"], "Invalid");
        send.send_response(Response::new(Body::from(body.to_vec())));
    });
    sink.warn(
        "Route",
        "shop",
        "orders",
        Some("4f1c-uid"),
        "Invalid",
        "spec.rules[0]: bad",
    )
    .await
    .unwrap();
    server.await.unwrap();
}

/// The compile output may be older than the stores: a Gateway that has just moved to
/// another controller's class, or that changed generation, gets no status from us; nor does
/// a BackendTLSPolicy or HTTPRoute edited or deleted since, or a policy that took effect
/// nowhere. Statuses shared with other controllers go to the version read.
#[test]
fn statuses_go_only_to_objects_still_ours_at_the_generation_compiled() {
    use frontdesk_crds::gateway_api::{BackendTLSPolicy, Gateway, GatewayClass, HTTPRoute};
    let gateway = |name: &str, class: &str, generation: i64| {
        serde_json::json!({"metadata": {"name": name, "namespace": "edge", "generation": generation},
            "spec": {"gatewayClassName": class, "listeners": []}})
    };
    let stores = GatewayApiStores {
        classes: store(
            ApiResource::erase::<GatewayClass>(&()),
            vec![
                serde_json::json!({"metadata": {"name": "frontdesk", "generation": 1},
                    "spec": {"controllerName": "frontdesk.dev/gateway-controller"}}),
                serde_json::json!({"metadata": {"name": "theirs", "generation": 1},
                    "spec": {"controllerName": "example.com/other"}}),
            ],
        ),
        gateways: store(
            ApiResource::erase::<Gateway>(&()),
            vec![
                gateway("kept", "frontdesk", 2),
                gateway("moved", "theirs", 2),
                gateway("edited", "frontdesk", 3),
            ],
        ),
        grants: vec![],
        backend_tls_policies: store(
            ApiResource::erase::<BackendTLSPolicy>(&()),
            ["tls-kept", "tls-unused", "tls-edited"]
                .iter()
                .map(|name| {
                    let generation = if *name == "tls-edited" { 2 } else { 1 };
                    serde_json::json!({"metadata": {"name": name, "namespace": "edge", "generation": generation},
                        "spec": {"targetRefs": [], "validation": {"hostname": "x"}}})
                })
                .collect(),
        ),
        http_routes: store(
            ApiResource::erase::<HTTPRoute>(&()),
            ["route-kept", "route-edited", "route-moved"]
                .iter()
                .map(|name| {
                    let generation = if *name == "route-edited" { 2 } else { 1 };
                    let mut parents = vec![serde_json::json!({"parentRef": {"name": "mesh"},
                        "controllerName": "example.com/other", "conditions": []})];
                    if *name == "route-moved" {
                        // Written by frontdesk before its parentRefs left frontdesk's Gateways.
                        parents.push(serde_json::json!({"parentRef": {"name": "kept"},
                            "controllerName": "frontdesk.dev/gateway-controller", "conditions": []}));
                    }
                    serde_json::json!({"metadata": {"name": name, "namespace": "edge",
                        "generation": generation, "resourceVersion": "42"},
                        "spec": {"parentRefs": [{"name": "kept"}]},
                        "status": {"parents": parents}})
                })
                .collect(),
        ),
        grpc_routes: vec![],
        namespaces: vec![],
    };
    let status = |kind: &str, namespace: &str, name: &str| -> ObjectStatus {
        if kind == "HTTPRoute" {
            return serde_json::from_value(serde_json::json!({"kind": kind,
                "namespace": namespace, "name": name, "generation": 1, "conditions": [],
                "parents": [{"parentRef": {"name": "kept"}, "group": "kept", "conditions": [
                    {"type": "Accepted", "status": true, "reason": "Accepted", "message": ""}]}]}))
            .unwrap();
        }
        let ancestors = if name == "tls-unused" {
            serde_json::json!([])
        } else {
            serde_json::json!([{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                "namespace": "edge", "name": "kept"}])
        };
        serde_json::from_value(serde_json::json!({"kind": kind, "namespace": namespace,
            "name": name, "generation": if kind == "Gateway" { 2 } else { 1 }, "conditions": [],
            "ancestors": ancestors}))
        .unwrap()
    };
    let output = Output {
        policy_sections: Default::default(),
        held_back: Default::default(),
        host_conflicts: Default::default(),
        snapshots: Default::default(),
        statuses: vec![
            status("GatewayClass", "", "frontdesk"),
            status("GatewayClass", "", "theirs"),
            status("Gateway", "edge", "kept"),
            status("Gateway", "edge", "moved"),
            status("Gateway", "edge", "edited"),
            status("Gateway", "edge", "deleted"),
            status("BackendTLSPolicy", "edge", "tls-kept"),
            status("BackendTLSPolicy", "edge", "tls-unused"),
            status("BackendTLSPolicy", "edge", "tls-edited"),
            status("BackendTLSPolicy", "edge", "tls-deleted"),
            status("HTTPRoute", "edge", "route-kept"),
            status("HTTPRoute", "edge", "route-edited"),
            status("HTTPRoute", "edge", "route-deleted"),
        ],
    };
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let wanted = gateway_api_statuses(&output, &stores, |_| Vec::new(), &Default::default(), &now);
    let names: Vec<(&str, &str)> = wanted
        .iter()
        .map(|w| (w.kind.as_str(), w.name.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("GatewayClass", "frontdesk"),
            ("Gateway", "kept"),
            ("BackendTLSPolicy", "tls-kept"),
            ("HTTPRoute", "route-kept"),
            ("HTTPRoute", "route-moved")
        ]
    );
    // A route no longer compiled loses frontdesk's entry, and keeps the others'.
    let moved = &wanted[4];
    assert_eq!(moved.resource_version.as_deref(), Some("42"));
    assert_eq!(
        moved.status["parents"],
        serde_json::json!([{"parentRef": {"name": "mesh"},
            "controllerName": "example.com/other", "conditions": []}])
    );
    // The other controller's parent stays first; ours follows, applied to the version read.
    let route = &wanted[3];
    assert_eq!(route.resource_version.as_deref(), Some("42"));
    let parents = route.status["parents"].as_array().unwrap();
    assert_eq!(parents[0]["controllerName"], "example.com/other");
    assert_eq!(
        (
            &parents[1]["parentRef"]["name"],
            &parents[1]["controllerName"]
        ),
        (
            &serde_json::json!("kept"),
            &serde_json::json!("frontdesk.dev/gateway-controller")
        )
    );
    let policy = &wanted[2].status["ancestors"][0];
    assert_eq!(
        (&policy["ancestorRef"]["name"], &policy["controllerName"]),
        (
            &serde_json::json!("kept"),
            &serde_json::json!("frontdesk.dev/gateway-controller")
        )
    );
}

/// What provisioning found reaches the statuses: a Gateway's Service address, and
/// `Accepted=False, InvalidParameters` for a class or Gateway whose parameters cannot be
/// used; a Gateway provisioning says nothing about keeps the compiler's verdict.
#[test]
fn provisioning_gives_gateways_their_address_and_refuses_invalid_parameters() {
    use frontdesk_crds::gateway_api::{Gateway, GatewayClass, GatewayStatusAddress};
    let gateway = |name: &str| {
        serde_json::json!({"metadata": {"name": name, "namespace": "edge", "generation": 1},
            "spec": {"gatewayClassName": "frontdesk", "listeners": []}})
    };
    let stores = GatewayApiStores {
        classes: store(
            ApiResource::erase::<GatewayClass>(&()),
            vec![
                serde_json::json!({"metadata": {"name": "frontdesk", "generation": 1},
                "spec": {"controllerName": "frontdesk.dev/gateway-controller"}}),
            ],
        ),
        gateways: store(
            ApiResource::erase::<Gateway>(&()),
            vec![gateway("public"), gateway("broken")],
        ),
        grants: vec![],
        backend_tls_policies: vec![],
        http_routes: vec![],
        grpc_routes: vec![],
        namespaces: vec![],
    };
    let status = |kind: &str, namespace: &str, name: &str| -> ObjectStatus {
        serde_json::from_value(serde_json::json!({"kind": kind, "namespace": namespace,
            "name": name, "generation": 1, "conditions": [
                {"type": "Accepted", "status": true, "reason": "Accepted", "message": ""}]}))
        .unwrap()
    };
    let output = Output {
        policy_sections: Default::default(),
        held_back: Default::default(),
        host_conflicts: Default::default(),
        snapshots: Default::default(),
        statuses: vec![
            status("GatewayClass", "", "frontdesk"),
            status("Gateway", "edge", "public"),
            status("Gateway", "edge", "broken"),
        ],
    };
    let address = GatewayStatusAddress {
        type_: Some("IPAddress".into()),
        value: "203.0.113.9".into(),
    };
    let mut report = crate::provision::Report::default();
    report.addresses.insert(
        ("edge".to_string(), "public".to_string()),
        vec![address.clone()],
    );
    let message = "ConfigMap edge/p (parametersRef) not found";
    report.invalid.insert(
        (
            "Gateway".to_string(),
            "edge".to_string(),
            "broken".to_string(),
        ),
        message.to_string(),
    );
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let wanted = gateway_api_statuses(&output, &stores, |_| Vec::new(), &report, &now);
    let by = |name: &str| &wanted.iter().find(|w| w.name == name).unwrap().status;
    assert_eq!(by("public")["addresses"], serde_json::json!([address]));
    assert_eq!(by("public")["conditions"][0]["status"], "True");
    let broken = &by("broken")["conditions"][0];
    assert_eq!(
        (&broken["status"], &broken["reason"], &broken["message"]),
        (
            &serde_json::json!("False"),
            &serde_json::json!("InvalidParameters"),
            &serde_json::json!(message)
        )
    );
    assert!(by("broken").get("addresses").is_none());
    assert_eq!(by("frontdesk")["conditions"][0]["status"], "True");
}
