//! Where traffic comes in: the listeners of a gateway (a Gateway API `Gateway`'s `listeners`),
//! with the certificates of those that terminate TLS.
//!
//! A snapshot without listeners is served on the proxy's own `--listen` address over plain
//! HTTP, as before Gateways existed. With listeners, the proxy opens exactly those ports.

use serde::{Deserialize, Serialize};

use crate::Secret;

/// One port the gateway serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Listener {
    /// `namespace/gateway/listener`: what status, logs and metrics call it.
    pub name: String,
    pub port: u16,
    pub protocol: ListenerProtocol,
    /// The host names it serves: exact (`api.example.com`) or one wildcard label
    /// (`*.example.com`), lower-case; `None`: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// HTTPS: the certificates to choose from by SNI (exact name, then wildcard, then the
    /// first as the default). Empty for HTTP; empty for HTTPS when none of its Secrets
    /// resolves, and then a proxy keeps the certificates the port has (never plaintext, never
    /// closed by a lost Secret) and opens nothing if it has none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<Certificate>,
    /// HTTPS: clients must present a certificate these CAs issued (mutual TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_validation: Option<ClientValidation>,
    /// HTTP: every request is answered with a permanent redirect to `https://` on this port
    /// (the Gateway's `frontdesk.dev/redirect-to-https`), ACME HTTP-01 challenges excepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_to_https_port: Option<u16>,
    /// HTTPS: the `Strict-Transport-Security` value every answer carries (the Gateway's
    /// `frontdesk.dev/hsts`), unless the backend sent its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hsts: Option<String>,
}

/// Client certificate validation of an HTTPS listener (the Gateway API's frontend validation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientValidation {
    /// The CAs a client's certificate must chain to.
    pub ca_certificates: Vec<CaCertificates>,
    /// `AllowInsecureFallback`: a client without a valid certificate is served, without a
    /// client identity; otherwise its handshake fails.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

/// A PEM bundle of CA certificates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CaCertificates {
    /// `Kind namespace/name` of the object it came from: for status and logs.
    pub source: String,
    pub pem: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListenerProtocol {
    #[serde(rename = "HTTP")]
    Http,
    /// TLS terminated by the proxy, HTTP/1.1 or HTTP/2 inside (ALPN).
    #[serde(rename = "HTTPS")]
    Https,
}

/// A certificate chain and its private key, from a `kubernetes.io/tls` Secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Certificate {
    /// `namespace/name` of the Secret it came from: for status and logs.
    pub source: String,
    /// PEM: the leaf first, then intermediates.
    pub chain: String,
    /// PEM: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    pub key: Secret,
}

impl Listener {
    /// Whether this listener serves `host` (lower-case, without port).
    pub fn serves(&self, host: &str) -> bool {
        match &self.hostname {
            None => true,
            Some(h) => host_matches(h, host),
        }
    }
}

/// Whether `pattern` (exact, or `*.suffix` for one or more labels before the suffix, as the
/// Gateway API has it) covers `host`.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
        None => pattern == host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_match_exactly_or_by_wildcard() {
        assert!(host_matches("api.example.com", "api.example.com"));
        assert!(!host_matches("api.example.com", "www.example.com"));
        assert!(host_matches("*.example.com", "api.example.com"));
        assert!(host_matches("*.example.com", "a.b.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(!host_matches("*.example.com", "badexample.com"));
    }

    #[test]
    fn listeners_read_and_write_as_the_wire_carries_them() {
        let l = Listener {
            name: "web/public/https".into(),
            port: 8443,
            protocol: ListenerProtocol::Https,
            hostname: Some("*.example.com".into()),
            certificates: vec![Certificate {
                source: "web/example-com".into(),
                chain: "-----BEGIN CERTIFICATE-----".into(),
                key: Secret::new("-----BEGIN PRIVATE KEY-----"),
            }],
            redirect_to_https_port: None,
            hsts: Some("max-age=31536000".into()),
            client_validation: Some(ClientValidation {
                ca_certificates: vec![CaCertificates {
                    source: "ConfigMap web/partners-ca".into(),
                    pem: "-----BEGIN CERTIFICATE-----".into(),
                }],
                optional: true,
            }),
        };
        let json = serde_json::to_string(&l).unwrap();
        assert!(json.contains(r#""protocol":"HTTPS""#), "{json}");
        assert_eq!(serde_json::from_str::<Listener>(&json).unwrap(), l);
        let shown = crate::secret::redacted(|| serde_json::to_string(&l).unwrap());
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
        assert!(l.serves("api.example.com") && !l.serves("example.org"));
    }
}
