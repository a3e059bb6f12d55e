//! TLS from the proxy to a backend's endpoints: the name to ask for and verify, what to trust,
//! and the client certificate for mutual TLS.

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// How the proxy speaks TLS to a backend.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendTls {
    /// Sent as SNI, and the name the endpoint's certificate must carry (a DNS name or an IP).
    pub server_name: String,
    /// PEM certificates of the authorities to trust; `None`: the public web PKI (Mozilla's
    /// roots, compiled into the proxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
    /// A certificate the proxy presents when the endpoint asks for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<ClientCertificatePair>,
}

/// A certificate chain and its private key, PEM.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientCertificatePair {
    pub certificate_chain: String,
    pub private_key: Secret,
}

impl BackendTls {
    /// What the proxy can check without parsing certificates (it parses them when it builds).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.server_name.is_empty()
            || self
                .server_name
                .bytes()
                .any(|b| !(b.is_ascii_alphanumeric() || b"-.:[]*".contains(&b)))
        {
            return Err((
                "serverName",
                format!("{:?} is not a host name or address", self.server_name),
            ));
        }
        if let Some(ca) = &self.ca_certificates
            && !ca.contains("-----BEGIN CERTIFICATE-----")
        {
            return Err(("caCertificates", "holds no PEM certificate".into()));
        }
        Ok(())
    }
}
