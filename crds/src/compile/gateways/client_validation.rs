//! Client certificate validation of HTTPS listeners (mutual TLS; the Gateway API's frontend
//! validation, GEP-91).
//!
//! Where it is read, first found wins: the Gateway's `spec.tls.frontend.perPort` entry for the
//! listener's port, `spec.tls.frontend.default`, then the listener's own
//! `tls.frontendValidation` (Gateway API v1.2 to v1.4). Each `caCertificateRefs` entry names a
//! ConfigMap (the Gateway API's Core support) or a Secret holding a PEM bundle under `ca.crt`;
//! another namespace's only through a ReferenceGrant. `mode` is `AllowValidOnly` (the default)
//! or `AllowInsecureFallback`.
//!
//! A reference that does not resolve makes `ResolvedRefs=False` with reason
//! `InvalidCACertificateRef` (or `RefNotPermitted`) on the listener, and the listener keeps
//! validating with the CAs that did resolve; with none, no client certificate is valid, so
//! `AllowValidOnly` refuses every handshake: a listener never stops validating because a
//! reference broke.

use k8s_openapi::api::core::v1::ConfigMap;

use super::{Ctx, check_chain};
use crate::compile::policy::secret_value;
use crate::diagnostic::Diagnostics;
use crate::gateway_api::{CaCertificateReference, FrontendValidation, Listener};
use frontdesk_snapshot::{CaCertificates, ClientValidation};

/// The key of a ConfigMap or Secret that holds the CA bundle.
pub const CA_KEY: &str = "ca.crt";

/// What a listener validates clients against, with the problems of its references: `Err` is
/// `(field, message)` for a setting that makes the listener invalid.
pub(super) struct Resolved {
    pub validation: Option<ClientValidation>,
    /// The reason for `ResolvedRefs=False` (the first problem's), with every problem.
    pub unresolved: Option<&'static str>,
    pub problems: Diagnostics,
}

impl<'a> Ctx<'a> {
    /// The validation `spec` (on `port`) is under, if any.
    fn validation_of<'s>(
        &self,
        spec: &'s Listener,
        port: u16,
    ) -> Option<(String, &'s FrontendValidation)>
    where
        'a: 's,
    {
        let frontend = self.frontend;
        let per_port = frontend.and_then(|f| {
            f.per_port
                .iter()
                .enumerate()
                .find(|(_, p)| p.port == i32::from(port))
        });
        if let Some((i, p)) = per_port {
            return p
                .tls
                .validation
                .as_ref()
                .map(|v| (format!("spec.tls.frontend.perPort[{i}].tls.validation"), v));
        }
        if let Some(v) = frontend
            .and_then(|f| f.default.as_ref())
            .and_then(|d| d.validation.as_ref())
        {
            return Some(("spec.tls.frontend.default.validation".into(), v));
        }
        let own = spec
            .tls
            .as_ref()
            .and_then(|t| t.frontend_validation.as_ref())?;
        Some((format!("{}.tls.frontendValidation", self.field), own))
    }

    /// Resolves the client validation of HTTPS listener `spec` on `port`.
    pub(super) fn client_validation(
        &self,
        spec: &Listener,
        port: u16,
    ) -> Result<Resolved, (String, String)> {
        let mut out = Resolved {
            validation: None,
            unresolved: None,
            problems: Diagnostics::default(),
        };
        let Some((field, v)) = self.validation_of(spec, port) else {
            return Ok(out);
        };
        let optional = match v.mode.as_deref() {
            None | Some("AllowValidOnly") => false,
            Some("AllowInsecureFallback") => true,
            Some(other) => {
                return Err((
                    format!("{field}.mode"),
                    format!("{other} is not a mode: AllowValidOnly or AllowInsecureFallback"),
                ));
            }
        };
        if v.ca_certificate_refs.is_empty() {
            out.unresolved = Some("InvalidCACertificateRef");
            out.problems.push(
                format!("{field}.caCertificateRefs"),
                "client validation needs at least one CA certificate reference",
            );
        }
        let mut ca_certificates = Vec::new();
        for (j, r) in v.ca_certificate_refs.iter().enumerate() {
            match self.ca_certificates(r) {
                Ok(ca) => ca_certificates.push(ca),
                Err((reason, message)) => {
                    out.unresolved.get_or_insert(reason);
                    out.problems
                        .push(format!("{field}.caCertificateRefs[{j}]"), message);
                }
            }
        }
        out.validation = Some(ClientValidation {
            ca_certificates,
            optional,
        });
        Ok(out)
    }

    /// The CA bundle `r` names, or `(reason, message)`.
    fn ca_certificates(
        &self,
        r: &CaCertificateReference,
    ) -> Result<CaCertificates, (&'static str, String)> {
        let invalid = |m: String| ("InvalidCACertificateRef", m);
        let kind = r.kind.as_str();
        if !r.group.is_empty() || !matches!(kind, "ConfigMap" | "Secret") {
            return Err(invalid(format!(
                "{}/{kind} {} is not a ConfigMap or Secret, which are what hold CA certificates",
                r.group, r.name
            )));
        }
        let namespace = r.namespace.as_deref().unwrap_or(self.namespace);
        let id = format!("{kind} {namespace}/{}", r.name);
        self.may_refer(namespace, kind, &r.name)?;
        let bytes = if kind == "ConfigMap" {
            let map = find_config_map(self.config_maps, namespace, &r.name)
                .ok_or_else(|| invalid(format!("{id} not found")))?;
            map.data
                .as_ref()
                .and_then(|d| d.get(CA_KEY))
                .map(|v| v.clone().into_bytes())
        } else {
            let secret = self
                .secrets
                .get(namespace, &r.name)
                .ok_or_else(|| invalid(format!("{id} not found")))?;
            secret_value(secret, CA_KEY)
        };
        let bytes = bytes.ok_or_else(|| invalid(format!("{id} has no {CA_KEY}")))?;
        let pem = String::from_utf8(bytes)
            .map_err(|_| invalid(format!("{id}: {CA_KEY} is not PEM (not text)")))?;
        check_chain(&pem).map_err(|why| invalid(format!("{id}: {CA_KEY} {why}")))?;
        Ok(CaCertificates { source: id, pem })
    }
}

/// The ConfigMap `namespace/name` among `maps`.
pub(crate) fn find_config_map<'a>(
    maps: &'a [ConfigMap],
    namespace: &str,
    name: &str,
) -> Option<&'a ConfigMap> {
    maps.iter().find(|m| {
        m.metadata.namespace.as_deref().unwrap_or("default") == namespace
            && m.metadata.name.as_deref() == Some(name)
    })
}
