//! A listener's certificate and key, loaded as the TLS server will use them: the compiler
//! checks a Gateway's certificates with this (so status says why one is refused: not PEM, a
//! key that does not match, outside its validity), and the proxy builds its certificates with
//! it (so what status accepts is exactly what the proxy serves).

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate issued by a clock a little ahead of ours is taken already; seconds.
pub const CLOCK_SKEW: i64 = 300;

/// The signing key and chain of a certificate, with the DNS names its leaf is for
/// (lower-case). `chain` is PEM, the leaf first; `key` PEM: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
pub fn load(chain: &str, key: &str) -> Result<(CertifiedKey, Vec<String>), String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the certificate chain is not PEM: {e}"))?;
    let leaf = chain.first().ok_or("the certificate chain is empty")?;
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
        .map_err(|e| format!("the private key is not PEM (PKCS#8, PKCS#1 or SEC1): {e}"))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| format!("the private key cannot sign: {e}"))?;
    let names = leaf_names(leaf)?;
    let key = CertifiedKey::new(chain, signer);
    key.keys_match().map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            "the private key does not match the certificate".to_string()
        }
        other => format!("the certificate and key cannot be checked: {other}"),
    })?;
    Ok((key, names))
}

/// The DNS names of a leaf certificate's subject alternative names, checking its validity
/// period on the way: an expired certificate is refused rather than served.
fn leaf_names(leaf: &CertificateDer<'_>) -> Result<Vec<String>, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| format!("the certificate does not parse: {e}"))?;
    let now = x509_parser::time::ASN1Time::now().timestamp();
    let validity = cert.validity();
    if validity.not_before.timestamp() > now + CLOCK_SKEW || validity.not_after.timestamp() < now {
        return Err(format!(
            "the certificate is not valid now (valid from {} to {})",
            validity.not_before, validity.not_after
        ));
    }
    match cert.subject_alternative_name() {
        Ok(Some(san)) => Ok(san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
                _ => None,
            })
            .collect()),
        Ok(None) => Ok(Vec::new()),
        Err(e) => Err(format!("the certificate's names do not parse: {e}")),
    }
}

/// Throwaway certificates and keys for tests (crds/testdata/certs/README.md).
#[doc(hidden)]
pub mod testing {
    /// For `example.com`, `*.example.com` and `api.example.com`, valid 2026 to 2126.
    pub const CERT: &str = include_str!("../testdata/certs/cert.pem");
    /// The same names and key as [`CERT`], another certificate.
    pub const ROTATED_CERT: &str = include_str!("../testdata/certs/rotated.pem");
    /// The key of [`CERT`] and [`ROTATED_CERT`], PKCS#8.
    pub const KEY: &str = include_str!("../testdata/certs/key.pem");
    /// Valid in 2000 only.
    pub const EXPIRED_CERT: &str = include_str!("../testdata/certs/expired.pem");
    pub const EXPIRED_KEY: &str = include_str!("../testdata/certs/expired-key.pem");
    /// Matches no certificate here.
    pub const OTHER_KEY: &str = include_str!("../testdata/certs/other-key.pem");
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn a_certificate_loads_with_its_names_and_is_refused_with_the_reason_otherwise() {
        let (_, names) = load(CERT, KEY).unwrap();
        assert_eq!(names, ["example.com", "*.example.com", "api.example.com"]);
        let err = |chain, key| load(chain, key).err().unwrap();
        assert_eq!(
            err(CERT, OTHER_KEY),
            "the private key does not match the certificate"
        );
        assert!(
            err(EXPIRED_CERT, EXPIRED_KEY).starts_with("the certificate is not valid now"),
            "{}",
            err(EXPIRED_CERT, EXPIRED_KEY)
        );
        assert!(err("not pem", KEY).starts_with("the certificate chain is"));
        assert!(err(CERT, "not pem").starts_with("the private key is not PEM"));
    }
}
