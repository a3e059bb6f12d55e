//! A provisioned Gateway's `status.addresses`, from its Service.

use frontdesk_crds::gateway_api::GatewayStatusAddress;
use k8s_openapi::api::core::v1::Service;

/// Where a Gateway is reachable, from its Service: the load balancer's addresses, else the
/// cluster IP(s).
pub fn addresses(service: &Service) -> Vec<GatewayStatusAddress> {
    let address = |ip: Option<&String>, hostname: Option<&String>| {
        if let Some(ip) = ip.filter(|ip| !ip.is_empty()) {
            Some(GatewayStatusAddress {
                type_: Some("IPAddress".into()),
                value: ip.clone(),
            })
        } else {
            hostname
                .filter(|h| !h.is_empty())
                .map(|h| GatewayStatusAddress {
                    type_: Some("Hostname".into()),
                    value: h.clone(),
                })
        }
    };
    let ingress: Vec<GatewayStatusAddress> = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| address(i.ip.as_ref(), i.hostname.as_ref()))
        .collect();
    if !ingress.is_empty() {
        return ingress;
    }
    let spec = service.spec.as_ref();
    let ips = spec
        .and_then(|s| s.cluster_ips.clone())
        .filter(|ips| !ips.is_empty())
        .or_else(|| spec.and_then(|s| s.cluster_ip.clone()).map(|ip| vec![ip]))
        .unwrap_or_default();
    ips.iter()
        .filter(|ip| *ip != "None")
        .filter_map(|ip| address(Some(ip), None))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn addresses_are_the_load_balancers_else_the_cluster_ip() {
        let service = |json: Value| -> Service { serde_json::from_value(json).unwrap() };
        let lb = service(serde_json::json!({
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.7"},
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}, {"hostname": "lb.example.com"}]}},
        }));
        assert_eq!(
            addresses(&lb),
            [
                GatewayStatusAddress {
                    type_: Some("IPAddress".into()),
                    value: "203.0.113.7".into()
                },
                GatewayStatusAddress {
                    type_: Some("Hostname".into()),
                    value: "lb.example.com".into()
                },
            ]
        );
        let pending = service(serde_json::json!({
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.7", "clusterIPs": ["10.96.0.7"]},
            "status": {"loadBalancer": {}},
        }));
        assert_eq!(
            addresses(&pending),
            [GatewayStatusAddress {
                type_: Some("IPAddress".into()),
                value: "10.96.0.7".into()
            }]
        );
    }
}
