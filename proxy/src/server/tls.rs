//! TLS termination for a listener's certificates ([`frontdesk_snapshot::Listener`]): rustls
//! (ring), TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`, session resumption by tickets and by a
//! session cache, and the certificate chosen by the client's SNI: an exact name of a
//! certificate first, then a wildcard one (`*.example.com` covers one label), then the
//! listener's first certificate as the default (also for clients that send no SNI).
//!
//! Built once per snapshot: a certificate that does not parse, whose key does not match it, or
//! that is outside its validity is left out with its source and the reason, and the others
//! serve; with none left the listener keeps what it had.

use std::collections::HashMap;
use std::sync::Arc;

use frontdesk_snapshot::Certificate;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// What ALPN offers, in preference order.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// A listener's certificates, by the names they are for.
#[derive(Debug)]
pub struct Certificates {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// By the suffix after `*` (`.example.com`), longest first.
    wildcard: Vec<(String, Arc<CertifiedKey>)>,
    default: Arc<CertifiedKey>,
}

impl Certificates {
    /// Parses `certs`; the first that loads is the default. Those that do not load are left
    /// out and listed (their source and why); an error when none loads.
    pub fn new(certs: &[Certificate]) -> Result<(Self, Vec<String>), String> {
        let mut exact = HashMap::new();
        let mut wildcard = Vec::new();
        let mut default = None;
        let mut refused = Vec::new();
        for c in certs {
            let (key, names) = match certified_key(c) {
                Ok(loaded) => loaded,
                Err(e) => {
                    refused.push(format!("{}: {e}", c.source));
                    continue;
                }
            };
            let key = Arc::new(key);
            for name in names {
                // `*.example.com` covers one label before `.example.com` (RFC 6125 §6.4.3);
                // partial-label (`*foo.example.com`) and bare wildcards match nothing.
                match name.strip_prefix("*.") {
                    Some(rest) if rest.contains('.') && !rest.contains('*') => {
                        wildcard.push((format!(".{rest}"), key.clone()));
                    }
                    Some(_) => {}
                    None if name.contains('*') => {}
                    None => {
                        exact.entry(name).or_insert_with(|| key.clone());
                    }
                }
            }
            default.get_or_insert(key);
        }
        wildcard.sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        let Some(default) = default else {
            return Err(match refused.is_empty() {
                true => "an HTTPS listener needs a certificate".to_string(),
                false => refused.join("; "),
            });
        };
        let certs = Certificates {
            exact,
            wildcard,
            default,
        };
        Ok((certs, refused))
    }

    /// The certificate for a client that asked for `sni` (lower-cased here).
    pub fn choose(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        let Some(sni) = sni.map(str::to_ascii_lowercase) else {
            return self.default.clone();
        };
        if let Some(key) = self.exact.get(&sni) {
            return key.clone();
        }
        // One label before the suffix, as a certificate's wildcard covers.
        let wild = self.wildcard.iter().find(|(suffix, _)| {
            sni.strip_suffix(suffix.as_str())
                .is_some_and(|label| !label.is_empty() && !label.contains('.'))
        });
        wild.map_or_else(|| self.default.clone(), |(_, key)| key.clone())
    }

    /// The rustls configuration that serves these certificates.
    pub fn into_server_config(self) -> Arc<rustls::ServerConfig> {
        server_config(Arc::new(self), None)
    }
}

/// A listener's TLS configuration as it is now: replaced when its client validation changes
/// (its certificates change inside, through [`Live`]); each handshake takes the current one.
#[derive(Debug)]
pub struct LiveConfig(arc_swap::ArcSwap<rustls::ServerConfig>);

impl LiveConfig {
    pub fn new(config: Arc<rustls::ServerConfig>) -> Self {
        LiveConfig(arc_swap::ArcSwap::new(config))
    }

    pub fn replace(&self, config: Arc<rustls::ServerConfig>) {
        self.0.store(config);
    }

    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        self.0.load_full()
    }
}

/// A listener's certificates as they are now: replaced when a snapshot brings new ones, so
/// new handshakes use them while open connections go on with theirs.
#[derive(Debug)]
pub struct Live(arc_swap::ArcSwap<Certificates>);

impl Live {
    pub fn new(certs: Certificates) -> Self {
        Live(arc_swap::ArcSwap::from_pointee(certs))
    }

    pub fn replace(&self, certs: Certificates) {
        self.0.store(Arc::new(certs));
    }
}

impl ResolvesServerCert for Live {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load().choose(hello.server_name()))
    }
}

/// The rustls configuration around a certificate resolver: TLS 1.3 and 1.2 with ring, ALPN
/// `h2` then `http/1.1`, resumption by tickets and by a bounded session cache; clients'
/// certificates verified by `clients` when given ([`clients::verifier`]).
pub fn server_config(
    resolver: Arc<dyn ResolvesServerCert>,
    clients: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3");
    let builder = match clients {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    // Resumption: tickets (stateless, rotated by rustls) and a bounded session cache.
    if let Ok(ticketer) = rustls::crypto::ring::Ticketer::new() {
        config.ticketer = ticketer;
    }
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
    Arc::new(config)
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.choose(hello.server_name()))
    }
}

/// The signing key and chain of `c`, with the DNS names its leaf is for: loaded as the
/// compiler checked it ([`frontdesk_crds::certificate::load`]).
fn certified_key(c: &Certificate) -> Result<(CertifiedKey, Vec<String>), String> {
    frontdesk_crds::certificate::load(&c.chain, c.key.expose())
}

pub mod clients;
#[cfg(test)]
mod tests;
