//! Parameters of a Gateway's proxies: what the GatewayClass's and the Gateway's
//! `parametersRef` say, merged over the controller's defaults.
//!
//! Both references name a ConfigMap (group `""`, kind `ConfigMap`): the class's in the
//! namespace its reference gives (the Gateway API requires one for a namespaced kind), the
//! Gateway's (`spec.infrastructure.parametersRef`) in the Gateway's own. Its key `proxy.yaml`
//! holds, all fields optional:
//!
//! ```yaml
//! replicas: 2                       # when autoscaling is off
//! image: ghcr.io/frontdesk-dev/frontdesk-proxy:1.2.0
//! resources: {requests: {cpu: 250m, memory: 128Mi}, limits: {memory: 512Mi}}
//! service:
//!   type: LoadBalancer              # ClusterIP, NodePort or LoadBalancer
//!   annotations: {service.beta.kubernetes.io/aws-load-balancer-type: nlb}
//!   nodePorts: {80: 30080, 443: 30443}   # listener port -> fixed node port (NodePort, LoadBalancer)
//! autoscaling: {enabled: false, minReplicas: 2, maxReplicas: 10, targetCPUUtilizationPercentage: 70}
//! podDisruptionBudget: {maxUnavailable: 1}   # or minAvailable; a number or a percentage ("50%")
//! args: [--idle-timeout=30s, --trusted-proxies=10.0.0.0/8]   # added to the proxy's own
//! logLevel: info                    # the proxy's RUST_LOG (a tracing filter)
//! ```
//!
//! A Gateway's field overrides the class's, which overrides the default, field by field:
//! `service.annotations`, `service.nodePorts` and `autoscaling` merge key by key, `resources` is taken whole, and a
//! layer's `podDisruptionBudget` (`minAvailable` or `maxUnavailable`, not both) replaces the
//! budget before it. The default budget is `maxUnavailable: 1`, the chart's: one pod may go at a
//! time, and a single replica never blocks a node drain. `args` (the proxy's limits, timeouts,
//! trusted proxies, access log...: `frontdesk-proxy --help`) are taken whole from the last layer
//! that sets them, after the arguments the controller gives every proxy; those that would
//! change how the proxy reaches the controller or where it listens are refused.
//! Unknown fields are errors (a typo must not go unnoticed), reported with their path.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Deserialize;

/// The ConfigMap key that holds the parameters.
pub const CONFIG_MAP_KEY: &str = "proxy.yaml";

/// Parameters as written: every field optional.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyParameters {
    pub replicas: Option<i32>,
    pub image: Option<String>,
    pub resources: Option<ResourceRequirements>,
    pub service: Option<ServiceParameters>,
    pub autoscaling: Option<AutoscalingParameters>,
    pub pod_disruption_budget: Option<PodDisruptionBudgetParameters>,
    pub args: Option<Vec<String>>,
    pub log_level: Option<String>,
}

/// Arguments the controller sets for every proxy it provisions: a Gateway's `args` may not
/// change them (the proxy would not reach the controller, or not listen where its Service sends).
const CONTROLLER_ARGS: [&str; 11] = [
    "--controller",
    "--drain-timeout",
    "--refuse-internal-upstreams",
    "--gateway",
    "--proxy-id",
    "--state-dir",
    "--tls-ca",
    "--tls-cert",
    "--tls-key",
    "--listen",
    "--admin",
];

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceParameters {
    #[serde(rename = "type")]
    pub type_: Option<ServiceType>,
    pub annotations: Option<BTreeMap<String, String>>,
    pub node_ports: Option<BTreeMap<u16, u16>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum ServiceType {
    ClusterIP,
    NodePort,
    #[default]
    LoadBalancer,
}

impl ServiceType {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AutoscalingParameters {
    pub enabled: Option<bool>,
    pub min_replicas: Option<i32>,
    pub max_replicas: Option<i32>,
    #[serde(rename = "targetCPUUtilizationPercentage")]
    pub target_cpu_utilization_percentage: Option<i32>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodDisruptionBudgetParameters {
    pub min_available: Option<IntOrString>,
    pub max_unavailable: Option<IntOrString>,
}

/// How many of a Gateway's pods a voluntary disruption (a node drain) must leave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DisruptionBudget {
    MinAvailable(IntOrString),
    MaxUnavailable(IntOrString),
}

/// Parameters in effect for one Gateway: every field decided.
#[derive(Clone, Debug, PartialEq)]
pub struct Effective {
    pub replicas: i32,
    pub image: String,
    pub resources: ResourceRequirements,
    pub service_type: ServiceType,
    pub service_annotations: BTreeMap<String, String>,
    /// Listener port -> node port, for the Service ports that have one; Kubernetes picks the
    /// others. A port no listener has is ignored.
    pub node_ports: BTreeMap<u16, u16>,
    /// `None`: no HorizontalPodAutoscaler, `replicas` pods.
    pub autoscaling: Option<Autoscaling>,
    pub disruption_budget: DisruptionBudget,
    /// Added after the controller's own arguments.
    pub args: Vec<String>,
    /// The proxy's `RUST_LOG`.
    pub log_level: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Autoscaling {
    pub min_replicas: i32,
    pub max_replicas: i32,
    pub target_cpu_utilization_percentage: i32,
}

impl Effective {
    /// The defaults: `image` (the controller's `--proxy-image`), two replicas, the chart's
    /// proxy resources, a LoadBalancer Service, no autoscaling, one pod unavailable at most.
    pub fn defaults(image: &str) -> Effective {
        let quantity = |q: &str| Quantity(q.to_string());
        Effective {
            replicas: 2,
            image: image.to_string(),
            resources: ResourceRequirements {
                requests: Some(BTreeMap::from([
                    ("cpu".to_string(), quantity("250m")),
                    ("memory".to_string(), quantity("128Mi")),
                ])),
                limits: Some(BTreeMap::from([("memory".to_string(), quantity("512Mi"))])),
                ..Default::default()
            },
            service_type: ServiceType::LoadBalancer,
            service_annotations: BTreeMap::new(),
            node_ports: BTreeMap::new(),
            autoscaling: None,
            disruption_budget: DisruptionBudget::MaxUnavailable(IntOrString::Int(1)),
            args: Vec::new(),
            log_level: "info".into(),
        }
    }
}

/// Why a Gateway's (or its class's) parameters cannot be used; the message goes to the
/// `Accepted` condition as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParametersError {
    #[error(
        "parametersRef names {group}/{kind}; frontdesk reads only ConfigMaps (group \"\", kind ConfigMap)"
    )]
    UnsupportedKind { group: String, kind: String },
    #[error("parametersRef of a GatewayClass must give the namespace of ConfigMap {name}")]
    NoNamespace { name: String },
    #[error("ConfigMap {namespace}/{name} (parametersRef) not found")]
    NotFound { namespace: String, name: String },
    #[error("ConfigMap {namespace}/{name} (parametersRef) has no key {key}", key = CONFIG_MAP_KEY)]
    NoKey { namespace: String, name: String },
    #[error("ConfigMap {namespace}/{name}, key {key}, {field}: {reason}", key = CONFIG_MAP_KEY)]
    Invalid {
        namespace: String,
        name: String,
        field: String,
        reason: String,
    },
    #[error("ConfigMap {namespace}/{name} (parametersRef) cannot be read: {reason}")]
    Unreadable {
        namespace: String,
        name: String,
        reason: String,
    },
}

/// Where a parametersRef points, once checked: the ConfigMap `namespace/name`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigMapRef {
    pub namespace: String,
    pub name: String,
}

/// Checks a reference: a ConfigMap, with a namespace (`namespace`, else `default_namespace`).
pub fn config_map_ref(
    group: &str,
    kind: &str,
    name: &str,
    namespace: Option<&str>,
    default_namespace: Option<&str>,
) -> Result<ConfigMapRef, ParametersError> {
    if !group.is_empty() || kind != "ConfigMap" {
        return Err(ParametersError::UnsupportedKind {
            group: if group.is_empty() { "core" } else { group }.to_string(),
            kind: kind.to_string(),
        });
    }
    let namespace = namespace
        .or(default_namespace)
        .ok_or_else(|| ParametersError::NoNamespace { name: name.into() })?;
    Ok(ConfigMapRef {
        namespace: namespace.to_string(),
        name: name.to_string(),
    })
}

/// Reads the parameters of the ConfigMap `at` (`None`: it does not exist).
pub fn read(
    at: &ConfigMapRef,
    config_map: Option<&ConfigMap>,
) -> Result<ProxyParameters, ParametersError> {
    let Some(config_map) = config_map else {
        return Err(ParametersError::NotFound {
            namespace: at.namespace.clone(),
            name: at.name.clone(),
        });
    };
    let Some(text) = config_map.data.as_ref().and_then(|d| d.get(CONFIG_MAP_KEY)) else {
        return Err(ParametersError::NoKey {
            namespace: at.namespace.clone(),
            name: at.name.clone(),
        });
    };
    let invalid = |field: String, reason: String| ParametersError::Invalid {
        namespace: at.namespace.clone(),
        name: at.name.clone(),
        field,
        reason,
    };
    let value: serde_json::Value =
        serde_saphyr::from_str(text).map_err(|e| invalid("(document)".into(), e.to_string()))?;
    // An empty document is "no parameters".
    if value.is_null() {
        return Ok(ProxyParameters::default());
    }
    frontdesk_crds::manifests::typed(value).map_err(|(field, reason)| invalid(field, reason))
}

/// `defaults`, then the class's parameters, then the Gateway's, field by field; checked as a
/// whole. The error is the field and why, for the message of the layer that set it.
pub fn merge(
    defaults: &Effective,
    layers: &[&ProxyParameters],
) -> Result<Effective, (String, String)> {
    let mut e = defaults.clone();
    let mut autoscaling = AutoscalingParameters::default();
    for p in layers {
        if let Some(v) = p.replicas {
            e.replicas = v;
        }
        if let Some(v) = &p.image {
            e.image = v.clone();
        }
        if let Some(v) = &p.resources {
            e.resources = v.clone();
        }
        if let Some(s) = &p.service {
            if let Some(t) = s.type_ {
                e.service_type = t;
            }
            if let Some(a) = &s.annotations {
                e.service_annotations
                    .extend(a.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            if let Some(n) = &s.node_ports {
                e.node_ports.extend(n);
            }
        }
        if let Some(a) = &p.autoscaling {
            autoscaling.enabled = a.enabled.or(autoscaling.enabled);
            autoscaling.min_replicas = a.min_replicas.or(autoscaling.min_replicas);
            autoscaling.max_replicas = a.max_replicas.or(autoscaling.max_replicas);
            autoscaling.target_cpu_utilization_percentage = a
                .target_cpu_utilization_percentage
                .or(autoscaling.target_cpu_utilization_percentage);
        }
        if let Some(args) = &p.args {
            e.args = args.clone();
        }
        if let Some(level) = &p.log_level {
            e.log_level = level.clone();
        }
        if let Some(b) = &p.pod_disruption_budget {
            match (&b.min_available, &b.max_unavailable) {
                (Some(_), Some(_)) => {
                    return Err((
                        "podDisruptionBudget".into(),
                        "minAvailable and maxUnavailable exclude each other: set one".into(),
                    ));
                }
                (Some(min), None) => {
                    e.disruption_budget = DisruptionBudget::MinAvailable(min.clone())
                }
                (None, Some(max)) => {
                    e.disruption_budget = DisruptionBudget::MaxUnavailable(max.clone())
                }
                (None, None) => {}
            }
        }
    }
    let bad = |field: &str, reason: String| Err((field.to_string(), reason));
    for (i, arg) in e.args.iter().enumerate() {
        let flag = arg.split('=').next().unwrap_or_default();
        if !arg.starts_with("--") {
            return bad(
                &format!("args[{i}]"),
                format!("{arg:?} is not a --flag=value argument"),
            );
        }
        if CONTROLLER_ARGS.contains(&flag) {
            return bad(
                &format!("args[{i}]"),
                format!("{flag} is set by the controller for every proxy it provisions"),
            );
        }
    }
    if let Some((port, node_port)) = e.node_ports.iter().find(|(p, n)| **p == 0 || **n == 0) {
        return bad(
            &format!("service.nodePorts.{port}"),
            format!("{port} -> {node_port}: ports are 1 to 65535"),
        );
    }
    let mut taken = std::collections::BTreeSet::new();
    if let Some((port, node_port)) = e.node_ports.iter().find(|(_, n)| !taken.insert(**n)) {
        return bad(
            &format!("service.nodePorts.{port}"),
            format!("node port {node_port} is given to two ports"),
        );
    }
    if !e.node_ports.is_empty() && e.service_type == ServiceType::ClusterIP {
        return bad(
            "service.nodePorts",
            "a ClusterIP Service has no node ports: set service.type NodePort or LoadBalancer"
                .into(),
        );
    }
    if e.log_level.trim().is_empty() {
        return bad("logLevel", "empty".into());
    }
    if e.replicas < 0 {
        return bad("replicas", format!("{} is negative", e.replicas));
    }
    if e.image.trim().is_empty() {
        return bad("image", "empty".into());
    }
    if autoscaling.enabled == Some(true) {
        let min = autoscaling.min_replicas.unwrap_or(2);
        let max = autoscaling.max_replicas.unwrap_or(10);
        let target = autoscaling.target_cpu_utilization_percentage.unwrap_or(70);
        if min < 1 {
            return bad("autoscaling.minReplicas", format!("{min} is less than 1"));
        }
        if max < min {
            return bad(
                "autoscaling.maxReplicas",
                format!("{max} is less than minReplicas ({min})"),
            );
        }
        if !(1..=100).contains(&target) {
            return bad(
                "autoscaling.targetCPUUtilizationPercentage",
                format!("{target} is not between 1 and 100"),
            );
        }
        e.autoscaling = Some(Autoscaling {
            min_replicas: min,
            max_replicas: max,
            target_cpu_utilization_percentage: target,
        });
    }
    let (field, budget) = match &e.disruption_budget {
        DisruptionBudget::MinAvailable(v) => ("podDisruptionBudget.minAvailable", v),
        DisruptionBudget::MaxUnavailable(v) => ("podDisruptionBudget.maxUnavailable", v),
    };
    match budget {
        IntOrString::Int(n) if *n < 0 => return bad(field, format!("{n} is negative")),
        IntOrString::String(s)
            if s.strip_suffix('%')
                .and_then(|n| n.parse::<u8>().ok())
                .is_none_or(|n| n > 100) =>
        {
            return bad(
                field,
                format!("{s:?} is neither a number nor a percentage like \"50%\""),
            );
        }
        _ => {}
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_map(text: &str) -> ConfigMap {
        ConfigMap {
            data: Some(BTreeMap::from([(
                CONFIG_MAP_KEY.to_string(),
                text.to_string(),
            )])),
            ..Default::default()
        }
    }

    fn at() -> ConfigMapRef {
        ConfigMapRef {
            namespace: "edge".into(),
            name: "proxy-params".into(),
        }
    }

    #[test]
    fn the_gateways_fields_override_the_classs_which_override_the_defaults() {
        let class = read(
            &at(),
            Some(&config_map(
                "replicas: 3\nimage: example/proxy:1\n\
                 service: {type: NodePort, annotations: {a: class, b: class}, nodePorts: {80: 30080}}\n\
                 autoscaling: {enabled: true, maxReplicas: 6}\n",
            )),
        )
        .unwrap();
        let gateway = read(
            &at(),
            Some(&config_map(
                "service: {annotations: {b: gateway}, nodePorts: {\"443\": 30443}}\n\
                 autoscaling: {minReplicas: 3}\n\
                 podDisruptionBudget: {minAvailable: 50%}\n",
            )),
        )
        .unwrap();
        let e = merge(&Effective::defaults("default/proxy:0"), &[&class, &gateway]).unwrap();
        assert_eq!(e.replicas, 3);
        assert_eq!(e.image, "example/proxy:1");
        assert_eq!(e.service_type, ServiceType::NodePort);
        assert_eq!(
            e.service_annotations,
            BTreeMap::from([("a".into(), "class".into()), ("b".into(), "gateway".into())])
        );
        assert_eq!(e.node_ports, BTreeMap::from([(80, 30080), (443, 30443)]));
        assert_eq!(
            e.autoscaling,
            Some(Autoscaling {
                min_replicas: 3,
                max_replicas: 6,
                target_cpu_utilization_percentage: 70
            })
        );
        assert_eq!(
            e.disruption_budget,
            DisruptionBudget::MinAvailable(IntOrString::String("50%".into()))
        );
        // Resources untouched: the defaults'.
        assert_eq!(e.resources, Effective::defaults("x").resources);
    }

    #[test]
    fn mistakes_are_reported_with_the_configmap_and_the_field() {
        let error = read(&at(), Some(&config_map("service: {type: Loadbalancer}\n"))).unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("ConfigMap edge/proxy-params, key proxy.yaml, service.type: "),
            "{message}"
        );
        assert!(message.contains("Loadbalancer"), "{message}");

        let typo = read(&at(), Some(&config_map("replicaz: 2\n"))).unwrap_err();
        assert!(typo.to_string().contains("replicaz"), "{typo}");

        assert_eq!(
            read(&at(), None).unwrap_err().to_string(),
            "ConfigMap edge/proxy-params (parametersRef) not found"
        );
        assert!(matches!(
            read(&at(), Some(&ConfigMap::default())),
            Err(ParametersError::NoKey { .. })
        ));
        assert_eq!(
            read(&at(), Some(&config_map(""))),
            Ok(ProxyParameters::default())
        );

        let defaults = Effective::defaults("p:1");
        let too_few = ProxyParameters {
            autoscaling: Some(AutoscalingParameters {
                enabled: Some(true),
                min_replicas: Some(5),
                max_replicas: Some(2),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (field, reason) = merge(&defaults, &[&too_few]).unwrap_err();
        assert_eq!(field, "autoscaling.maxReplicas");
        assert!(reason.contains("less than minReplicas (5)"), "{reason}");

        // One pod may go at a time unless a layer says otherwise; one budget per layer.
        assert_eq!(
            defaults.disruption_budget,
            DisruptionBudget::MaxUnavailable(IntOrString::Int(1))
        );
        let both = read(
            &at(),
            Some(&config_map(
                "podDisruptionBudget: {minAvailable: 1, maxUnavailable: 1}\n",
            )),
        )
        .unwrap();
        assert_eq!(
            merge(&defaults, &[&both]).unwrap_err().0,
            "podDisruptionBudget"
        );
        let percent = read(
            &at(),
            Some(&config_map("podDisruptionBudget: {maxUnavailable: 150%}\n")),
        )
        .unwrap();
        assert_eq!(
            merge(&defaults, &[&percent]).unwrap_err().0,
            "podDisruptionBudget.maxUnavailable"
        );

        // Node ports: numbers, and only where the Service has nodes' ports.
        let word = read(
            &at(),
            Some(&config_map("service: {nodePorts: {http: 30080}}\n")),
        );
        assert!(
            word.unwrap_err().to_string().contains("service.nodePorts"),
            "the field is named"
        );
        let cluster_ip = read(
            &at(),
            Some(&config_map(
                "service: {type: ClusterIP, nodePorts: {80: 30080}}\n",
            )),
        )
        .unwrap();
        assert_eq!(
            merge(&defaults, &[&cluster_ip]).unwrap_err(),
            (
                "service.nodePorts".into(),
                "a ClusterIP Service has no node ports: set service.type NodePort or LoadBalancer"
                    .into()
            )
        );
        let twice = read(
            &at(),
            Some(&config_map(
                "service: {nodePorts: {80: 30080, 81: 30080}}\n",
            )),
        )
        .unwrap();
        assert_eq!(
            merge(&defaults, &[&twice]).unwrap_err(),
            (
                "service.nodePorts.81".into(),
                "node port 30080 is given to two ports".into()
            )
        );
        let zero = read(&at(), Some(&config_map("service: {nodePorts: {80: 0}}\n"))).unwrap();
        assert_eq!(
            merge(&defaults, &[&zero]).unwrap_err().0,
            "service.nodePorts.80"
        );
    }

    #[test]
    fn only_configmaps_with_a_namespace_are_parameters() {
        assert!(matches!(
            config_map_ref("frontdesk.dev", "GatewayParameters", "p", Some("ns"), None),
            Err(ParametersError::UnsupportedKind { .. })
        ));
        assert!(matches!(
            config_map_ref("", "ConfigMap", "p", None, None),
            Err(ParametersError::NoNamespace { .. })
        ));
        assert_eq!(
            config_map_ref("", "ConfigMap", "p", None, Some("edge")).unwrap(),
            ConfigMapRef {
                namespace: "edge".into(),
                name: "p".into()
            }
        );
    }

    #[test]
    fn args_come_whole_from_the_last_layer_and_never_replace_the_controllers() {
        let defaults = Effective::defaults("p:1");
        let with = |args: &[&str]| ProxyParameters {
            args: Some(args.iter().map(|a| a.to_string()).collect()),
            ..Default::default()
        };
        let class = with(&["--idle-timeout=30s", "--access-log=off"]);
        let gateway = with(&["--trusted-proxies=10.0.0.0/8"]);
        let e = merge(&defaults, &[&class, &gateway]).unwrap();
        assert_eq!(e.args, ["--trusted-proxies=10.0.0.0/8"]);
        assert_eq!(
            merge(&defaults, &[&class]).unwrap().args,
            ["--idle-timeout=30s", "--access-log=off"]
        );
        let (field, reason) = merge(&defaults, &[&with(&["--listen=0.0.0.0:1"])]).unwrap_err();
        assert_eq!(field, "args[0]");
        assert!(reason.contains("set by the controller"), "{reason}");
        let (field, _) = merge(&defaults, &[&with(&["--workers=2", "verbose"])]).unwrap_err();
        assert_eq!(field, "args[1]");
        let quiet = ProxyParameters {
            log_level: Some("warn".into()),
            ..Default::default()
        };
        assert_eq!(
            merge(&defaults, &[&quiet, &gateway]).unwrap().log_level,
            "warn"
        );
        assert_eq!(defaults.log_level, "info");
    }
}
