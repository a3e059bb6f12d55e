//! Credentials of the snapshot stream (mutual TLS between proxies and controllers): a CA, the
//! controller's server certificate and the proxies' client certificate, and their rotation
//! without downtime. Pure logic: [`rotate`] takes the stored [`State`] and the time and returns
//! the next state and the files to mount; `frontdesk-certs` stores them (Secrets or files).
//!
//! Pods pick up rotated files at different moments (a Kubernetes Secret volume is refreshed
//! within about a minute), so old and new credentials must trust each other. Two CAs are
//! always published in the trust bundle: the one that signs (`signing`) and the one that will
//! sign after the next rotation (`next`). A rotation promotes `next` to signing (every pod
//! already trusts it, since the previous rotation), keeps the old signing CA trusted until the
//! certificates it signed expire (`retired`), makes a new `next`, and issues new certificates.
//! A pod with the old files and a pod with the new ones therefore accept each other, whichever
//! updates first. Promotion is skipped when the signing CA is younger than
//! [`Policy::min_promotion_interval`], so two rotations in quick succession (a retried
//! upgrade) never leave pods two generations apart; the certificates are reissued all the same.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde::{Deserialize, Serialize};

/// Version of [`State`]'s stored form.
const STATE_VERSION: u32 = 1;
/// Lifetime of a CA: it is `next` for one rotation period, then signs for one more, then stays
/// trusted until the certificates it signed expire, far inside this.
const CA_VALIDITY: i64 = 5 * 365 * 24 * 3600;
/// Certificates are valid from slightly before their issue, for clocks a little behind.
const BACKDATE: i64 = 300;

/// The proxies' client certificate name (SAN and CN).
pub const PROXY_NAME: &str = "frontdesk-proxy";

/// How long things live; seconds.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Lifetime of the controller's and proxies' certificates.
    pub validity: i64,
    /// `--if-due` rotates when the certificates have less than this left.
    pub renew_before: i64,
    /// The signing CA signs at least this long before the next CA replaces it.
    pub min_promotion_interval: i64,
}

impl Policy {
    pub fn check(&self) -> Result<(), String> {
        if self.validity < 3600 {
            return Err("the certificate validity must be at least 1h".into());
        }
        if self.renew_before <= 0 || self.renew_before >= self.validity {
            return Err("renew-before must be positive and shorter than the validity".into());
        }
        if self.validity * 4 > CA_VALIDITY {
            return Err("the certificate validity must be at most 15 months".into());
        }
        Ok(())
    }
}

/// What is kept between rotations (the CA Secret, or `ca-state.json`). Holds private keys.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub version: u32,
    pub signing: Authority,
    pub next: Authority,
    /// The previous signing CA, trusted until the certificates it signed expire.
    #[serde(default)]
    pub retired: Option<Retired>,
    /// When the current certificates were issued, and when they expire (unix seconds).
    pub issued_at: i64,
    pub expires_at: i64,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("signing", &self.signing.name)
            .field("next", &self.next.name)
            .field("retired", &self.retired.as_ref().map(|r| r.trusted_until))
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A CA with its key.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authority {
    /// The CA's common name; the issuer name of what it signs.
    pub name: String,
    pub cert: String,
    pub key: String,
    pub not_after: i64,
    /// Since when it signs (unset while it is `next`).
    #[serde(default)]
    pub signing_since: Option<i64>,
}

/// A CA that no longer signs, still trusted for a while.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Retired {
    pub cert: String,
    pub trusted_until: i64,
}

/// A certificate and its key, PEM. Debug leaves the key out.
#[derive(Clone)]
pub struct Pair {
    pub cert: String,
    pub key: String,
}

impl std::fmt::Debug for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pair")
            .field("cert", &self.cert)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// What the pods mount: the trust bundle and each side's certificate.
#[derive(Clone, Debug)]
pub struct Issued {
    pub ca_bundle: String,
    pub controller: Pair,
    pub proxy: Pair,
}

/// What a rotation did, for the log.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// No state yet: a new CA pair and certificates.
    Created,
    /// `next` became the signing CA.
    Promoted,
    /// Same CAs, new certificates (the signing CA is younger than the promotion interval).
    Reissued,
}

impl State {
    pub fn parse(json: &[u8]) -> Result<State, String> {
        let state: State = serde_json::from_slice(json)
            .map_err(|e| format!("the stored credentials state does not parse: {e}"))?;
        if state.version != STATE_VERSION {
            return Err(format!(
                "the stored credentials state has version {}, this build reads {STATE_VERSION}",
                state.version
            ));
        }
        Ok(state)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("the state serializes")
    }

    /// True when `--if-due` should rotate: the certificates or a CA are close to their end.
    pub fn due(&self, now: i64, policy: &Policy) -> bool {
        self.expires_at - now <= policy.renew_before
            || self.signing.not_after - now <= policy.validity
            || self.next.not_after - now <= 2 * policy.validity
    }

    /// The CAs a pod trusts: retired (while its certificates live), signing, next.
    pub fn bundle(&self, now: i64) -> String {
        let mut bundle = String::new();
        if let Some(r) = self.retired.as_ref().filter(|r| r.trusted_until > now) {
            bundle.push_str(&r.cert);
        }
        bundle.push_str(&self.signing.cert);
        bundle.push_str(&self.next.cert);
        bundle
    }
}

/// Rotates: from no state, creates everything; else promotes `next` when the signing CA has
/// signed long enough, and always issues new certificates.
///
/// `controller_names` are the DNS names proxies use to reach the controller (the Service's
/// names); they go into the controller's certificate.
pub fn rotate(
    previous: Option<&State>,
    now: i64,
    policy: &Policy,
    controller_names: &[String],
) -> Result<(State, Issued, Change), String> {
    policy.check()?;
    if controller_names.is_empty() {
        return Err("the controller certificate needs at least one DNS name".into());
    }
    let (state, change) = match previous {
        None => {
            let mut signing = new_authority(now)?;
            signing.signing_since = Some(now);
            let next = new_authority(now)?;
            (successor(signing, next, None, now, policy), Change::Created)
        }
        Some(prev) => {
            let since = prev.signing.signing_since.unwrap_or(prev.issued_at);
            let must = prev.signing.not_after - now <= policy.validity;
            if now - since >= policy.min_promotion_interval || must {
                let mut signing = prev.next.clone();
                signing.signing_since = Some(now);
                let retired = Retired {
                    cert: prev.signing.cert.clone(),
                    trusted_until: prev.expires_at,
                };
                let next = new_authority(now)?;
                let state = successor(signing, next, Some(retired), now, policy);
                (state, Change::Promoted)
            } else {
                let mut state = prev.clone();
                state.issued_at = now;
                state.expires_at = now + policy.validity;
                (state, Change::Reissued)
            }
        }
    };
    let issued = issue(&state, now, controller_names)?;
    Ok((state, issued, change))
}

fn successor(
    signing: Authority,
    next: Authority,
    retired: Option<Retired>,
    now: i64,
    policy: &Policy,
) -> State {
    State {
        version: STATE_VERSION,
        signing,
        next,
        retired,
        issued_at: now,
        expires_at: now + policy.validity,
    }
}

fn new_authority(now: i64) -> Result<Authority, String> {
    let key = KeyPair::generate().map_err(|e| e.to_string())?;
    let name = format!("frontdesk channel CA {}", fingerprint(&key));
    let mut params = ca_params(&name);
    params.not_before = time(now - BACKDATE)?;
    params.not_after = time(now + CA_VALIDITY)?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    Ok(Authority {
        name,
        cert: cert.pem(),
        key: key.serialize_pem(),
        not_after: now + CA_VALIDITY,
        signing_since: None,
    })
}

/// The parameters a CA was made with; also what signing needs from it (name, key usages).
fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// A short, stable tag of a key, so each CA has its own name.
fn fingerprint(key: &KeyPair) -> String {
    let mut hex = frontdesk_crds::compile::policy::sha256_hex(key.public_key_raw());
    hex.truncate(12);
    hex
}

fn time(unix: i64) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::from_unix_timestamp(unix).map_err(|e| e.to_string())
}

fn issue(state: &State, now: i64, controller_names: &[String]) -> Result<Issued, String> {
    let key = KeyPair::from_pem(&state.signing.key)
        .map_err(|e| format!("the signing CA's key does not load: {e}"))?;
    let issuer = Issuer::new(ca_params(&state.signing.name), key);
    let leaf = |names: &[String], usage: ExtendedKeyUsagePurpose| -> Result<Pair, String> {
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let mut params = CertificateParams::new(names.to_vec()).map_err(|e| e.to_string())?;
        params
            .distinguished_name
            .push(DnType::CommonName, &names[0]);
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = time(now - BACKDATE)?;
        params.not_after = time(state.expires_at)?;
        let cert = params.signed_by(&key, &issuer).map_err(|e| e.to_string())?;
        Ok(Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    };
    Ok(Issued {
        ca_bundle: state.bundle(now),
        controller: leaf(controller_names, ExtendedKeyUsagePurpose::ServerAuth)?,
        proxy: leaf(
            &[PROXY_NAME.to_string()],
            ExtendedKeyUsagePurpose::ClientAuth,
        )?,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use std::sync::Arc;

    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

    /// 90-day certificates renewed 30 days ahead, promotion at most hourly.
    pub(crate) const POLICY: Policy = Policy {
        validity: 90 * 86400,
        renew_before: 30 * 86400,
        min_promotion_interval: 3600,
    };
    const T0: i64 = 1_800_000_000;

    fn names() -> Vec<String> {
        vec![
            "frontdesk-controller".into(),
            "frontdesk-controller.frontdesk-system.svc".into(),
        ]
    }

    fn certs(pem: &str) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn roots(bundle: &str) -> Arc<rustls::RootCertStore> {
        let mut roots = rustls::RootCertStore::empty();
        for c in certs(bundle) {
            roots.add(c).unwrap();
        }
        Arc::new(roots)
    }

    /// Does a proxy holding `proxy` accept a controller holding `controller`, and the other
    /// way round, at `now`? Checked with rustls' own verifiers, as the handshake does.
    fn accept_each_other(proxy: &Issued, controller: &Issued, now: i64) -> Result<(), String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let when = UnixTime::since_unix_epoch(std::time::Duration::from_secs(now as u64));
        let server = rustls::client::WebPkiServerVerifier::builder_with_provider(
            roots(&proxy.ca_bundle),
            provider.clone(),
        )
        .build()
        .unwrap();
        let chain = certs(&controller.controller.cert);
        server
            .verify_server_cert(
                &chain[0],
                &[],
                &ServerName::try_from("frontdesk-controller.frontdesk-system.svc").unwrap(),
                &[],
                when,
            )
            .map_err(|e| format!("the proxy refuses the controller: {e}"))?;
        let client = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots(&controller.ca_bundle),
            provider,
        )
        .build()
        .unwrap();
        let chain = certs(&proxy.proxy.cert);
        client
            .verify_client_cert(&chain[0], &[], when)
            .map_err(|e| format!("the controller refuses the proxy: {e}"))?;
        // The keys are the certificates' own.
        for pair in [&proxy.proxy, &controller.controller] {
            let key = PrivateKeyDer::from_pem_slice(pair.key.as_bytes()).unwrap();
            let signer = rustls::crypto::ring::sign::any_supported_type(&key).unwrap();
            let ck = rustls::sign::CertifiedKey::new(certs(&pair.cert), signer);
            ck.keys_match().unwrap();
        }
        Ok(())
    }

    #[test]
    fn a_first_rotation_creates_credentials_that_work_together() {
        let (state, issued, change) = rotate(None, T0, &POLICY, &names()).unwrap();
        assert_eq!(change, Change::Created);
        assert_eq!(certs(&issued.ca_bundle).len(), 2, "signing and next");
        accept_each_other(&issued, &issued, T0).unwrap();
        // Not valid for another name, nor after expiry.
        assert!(accept_each_other(&issued, &issued, state.expires_at + 1).is_err());
        assert!(!state.due(T0, &POLICY));
        assert!(state.due(state.expires_at - POLICY.renew_before, &POLICY));
    }

    #[test]
    fn old_and_new_files_accept_each_other_across_every_rotation() {
        let (mut state, first, _) = rotate(None, T0, &POLICY, &names()).unwrap();
        let mut old = first.clone();
        let mut now = T0;
        for round in 0..5 {
            now += 7 * 86400;
            let (next_state, new, change) = rotate(Some(&state), now, &POLICY, &names()).unwrap();
            assert_eq!(change, Change::Promoted, "round {round}");
            assert_ne!(next_state.signing.name, state.signing.name);
            assert_eq!(next_state.signing.name, state.next.name, "next is promoted");
            // Any mix of old and new files, in either role, while pods catch up.
            accept_each_other(&old, &new, now).unwrap();
            accept_each_other(&new, &old, now).unwrap();
            accept_each_other(&new, &new, now).unwrap();
            // Two generations apart is too far (why promotion waits; the check has teeth).
            if round >= 1 {
                assert!(
                    accept_each_other(&first, &new, now).is_err(),
                    "round {round}"
                );
            }
            // The state survives its stored form.
            state = State::parse(&next_state.to_json()).unwrap();
            old = new;
        }
    }

    #[test]
    fn quick_successive_rotations_reissue_without_promoting() {
        let (state, first, _) = rotate(None, T0, &POLICY, &names()).unwrap();
        let (second_state, second, change) =
            rotate(Some(&state), T0 + 60, &POLICY, &names()).unwrap();
        assert_eq!(change, Change::Reissued);
        assert_eq!(second_state.signing.name, state.signing.name);
        assert_ne!(
            second.proxy.cert, first.proxy.cert,
            "new certificates all the same"
        );
        let (_, third, change) = rotate(Some(&second_state), T0 + 120, &POLICY, &names()).unwrap();
        assert_eq!(change, Change::Reissued);
        accept_each_other(&first, &third, T0 + 120).unwrap();
        accept_each_other(&third, &first, T0 + 120).unwrap();
    }

    #[test]
    fn a_retired_ca_leaves_the_bundle_when_its_certificates_expire() {
        let (s1, _, _) = rotate(None, T0, &POLICY, &names()).unwrap();
        let later = T0 + 86400;
        let (s2, issued, _) = rotate(Some(&s1), later, &POLICY, &names()).unwrap();
        assert_eq!(certs(&issued.ca_bundle).len(), 3, "retired, signing, next");
        assert_eq!(certs(&s2.bundle(s1.expires_at + 1)).len(), 2);
    }

    #[test]
    fn a_ca_near_its_end_is_due_and_replaced_even_when_young() {
        let (mut state, _, _) = rotate(None, T0, &POLICY, &names()).unwrap();
        state.signing.not_after = T0 + POLICY.validity - 1;
        assert!(state.due(T0 + 10, &POLICY));
        let (next, _, change) = rotate(Some(&state), T0 + 10, &POLICY, &names()).unwrap();
        assert_eq!(change, Change::Promoted);
        assert!(!next.due(T0 + 10, &POLICY));
    }

    #[test]
    fn bad_state_and_bad_policy_are_refused_with_reasons() {
        assert!(State::parse(b"{").unwrap_err().contains("does not parse"));
        let (state, _, _) = rotate(None, T0, &POLICY, &names()).unwrap();
        let mut json: serde_json::Value = serde_json::from_slice(&state.to_json()).unwrap();
        json["version"] = 9.into();
        let err = State::parse(json.to_string().as_bytes()).unwrap_err();
        assert!(err.contains("version 9"), "{err}");
        let bad = Policy {
            renew_before: POLICY.validity,
            ..POLICY
        };
        assert!(
            rotate(None, T0, &bad, &names())
                .unwrap_err()
                .contains("renew-before")
        );
        assert!(
            rotate(None, T0, &POLICY, &[])
                .unwrap_err()
                .contains("DNS name")
        );
        // The keys never show in Debug.
        assert!(!format!("{state:?}").contains("PRIVATE KEY"));
    }
}
