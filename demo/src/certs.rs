//! A certificate authority for demos and tests: certificates for HTTPS listeners that clients
//! built here trust.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// A certificate and its private key, PEM.
#[derive(Clone, Debug)]
pub struct Issued {
    pub chain: String,
    pub key: String,
}

impl Issued {
    /// The leaf certificate, DER: what a client is shown.
    pub fn leaf(&self) -> Vec<u8> {
        CertificateDer::pem_slice_iter(self.chain.as_bytes())
            .next()
            .expect("a certificate")
            .expect("PEM")
            .to_vec()
    }
}

pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Default for Authority {
    fn default() -> Self {
        Self::new()
    }
}

impl Authority {
    pub fn new() -> Self {
        let key = KeyPair::generate().expect("a key");
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).expect("a CA certificate").pem();
        Authority {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A certificate for `names`, valid from `not_before` for `days` days.
    pub fn issue_from(
        &self,
        names: &[&str],
        not_before: time::OffsetDateTime,
        days: i64,
    ) -> Issued {
        let key = KeyPair::generate().expect("a key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("DNS names");
        params.not_before = not_before;
        params.not_after = not_before + time::Duration::days(days);
        Issued {
            chain: params.signed_by(&key, &self.issuer).expect("signed").pem(),
            key: key.serialize_pem(),
        }
    }

    /// A certificate for `names`, valid from `from` days ago for `days` days.
    pub fn issue(&self, names: &[&str], from: i64, days: i64) -> Issued {
        let not_before = time::OffsetDateTime::now_utc() - time::Duration::days(from);
        self.issue_from(names, not_before, days)
    }

    /// A TLS client configuration that trusts this authority and offers `alpn`.
    pub fn client(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(self.pem.as_bytes()) {
            roots.add(c.expect("PEM")).expect("a CA certificate");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS 1.2 and 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}
