//! What a Gateway's proxies are made of: a pure function from the Gateway, its parameters and
//! the controller's settings to the objects to apply.
//!
//! For Gateway `<name>` in namespace `<ns>`, all in `<ns>`, all named
//! [`super::names::object_name`] (`frontdesk-<name>`), all owned by the Gateway
//! (`controller: true`, `blockOwnerDeletion: true`), so the garbage collector deletes them with
//! it:
//! - a ServiceAccount without an API token: proxies never call the Kubernetes API;
//! - a Deployment of `frontdesk-proxy --gateway=<name>`, the pod the chart renders for its own
//!   proxies (probes, non-root read-only security context, the channel credentials Secret
//!   mounted at `/etc/frontdesk/tls`), with one container port per port of the Gateway's HTTP
//!   and HTTPS listeners. The proxy opens exactly those ports; a port under 1024 is allowed by
//!   the pod's `net.ipv4.ip_unprivileged_port_start=0` sysctl (a safe sysctl), not by a
//!   capability;
//! - a Service of the parameters' type (LoadBalancer by default) with the same ports and the
//!   parameters' annotations; none when the Gateway has no HTTP or HTTPS listener;
//! - a HorizontalPodAutoscaler when the parameters enable autoscaling (the Deployment then
//!   leaves `replicas` to it);
//! - a PodDisruptionBudget (`maxUnavailable: 1` unless the parameters say otherwise).
//!
//! The Gateway's `spec.infrastructure.labels` and `annotations` go on every object, under
//! frontdesk's own labels.

use std::collections::BTreeMap;

use frontdesk_crds::gateway_api::Gateway;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use serde_json::{Value, json};

use super::names::{labels, object_name, selector};
use super::params::{DisruptionBudget, Effective};

/// What the controller's flags fix for every provisioned proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The proxy image when the parameters name none (`--proxy-image`).
    pub image: String,
    pub image_pull_policy: String,
    /// Where proxies subscribe: the controller's Service URL (`--proxy-controller-url`).
    pub controller_url: String,
    /// The Secret holding a Gateway's channel credentials (`ca.crt`, `tls.crt`, `tls.key`),
    /// in the Gateway's namespace; `{gateway}` stands for the Gateway's name
    /// (`--proxy-credentials-secret`).
    pub credentials_secret: String,
    /// Port of the proxy's /healthz, /ready and /metrics.
    pub admin_port: u16,
    /// `--refuse-internal-upstreams` on the proxies (the controller's `--allow-internal-urls`
    /// unset).
    pub refuse_internal_upstreams: bool,
    /// Issue each Gateway's credentials Secret from the CA state in this Secret (namespace,
    /// name): `--issue-gateway-credentials` ([`super::credentials`]). `None`: the Secret is
    /// made by someone else.
    pub issue_credentials: Option<(String, String)>,
}

/// One port of the Gateway's proxies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    /// `http-<port>` or `https-<port>`: at most 11 characters, as port names must be short.
    pub name: String,
    pub port: u16,
}

/// The ports of the Gateway's HTTP and HTTPS listeners, each once, in listener order (listeners
/// sharing a port share it). Listeners of other protocols or with a port out of range have none.
pub fn ports(gateway: &Gateway) -> Vec<Port> {
    let mut ports: Vec<Port> = Vec::new();
    for l in &gateway.spec.listeners {
        let protocol = match l.protocol.as_str() {
            "HTTP" => "http",
            "HTTPS" => "https",
            _ => continue,
        };
        let Ok(port) = u16::try_from(l.port) else {
            continue;
        };
        if port == 0 || ports.iter().any(|p| p.port == port) {
            continue;
        }
        ports.push(Port {
            name: format!("{protocol}-{port}"),
            port,
        });
    }
    ports
}

/// The proxy's `--listen` port. Once a snapshot with the Gateway's listeners arrives the proxy
/// opens exactly their ports; before (no snapshot yet, not ready) it serves `--listen` in plain
/// HTTP. So `--listen` is an HTTP listener's port, or one no listener has: never an HTTPS
/// listener's, which must not answer in plaintext even for a moment.
pub fn listen_port(ports: &[Port]) -> u16 {
    if let Some(http) = ports.iter().find(|p| p.name.starts_with("http-")) {
        return http.port;
    }
    (8080..u16::MAX)
        .find(|candidate| ports.iter().all(|p| p.port != *candidate))
        .unwrap_or(8080)
}

/// The Secret a Gateway's proxies mount.
pub fn credentials_secret(settings: &Settings, gateway: &str) -> String {
    settings.credentials_secret.replace("{gateway}", gateway)
}

/// The objects to apply for `gateway` (which must have a uid: it is their owner).
pub fn build(gateway: &Gateway, params: &Effective, settings: &Settings) -> Vec<Value> {
    let name = gateway.name_any();
    let namespace = gateway.namespace().unwrap_or_default();
    let object = object_name(&name);
    let infrastructure = gateway.spec.infrastructure.clone().unwrap_or_default();
    let mut object_labels = infrastructure.labels.clone();
    object_labels.extend(labels(&name));
    let metadata = json!({
        "name": object,
        "namespace": namespace,
        "labels": object_labels,
        "annotations": infrastructure.annotations,
        "ownerReferences": [{
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "name": name,
            "uid": gateway.uid().unwrap_or_default(),
            "controller": true,
            "blockOwnerDeletion": true,
        }],
    });
    let ports = ports(gateway);
    let mut objects = vec![
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": metadata,
            "automountServiceAccountToken": false,
        }),
        deployment(
            &name,
            &object,
            &metadata,
            &object_labels,
            &ports,
            params,
            settings,
        ),
    ];
    if !ports.is_empty() {
        let mut metadata = metadata.clone();
        let mut annotations = infrastructure.annotations.clone();
        annotations.extend(params.service_annotations.clone());
        metadata["annotations"] = json!(annotations);
        objects.push(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata,
            "spec": {
                "type": params.service_type.as_str(),
                "selector": selector(&name),
                "ports": ports.iter().map(|p| {
                    let mut port = json!({
                        "name": p.name, "port": p.port, "targetPort": p.name, "protocol": "TCP",
                    });
                    if let Some(node_port) = params.node_ports.get(&p.port) {
                        port["nodePort"] = json!(node_port);
                    }
                    port
                }).collect::<Vec<_>>(),
            },
        }));
    }
    if let Some(a) = &params.autoscaling {
        objects.push(json!({
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": metadata,
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": object},
                "minReplicas": a.min_replicas,
                "maxReplicas": a.max_replicas,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                    "type": "Utilization",
                    "averageUtilization": a.target_cpu_utilization_percentage,
                }}}],
                // As the chart's: scale down slowly, connections drain and traffic comes back.
                "behavior": {"scaleDown": {
                    "stabilizationWindowSeconds": 300,
                    "policies": [{"type": "Percent", "value": 25, "periodSeconds": 60}],
                }},
            },
        }));
    }
    let number = |v: &IntOrString| match v {
        IntOrString::Int(n) => json!(n),
        IntOrString::String(s) => json!(s),
    };
    let mut budget = json!({"selector": {"matchLabels": selector(&name)}});
    match &params.disruption_budget {
        DisruptionBudget::MinAvailable(v) => budget["minAvailable"] = number(v),
        DisruptionBudget::MaxUnavailable(v) => budget["maxUnavailable"] = number(v),
    }
    objects.push(json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata,
        "spec": budget,
    }));
    objects
}

/// Seconds the pod waits in preStop (the endpoints controller takes it out of the Service),
/// then seconds open connections get to finish: the chart's defaults.
const PRE_STOP_SECONDS: u32 = 5;
const DRAIN_SECONDS: u32 = 30;

fn deployment(
    gateway: &str,
    object: &str,
    metadata: &Value,
    pod_labels: &BTreeMap<String, String>,
    ports: &[Port],
    params: &Effective,
    settings: &Settings,
) -> Value {
    let admin = settings.admin_port;
    let listen = listen_port(ports);
    let mut args = vec![
        format!("--controller={}", settings.controller_url),
        format!("--gateway={gateway}"),
        "--proxy-id=$(POD_NAME)".to_string(),
        "--state-dir=/var/lib/frontdesk".to_string(),
        "--tls-ca=/etc/frontdesk/tls/ca.crt".to_string(),
        "--tls-cert=/etc/frontdesk/tls/tls.crt".to_string(),
        "--tls-key=/etc/frontdesk/tls/tls.key".to_string(),
        format!("--listen=0.0.0.0:{listen}"),
        format!("--admin=0.0.0.0:{admin}"),
        format!("--drain-timeout={DRAIN_SECONDS}s"),
    ];
    if settings.refuse_internal_upstreams {
        args.push("--refuse-internal-upstreams".to_string());
    }
    args.extend(params.args.iter().cloned());
    let mut container_ports: Vec<Value> = ports
        .iter()
        .map(|p| json!({"name": p.name, "containerPort": p.port, "protocol": "TCP"}))
        .collect();
    container_ports.push(json!({"name": "admin", "containerPort": admin, "protocol": "TCP"}));
    let mut pod_security = json!({
        "runAsNonRoot": true,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    });
    if ports.iter().any(|p| p.port < 1024) || listen < 1024 {
        pod_security["sysctls"] =
            json!([{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]);
    }
    let probe = |path: &str, period: u32, failures: u32| json!({"httpGet": {"path": path, "port": "admin"}, "periodSeconds": period, "failureThreshold": failures});
    let mut spec = json!({
        "revisionHistoryLimit": 5,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
        "selector": {"matchLabels": selector(gateway)},
        "template": {
            "metadata": {"labels": pod_labels},
            "spec": {
                "serviceAccountName": object,
                "automountServiceAccountToken": false,
                "securityContext": pod_security,
                "terminationGracePeriodSeconds": DRAIN_SECONDS + PRE_STOP_SECONDS + 5,
                "containers": [{
                    "name": "proxy",
                    "image": params.image,
                    "imagePullPolicy": settings.image_pull_policy,
                    "args": args,
                    "env": [
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "RUST_LOG", "value": params.log_level},
                    ],
                    "ports": container_ports,
                    "startupProbe": probe("/healthz", 2, 30),
                    "livenessProbe": probe("/healthz", 10, 3),
                    // Ready once a snapshot serves (from the controller or the state dir).
                    "readinessProbe": probe("/ready", 5, 2),
                    "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SECONDS}}},
                    "resources": params.resources,
                    "securityContext": {
                        "allowPrivilegeEscalation": false,
                        "readOnlyRootFilesystem": true,
                        "privileged": false,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [
                        {"name": "tls", "mountPath": "/etc/frontdesk/tls", "readOnly": true},
                        {"name": "state", "mountPath": "/var/lib/frontdesk"},
                    ],
                }],
                "volumes": [
                    // This gateway's client certificate: the controller serves it this
                    // gateway's snapshot only.
                    {"name": "tls", "secret": {
                        "secretName": credentials_secret(settings, gateway),
                        "defaultMode": 0o440,
                    }},
                    // The last good snapshot, served after a restart while the controller is away.
                    {"name": "state", "emptyDir": {"sizeLimit": "128Mi"}},
                ],
                "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                    "weight": 100,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": selector(gateway)},
                    },
                }]}},
            },
        },
    });
    if params.autoscaling.is_none() {
        spec["replicas"] = json!(params.replicas);
    }
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": spec})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provision::params::{Autoscaling, ServiceType};

    pub(crate) fn settings() -> Settings {
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

    fn gateway(name: &str, listeners: &str) -> Gateway {
        let yaml = format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n\
             metadata: {{name: {name}, namespace: edge, uid: gw-uid}}\n\
             spec: {{gatewayClassName: frontdesk, listeners: {listeners}}}\n"
        );
        let value: Value = serde_saphyr::from_str(&yaml).unwrap();
        serde_json::from_value(value).unwrap()
    }

    fn kinds(objects: &[Value]) -> Vec<&str> {
        objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn ports_come_from_http_and_https_listeners_once_each() {
        let g = gateway(
            "public",
            "[{name: http, port: 80, protocol: HTTP}, \
              {name: a, port: 443, protocol: HTTPS, hostname: a.example.com}, \
              {name: b, port: 443, protocol: HTTPS, hostname: b.example.com}, \
              {name: db, port: 5432, protocol: TCP}, {name: bad, port: 70000, protocol: HTTP}]",
        );
        assert_eq!(
            ports(&g),
            [
                Port {
                    name: "http-80".into(),
                    port: 80
                },
                Port {
                    name: "https-443".into(),
                    port: 443
                }
            ]
        );
        let params = Effective {
            args: vec!["--idle-timeout=30s".into()],
            log_level: "frontdesk_proxy=debug".into(),
            node_ports: BTreeMap::from([(80, 30080), (8443, 30443)]),
            ..Effective::defaults("p:1")
        };
        let objects = build(&g, &params, &settings());
        let service = objects.iter().find(|o| o["kind"] == "Service").unwrap();
        // A node port where the parameters give one (8443 is no listener's port).
        assert_eq!(
            service["spec"]["ports"],
            serde_json::json!([
                {"name": "http-80", "port": 80, "targetPort": "http-80", "protocol": "TCP", "nodePort": 30080},
                {"name": "https-443", "port": 443, "targetPort": "https-443", "protocol": "TCP"},
            ])
        );
        assert_eq!(service["spec"]["type"], "LoadBalancer");
        let deployment = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
        let pod = &deployment["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        let container_ports: Vec<i64> = container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["containerPort"].as_i64().unwrap())
            .collect();
        assert_eq!(container_ports, [80, 443, 9901]);
        // Port 80 as a non-root user: the unprivileged port range starts at 0 in this pod.
        assert_eq!(
            pod["securityContext"]["sysctls"][0]["name"],
            "net.ipv4.ip_unprivileged_port_start"
        );
        let args: Vec<&str> = container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(args.contains(&"--gateway=public"), "{args:?}");
        assert!(
            args.contains(&"--controller=https://frontdesk-controller.frontdesk.svc:7070"),
            "{args:?}"
        );
        assert!(args.contains(&"--listen=0.0.0.0:80"), "{args:?}");
        // The parameters' arguments come last; their log level is the proxy's RUST_LOG.
        assert_eq!(args.last(), Some(&"--idle-timeout=30s"), "{args:?}");
        assert_eq!(
            container["env"][1],
            serde_json::json!({"name": "RUST_LOG", "value": "frontdesk_proxy=debug"})
        );
        assert_eq!(
            pod["volumes"][0]["secret"]["secretName"],
            "frontdesk-proxy-public-tls"
        );
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);

        // Only HTTPS listeners: `--listen` is none of theirs.
        let https = gateway(
            "tls",
            "[{name: a, port: 8080, protocol: HTTPS}, {name: b, port: 8443, protocol: HTTPS}]",
        );
        assert_eq!(listen_port(&ports(&https)), 8081);

        // Only a TCP listener: no port, no Service, and no privileged-port sysctl.
        let tcp = gateway("db", "[{name: db, port: 5432, protocol: TCP}]");
        let objects = build(&tcp, &Effective::defaults("p:1"), &settings());
        assert_eq!(
            kinds(&objects),
            ["ServiceAccount", "Deployment", "PodDisruptionBudget"]
        );
        assert!(
            objects[1]["spec"]["template"]["spec"]["securityContext"]
                .get("sysctls")
                .is_none()
        );
    }

    #[test]
    fn every_object_is_named_labelled_and_owned_by_the_gateway() {
        let long = "a".repeat(70);
        let g = gateway(&long, "[{name: http, port: 8080, protocol: HTTP}]");
        let objects = build(&g, &Effective::defaults("p:1"), &settings());
        assert_eq!(
            kinds(&objects),
            [
                "ServiceAccount",
                "Deployment",
                "Service",
                "PodDisruptionBudget"
            ]
        );
        let name = crate::provision::names::object_name(&long);
        assert!(name.len() <= 63);
        for o in &objects {
            let meta = &o["metadata"];
            assert_eq!(meta["name"], name.as_str());
            assert_eq!(meta["namespace"], "edge");
            assert_eq!(
                meta["labels"]["app.kubernetes.io/managed-by"],
                "frontdesk-controller"
            );
            assert!(
                meta["labels"]["frontdesk.dev/gateway"]
                    .as_str()
                    .unwrap()
                    .len()
                    <= 63
            );
            assert_eq!(
                meta["ownerReferences"],
                serde_json::json!([{
                    "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                    "name": long, "uid": "gw-uid", "controller": true, "blockOwnerDeletion": true,
                }])
            );
        }
        assert_eq!(objects[0]["automountServiceAccountToken"], false);
    }

    #[test]
    fn an_hpa_only_when_autoscaling_is_on_and_then_no_fixed_replicas() {
        let g = gateway("public", "[{name: http, port: 80, protocol: HTTP}]");
        let mut params = Effective::defaults("p:1");
        params.replicas = 3;
        let objects = build(&g, &params, &settings());
        assert!(!kinds(&objects).contains(&"HorizontalPodAutoscaler"));
        assert_eq!(objects[1]["spec"]["replicas"], 3);
        // By default one pod may go at a time: a single replica never blocks a drain.
        let pdb = objects.last().unwrap();
        assert_eq!(pdb["kind"], "PodDisruptionBudget");
        assert_eq!(pdb["spec"]["maxUnavailable"], 1);

        params.autoscaling = Some(Autoscaling {
            min_replicas: 2,
            max_replicas: 8,
            target_cpu_utilization_percentage: 60,
        });
        params.service_type = ServiceType::ClusterIP;
        params.disruption_budget =
            DisruptionBudget::MinAvailable(IntOrString::String("50%".into()));
        let objects = build(&g, &params, &settings());
        let hpa = objects
            .iter()
            .find(|o| o["kind"] == "HorizontalPodAutoscaler")
            .unwrap();
        assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "frontdesk-gw-public");
        assert_eq!(
            (&hpa["spec"]["minReplicas"], &hpa["spec"]["maxReplicas"]),
            (&serde_json::json!(2), &serde_json::json!(8))
        );
        assert_eq!(
            hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            60
        );
        assert!(objects[1]["spec"].get("replicas").is_none());
        let pdb = objects
            .iter()
            .find(|o| o["kind"] == "PodDisruptionBudget")
            .unwrap();
        assert_eq!(pdb["spec"]["minAvailable"], "50%");
        assert!(pdb["spec"].get("maxUnavailable").is_none());
        let service = objects.iter().find(|o| o["kind"] == "Service").unwrap();
        assert_eq!(service["spec"]["type"], "ClusterIP");
    }

    #[test]
    fn the_objects_read_as_their_kubernetes_types() {
        use k8s_openapi::api::apps::v1::Deployment;
        use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
        use k8s_openapi::api::policy::v1::PodDisruptionBudget;
        let g = gateway("public", "[{name: http, port: 80, protocol: HTTP}]");
        let mut params = Effective::defaults("p:1");
        params.autoscaling = Some(Autoscaling {
            min_replicas: 2,
            max_replicas: 8,
            target_cpu_utilization_percentage: 60,
        });
        for o in build(&g, &params, &settings()) {
            let kind = o["kind"].as_str().unwrap().to_string();
            let read = match kind.as_str() {
                "Deployment" => serde_json::from_value::<Deployment>(o).map(drop),
                "Service" => {
                    serde_json::from_value::<k8s_openapi::api::core::v1::Service>(o).map(drop)
                }
                "HorizontalPodAutoscaler" => {
                    serde_json::from_value::<HorizontalPodAutoscaler>(o).map(drop)
                }
                "PodDisruptionBudget" => serde_json::from_value::<PodDisruptionBudget>(o).map(drop),
                _ => serde_json::from_value::<k8s_openapi::api::core::v1::ServiceAccount>(o)
                    .map(drop),
            };
            read.unwrap_or_else(|e| panic!("{kind}: {e}"));
        }
    }
}
