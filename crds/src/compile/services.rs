//! Service ports → endpoint addresses, from Services and their EndpointSlices.
//!
//! Proxies balance across pods directly, so a `{service, port}` backend is resolved here to the
//! ready addresses behind it. The slice port is found by the Service port's name (the same rule
//! kube-proxy uses), so named target ports work.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::lower::ResolveService;

const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Services and EndpointSlices indexed by namespace and Service name.
#[derive(Default)]
pub struct ServiceIndex<'a> {
    services: HashMap<(&'a str, &'a str), &'a Service>,
    slices: HashMap<(&'a str, &'a str), Vec<&'a EndpointSlice>>,
    urls: Option<&'a super::urls::UrlPolicy>,
    /// What backends' TLS settings name.
    secrets: &'a [k8s_openapi::api::core::v1::Secret],
    config_maps: &'a [k8s_openapi::api::core::v1::ConfigMap],
    backend_tls: Option<&'a super::backend_tls_policies::BackendTlsPolicies>,
    /// The BackendTLSPolicies naming a backend's Service since last taken
    /// ([`ServiceIndex::take_used_policies`]).
    used_policies: RefCell<BTreeSet<(String, String)>>,
    /// The backends [`ResolveService::hold_back`] was told of.
    held_back: RefCell<BTreeSet<String>>,
}

impl<'a> ServiceIndex<'a> {
    pub fn new(
        services: impl IntoIterator<Item = &'a Service>,
        slices: impl IntoIterator<Item = &'a EndpointSlice>,
    ) -> Self {
        let mut index = ServiceIndex::default();
        for s in services {
            if let (Some(ns), Some(name)) =
                (s.metadata.namespace.as_deref(), s.metadata.name.as_deref())
            {
                index.services.insert((ns, name), s);
            }
        }
        for slice in slices {
            let ns = slice.metadata.namespace.as_deref();
            let svc = slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL));
            if let (Some(ns), Some(svc)) = (ns, svc) {
                index
                    .slices
                    .entry((ns, svc.as_str()))
                    .or_default()
                    .push(slice);
            }
        }
        index
    }

    /// Checks `url` backends' hosts against `urls`.
    pub fn with_urls(mut self, urls: &'a super::urls::UrlPolicy) -> Self {
        self.urls = Some(urls);
        self
    }

    /// With the Secrets and ConfigMaps backends' TLS settings may name.
    pub fn with_refs(
        mut self,
        secrets: &'a [k8s_openapi::api::core::v1::Secret],
        config_maps: &'a [k8s_openapi::api::core::v1::ConfigMap],
    ) -> Self {
        self.secrets = secrets;
        self.config_maps = config_maps;
        self
    }

    /// With the BackendTLSPolicies for backend references without a `tls` of their own.
    pub fn with_backend_tls(
        mut self,
        policies: &'a super::backend_tls_policies::BackendTlsPolicies,
    ) -> Self {
        self.backend_tls = Some(policies);
        self
    }

    /// Whether the Service `namespace/name` exists.
    pub fn has_service(&self, namespace: &str, name: &str) -> bool {
        self.services.contains_key(&(namespace, name))
    }

    /// The BackendTLSPolicies naming the Service of a backend lowered since the last call,
    /// as `(namespace, name)`: whose status the object's Gateways carry.
    pub fn take_used_policies(&self) -> BTreeSet<(String, String)> {
        self.used_policies.take()
    }

    /// The backends held back so far ([`ResolveService::hold_back`]).
    pub fn take_held_back(&self) -> BTreeSet<String> {
        self.held_back.take()
    }

    /// The Service port `port` of `namespace/service`, when the Service has it.
    fn port(
        &self,
        namespace: &str,
        service: &str,
        port: u16,
    ) -> Result<&k8s_openapi::api::core::v1::ServicePort, String> {
        let svc = self
            .services
            .get(&(namespace, service))
            .ok_or_else(|| format!("Service {namespace}/{service} not found"))?;
        let ports = svc.spec.as_ref().and_then(|s| s.ports.as_ref());
        ports
            .and_then(|ports| ports.iter().find(|p| p.port == i32::from(port)))
            .ok_or_else(|| format!("Service {namespace}/{service} has no port {port}"))
    }
}

/// How the compiler names the backend of port `port` of Service `namespace/service`: the
/// name an endpoint change ([`frontdesk_snapshot::EndpointChange`]) refers to.
pub fn backend_name(namespace: &str, service: &str, port: u16) -> String {
    format!("service/{namespace}/{service}:{port}")
}

/// `(namespace, service, port)` of a name [`backend_name`] made.
pub fn parse_backend_name(name: &str) -> Option<(&str, &str, u16)> {
    let (namespace, rest) = name.strip_prefix("service/")?.split_once('/')?;
    let (service, port) = rest.rsplit_once(':')?;
    Some((namespace, service, port.parse().ok()?))
}

impl ServiceIndex<'_> {
    /// The ready endpoints of the backend named `name` ([`backend_name`]), when it names a
    /// port of a Service that exists; `None` for any other backend.
    pub fn backend_endpoints(&self, name: &str) -> Option<Vec<String>> {
        let (namespace, service, port) = parse_backend_name(name)?;
        self.resolve(namespace, service, port).ok()
    }
}

impl ResolveService for ServiceIndex<'_> {
    fn hold_back(&self, backend: &str) {
        self.held_back.borrow_mut().insert(backend.to_string());
    }

    fn check_url_host(&self, host: &str) -> Result<(), String> {
        self.urls.map_or(Ok(()), |u| u.check(host))
    }

    fn secret(&self, namespace: &str, name: &str) -> Option<&k8s_openapi::api::core::v1::Secret> {
        self.secrets.iter().find(|s| {
            s.metadata.namespace.as_deref().unwrap_or("default") == namespace
                && s.metadata.name.as_deref() == Some(name)
        })
    }

    fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<&k8s_openapi::api::core::v1::ConfigMap> {
        super::gateways::client_validation::find_config_map(self.config_maps, namespace, name)
    }

    fn backend_tls_policy(
        &self,
        namespace: &str,
        service: &str,
        port: u16,
    ) -> Option<Result<frontdesk_snapshot::BackendTls, String>> {
        let policies = self.backend_tls?;
        let port = self.port(namespace, service, port).ok();
        let port_name = port.and_then(|p| p.name.as_deref());
        // Every policy naming this port learns of the backend, holding it or not.
        let section = port.map(|p| p.name.as_deref().unwrap_or(""));
        self.used_policies
            .borrow_mut()
            .extend(policies.naming(namespace, service, section).cloned());
        policies.lookup(namespace, service, port_name).cloned()
    }

    fn app_protocol(&self, namespace: &str, service: &str, port: u16) -> Option<&str> {
        self.port(namespace, service, port)
            .ok()?
            .app_protocol
            .as_deref()
    }

    fn resolve(&self, namespace: &str, service: &str, port: u16) -> Result<Vec<String>, String> {
        let svc_port = self.port(namespace, service, port)?;
        let port_name = svc_port.name.as_deref().unwrap_or("");

        let mut endpoints = BTreeSet::new();
        for slice in self.slices.get(&(namespace, service)).into_iter().flatten() {
            let ipv6 = match slice.address_type.as_str() {
                "IPv4" => false,
                "IPv6" => true,
                _ => continue, // FQDN slices are not produced for Services with selectors
            };
            let slice_port = slice
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref().unwrap_or("") == port_name)
                .and_then(|p| p.port)
                .and_then(|p| u16::try_from(p).ok());
            let Some(target) = slice_port else { continue };
            for ep in slice.endpoints.iter().flatten() {
                // Kubernetes treats an unknown readiness as ready.
                let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                if !ready {
                    continue;
                }
                for addr in &ep.addresses {
                    endpoints.insert(if ipv6 {
                        format!("[{addr}]:{target}")
                    } else {
                        format!("{addr}:{target}")
                    });
                }
            }
        }
        Ok(endpoints.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_names_read_back() {
        let name = backend_name("shop", "web", 8080);
        assert_eq!(name, "service/shop/web:8080");
        assert_eq!(parse_backend_name(&name), Some(("shop", "web", 8080)));
        for other in [
            "https://web.shop:8080",
            "service/shop/web",
            "service/shop/web:x",
        ] {
            assert_eq!(parse_backend_name(other), None, "{other}");
        }
    }
}
