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
/// `https_host` is an `https://` url's host (TLS by default, verified against that name); `p`
/// is the field path of the TLS section.
pub(super) fn lower_backend_tls(
    p: &str,
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
        match pem.and_then(|pem| {
            check_ca_bundle(&pem)
                .map(|()| pem)
                .map_err(|why| format!("{kind} {namespace}/{}: {CA_KEY} {why}", r.name))
        }) {
            Ok(pem) => {
                bundle.push_str(&pem);
                // A bundle without a final newline must not glue its last END to the next
                // BEGIN (a parser would drop that certificate).
                bundle.push('\n');
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
            (Some(chain), Some(key)) => match crate::certificate::load(&chain, &key) {
                Ok(_) => Some(snap::ClientCertificatePair {
                    certificate_chain: chain,
                    private_key: snap::Secret::new(key),
                }),
                Err(why) => {
                    unresolved.push(field, format!("Secret {namespace}/{}: {why}", r.name));
                    failed = true;
                    None
                }
            },
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
    if rustls_pki_types::ServerName::try_from(server_name.as_str()).is_err() {
        d.push(
            format!("{p}.hostname"),
            format!("{server_name:?} is not a DNS name or an IP address a certificate can carry"),
        );
        return Err(());
    }
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

/// Parses every certificate of a PEM bundle as the proxy will, so a bundle it would refuse
/// is reported here, on the Route, instead.
fn check_ca_bundle(pem: &str) -> Result<(), String> {
    use rustls_pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| format!("is not PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("holds a certificate that does not parse: {e}"))?;
    }
    if roots.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    Ok(())
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

    /// A CA in the ConfigMap, and a client certificate it issued in the Secret.
    fn refs() -> (Refs, String, frontdesk_demo::certs::Issued) {
        let ca = frontdesk_demo::certs::Authority::new();
        let client = ca.issue_client("spiffe://frontdesk/proxy", "proxy");
        let mut secret = k8s_openapi::api::core::v1::Secret::default();
        secret.metadata.name = Some("client".into());
        secret.metadata.namespace = Some("shop".into());
        secret.string_data = Some(
            [
                ("tls.crt".to_string(), client.chain.clone()),
                ("tls.key".to_string(), client.key.clone()),
            ]
            .into(),
        );
        let mut map = k8s_openapi::api::core::v1::ConfigMap::default();
        map.metadata.name = Some("orders-ca".into());
        map.metadata.namespace = Some("shop".into());
        map.data = Some([("ca.crt".to_string(), ca.pem().to_string())].into());
        (Refs { secret, map }, ca.pem().to_string(), client)
    }

    fn lower(
        https: Option<&str>,
        yaml: Option<&str>,
        refs: &dyn ResolveService,
    ) -> (Result<Option<snap::BackendTls>, ()>, Vec<String>) {
        let spec: Option<BackendTlsSpec> = yaml.map(|y| serde_saphyr::from_str(y).unwrap());
        let (mut d, mut u) = (Diagnostics::default(), Diagnostics::default());
        let out = lower_backend_tls(
            "spec.rules[0].backends[0].tls",
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
        let (refs, pem, issued) = refs();
        let (out, notes) = lower(
            None,
            Some(
                "{hostname: orders.internal, caCertificateRefs: [{name: orders-ca}], clientCertificateRef: {name: client}}",
            ),
            &refs,
        );
        assert!(notes.is_empty(), "{notes:?}");
        let tls = out.unwrap().unwrap();
        assert_eq!(tls.server_name, "orders.internal");
        assert_eq!(tls.ca_certificates, Some(format!("{pem}\n")));
        let client = tls.client_certificate.unwrap();
        assert_eq!(
            (client.certificate_chain, client.private_key.expose()),
            (issued.chain, issued.key.as_str())
        );
    }

    #[test]
    fn what_the_proxy_could_not_parse_is_reported_on_the_route() {
        let (mut refs, _, issued) = refs();
        refs.map.data = Some(
            [(
                "ca.crt".to_string(),
                "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"
                    .to_string(),
            )]
            .into(),
        );
        let other = frontdesk_demo::certs::Authority::new().issue_client("spiffe://x", "x");
        refs.secret.string_data = Some(
            [
                ("tls.crt".to_string(), issued.chain),
                ("tls.key".to_string(), other.key),
            ]
            .into(),
        );
        let (out, notes) = lower(
            None,
            Some(
                "{hostname: orders.internal, caCertificateRefs: [{name: orders-ca}], clientCertificateRef: {name: client}}",
            ),
            &refs,
        );
        assert_eq!(out, Err(()));
        assert!(
            notes[0].contains("ca.crt holds a certificate that does not parse"),
            "{notes:?}"
        );
        assert!(
            notes[1].contains("the private key does not match the certificate"),
            "{notes:?}"
        );
        let (out, notes) = lower(None, Some("{hostname: '*.svc'}"), &NoServices);
        assert_eq!(out, Err(()));
        assert!(notes[0].contains("not a DNS name"), "{notes:?}");
    }

    #[test]
    fn missing_references_and_names_fail_without_falling_back_to_plaintext() {
        let (out, notes) = lower(
            None,
            Some("{hostname: orders.internal, caCertificateRefs: [{kind: Secret, name: gone}]}"),
            &refs().0,
        );
        assert_eq!(out, Err(()));
        assert_eq!(
            notes,
            ["spec.rules[0].backends[0].tls.caCertificateRefs[0]: Secret shop/gone not found"]
        );
        let (out, notes) = lower(None, Some("{}"), &refs().0);
        assert_eq!(out, Err(()));
        assert!(
            notes[0].starts_with("spec.rules[0].backends[0].tls.hostname: "),
            "{notes:?}"
        );
    }
}
