//! Client certificates (mutual TLS): how a listener with client validation verifies them, and
//! what a verified one says about the client.
//!
//! The CAs of a listener's [`ClientValidation`] are the trust anchors; a bundle that does not
//! parse is left out with its source and the reason. `AllowValidOnly` (not `optional`) fails
//! the handshake of a client without a certificate those CAs issued; `AllowInsecureFallback`
//! (`optional`) serves it without a client identity, and still refuses an invalid
//! certificate. With no CA at all, no certificate is valid: a listener never stops validating
//! because its CA references broke.

use std::sync::Arc;

use frontdesk_snapshot::ClientValidation;
use rustls::DistinguishedName;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls_pki_types::pem::PemObject;

/// What a verified client certificate says about its holder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientCertificate {
    /// The subject's common name, when it has one.
    pub common_name: Option<String>,
    /// URI subject alternative names (`spiffe://...`).
    pub uris: Vec<String>,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
}

impl ClientCertificate {
    /// Reads the leaf a handshake verified. `None` when it does not parse (it did for rustls).
    pub fn from_leaf(leaf: &CertificateDer<'_>) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string);
        let mut out = ClientCertificate {
            common_name,
            ..Default::default()
        };
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    x509_parser::extensions::GeneralName::URI(u) => out.uris.push(u.to_string()),
                    x509_parser::extensions::GeneralName::DNSName(d) => {
                        out.dns_names.push(d.to_string());
                    }
                    _ => {}
                }
            }
        }
        Some(out)
    }

    /// Who the client is, for policies: the first URI SAN, else the first DNS SAN, else the
    /// common name.
    pub fn identity(&self) -> Option<&str> {
        self.uris
            .first()
            .or(self.dns_names.first())
            .or(self.common_name.as_ref())
            .map(String::as_str)
    }
}

/// The verifier of `validation`, with the bundles left out (source and why).
pub fn verifier(validation: &ClientValidation) -> (Arc<dyn ClientCertVerifier>, Vec<String>) {
    let mut roots = rustls::RootCertStore::empty();
    let mut refused = Vec::new();
    for bundle in &validation.ca_certificates {
        let certs: Result<Vec<CertificateDer<'static>>, _> =
            CertificateDer::pem_slice_iter(bundle.pem.as_bytes()).collect();
        let added = certs
            .map_err(|e| format!("not PEM: {e}"))
            .and_then(|certs| {
                let (added, ignored) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(format!("none of its {ignored} certificates is a usable CA"));
                }
                Ok(())
            });
        if let Err(why) = added {
            refused.push(format!("{}: {why}", bundle.source));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    if validation.optional {
        builder = builder.allow_unauthenticated();
    }
    let verifier = match builder.build() {
        Ok(v) => v,
        // No trust anchor: nothing verifies.
        Err(_) => Arc::new(RefuseAll {
            optional: validation.optional,
        }) as Arc<dyn ClientCertVerifier>,
    };
    (verifier, refused)
}

/// Why [`RefuseAll`] refuses: no CA it knows issued the certificate.
fn unknown_issuer() -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
}

/// A listener's client validation when none of its CAs loaded: every certificate is refused.
#[derive(Debug)]
struct RefuseAll {
    optional: bool,
}

impl ClientCertVerifier for RefuseAll {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        !self.optional
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Err(unknown_issuer())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(unknown_issuer())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(unknown_issuer())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use frontdesk_snapshot::CaCertificates;

    use super::*;

    #[test]
    fn the_identity_is_the_first_uri_then_dns_name_then_common_name() {
        let mut cert = ClientCertificate {
            common_name: Some("acme".into()),
            uris: vec![],
            dns_names: vec!["client.acme.example".into()],
        };
        assert_eq!(cert.identity(), Some("client.acme.example"));
        cert.uris.push("spiffe://partners/acme".into());
        assert_eq!(cert.identity(), Some("spiffe://partners/acme"));
        let bare = ClientCertificate {
            common_name: Some("acme".into()),
            ..Default::default()
        };
        assert_eq!(bare.identity(), Some("acme"));
        assert_eq!(ClientCertificate::default().identity(), None);
    }

    #[test]
    fn bundles_that_do_not_load_are_named_and_with_none_every_certificate_is_refused() {
        let validation = ClientValidation {
            ca_certificates: vec![CaCertificates {
                source: "ConfigMap test/broken".into(),
                pem: "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"
                    .into(),
            }],
            optional: false,
        };
        let (checks, refused) = verifier(&validation);
        assert_eq!(refused.len(), 1);
        assert!(
            refused[0].starts_with("ConfigMap test/broken: "),
            "{refused:?}"
        );
        assert!(checks.client_auth_mandatory());
        let any = CertificateDer::from(vec![0u8; 8]);
        assert!(
            checks
                .verify_client_cert(&any, &[], UnixTime::now())
                .is_err()
        );
        let optional = ClientValidation {
            optional: true,
            ..validation
        };
        assert!(!verifier(&optional).0.client_auth_mandatory());
    }
}
