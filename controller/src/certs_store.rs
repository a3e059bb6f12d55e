//! Where `frontdesk-certs` keeps the channel credentials: Kubernetes Secrets (in a cluster) or
//! a directory (local runs and tests), in the same layout the pods mount.
//!
//! | Secret | file | holds | mounted by |
//! |---|---|---|---|
//! | `<prefix>-ca` (`state.json`) | `ca-state.json` | the CAs and their keys | nobody; only the job reads it |
//! | `<prefix>-controller-tls` | `controller/{tls.crt,tls.key,ca.crt}` | the controller's certificate | controller pods |
//! | `<prefix>-proxy-<gateway>-tls` | `proxy-<gateway>/{tls.crt,tls.key,ca.crt}` | the client certificate of the gateway's proxies, naming it | that gateway's proxy pods |
//!
//! The state is written first and with optimistic concurrency (two jobs at once: one fails and
//! its retry sees the other's state), then the mounted sets. The set every gateway's proxies
//! shared before (`<prefix>-proxy-tls`, `proxy/`) is neither written nor removed: the controller
//! refuses its certificate (it names no gateway), and a rolled-back release still finds it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

use crate::certs::{Issued, Pair, State};

pub enum Store {
    Files(PathBuf),
    Secrets {
        api: Box<Api<Secret>>,
        prefix: String,
    },
}

/// The stored state and the version it was read at (Secrets only).
pub struct Loaded {
    pub state: Option<State>,
    version: Option<String>,
    /// Every mounted set (the controller's, each gateway's) exists; when one is missing,
    /// `--if-due` rotates.
    pub complete: bool,
}

/// The mounted sets: the controller's, then each gateway's (`proxy-<gateway>`); a set is a
/// Secret `<prefix>-<set>-tls` or a directory `<set>`.
fn set_names(gateways: &BTreeSet<String>) -> Vec<String> {
    std::iter::once("controller".to_string())
        .chain(gateways.iter().map(|g| format!("proxy-{g}")))
        .collect()
}

/// What each set holds, as files or as Secret keys: the names of [`files`].
const TLS_KEYS: [&str; 3] = ["tls.crt", "tls.key", "ca.crt"];

const STATE_KEY: &str = "state.json";

impl Store {
    /// Reads the state, and whether the sets of the controller and of `gateways` are all there.
    pub async fn load(&self, gateways: &BTreeSet<String>) -> anyhow::Result<Loaded> {
        self.check_names(gateways)?;
        let sets = set_names(gateways);
        match self {
            Store::Files(dir) => {
                let path = dir.join("ca-state.json");
                let state = match std::fs::read(&path) {
                    Ok(bytes) => Some(State::parse(&bytes).map_err(anyhow::Error::msg)?),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => return Err(e).with_context(|| path.display().to_string()),
                };
                let complete = sets
                    .iter()
                    .all(|set| TLS_KEYS.iter().all(|f| dir.join(set).join(f).is_file()));
                Ok(Loaded {
                    state,
                    version: None,
                    complete,
                })
            }
            Store::Secrets { api, prefix } => {
                let name = format!("{prefix}-ca");
                let Some(secret) = api
                    .get_opt(&name)
                    .await
                    .with_context(|| format!("reading Secret {name}"))?
                else {
                    return Ok(Loaded {
                        state: None,
                        version: None,
                        complete: false,
                    });
                };
                let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(STATE_KEY)) else {
                    bail!(
                        "Secret {name} has no {STATE_KEY}; delete it to start over with new credentials"
                    );
                };
                let state = State::parse(&bytes.0).map_err(|e| {
                    anyhow::anyhow!(
                        "Secret {name}: {e}; delete it to start over with new credentials"
                    )
                })?;
                let mut complete = true;
                for set in &sets {
                    let name = format!("{prefix}-{set}-tls");
                    let mounted = api
                        .get_opt(&name)
                        .await
                        .with_context(|| format!("reading Secret {name}"))?;
                    let data = mounted.and_then(|s| s.data).unwrap_or_default();
                    complete &= TLS_KEYS.iter().all(|k| data.contains_key(*k));
                }
                Ok(Loaded {
                    state: Some(state),
                    version: secret.metadata.resource_version,
                    complete,
                })
            }
        }
    }

    /// Writes the state, then every set of `issued`.
    pub async fn save(
        &self,
        loaded: &Loaded,
        state: &State,
        issued: &Issued,
    ) -> anyhow::Result<()> {
        let sets = std::iter::once(("controller".to_string(), &issued.controller)).chain(
            issued
                .proxies
                .iter()
                .map(|(gateway, pair)| (format!("proxy-{gateway}"), pair)),
        );
        match self {
            Store::Files(dir) => {
                write_private(&dir.join("ca-state.json"), &state.to_json())?;
                for (set, pair) in sets {
                    let set_dir = dir.join(set);
                    std::fs::create_dir_all(&set_dir)
                        .with_context(|| set_dir.display().to_string())?;
                    for (file, bytes) in files(issued, pair) {
                        write_private(&set_dir.join(file), bytes.as_bytes())?;
                    }
                }
                Ok(())
            }
            Store::Secrets { api, prefix } => {
                let ca = secret(
                    format!("{prefix}-ca"),
                    "Opaque",
                    [(STATE_KEY, state.to_json())],
                    loaded.version.clone(),
                );
                put(api, ca, loaded.version.is_some()).await?;
                for (set, pair) in sets {
                    let name = format!("{prefix}-{set}-tls");
                    let existing = api
                        .get_opt(&name)
                        .await
                        .with_context(|| format!("reading Secret {name}"))?;
                    let version = existing.and_then(|s| s.metadata.resource_version);
                    let data = files(issued, pair).map(|(k, v)| (k, v.into_bytes()));
                    let exists = version.is_some();
                    put(
                        api,
                        secret(name, "kubernetes.io/tls", data, version),
                        exists,
                    )
                    .await?;
                }
                Ok(())
            }
        }
    }

    /// Where the set of `gateway`'s proxies is kept, for messages.
    pub fn proxy_set(&self, gateway: &str) -> String {
        match self {
            Store::Files(dir) => dir.join(format!("proxy-{gateway}")).display().to_string(),
            Store::Secrets { prefix, .. } => format!("Secret {prefix}-proxy-{gateway}-tls"),
        }
    }

    /// Where the set all gateways' proxies shared before per-gateway certificates is kept.
    pub fn shared_proxy_set(&self) -> String {
        match self {
            Store::Files(dir) => dir.join("proxy").display().to_string(),
            Store::Secrets { prefix, .. } => format!("Secret {prefix}-proxy-tls"),
        }
    }

    /// A gateway name must be one a certificate may carry and, in a cluster, also make a Secret
    /// name (lowercase, digits, '-' and '.'); a file name takes any name a certificate takes.
    fn check_names(&self, gateways: &BTreeSet<String>) -> anyhow::Result<()> {
        for gateway in gateways {
            crate::channel_identity::check_gateway_name(gateway).map_err(anyhow::Error::msg)?;
        }
        let Store::Secrets { prefix, .. } = self else {
            return Ok(());
        };
        for gateway in gateways {
            let lower = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
            let ok = gateway.bytes().all(|b| lower(b) || b == b'.')
                && gateway.bytes().next().is_some_and(lower)
                && gateway.bytes().last().is_some_and(lower)
                && prefix.len() + gateway.len() + "-proxy--tls".len() <= 253;
            if !ok {
                bail!(
                    "gateway {gateway:?}: its Secret {prefix}-proxy-{gateway}-tls is not a valid name \
                     (lowercase letters, digits, '-' and '.', starting and ending with a letter or \
                     digit, at most 253 in all)"
                );
            }
        }
        Ok(())
    }
}

/// The three files of one set, as a Secret of type kubernetes.io/tls names them.
fn files(issued: &Issued, pair: &Pair) -> [(&'static str, String); 3] {
    let [cert, key, ca] = TLS_KEYS;
    [
        (cert, pair.cert.clone()),
        (key, pair.key.clone()),
        (ca, issued.ca_bundle.clone()),
    ]
}

fn secret<const N: usize>(
    name: String,
    kind: &str,
    data: [(&str, Vec<u8>); N],
    resource_version: Option<String>,
) -> Secret {
    let labels = BTreeMap::from([
        (
            "app.kubernetes.io/part-of".to_string(),
            "frontdesk".to_string(),
        ),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "frontdesk-certs".to_string(),
        ),
    ]);
    Secret {
        metadata: ObjectMeta {
            name: Some(name),
            labels: Some(labels),
            resource_version,
            ..ObjectMeta::default()
        },
        type_: Some(kind.to_string()),
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k.to_string(), ByteString(v)))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// Creates, or replaces at the version read (a concurrent writer makes this fail).
async fn put(api: &Api<Secret>, secret: Secret, exists: bool) -> anyhow::Result<()> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let result = if exists {
        api.replace(&name, &PostParams::default(), &secret).await
    } else {
        api.create(&PostParams::default(), &secret).await
    };
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => bail!(
            "Secret {name} changed while rotating (another rotation ran at the same time); run again"
        ),
        Err(e) => Err(e).with_context(|| format!("writing Secret {name}")),
    }
}

/// Writes a file readable by its owner only, replacing it atomically (a reader sees the old
/// file or the new one, never half of one).
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options
        .open(&tmp)
        .with_context(|| tmp.display().to_string())?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| tmp.display().to_string())?;
    std::fs::rename(&tmp, path).with_context(|| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::rotate;
    use crate::certs::tests::{POLICY, gateway_set};

    #[tokio::test]
    async fn files_round_trip_privately_and_a_missing_set_is_incomplete() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::Files(dir.path().to_path_buf());
        let gateways = gateway_set(&["web", "partner"]);
        let empty = store.load(&gateways).await.unwrap();
        assert!(empty.state.is_none() && !empty.complete);

        let (state, issued, _) =
            rotate(None, 1_800_000_000, &POLICY, &["x".into()], &gateways).unwrap();
        store.save(&empty, &state, &issued).await.unwrap();
        let loaded = store.load(&gateways).await.unwrap();
        assert!(loaded.complete);
        assert_eq!(loaded.state.unwrap().signing.name, state.signing.name);
        for gateway in &gateways {
            let key = dir.path().join(format!("proxy-{gateway}/tls.key"));
            assert_eq!(
                std::fs::read_to_string(&key).unwrap(),
                issued.proxies[gateway].key
            );
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&key).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "keys are private");
            }
        }
        assert_eq!(
            store.proxy_set("web"),
            dir.path().join("proxy-web").display().to_string()
        );

        // A gateway without its set yet (added since), a set missing a file: incomplete.
        let more = gateway_set(&["web", "partner", "mobile"]);
        assert!(!store.load(&more).await.unwrap().complete);
        std::fs::remove_file(dir.path().join("controller/ca.crt")).unwrap();
        assert!(!store.load(&gateways).await.unwrap().complete);
        std::fs::write(dir.path().join("ca-state.json"), "{").unwrap();
        let err = store.load(&gateways).await.err().unwrap().to_string();
        assert!(err.contains("does not parse"), "{err}");
        let err = store.load(&gateway_set(&[".."])).await.err().unwrap();
        assert!(err.to_string().contains("not . or .."), "{err}");
    }

    /// The Kubernetes side, against kube's mock service: the calls it makes are exactly those
    /// the chart's Role grants (get, create; update is a PUT at the version read), one Secret
    /// per gateway, and a concurrent writer is reported, not overwritten.
    #[tokio::test]
    async fn secrets_are_read_then_created_or_replaced_at_the_version_read() {
        use http::{Method, Request, Response, StatusCode};
        use kube::client::Body;

        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "fd");
        let store = Store::Secrets {
            api: Box::new(Api::namespaced(client, "fd")),
            prefix: "frontdesk".into(),
        };
        let not_found = || {
            let status = serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "reason": "NotFound", "code": 404, "message": "not found"});
            let mut r = Response::new(Body::from(serde_json::to_vec(&status).unwrap()));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        };
        let echo = |body: Vec<u8>, version: &str| {
            let mut secret: serde_json::Value = serde_json::from_slice(&body).unwrap();
            secret["metadata"]["resourceVersion"] = version.into();
            Response::new(Body::from(serde_json::to_vec(&secret).unwrap()))
        };

        // A gateway name that makes no Secret name is refused before any call.
        let err = store.load(&gateway_set(&["Web_1"])).await.err().unwrap();
        assert!(
            err.to_string().contains("frontdesk-proxy-Web_1-tls"),
            "{err}"
        );

        // First run: nothing there; four creates, the CA first, then one Secret per set.
        let gateways = gateway_set(&["web", "partner"]);
        let (state, issued, _) =
            rotate(None, 1_800_000_000, &POLICY, &["x".into()], &gateways).unwrap();
        let expected_certs: BTreeMap<String, String> = issued
            .proxies
            .iter()
            .map(|(g, p)| (format!("frontdesk-proxy-{g}-tls"), p.cert.clone()))
            .collect();
        let run = tokio::spawn(async move {
            let loaded = store.load(&gateways).await.unwrap();
            assert!(loaded.state.is_none());
            store.save(&loaded, &state, &issued).await.unwrap();
            store
        });
        let mut calls = Vec::new();
        for _ in 0..8 {
            let (req, send) = handle.next_request().await.expect("a request");
            let (method, path) = (req.method().clone(), req.uri().path().to_string());
            calls.push(format!(
                "{method} {}",
                path.trim_start_matches("/api/v1/namespaces/fd/")
            ));
            if method == Method::GET {
                send.send_response(not_found());
            } else {
                let body = req.into_body().collect_bytes().await.unwrap().to_vec();
                let sent: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let name = sent["metadata"]["name"].as_str().unwrap().to_string();
                if path.ends_with("secrets") && name != "frontdesk-ca" {
                    assert_eq!(sent["type"], "kubernetes.io/tls");
                    let data = sent["data"].as_object().unwrap();
                    assert!(TLS_KEYS.iter().all(|k| data.contains_key(*k)));
                    if let Some(cert) = expected_certs.get(&name) {
                        let sent_cert = data["tls.crt"].as_str().unwrap();
                        assert_eq!(sent_cert, base64_of(cert.as_bytes()), "{name}");
                    }
                }
                calls.push(format!("  {name}"));
                send.send_response(echo(body, "1"));
            }
        }
        let store = run.await.unwrap();
        assert_eq!(
            calls,
            [
                "GET secrets/frontdesk-ca",
                "POST secrets",
                "  frontdesk-ca",
                "GET secrets/frontdesk-controller-tls",
                "POST secrets",
                "  frontdesk-controller-tls",
                "GET secrets/frontdesk-proxy-partner-tls",
                "POST secrets",
                "  frontdesk-proxy-partner-tls",
                "GET secrets/frontdesk-proxy-web-tls",
                "POST secrets",
                "  frontdesk-proxy-web-tls",
            ]
        );

        // Next run: the CA Secret is there at version 7, but changes before the write.
        let gateways = gateway_set(&["web"]);
        let (state, issued, _) =
            rotate(None, 1_800_000_000, &POLICY, &["x".into()], &gateways).unwrap();
        let stored = serde_json::json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "frontdesk-ca", "namespace": "fd", "resourceVersion": "7"},
            "data": {"state.json": base64_of(&state.to_json())}});
        let run = tokio::spawn(async move {
            let loaded = store.load(&gateways).await.unwrap();
            assert!(loaded.state.is_some() && !loaded.complete);
            store.save(&loaded, &state, &issued).await
        });
        let (req, send) = handle.next_request().await.unwrap();
        assert_eq!(
            req.uri().path(),
            "/api/v1/namespaces/fd/secrets/frontdesk-ca"
        );
        send.send_response(Response::new(Body::from(
            serde_json::to_vec(&stored).unwrap(),
        )));
        for set in ["controller", "proxy-web"] {
            let (req, send) = handle.next_request().await.unwrap();
            assert_eq!(
                req.uri().path(),
                format!("/api/v1/namespaces/fd/secrets/frontdesk-{set}-tls")
            );
            send.send_response(not_found());
        }
        let (req, send) = handle.next_request().await.unwrap();
        assert_eq!(req.method(), Method::PUT, "a replace, at the version read");
        let body = req.into_body().collect_bytes().await.unwrap();
        let sent: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(sent["metadata"]["resourceVersion"], "7");
        let conflict = serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "reason": "Conflict", "code": 409, "message": "the object has been modified"});
        let mut r = Response::new(Body::from(serde_json::to_vec(&conflict).unwrap()));
        *r.status_mut() = StatusCode::CONFLICT;
        send.send_response(r);
        let err = run.await.unwrap().unwrap_err().to_string();
        assert!(err.contains("another rotation ran"), "{err}");
    }

    fn base64_of(bytes: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }
}
