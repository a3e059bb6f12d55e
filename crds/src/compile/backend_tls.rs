//! A backend's TLS, lowered: `https://` url backends and a backend reference's `tls` (the
//! name to verify, CA bundles from ConfigMaps or Secrets under `ca.crt`, a client certificate
//! from a `kubernetes.io/tls` Secret) become the snapshot's [`snap::BackendTls`], with the
//! PEM it needs inlined so the proxy never looks anything up.
//!
//! A reference that does not resolve leaves the Route serving (ResolvedRefs=False) and that
//! backend without endpoints (503): a backend meant to be reached over TLS is never reached
//! in plaintext.

use frontdesk_snapshot as snap;

use super::lower::ResolveService;
use super::policy::secret_value;
use crate::diagnostic::Diagnostics;
use crate::route::BackendTlsSpec;

const CA_KEY: &str = "ca.crt";

/// `Ok(None)`: plaintext. `Ok(Some)`: TLS. `Err(())`: TLS that could not be set up (a
/// reference did not resolve: noted in `unresolved`; or a mistake: noted in `d`).
/// `https_host` is an `https://` url's host (TLS by default, verified against that name).
pub(super) fn lower_backend_tls(
    bp: &str,
    namespace: &str,
    https_host: Option<String>,
    spec: Option<&BackendTlsSpec>,
    refs: &dyn ResolveService,
    d: &mut Diagnostics,
    unresolved: &mut Diagnostics,
) -> Result<Option<snap::BackendTls>, ()> {
    let Some(spec) = spec else {
        return Ok(https_host.map(|server_name| snap::BackendTls {
            server_name,
            ca_certificates: None,
            client_certificate: None,
        }));
    };
    let p = format!("{bp}.tls");
    let Some(server_name) = spec.hostname.clone().or(https_host) else {
        d.push(
            format!("{p}.hostname"),
            "name the host the backend's certificate is for",
        );
        return Err(());
    };
    let mut failed = false;
    let mut bundle = String::new();
    for (i, r) in spec.ca_certificate_refs.iter().enumerate() {
        let field = format!("{p}.caCertificateRefs[{i}]");
        let kind = r.kind.as_deref().unwrap_or("ConfigMap");
        let pem = match kind {
            "ConfigMap" => refs
                .config_map(namespace, &r.name)
                .ok_or_else(|| format!("ConfigMap {namespace}/{} not found", r.name))
                .and_then(|m| {
                    m.data
                        .as_ref()
                        .and_then(|d| d.get(CA_KEY))
                        .cloned()
                        .ok_or_else(|| format!("ConfigMap {namespace}/{} has no {CA_KEY}", r.name))
                }),
            "Secret" => refs
                .secret(namespace, &r.name)
                .ok_or_else(|| format!("Secret {namespace}/{} not found", r.name))
                .and_then(|s| {
                    secret_value(s, CA_KEY)
                        .and_then(|b| String::from_utf8(b).ok())
                        .ok_or_else(|| format!("Secret {namespace}/{} has no {CA_KEY}", r.name))
                }),
            other => {
                d.push(
                    format!("{field}.kind"),
                    format!("{other:?} is not ConfigMap or Secret"),
                );
                failed = true;
                continue;
            }
        };
        match pem {
            Ok(pem) if pem.contains("-----BEGIN CERTIFICATE-----") => bundle.push_str(&pem),
            Ok(_) => {
                unresolved.push(
                    field,
                    format!("{kind} {}: {CA_KEY} holds no PEM certificate", r.name),
                );
                failed = true;
            }
            Err(why) => {
                unresolved.push(field, why);
                failed = true;
            }
        }
    }
    let client_certificate = spec.client_certificate_ref.as_ref().and_then(|r| {
        let field = format!("{p}.clientCertificateRef");
        let Some(secret) = refs.secret(namespace, &r.name) else {
            unresolved.push(field, format!("Secret {namespace}/{} not found", r.name));
            failed = true;
            return None;
        };
        let text = |key| secret_value(secret, key).and_then(|b| String::from_utf8(b).ok());
        match (text("tls.crt"), text("tls.key")) {
            (Some(chain), Some(key)) => Some(snap::ClientCertificatePair {
                certificate_chain: chain,
                private_key: snap::Secret::new(key),
            }),
            _ => {
                unresolved.push(
                    field,
                    format!("Secret {namespace}/{} needs tls.crt and tls.key", r.name),
                );
                failed = true;
                None
            }
        }
    });
    let lowered = snap::BackendTls {
        server_name,
        ca_certificates: (!bundle.is_empty()).then_some(bundle),
        client_certificate,
    };
    if let Err((field, why)) = lowered.check() {
        let field = if field == "serverName" {
            "hostname"
        } else {
            field
        };
        d.push(format!("{p}.{field}"), why);
        return Err(());
    }
    if failed { Err(()) } else { Ok(Some(lowered)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::lower::NoServices;

    struct Refs {
        secret: k8s_openapi::api::core::v1::Secret,
        map: k8s_openapi::api::core::v1::ConfigMap,
    }

    impl ResolveService for Refs {
        fn resolve(&self, _: &str, _: &str, _: u16) -> Result<Vec<String>, String> {
            Ok(Vec::new())
        }
        fn secret(&self, ns: &str, name: &str) -> Option<&k8s_openapi::api::core::v1::Secret> {
            (ns == "shop" && name == "client").then_some(&self.secret)
        }
        fn config_map(
            &self,
            ns: &str,
            name: &str,
        ) -> Option<&k8s_openapi::api::core::v1::ConfigMap> {
            (ns == "shop" && name == "orders-ca").then_some(&self.map)
        }
    }

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    fn refs() -> Refs {
        Refs {
            secret: serde_saphyr::from_str(
                "metadata: {name: client, namespace: shop}\nstringData: {tls.crt: chain, tls.key: key}",
            )
            .unwrap(),
            map: serde_saphyr::from_str(&format!(
                "metadata: {{name: orders-ca, namespace: shop}}\ndata: {{ca.crt: {PEM:?}}}"
            ))
            .unwrap(),
        }
    }

    fn lower(
        https: Option<&str>,
        yaml: Option<&str>,
        refs: &dyn ResolveService,
    ) -> (Result<Option<snap::BackendTls>, ()>, Vec<String>) {
        let spec: Option<BackendTlsSpec> = yaml.map(|y| serde_saphyr::from_str(y).unwrap());
        let (mut d, mut u) = (Diagnostics::default(), Diagnostics::default());
        let out = lower_backend_tls(
            "spec.rules[0].backends[0]",
            "shop",
            https.map(String::from),
            spec.as_ref(),
            refs,
            &mut d,
            &mut u,
        );
        let notes =
            d.0.iter()
                .chain(&u.0)
                .map(|x| format!("{}: {}", x.field, x.message));
        (out, notes.collect())
    }

    #[test]
    fn an_https_url_verifies_its_host_against_the_web_pki() {
        let (out, _) = lower(Some("api.example.com"), None, &NoServices);
        let tls = out.unwrap().unwrap();
        assert_eq!(tls.server_name, "api.example.com");
        assert!(tls.ca_certificates.is_none() && tls.client_certificate.is_none());
        assert_eq!(lower(None, None, &NoServices).0, Ok(None));
    }

    #[test]
    fn references_resolve_to_inline_pem() {
        let (out, notes) = lower(
            None,
            Some(
                "{hostname: orders.internal, caCertificateRefs: [{name: orders-ca}], clientCertificateRef: {name: client}}",
            ),
            &refs(),
        );
        assert!(notes.is_empty(), "{notes:?}");
        let tls = out.unwrap().unwrap();
        assert_eq!(tls.server_name, "orders.internal");
        assert_eq!(tls.ca_certificates.as_deref(), Some(PEM));
        let client = tls.client_certificate.unwrap();
        assert_eq!(
            (
                client.certificate_chain.as_str(),
                client.private_key.expose()
            ),
            ("chain", "key")
        );
    }

    #[test]
    fn missing_references_and_names_fail_without_falling_back_to_plaintext() {
        let (out, notes) = lower(
            None,
            Some("{hostname: orders.internal, caCertificateRefs: [{kind: Secret, name: gone}]}"),
            &refs(),
        );
        assert_eq!(out, Err(()));
        assert_eq!(
            notes,
            ["spec.rules[0].backends[0].tls.caCertificateRefs[0]: Secret shop/gone not found"]
        );
        let (out, notes) = lower(None, Some("{}"), &refs());
        assert_eq!(out, Err(()));
        assert!(
            notes[0].starts_with("spec.rules[0].backends[0].tls.hostname: "),
            "{notes:?}"
        );
    }
}
