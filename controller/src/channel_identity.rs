//! Who a proxy is on the snapshot stream: the gateway its client certificate names, as the URI
//! SAN `spiffe://frontdesk/gateway/<name>`. `frontdesk-certs` writes it ([`gateway_uri`]); the
//! push server reads it ([`Identity::of`]) and serves a connection only that gateway's snapshot,
//! so the key of one gateway's proxies (or a copy of it) opens no other gateway's secrets.
//!
//! Why a URI SAN rather than a DNS name: a URI is never matched against a server name, so a
//! proxy certificate can never pass for the controller's (or anything's) DNS identity; it
//! compares byte for byte, where DNS names fold case; and every character a gateway name may
//! hold (`[A-Za-z0-9._-]`, the stream's rule) is a SPIFFE path character, so the name goes in
//! unescaped. The name has no namespace: a gateway is one per install (Routes of every
//! namespace list it) and each install has its own CA, which already scopes the name.

use rustls::pki_types::CertificateDer;

/// What precedes the gateway name in a proxy certificate's URI SAN.
pub const GATEWAY_URI_PREFIX: &str = "spiffe://frontdesk/gateway/";

/// The URI SAN of the certificate of `gateway`'s proxies.
pub fn gateway_uri(gateway: &str) -> String {
    format!("{GATEWAY_URI_PREFIX}{gateway}")
}

/// A gateway name a certificate may carry: one the stream accepts (`[A-Za-z0-9._-]`, at most 253
/// bytes), and not `.` or `..`, which are no SPIFFE path segment (and no directory name).
pub fn check_gateway_name(name: &str) -> Result<(), String> {
    // The stream's own parser decides, so a name that gets a certificate can also subscribe.
    let streamable = frontdesk_wire::parse_stream_query(&format!("gateway={name}&proxy=p"))
        .is_some_and(|(gateway, _)| gateway == name);
    if !streamable || name == "." || name == ".." {
        return Err(format!(
            "gateway {name:?}: a gateway name is 1 to 253 of [A-Za-z0-9._-], and not . or .."
        ));
    }
    Ok(())
}

/// What one connection may subscribe to, from its client certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// `--insecure`: no certificate, every gateway (local development only).
    Unchecked,
    /// A certificate naming this gateway: that gateway only.
    Gateway(String),
    /// A certificate from the CA that names no gateway, or several: nothing. Says why.
    Unnamed(&'static str),
}

impl Identity {
    /// The identity in a client's verified certificate chain (its first certificate).
    pub fn of(chain: Option<&[CertificateDer<'_>]>) -> Identity {
        let Some(leaf) = chain.and_then(|c| c.first()) else {
            return Identity::Unnamed("no client certificate");
        };
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf) else {
            return Identity::Unnamed("the client certificate does not parse");
        };
        let Ok(san) = cert.subject_alternative_name() else {
            return Identity::Unnamed("the client certificate's names do not parse");
        };
        let mut named = san
            .into_iter()
            .flat_map(|ext| ext.value.general_names.iter())
            .filter_map(|name| match name {
                x509_parser::extensions::GeneralName::URI(uri) => {
                    uri.strip_prefix(GATEWAY_URI_PREFIX)
                }
                _ => None,
            });
        match (named.next(), named.next()) {
            (Some(gateway), None) if check_gateway_name(gateway).is_ok() => {
                Identity::Gateway(gateway.to_string())
            }
            (Some(_), None) => Identity::Unnamed("the client certificate names an invalid gateway"),
            (None, _) => Identity::Unnamed(
                "the client certificate names no gateway (a URI SAN spiffe://frontdesk/gateway/<name>)",
            ),
            (Some(_), Some(_)) => {
                Identity::Unnamed("the client certificate names more than one gateway")
            }
        }
    }

    /// `None` when `gateway` may be served; else the reason it may not.
    pub fn refuses(&self, gateway: &str) -> Option<String> {
        match self {
            Identity::Unchecked => None,
            Identity::Gateway(named) if named == gateway => None,
            Identity::Gateway(named) => Some(format!(
                "this client certificate is for gateway {named}, not {gateway}"
            )),
            Identity::Unnamed(why) => Some(format!("{why}; gateway {gateway} is not served")),
        }
    }

    /// The gateway the certificate names, for logs and metrics ("" when none).
    pub fn certificate_gateway(&self) -> &str {
        match self {
            Identity::Gateway(named) => named,
            Identity::Unchecked | Identity::Unnamed(_) => "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair, SanType};

    fn cert_with(sans: Vec<SanType>) -> CertificateDer<'static> {
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans;
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    fn uri(s: &str) -> SanType {
        SanType::URI(s.try_into().unwrap())
    }

    #[test]
    fn a_certificate_naming_one_gateway_is_served_that_gateway_only() {
        let cert = cert_with(vec![
            uri(&gateway_uri("web")),
            SanType::DnsName("x".try_into().unwrap()),
        ]);
        let id = Identity::of(Some(&[cert]));
        assert_eq!(id, Identity::Gateway("web".into()));
        assert_eq!(id.refuses("web"), None);
        assert_eq!(
            id.refuses("partner").unwrap(),
            "this client certificate is for gateway web, not partner"
        );
        // Case is not folded: Web is another gateway.
        assert!(id.refuses("Web").is_some());
    }

    #[test]
    fn certificates_naming_no_gateway_or_several_are_served_nothing() {
        // The certificate every gateway's proxies shared before (DNS name frontdesk-proxy).
        let shared = cert_with(vec![SanType::DnsName(
            "frontdesk-proxy".try_into().unwrap(),
        )]);
        let two = cert_with(vec![uri(&gateway_uri("a")), uri(&gateway_uri("b"))]);
        let elsewhere = cert_with(vec![uri("spiffe://other/gateway/a")]);
        let traversal = cert_with(vec![uri(&gateway_uri(".."))]);
        for (cert, why) in [
            (shared, "names no gateway"),
            (two, "more than one gateway"),
            (elsewhere, "names no gateway"),
            (traversal, "invalid gateway"),
        ] {
            let id = Identity::of(Some(&[cert]));
            let refused = id.refuses("a").expect("refused");
            assert!(refused.contains(why), "{refused}");
            assert_eq!(id.certificate_gateway(), "");
        }
        assert!(Identity::of(None).refuses("a").is_some());
        assert_eq!(Identity::Unchecked.refuses("a"), None);
    }

    #[test]
    fn gateway_names_follow_the_streams_rule() {
        for good in ["default", "web-1", "Partner_2", "a.b"] {
            check_gateway_name(good).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a&proxy=x", "é", &"a".repeat(254)] {
            assert!(check_gateway_name(bad).is_err(), "{bad:?}");
        }
    }
}
