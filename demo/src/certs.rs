//! A certificate authority for demos and tests: certificates for HTTPS listeners that clients
//! built here trust.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, SanType,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Writes the demo's Gateway into `dir`: an HTTP listener on `http` and an HTTPS one on
/// `https` with a certificate for `localhost` and 127.0.0.1, as a `kubernetes.io/tls`
/// Secret, and `ca.crt`, the authority clients must trust (`curl --cacert`).
pub fn write_demo_gateway(dir: &std::path::Path, http: u16, https: u16) -> anyhow::Result<()> {
    let ca = Authority::new();
    let site = ca.issue(&["localhost", "127.0.0.1"], 1, 30);
    let indent = |pem: &str| -> String { pem.lines().map(|l| format!("    {l}\n")).collect() };
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("ca.crt"), ca.pem())?;
    std::fs::write(
        dir.join("gateway.yaml"),
        format!(
            "# Written by `frontdesk-demo tls`: the demo's listeners.
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: default, namespace: default}}
spec:
  gatewayClassName: frontdesk
  listeners:
    # Routes of every namespace attach (the examples live in `demo`), as to the chart's.
    - name: http
      port: {http}
      protocol: HTTP
      allowedRoutes: {{namespaces: {{from: All}}}}
    - name: https
      port: {https}
      protocol: HTTPS
      tls: {{mode: Terminate, certificateRefs: [{{name: demo-tls}}]}}
      allowedRoutes: {{namespaces: {{from: All}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: demo-tls, namespace: default}}
type: kubernetes.io/tls
stringData:
  tls.crt: |
{}  tls.key: |
{}",
            indent(&site.chain),
            indent(&site.key)
        ),
    )?;
    Ok(())
}

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
        // Names of their own: a leaf whose subject equals its issuer reads as self-signed to
        // OpenSSL (curl), whatever signed it.
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "frontdesk demo CA");
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
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("frontdesk"),
        );
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

    /// A client certificate (mutual TLS) whose only name is the URI `uri`, with common name
    /// `name`, valid for a day.
    pub fn issue_client(&self, uri: &str, name: &str) -> Issued {
        let key = KeyPair::generate().expect("a key");
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![SanType::URI(uri.try_into().expect("a URI"))];
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(1);
        Issued {
            chain: params.signed_by(&key, &self.issuer).expect("signed").pem(),
            key: key.serialize_pem(),
        }
    }

    /// [`Self::client`] that presents `certificate` when the server asks for one.
    pub fn client_with(&self, alpn: &[&[u8]], certificate: &Issued) -> Arc<rustls::ClientConfig> {
        let chain = CertificateDer::pem_slice_iter(certificate.chain.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("PEM");
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(certificate.key.as_bytes())
            .expect("a PEM key");
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS 1.2 and 1.3")
        .with_root_certificates(self.roots())
        .with_client_auth_cert(chain, key)
        .expect("a client certificate");
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(self.pem.as_bytes()) {
            roots.add(c.expect("PEM")).expect("a CA certificate");
        }
        roots
    }

    /// A TLS client configuration that trusts this authority and offers `alpn`.
    pub fn client(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS 1.2 and 1.3")
            .with_root_certificates(self.roots())
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}
