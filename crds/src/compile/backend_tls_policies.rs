//! Gateway API BackendTLSPolicies: which policy speaks for which Service port, the
//! [`snap::BackendTls`] it lowers to, and each policy's conditions.
//!
//! - A policy targets Services (group `""`, kind `Service`) of its own namespace, or one port
//!   of one (`sectionName`, the port's name). Targets of other kinds are left to other
//!   implementations.
//! - For a backend reference to a Service port without a `tls` of its own (which wins), the
//!   policy naming that port applies, else the one naming the whole Service.
//! - Two policies for one target: the older (creation time, then namespace and name) keeps it;
//!   the other is `Accepted=False`, reason `Conflicted`, and applies to the targets it does
//!   hold.
//! - A policy frontdesk cannot apply (an invalid field, a CA reference that does not resolve,
//!   `subjectAltNames`, which this version does not verify) still holds its targets: their
//!   backends get no endpoints (503) and the Routes `ResolvedRefs=False`, so a backend meant
//!   to be reached over TLS is never reached in plaintext.
//!
//! The status lists, as ancestors, the Gateways of the Routes and Aggregates whose backends
//! name a Service the policy names (held or not, so a conflict or a missing port is seen
//! where it matters); a Route on a gateway without a Gateway object is its own ancestor.

use std::collections::{BTreeMap, BTreeSet};

use frontdesk_snapshot as snap;

use super::lower::ResolveService;
use crate::diagnostic::Diagnostics;
use crate::gateway_api::BackendTLSPolicy;
use crate::gateway_api::backend_tls_policy::AncestorReference;
use crate::route::{BackendTlsSpec, LocalCaReference};
use crate::status::{ACCEPTED, ObjectStatus, RESOLVED_REFS, condition, summarize};

/// A policy's kind, as statuses name it.
pub const KIND: &str = "BackendTLSPolicy";

/// `(namespace, Service, port name)`; no port name: the whole Service.
type Target = (String, String, Option<String>);
/// `(namespace, name)` of a policy.
type PolicyKey = (String, String);

/// Every policy, resolved.
#[derive(Debug, Default)]
pub struct BackendTlsPolicies {
    /// Who holds each target.
    holders: BTreeMap<Target, PolicyKey>,
    /// By target: every policy naming it, holding or not (for ancestors: a policy that lost
    /// or whose Service is gone still tells the Routes' Gateways why).
    named_by: BTreeMap<Target, BTreeSet<PolicyKey>>,
    /// What each holding policy lowered to, or why it cannot be applied.
    lowered: BTreeMap<PolicyKey, Result<snap::BackendTls, String>>,
    /// One per policy, without ancestors yet ([`BackendTlsPolicies::statuses`]).
    statuses: BTreeMap<PolicyKey, ObjectStatus>,
}

impl BackendTlsPolicies {
    /// Resolves `policies`; `refs` finds CA bundles, `service_exists` the targets.
    pub fn new(
        policies: &[BackendTLSPolicy],
        refs: &dyn ResolveService,
        service_exists: &dyn Fn(&str, &str) -> bool,
    ) -> Self {
        let mut ordered: Vec<&BackendTLSPolicy> = policies.iter().collect();
        // No creation time (manifest files) sorts after any, as for hosts.
        ordered.sort_by_key(|p| {
            let created = p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            (created.is_none(), created, super::object_id(&p.metadata))
        });
        let mut out = BackendTlsPolicies::default();
        for policy in ordered {
            out.add(policy, refs, service_exists);
        }
        out
    }

    fn add(
        &mut self,
        policy: &BackendTLSPolicy,
        refs: &dyn ResolveService,
        service_exists: &dyn Fn(&str, &str) -> bool,
    ) {
        let key = super::object_id(&policy.metadata);
        let (namespace, name) = &key;
        let mut st = ObjectStatus::new(
            KIND,
            namespace,
            name,
            policy.metadata.generation.unwrap_or(0),
        );
        let targets: Vec<Target> = policy
            .spec
            .target_refs
            .iter()
            .filter(|t| t.group.is_empty() && t.kind == "Service")
            .map(|t| (namespace.clone(), t.name.clone(), t.section_name.clone()))
            .collect();
        for t in &targets {
            self.named_by
                .entry(t.clone())
                .or_default()
                .insert(key.clone());
        }
        if !targets.iter().any(|(ns, svc, _)| service_exists(ns, svc)) {
            st.conditions.push(condition(
                ACCEPTED,
                false,
                "TargetNotFound",
                "no Service it targets exists in its namespace".into(),
            ));
            self.statuses.insert(key, st);
            return;
        }
        // Targets are held one by one: an older policy keeps the ones it holds, this one
        // takes the others.
        let mut lost = Vec::new();
        for t in targets {
            match self.holders.get(&t) {
                // A target listed twice is held once.
                Some(holder) if *holder == key => {}
                Some(holder) => {
                    let what = match &t.2 {
                        Some(port) => format!("port {port} of Service {}", t.1),
                        None => format!("Service {}", t.1),
                    };
                    lost.push(format!(
                        "{what} already has the older BackendTLSPolicy {}/{}",
                        holder.0, holder.1
                    ));
                }
                None => {
                    self.holders.insert(t, key.clone());
                }
            }
        }
        let (lowered, mut conditions) = lower(policy, namespace, refs);
        if !lost.is_empty() {
            let lost = lost.join("; ");
            if lowered.is_ok() {
                let holds = if self.holders.values().any(|h| *h == key) {
                    "; it applies to its other targets"
                } else {
                    ""
                };
                conditions[0] = condition(ACCEPTED, false, "Conflicted", format!("{lost}{holds}"));
            } else {
                // Why it cannot be applied comes first; the conflict is said too.
                conditions[0].message = format!("{}; also, {lost}", conditions[0].message);
            }
        }
        st.conditions = conditions;
        let lowered = lowered.map_err(|why| {
            format!("BackendTLSPolicy {namespace}/{name} cannot be applied ({why}); the backend is not reached in plaintext")
        });
        self.lowered.insert(key.clone(), lowered);
        self.statuses.insert(key, st);
    }

    /// The policy for port `port_name` of Service `namespace/service` (`None`: the Service or
    /// its port is unknown): `Some(Ok)` to speak TLS as it says, `Some(Err(why))` when it
    /// cannot be applied, `None` when no policy holds it.
    pub fn lookup(
        &self,
        namespace: &str,
        service: &str,
        port_name: Option<&str>,
    ) -> Option<&Result<snap::BackendTls, String>> {
        let named = port_name.and_then(|p| {
            self.holders
                .get(&(namespace.into(), service.into(), Some(p.into())))
        });
        let holder =
            named.or_else(|| self.holders.get(&(namespace.into(), service.into(), None)))?;
        self.lowered.get(holder)
    }

    /// Every policy that names port `port_name` of Service `namespace/service` or the whole
    /// Service, holding it or not; with the port unknown (no such Service or port), every
    /// policy naming the Service.
    pub fn naming<'a>(
        &'a self,
        namespace: &'a str,
        service: &'a str,
        port_name: Option<&'a str>,
    ) -> impl Iterator<Item = &'a PolicyKey> + 'a {
        self.named_by
            .iter()
            .filter(move |((ns, svc, section), _)| {
                ns == namespace
                    && svc == service
                    && (section.is_none() || port_name.is_none() || section.as_deref() == port_name)
            })
            .flat_map(|(_, keys)| keys)
    }

    /// The statuses, each with the ancestors its policy took effect through (`ancestors`, by
    /// policy).
    pub fn statuses(
        self,
        mut ancestors: BTreeMap<PolicyKey, BTreeSet<AncestorReference>>,
    ) -> impl Iterator<Item = ObjectStatus> {
        self.statuses.into_iter().map(move |(key, mut st)| {
            // The Gateway API keeps at most 16 ancestors per policy.
            st.ancestors = ancestors
                .remove(&key)
                .unwrap_or_default()
                .into_iter()
                .take(16)
                .collect();
            st
        })
    }
}

/// A holding policy's TLS and its conditions (Accepted, ResolvedRefs).
fn lower(
    policy: &BackendTLSPolicy,
    namespace: &str,
    refs: &dyn ResolveService,
) -> (
    Result<snap::BackendTls, String>,
    Vec<crate::status::Condition>,
) {
    let v = &policy.spec.validation;
    let mut invalid = Diagnostics::default();
    let mut unresolved = Diagnostics::default();
    let mut wrong_kind = Diagnostics::default();
    if !v.subject_alt_names.is_empty() {
        invalid.push(
            "spec.validation.subjectAltNames",
            "this version of frontdesk does not verify subjectAltNames: remove them to verify hostname",
        );
    }
    if !policy.spec.options.is_empty() {
        let keys: Vec<&str> = policy.spec.options.keys().map(String::as_str).collect();
        invalid.push(
            "spec.options",
            format!("frontdesk reads no options (found {})", keys.join(", ")),
        );
    }
    match (
        &v.well_known_ca_certificates,
        v.ca_certificate_refs.is_empty(),
    ) {
        (None, true) => invalid.push(
            "spec.validation",
            "set caCertificateRefs or wellKnownCACertificates: System",
        ),
        (Some(_), false) => invalid.push(
            "spec.validation",
            "set caCertificateRefs or wellKnownCACertificates, not both",
        ),
        (Some(w), true) if w != "System" => invalid.push(
            "spec.validation.wellKnownCACertificates",
            format!("{w:?} is not System"),
        ),
        _ => {}
    }
    if v.hostname.parse::<std::net::IpAddr>().is_ok() {
        invalid.push(
            "spec.validation.hostname",
            "must be a DNS name, not an IP address (as the Gateway API's PreciseHostname)",
        );
    }
    let mut ca_refs = Vec::new();
    for (i, r) in v.ca_certificate_refs.iter().enumerate() {
        if r.group.is_empty() && matches!(r.kind.as_str(), "ConfigMap" | "Secret") {
            ca_refs.push(LocalCaReference {
                kind: Some(r.kind.clone()),
                name: r.name.clone(),
            });
        } else {
            wrong_kind.push(
                format!("spec.validation.caCertificateRefs[{i}]"),
                format!(
                    "{}/{} is not a ConfigMap or a Secret",
                    if r.group.is_empty() { "core" } else { &r.group },
                    r.kind
                ),
            );
        }
    }
    let spec = BackendTlsSpec {
        hostname: Some(v.hostname.clone()),
        ca_certificate_refs: ca_refs,
        client_certificate_ref: None,
    };
    let lowered = super::backend_tls::lower_backend_tls(
        "spec.validation",
        namespace,
        None,
        Some(&spec),
        refs,
        &mut invalid,
        &mut unresolved,
    );
    let resolved_refs = if !wrong_kind.is_empty() {
        condition(
            RESOLVED_REFS,
            false,
            "InvalidKind",
            summarize(&wrong_kind.0),
        )
    } else if !unresolved.is_empty() {
        condition(
            RESOLVED_REFS,
            false,
            "InvalidCACertificateRef",
            summarize(&unresolved.0),
        )
    } else {
        condition(
            RESOLVED_REFS,
            true,
            "ResolvedRefs",
            "every reference was found".into(),
        )
    };
    let (accepted, outcome) = if !invalid.is_empty() {
        let why = summarize(&invalid.0);
        (condition(ACCEPTED, false, "Invalid", why.clone()), Err(why))
    } else if !wrong_kind.is_empty() || !unresolved.is_empty() {
        let why = "a CA certificate reference did not resolve".to_string();
        (
            condition(ACCEPTED, false, "NoValidCACertificate", why.clone()),
            Err(why),
        )
    } else {
        match lowered {
            Ok(Some(tls)) => (
                condition(
                    ACCEPTED,
                    true,
                    "Accepted",
                    "the BackendTLSPolicy is valid".into(),
                ),
                Ok(tls),
            ),
            // Not reached: a hostname is always given to the lowering, and its failures are
            // noted in `invalid` or `unresolved`.
            _ => {
                let why = "the policy could not be lowered".to_string();
                (condition(ACCEPTED, false, "Invalid", why.clone()), Err(why))
            }
        }
    };
    (outcome, vec![accepted, resolved_refs])
}
