//! Gateways to listeners: which ports each gateway group serves, with which certificates, and
//! the status of every listener.
//!
//! A Gateway is frontdesk's when its GatewayClass names [`CONTROLLER_NAME`]; Gateways of other
//! classes are someone else's and get no status from us. In manifest files a Gateway whose
//! class is not written anywhere is frontdesk's too
//! ([`Resources::gateway_class_optional`]): a standalone proxy has no other controller.
//!
//! Which snapshot gets a Gateway's listeners: the group named like the Gateway, so Gateway
//! `edge/public` serves the Routes attached to it, which name `public` (from namespace `edge`)
//! or `edge/public` in `spec.gateways`, subject to its listeners' `allowedRoutes`
//! ([`attach`]). Proxies subscribe by name, so a name is one Gateway: a younger Gateway of an
//! older one's name in another namespace is not served ([`NAME_CONFLICT`]). Listeners sharing a
//! port must agree on client validation, the HTTPS redirect and HSTS (else `ProtocolConflict`).
//!
//! What is checked here: protocol (HTTP and HTTPS; TLS, TCP, UDP and others are
//! `UnsupportedProtocol`), port, hostname, TLS mode, conflicts (a port and hostname served
//! twice, a port both HTTP and HTTPS: the oldest Gateway's earlier listener wins), and the
//! certificate references: Secrets of type `kubernetes.io/tls` with PEM `tls.crt` and
//! `tls.key`, in another namespace only through a ReferenceGrant, and loadable as the proxy
//! will load them ([`crate::certificate::load`]: a parsing certificate within its validity,
//! and a key that matches it).

use std::collections::{BTreeMap, BTreeSet};

use super::Resources;
use super::policy::{SecretIndex, secret_value};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::gateway_api::{CONTROLLER_NAME, GROUP, Gateway, GatewayClass, Listener, RouteGroupKind};
use crate::status::{
    ACCEPTED, CONFLICTED, ListenerStatus, ObjectStatus, RESOLVED_REFS, condition, summarize,
};
use base64::Engine;
use frontdesk_snapshot::{
    Certificate, Listener as SnapListener, ListenerProtocol, Secret as SnapSecret, SourceRef,
};

/// The Secret type a certificate reference must name.
pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

/// The listeners of every gateway group, and the status of every Gateway and GatewayClass of
/// frontdesk's.
#[derive(Debug, Default)]
pub struct CompiledGateways {
    /// By gateway group: the listeners to serve, in Gateway then listener order.
    pub listeners: BTreeMap<String, Vec<SnapListener>>,
    /// By gateway group: the Gateways it was compiled from.
    pub sources: BTreeMap<String, Vec<SourceRef>>,
    pub statuses: Vec<ObjectStatus>,
    /// The Gateways that Routes and Aggregates attach to.
    pub parents: attach::Parents,
}

/// The gateway group a Gateway's listeners go to (see the module docs).
pub fn group_of(gateway: &Gateway) -> String {
    gateway.metadata.name.clone().unwrap_or_default()
}

/// Whether `gateway` is frontdesk's, given the classes known.
pub fn is_ours(gateway: &Gateway, classes: &[GatewayClass], class_optional: bool) -> bool {
    let wanted = gateway.spec.gateway_class_name.as_str();
    match classes
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(wanted))
    {
        Some(class) => class.spec.controller_name == CONTROLLER_NAME,
        None => class_optional,
    }
}

/// The Secrets a Gateway's listeners name, as `(namespace, name)`: what a source that fetches
/// Secrets by reference (the controller's Secret watches) must fetch for it.
pub fn certificate_secret_refs(gateway: &Gateway) -> BTreeSet<(String, String)> {
    let namespace = gateway.metadata.namespace.as_deref().unwrap_or("default");
    let mut refs: BTreeSet<(String, String)> = gateway
        .spec
        .listeners
        .iter()
        .filter_map(|l| l.tls.as_ref())
        .flat_map(|tls| &tls.certificate_refs)
        .filter(|r| is_secret_ref(r.group.as_deref(), r.kind.as_deref()))
        .map(|r| {
            (
                r.namespace.clone().unwrap_or_else(|| namespace.to_string()),
                r.name.clone(),
            )
        })
        .collect();
    refs.extend(ca_refs(gateway, "Secret"));
    refs
}

/// The ConfigMaps a Gateway's client certificate validation names, as `(namespace, name)`.
pub fn ca_config_map_refs(gateway: &Gateway) -> BTreeSet<(String, String)> {
    ca_refs(gateway, "ConfigMap").collect()
}

/// The `kind` objects (core group) named by any client validation of the Gateway.
fn ca_refs<'a>(gateway: &'a Gateway, kind: &'a str) -> impl Iterator<Item = (String, String)> + 'a {
    let namespace = gateway.metadata.namespace.as_deref().unwrap_or("default");
    let frontend = gateway.spec.tls.as_ref().and_then(|t| t.frontend.as_ref());
    let validations = frontend
        .and_then(|f| f.default.as_ref())
        .and_then(|d| d.validation.as_ref())
        .into_iter()
        .chain(
            frontend
                .into_iter()
                .flat_map(|f| f.per_port.iter())
                .filter_map(|p| p.tls.validation.as_ref()),
        )
        .chain(
            gateway
                .spec
                .listeners
                .iter()
                .filter_map(|l| l.tls.as_ref()?.frontend_validation.as_ref()),
        );
    validations
        .flat_map(|v| &v.ca_certificate_refs)
        .filter(move |r| r.group.is_empty() && r.kind == kind)
        .map(move |r| {
            (
                r.namespace.clone().unwrap_or_else(|| namespace.to_string()),
                r.name.clone(),
            )
        })
}

fn is_secret_ref(group: Option<&str>, kind: Option<&str>) -> bool {
    group.unwrap_or_default().is_empty() && kind.unwrap_or("Secret") == "Secret"
}

/// Compiles every Gateway of frontdesk's classes. Never fails: problems end up in statuses.
pub fn compile_gateways(resources: &Resources) -> CompiledGateways {
    let mut out = CompiledGateways {
        parents: attach::Parents::new(&resources.namespaces),
        ..Default::default()
    };
    out.parents.implicit_groups = resources.gateway_class_optional;
    for class in &resources.gateway_classes {
        if class.spec.controller_name != CONTROLLER_NAME {
            continue;
        }
        let name = class.metadata.name.clone().unwrap_or_default();
        let generation = class.metadata.generation.unwrap_or(0);
        let mut st = ObjectStatus::new("GatewayClass", "", &name, generation);
        st.conditions.push(condition(
            ACCEPTED,
            true,
            "Accepted",
            format!("frontdesk implements {CONTROLLER_NAME}"),
        ));
        out.statuses.push(st);
    }

    let mut gateways: Vec<&Gateway> = resources
        .gateways
        .iter()
        .filter(|g| {
            is_ours(
                g,
                &resources.gateway_classes,
                resources.gateway_class_optional,
            )
        })
        .collect();
    // The oldest Gateway keeps a contested port or name.
    oldest_first(&mut gateways);
    let secrets = SecretIndex::new(&resources.secrets);
    let mut claims: BTreeMap<String, Claims> = BTreeMap::new();
    // Which namespace holds each name: the oldest Gateway's.
    let mut names_held: BTreeMap<&str, &str> = BTreeMap::new();
    for gateway in gateways {
        let namespace = gateway.metadata.namespace.as_deref().unwrap_or("default");
        let name = gateway.metadata.name.as_deref().unwrap_or_default();
        let generation = gateway.metadata.generation.unwrap_or(0);
        let held = *names_held.entry(name).or_insert(namespace);
        if held != namespace {
            // Proxies subscribe by name: two namespaces' Gateways of one name would share
            // proxies, routes and credentials. The younger one is not served.
            let mut st = ObjectStatus::new("Gateway", namespace, name, generation);
            st.conditions.push(condition(
                ACCEPTED,
                false,
                NAME_CONFLICT,
                format!(
                    "Gateway {held}/{name} is older and has this name; frontdesk serves one Gateway \
                     per name (proxies subscribe by name): rename this one"
                ),
            ));
            out.statuses.push(st);
            continue;
        }
        let group = group_of(gateway);
        let claims = claims.entry(group.clone()).or_default();
        let served = out.listeners.entry(group.clone()).or_default();
        out.sources
            .entry(group.clone())
            .or_default()
            .push(SourceRef {
                kind: "Gateway".into(),
                namespace: namespace.into(),
                name: name.into(),
                generation,
            });
        let mut st = ObjectStatus::new("Gateway", namespace, name, generation);
        let mut names = BTreeSet::new();
        let mut admitting = Vec::new();
        let ctx = |i: usize| Ctx {
            namespace,
            field: format!("spec.listeners[{i}]"),
            secrets: &secrets,
            config_maps: &resources.config_maps,
            grants: &resources.reference_grants,
            frontend: gateway.spec.tls.as_ref().and_then(|t| t.frontend.as_ref()),
        };
        let mut checked: Vec<Checked> = Vec::new();
        for (i, spec) in gateway.spec.listeners.iter().enumerate() {
            let mut listener = ctx(i).listener(spec);
            if listener.accepted.is_ok() && !names.insert(spec.name.as_str()) {
                listener.accepted = Err((
                    "UnsupportedValue",
                    Diagnostic::new(
                        format!("spec.listeners[{i}].name"),
                        format!("listener name {:?} is used twice", spec.name),
                    ),
                ));
            }
            checked.push(listener);
        }
        // The Gateway's own settings (HTTPS redirect, HSTS), before ports are claimed: listeners
        // sharing a port must agree on them.
        let settings = https::apply(
            gateway,
            checked
                .iter_mut()
                .filter_map(|c| c.accepted.as_mut().ok())
                .collect(),
        );
        for (i, (spec, listener)) in gateway.spec.listeners.iter().zip(checked).enumerate() {
            let field = format!("spec.listeners[{i}]");
            let conflict = match &listener.accepted {
                Ok(l) => claim(claims, l),
                Err(_) => None,
            };
            let status = listener_status(spec, &field, &listener, &conflict);
            admitting.push(conflict.is_none() && listener.accepted.is_ok());
            // An HTTPS listener none of whose certificates resolves still goes to the proxies,
            // without certificates: a port that serves keeps the ones it has (item 5 of the
            // Gateways issue: never plaintext, never closed by a lost Secret); status says it
            // is not served with new ones.
            if conflict.is_none()
                && let Ok(mut l) = listener.accepted
            {
                l.name = format!("{namespace}/{name}/{}", spec.name);
                served.push(l);
            }
            st.listeners.push(status);
        }
        out.parents.add(&group, gateway, &admitting);
        gateway_conditions(&mut st);
        st.diagnostics.extend(settings);
        out.statuses.push(st);
    }
    out.listeners.retain(|_, l| !l.is_empty());
    out
}

/// Sorts Gateways oldest first (RFC 3339 in UTC sorts as time; none: last), then by namespace
/// and name.
fn oldest_first(gateways: &mut [&Gateway]) {
    gateways.sort_by_key(|g| {
        let created = g
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string());
        (
            created.is_none(),
            created,
            g.metadata.namespace.clone(),
            g.metadata.name.clone(),
        )
    });
}

/// The Gateways among `gateways` (all frontdesk's) that are not served because an older one of
/// another namespace has their name ([`NAME_CONFLICT`]), as `(namespace, name)`: provisioning
/// leaves them out too, so no namespace gets proxies or credentials for another's gateway.
pub fn younger_namesakes(gateways: &[&Gateway]) -> BTreeSet<(String, String)> {
    let mut sorted = gateways.to_vec();
    oldest_first(&mut sorted);
    let mut held: BTreeMap<&str, &str> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for g in sorted {
        let namespace = g.metadata.namespace.as_deref().unwrap_or("default");
        let name = g.metadata.name.as_deref().unwrap_or_default();
        if *held.entry(name).or_insert(namespace) != namespace {
            out.insert((namespace.to_string(), name.to_string()));
        }
    }
    out
}

/// The reason of `Accepted=False` for a Gateway whose name an older Gateway of another
/// namespace holds.
pub const NAME_CONFLICT: &str = "NameConflict";

/// One port of a gateway group, as its first listener took it: the protocol, what serves on it
/// the same way for every listener (client validation, HTTPS redirect, HSTS), and the
/// hostnames taken.
struct PortClaim {
    protocol: ListenerProtocol,
    settings: PortSettings,
    hosts: BTreeSet<Option<String>>,
}

/// What one port applies to every connection and request, whichever listener's hostname they
/// are for: listeners sharing a port must agree on it.
#[derive(PartialEq)]
struct PortSettings {
    client_validation: Option<frontdesk_snapshot::ClientValidation>,
    redirect_to_https_port: Option<u16>,
    hsts: Option<String>,
}

impl PortSettings {
    fn of(l: &SnapListener) -> Self {
        PortSettings {
            client_validation: l.client_validation.clone(),
            redirect_to_https_port: l.redirect_to_https_port,
            hsts: l.hsts.clone(),
        }
    }
}

/// By gateway group: port → its claim.
type Claims = BTreeMap<u16, PortClaim>;

/// Takes `listener`'s port and hostname in its group, or says why it cannot:
/// `(reason, message)` for `Conflicted=True`.
fn claim(
    claims: &mut BTreeMap<u16, PortClaim>,
    listener: &SnapListener,
) -> Option<(&'static str, String)> {
    let PortClaim {
        protocol,
        settings,
        hosts,
    } = claims.entry(listener.port).or_insert_with(|| PortClaim {
        protocol: listener.protocol,
        settings: PortSettings::of(listener),
        hosts: BTreeSet::new(),
    });
    if *settings != PortSettings::of(listener) {
        return Some((
            "ProtocolConflict",
            format!(
                "port {} is already served by an older listener with other client certificate \
                 validation or HTTPS settings (redirect, HSTS); a port's listeners must agree",
                listener.port
            ),
        ));
    }
    if *protocol != listener.protocol {
        return Some((
            "ProtocolConflict",
            format!(
                "port {} is already served as {} by an older listener",
                listener.port,
                protocol_name(*protocol)
            ),
        ));
    }
    if !hosts.insert(listener.hostname.clone()) {
        let host = listener.hostname.as_deref().unwrap_or("any hostname");
        return Some((
            "HostnameConflict",
            format!(
                "port {} with {host} is already served by an older listener",
                listener.port
            ),
        ));
    }
    None
}

fn protocol_name(p: ListenerProtocol) -> &'static str {
    match p {
        ListenerProtocol::Http => "HTTP",
        ListenerProtocol::Https => "HTTPS",
    }
}

/// One listener, checked.
struct Checked {
    /// The listener with the certificates that resolved, or why it is not accepted: the
    /// reason for `Accepted=False` and the problem.
    accepted: Result<SnapListener, (&'static str, Diagnostic)>,
    /// Certificate references that did not resolve: the reason for `ResolvedRefs=False` and
    /// the problems.
    unresolved: Option<(&'static str, Vec<Diagnostic>)>,
}

/// The route kinds frontdesk serves, as `(group, kind)`.
pub const SERVED_KINDS: [(&str, &str); 4] = [
    (GROUP, "HTTPRoute"),
    (GROUP, "GRPCRoute"),
    (attach::ROUTE_GROUP, "Route"),
    (attach::ROUTE_GROUP, "Aggregate"),
];

/// The kinds a listener takes (`allowedRoutes.kinds` that frontdesk serves, or all of them when
/// it lists none), and the problems of the kinds it does not serve.
fn route_kinds(spec: &Listener, field: &str) -> (Vec<RouteGroupKind>, Vec<Diagnostic>) {
    let listed = spec
        .allowed_routes
        .as_ref()
        .map_or(&[][..], |a| &a.kinds[..]);
    if listed.is_empty() {
        let all = SERVED_KINDS.iter().map(|(group, kind)| RouteGroupKind {
            group: Some(group.to_string()),
            kind: kind.to_string(),
        });
        return (all.collect(), Vec::new());
    }
    let mut supported = Vec::new();
    let mut invalid = Vec::new();
    for (i, k) in listed.iter().enumerate() {
        let group = k.group.as_deref().unwrap_or(GROUP);
        if SERVED_KINDS.contains(&(group, k.kind.as_str())) {
            supported.push(RouteGroupKind {
                group: Some(group.to_string()),
                kind: k.kind.clone(),
            });
        } else {
            invalid.push(Diagnostic::new(
                format!("{field}.allowedRoutes.kinds[{i}]"),
                format!(
                    "{group}/{} is not a route kind frontdesk serves (HTTPRoute, GRPCRoute, Route, Aggregate)",
                    k.kind
                ),
            ));
        }
    }
    (supported, invalid)
}

fn listener_status(
    spec: &Listener,
    field: &str,
    checked: &Checked,
    conflict: &Option<(&'static str, String)>,
) -> ListenerStatus {
    let mut conditions = Vec::new();
    let mut diagnostics = Vec::new();
    let (supported_kinds, invalid_kinds) = route_kinds(spec, field);
    match &checked.accepted {
        Ok(_) => conditions.push(condition(
            ACCEPTED,
            true,
            "Accepted",
            "the listener is valid".into(),
        )),
        Err((reason, d)) => {
            conditions.push(condition(ACCEPTED, false, reason, d.to_string()));
            diagnostics.push(d.clone());
        }
    }
    match &checked.unresolved {
        None if invalid_kinds.is_empty() => conditions.push(condition(
            RESOLVED_REFS,
            true,
            "ResolvedRefs",
            "every reference was found".into(),
        )),
        None => {
            let why = summarize(&invalid_kinds);
            conditions.push(condition(RESOLVED_REFS, false, "InvalidRouteKinds", why));
            diagnostics.extend(invalid_kinds);
        }
        Some((reason, ds)) => {
            let mut all = ds.clone();
            all.extend(invalid_kinds);
            conditions.push(condition(RESOLVED_REFS, false, reason, summarize(&all)));
            diagnostics.extend(all);
        }
    }
    match conflict {
        None => conditions.push(condition(
            CONFLICTED,
            false,
            "NoConflicts",
            "no other listener serves this port and hostname".into(),
        )),
        Some((reason, message)) => {
            conditions.push(condition(CONFLICTED, true, reason, message.clone()));
            diagnostics.push(Diagnostic::new(format!("{field}.port"), message.clone()));
        }
    }
    let served = conflict.is_none()
        && checked
            .accepted
            .as_ref()
            .is_ok_and(|l| l.protocol == ListenerProtocol::Http || !l.certificates.is_empty());
    ListenerStatus {
        name: spec.name.clone(),
        conditions,
        diagnostics,
        served,
        attached_routes: 0,
        supported_kinds,
    }
}

/// The Gateway's own `Accepted`: True while any listener serves (reason `ListenersNotValid`
/// when some do not), False when none does.
fn gateway_conditions(st: &mut ObjectStatus) {
    let not_served: Vec<&ListenerStatus> = st.listeners.iter().filter(|l| !l.served).collect();
    let why = |l: &&ListenerStatus| {
        // The first condition that went wrong: Accepted or ResolvedRefs False, Conflicted True.
        let failed = l
            .conditions
            .iter()
            .find(|c| c.status == (c.type_ == CONFLICTED));
        let reason = failed.map_or("", |c| c.reason.as_str());
        format!("{} ({reason})", l.name)
    };
    let accepted = if not_served.is_empty() {
        condition(ACCEPTED, true, "Accepted", "every listener is valid".into())
    } else {
        let list = not_served.iter().map(why).collect::<Vec<_>>().join(", ");
        let all = not_served.len() == st.listeners.len();
        condition(
            ACCEPTED,
            !all,
            "ListenersNotValid",
            format!("listeners not served: {list}"),
        )
    };
    st.conditions.push(accepted);
    st.diagnostics = st
        .listeners
        .iter()
        .flat_map(|l| l.diagnostics.iter().cloned())
        .collect();
}

/// Whether a Gateway of namespace `from` may refer to the core `kind` object
/// `namespace/name`: one of its own namespace, or one a ReferenceGrant in `namespace` allows.
/// The controller watches only what this allows; the compiler refuses the rest.
pub fn may_refer<'a>(
    grants: impl IntoIterator<Item = &'a crate::gateway_api::ReferenceGrant>,
    from: &str,
    namespace: &str,
    kind: &str,
    name: &str,
) -> bool {
    namespace == from
        || grants
            .into_iter()
            .filter(|g| g.metadata.namespace.as_deref().unwrap_or("default") == namespace)
            .any(|g| g.permits((GROUP, "Gateway", from), ("", kind, name)))
}

struct Ctx<'a> {
    /// The Gateway's namespace.
    namespace: &'a str,
    /// `spec.listeners[i]`.
    field: String,
    secrets: &'a SecretIndex<'a>,
    config_maps: &'a [k8s_openapi::api::core::v1::ConfigMap],
    grants: &'a [crate::gateway_api::ReferenceGrant],
    /// The Gateway's `spec.tls.frontend` (client certificate validation).
    frontend: Option<&'a crate::gateway_api::FrontendTls>,
}

impl Ctx<'_> {
    /// [`may_refer`] for this Gateway, else `RefNotPermitted` with the message.
    fn may_refer(
        &self,
        namespace: &str,
        kind: &str,
        name: &str,
    ) -> Result<(), (&'static str, String)> {
        if may_refer(self.grants, self.namespace, namespace, kind, name) {
            return Ok(());
        }
        Err((
            "RefNotPermitted",
            format!(
                "{kind} {namespace}/{name} is in another namespace and no ReferenceGrant in \
                 {namespace} lets Gateways of {} refer to it",
                self.namespace
            ),
        ))
    }

    fn listener(&self, spec: &Listener) -> Checked {
        let invalid = |reason, field: &str, message: String| Checked {
            accepted: Err((
                reason,
                Diagnostic::new(format!("{}{field}", self.field), message),
            )),
            unresolved: None,
        };
        let protocol = match spec.protocol.as_str() {
            "HTTP" => ListenerProtocol::Http,
            "HTTPS" => ListenerProtocol::Https,
            other => {
                return invalid(
                    "UnsupportedProtocol",
                    ".protocol",
                    format!("{other} is not served by frontdesk; use HTTP or HTTPS"),
                );
            }
        };
        let Some(port) = u16::try_from(spec.port).ok().filter(|p| *p != 0) else {
            return invalid(
                "UnsupportedValue",
                ".port",
                format!("{} is not a port (1-65535)", spec.port),
            );
        };
        let hostname = match spec.hostname.as_deref().map(check_hostname).transpose() {
            Ok(h) => h,
            Err(why) => return invalid("UnsupportedValue", ".hostname", why),
        };
        let mut listener = SnapListener {
            name: spec.name.clone(),
            port,
            protocol,
            hostname,
            certificates: Vec::new(),
            client_validation: None,
            redirect_to_https_port: None,
            hsts: None,
        };
        if protocol == ListenerProtocol::Http {
            // Upstream validation refuses `tls` on HTTP; a file may still carry it: unused.
            return Checked {
                accepted: Ok(listener),
                unresolved: None,
            };
        }
        let tls = spec.tls.as_ref();
        let mode = tls.and_then(|t| t.mode.as_deref()).unwrap_or("Terminate");
        if mode != "Terminate" {
            return invalid(
                "UnsupportedValue",
                ".tls.mode",
                format!("{mode} is not supported on HTTPS: frontdesk terminates TLS (Terminate)"),
            );
        }
        let refs = tls
            .map(|t| t.certificate_refs.as_slice())
            .unwrap_or_default();
        let mut problems = Diagnostics::default();
        let mut reason = None;
        if refs.is_empty() {
            problems.push(
                format!("{}.tls.certificateRefs", self.field),
                "an HTTPS listener needs at least one certificate Secret",
            );
            reason = Some("InvalidCertificateRef");
        }
        for (j, r) in refs.iter().enumerate() {
            let field = format!("{}.tls.certificateRefs[{j}]", self.field);
            match self.certificate(r) {
                Ok(c) => listener.certificates.push(c),
                Err((why, message)) => {
                    // The Gateway API reports one reason: the first problem's.
                    reason.get_or_insert(why);
                    problems.push(field, message);
                }
            }
        }
        match self.client_validation(spec, port) {
            Ok(resolved) => {
                listener.client_validation = resolved.validation;
                if let Some(why) = resolved.unresolved {
                    reason.get_or_insert(why);
                }
                problems.0.extend(resolved.problems.0);
            }
            Err((field, message)) => {
                return Checked {
                    accepted: Err(("UnsupportedValue", Diagnostic::new(field, message))),
                    unresolved: None,
                };
            }
        }
        Checked {
            accepted: Ok(listener),
            unresolved: reason.map(|r| (r, problems.0)),
        }
    }

    /// The certificate `r` names, or `(reason, message)`.
    fn certificate(
        &self,
        r: &crate::gateway_api::SecretObjectReference,
    ) -> Result<Certificate, (&'static str, String)> {
        let invalid = |m: String| ("InvalidCertificateRef", m);
        if !is_secret_ref(r.group.as_deref(), r.kind.as_deref()) {
            return Err(invalid(format!(
                "{}/{} {} is not a Secret: only core Secrets (group \"\", kind Secret) hold certificates",
                r.group.as_deref().unwrap_or(""),
                r.kind.as_deref().unwrap_or("Secret"),
                r.name
            )));
        }
        let namespace = r.namespace.as_deref().unwrap_or(self.namespace);
        let id = format!("{namespace}/{}", r.name);
        self.may_refer(namespace, "Secret", &r.name)?;
        let secret = self
            .secrets
            .get(namespace, &r.name)
            .ok_or_else(|| invalid(format!("Secret {id} not found")))?;
        let type_ = secret.type_.as_deref().unwrap_or("Opaque");
        if type_ != TLS_SECRET_TYPE {
            return Err(invalid(format!(
                "Secret {id} is of type {type_}, not {TLS_SECRET_TYPE}"
            )));
        }
        let value = |key: &str| {
            let bytes = secret_value(secret, key)
                .ok_or_else(|| invalid(format!("Secret {id} has no {key}")))?;
            String::from_utf8(bytes)
                .map_err(|_| invalid(format!("Secret {id}: {key} is not PEM (not text)")))
        };
        let chain = value("tls.crt")?;
        let key = value("tls.key")?;
        check_chain(&chain).map_err(|why| invalid(format!("Secret {id}: tls.crt {why}")))?;
        check_key(&key).map_err(|why| invalid(format!("Secret {id}: tls.key {why}")))?;
        // As the proxy will load it: a certificate that does not parse, outside its validity,
        // or whose key does not match, is refused here with the reason.
        crate::certificate::load(&chain, &key)
            .map_err(|why| invalid(format!("Secret {id}: {why}")))?;
        Ok(Certificate {
            source: id,
            chain,
            key: SnapSecret::new(key),
        })
    }
}

/// The listener hostname, lower-cased, if it is a DNS name with at most one leading `*.`
/// label (no IP address, no port), as the Gateway API allows.
fn check_hostname(host: &str) -> Result<String, String> {
    let lower = host.to_ascii_lowercase();
    let name = lower.strip_prefix("*.").unwrap_or(&lower);
    let labels_ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if !labels_ok {
        return Err(format!(
            "{host:?} is not a hostname: DNS labels, optionally after one leading \"*.\""
        ));
    }
    if name
        .split('.')
        .all(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!(
            "{host:?} is an IP address; a listener hostname is a DNS name"
        ));
    }
    Ok(lower)
}

/// The PEM blocks of `text`: `(label, decoded body)`, or why it is not PEM.
fn pem_blocks(text: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut blocks = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        loop {
            match lines.next() {
                Some(l) if l == end => break,
                Some(l) => body.push_str(l),
                None => return Err(format!("is not PEM: {label} has no END line")),
            }
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(&body)
            .map_err(|_| format!("is not PEM: the {label} block is not base64"))?;
        if der.is_empty() {
            return Err(format!("is not PEM: the {label} block is empty"));
        }
        blocks.push((label.to_string(), der));
    }
    Ok(blocks)
}

/// A light shape check; the proxy parses the certificates and matches the key.
fn check_chain(pem: &str) -> Result<(), String> {
    let blocks = pem_blocks(pem)?;
    if !blocks.iter().any(|(label, _)| label == "CERTIFICATE") {
        return Err("is not PEM: it has no CERTIFICATE block".into());
    }
    if blocks
        .iter()
        .any(|(label, _)| label.contains("PRIVATE KEY"))
    {
        return Err("holds a private key; keys belong in tls.key".into());
    }
    Ok(())
}

fn check_key(pem: &str) -> Result<(), String> {
    let blocks = pem_blocks(pem)?;
    let keys: Vec<&str> = blocks
        .iter()
        .map(|(label, _)| label.as_str())
        .filter(|l| l.contains("PRIVATE KEY"))
        .collect();
    match keys.as_slice() {
        ["PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY"] => Ok(()),
        ["ENCRYPTED PRIVATE KEY"] => Err("is encrypted; the key must be unencrypted".into()),
        [] => {
            Err("is not PEM: it has no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block".into())
        }
        [other] => Err(format!("is a {other}, which is not supported")),
        _ => Err("holds several private keys; put one per Secret".into()),
    }
}

pub mod attach;
pub mod client_validation;
pub mod https;
pub mod parent_refs;
#[cfg(test)]
mod tests;
