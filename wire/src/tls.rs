//! TLS for the snapshot stream: both sides present certificates issued by one CA (mutual TLS),
//! because snapshots carry secrets. rustls with the ring provider; PEM files as Kubernetes
//! Secrets mount them (`tls.crt`, `tls.key`, `ca.crt`). [`Reloading`] picks up rotated files.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct TlsError {
    pub path: String,
    pub reason: String,
}

fn err(path: &Path, reason: impl ToString) -> TlsError {
    TlsError {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(path, e))?;
    if certs.is_empty() {
        return Err(err(path, "no certificate in the file"));
    }
    Ok(certs)
}

pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| err(path, e))
}

fn roots(ca: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(ca)? {
        roots.add(cert).map_err(|e| err(ca, e))?;
    }
    Ok(roots)
}

/// The controller's side: its certificate, and client certificates required from `client_ca`.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
) -> Result<rustls::ServerConfig, TlsError> {
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots(client_ca)?), provider())
            .build()
            .map_err(|e| err(client_ca, e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| err(cert, e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(load_certs(cert)?, load_key(key)?)
        .map_err(|e| err(cert, e))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// A server with no client certificate asked: the controller's admission webhook, which the
/// Kubernetes API server calls over HTTPS, verifying it against the webhook's `caBundle`.
pub fn webhook_server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| err(cert, e))?
        .with_no_client_auth()
        .with_single_cert(load_certs(cert)?, load_key(key)?)
        .map_err(|e| err(cert, e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The proxy's side: the controller must present a certificate from `ca`; the proxy presents
/// its own.
pub fn client_config(ca: &Path, cert: &Path, key: &Path) -> Result<rustls::ClientConfig, TlsError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| err(ca, e))?
        .with_root_certificates(roots(ca)?)
        .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
        .map_err(|e| err(cert, e))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// How often [`Reloading`] looks at its files.
pub const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// A TLS configuration rebuilt when its PEM files change, so rotated credentials (a Kubernetes
/// Secret volume is updated in place) take effect for new connections without a restart.
/// Connections already open keep the session they negotiated.
///
/// The files are read at most once per [`RELOAD_CHECK`]; a set that does not load (a write
/// half done, a bad key) is reported and the last good configuration stays in use.
pub struct Reloading<T> {
    files: Vec<PathBuf>,
    build: fn(&[PathBuf]) -> Result<T, TlsError>,
    state: Mutex<Loaded<T>>,
}

struct Loaded<T> {
    config: Arc<T>,
    contents: Vec<Vec<u8>>,
    checked: Instant,
}

/// What [`Reloading::current`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    Unchanged,
    Reloaded,
    /// The files changed but do not load; the previous configuration is kept.
    Failed(String),
}

impl<T> Reloading<T> {
    fn new(
        files: Vec<PathBuf>,
        build: fn(&[PathBuf]) -> Result<T, TlsError>,
    ) -> Result<Self, TlsError> {
        let contents = read_all(&files)?;
        let config = Arc::new(build(&files)?);
        Ok(Reloading {
            files,
            build,
            state: Mutex::new(Loaded {
                config,
                contents,
                checked: Instant::now(),
            }),
        })
    }

    /// The configuration for a new connection, reloaded first if the files changed.
    pub fn current(&self) -> (Arc<T>, Reload) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.checked.elapsed() < RELOAD_CHECK {
            return (state.config.clone(), Reload::Unchanged);
        }
        let outcome = self.refresh(&mut state);
        (state.config.clone(), outcome)
    }

    /// [`Reloading::current`] for a connection being made or accepted: what changed is logged.
    pub fn for_connection(&self) -> Arc<T> {
        let (config, outcome) = self.current();
        match outcome {
            Reload::Unchanged => {}
            Reload::Reloaded => {
                tracing::info!("TLS credentials changed on disk; new connections use them")
            }
            Reload::Failed(e) => tracing::warn!(
                error = %e,
                "the TLS files changed but do not load; keeping the previous credentials"
            ),
        }
        config
    }

    /// Looks at the files now, whenever they were last read.
    #[cfg(test)]
    fn check_now(&self) -> Reload {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.refresh(&mut state)
    }

    fn refresh(&self, state: &mut Loaded<T>) -> Reload {
        state.checked = Instant::now();
        let contents = match read_all(&self.files) {
            Ok(c) => c,
            Err(e) => return Reload::Failed(e.to_string()),
        };
        if contents == state.contents {
            return Reload::Unchanged;
        }
        match (self.build)(&self.files) {
            Ok(config) => {
                state.config = Arc::new(config);
                state.contents = contents;
                Reload::Reloaded
            }
            Err(e) => Reload::Failed(e.to_string()),
        }
    }
}

fn read_all(files: &[PathBuf]) -> Result<Vec<Vec<u8>>, TlsError> {
    files
        .iter()
        .map(|f| std::fs::read(f).map_err(|e| err(f, e)))
        .collect()
}

impl Reloading<rustls::ServerConfig> {
    /// [`server_config`] from files that may be rotated.
    pub fn server(cert: &Path, key: &Path, client_ca: &Path) -> Result<Self, TlsError> {
        Reloading::new(vec![cert.into(), key.into(), client_ca.into()], |f| {
            server_config(&f[0], &f[1], &f[2])
        })
    }

    /// [`webhook_server_config`] from files that may be rotated.
    pub fn webhook(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        Reloading::new(vec![cert.into(), key.into()], |f| {
            webhook_server_config(&f[0], &f[1])
        })
    }
}

impl Reloading<rustls::ClientConfig> {
    /// [`client_config`] from files that may be rotated.
    pub fn client(ca: &Path, cert: &Path, key: &Path) -> Result<Self, TlsError> {
        Reloading::new(vec![ca.into(), cert.into(), key.into()], |f| {
            client_config(&f[0], &f[1], &f[2])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CA and a client certificate from it, as PEM (ca, cert, key).
    fn credentials(name: &str) -> (String, String, String) {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::default();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, name);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["frontdesk-proxy".to_string()])
            .unwrap()
            .signed_by(&key, &Issuer::from_params(&ca, &ca_key))
            .unwrap();
        (ca_cert.pem(), leaf.pem(), key.serialize_pem())
    }

    fn write(dir: &Path, (ca, cert, key): &(String, String, String)) {
        std::fs::write(dir.join("ca.crt"), ca).unwrap();
        std::fs::write(dir.join("tls.crt"), cert).unwrap();
        std::fs::write(dir.join("tls.key"), key).unwrap();
    }

    #[test]
    fn rotated_files_are_picked_up_and_bad_ones_keep_the_last_good_set() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, &credentials("first"));
        let tls =
            Reloading::client(&d.join("ca.crt"), &d.join("tls.crt"), &d.join("tls.key")).unwrap();
        let (first, outcome) = tls.current();
        assert_eq!(outcome, Reload::Unchanged);
        assert_eq!(tls.check_now(), Reload::Unchanged, "same files");

        write(d, &credentials("second"));
        // Within the check interval the files are not even read.
        assert_eq!(tls.current().1, Reload::Unchanged);
        assert_eq!(tls.check_now(), Reload::Reloaded);
        let (second, _) = tls.current();
        assert!(!Arc::ptr_eq(&first, &second), "a new configuration");

        // A key that does not match, a missing file: reported, and the second set stays.
        let third = credentials("third");
        std::fs::write(d.join("tls.key"), &third.2).unwrap();
        assert!(matches!(tls.check_now(), Reload::Failed(_)));
        std::fs::remove_file(d.join("ca.crt")).unwrap();
        match tls.check_now() {
            Reload::Failed(e) => assert!(e.contains("ca.crt"), "{e}"),
            other => panic!("{other:?}"),
        }
        assert!(Arc::ptr_eq(&tls.current().0, &second));

        // Once the set is whole again, it loads.
        write(d, &third);
        assert_eq!(tls.check_now(), Reload::Reloaded);
    }

    #[test]
    fn a_bad_first_set_is_an_error_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let err = Reloading::server(&d.join("tls.crt"), &d.join("tls.key"), &d.join("ca.crt"))
            .err()
            .unwrap();
        assert!(err.path.ends_with("tls.crt"), "{err}");
    }
}
