//! Credentials of the snapshot stream (mutual TLS between proxies and controllers): a CA, the
//! controller's server certificate and one client certificate per gateway for its proxies
//! (naming the gateway, [`crate::channel_identity`]), and their rotation without downtime. Pure logic: [`rotate`] takes the stored [`State`] and the time and returns
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
//! Every certificate of a rotation comes from the same signing CA, so what holds for one
//! gateway's proxies holds for all.

use std::collections::{BTreeMap, BTreeSet};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use serde::{Deserialize, Serialize};

use crate::channel_identity::{check_gateway_name, gateway_uri};

/// Version of [`State`]'s stored form. Still 1 with per-gateway certificates: they only added
/// the optional `gateways`, which the build before them ignores and this one reads as "none" (the
/// rotation after an upgrade then issues every gateway's certificate). Bumping it would make a
/// rolled-back release's job refuse the state; a change that older builds cannot read safely
/// must bump it and migrate in [`State::parse`].
const STATE_VERSION: u32 = 1;
/// Lifetime of a CA: it is `next` for one rotation period, then signs for one more, then stays
/// trusted until the certificates it signed expire, far inside this.
const CA_VALIDITY: i64 = 5 * 365 * 24 * 3600;
/// Certificates are valid from slightly before their issue, for clocks a little behind.
const BACKDATE: i64 = 300;

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
    /// The gateways whose proxies got a certificate at the last rotation. Empty in a state
    /// written before proxy certificates named their gateway (one certificate for all).
    #[serde(default)]
    pub gateways: BTreeSet<String>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("signing", &self.signing.name)
            .field("next", &self.next.name)
            .field("retired", &self.retired.as_ref().map(|r| r.trusted_until))
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .field("gateways", &self.gateways)
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
    /// The client certificate of each gateway's proxies, naming that gateway.
    pub proxies: BTreeMap<String, Pair>,
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

    /// True when `--if-due` should rotate: the certificates or a CA are close to their end, or
    /// the gateways to issue for are not those of the last rotation.
    pub fn due(&self, now: i64, policy: &Policy, gateways: &BTreeSet<String>) -> bool {
        self.gateways != *gateways
            || self.expires_at - now <= policy.renew_before
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
/// names); they go into the controller's certificate. Each of `gateways` gets a proxy
/// certificate naming it.
pub fn rotate(
    previous: Option<&State>,
    now: i64,
    policy: &Policy,
    controller_names: &[String],
    gateways: &BTreeSet<String>,
) -> Result<(State, Issued, Change), String> {
    policy.check()?;
    if controller_names.is_empty() {
        return Err("the controller certificate needs at least one DNS name".into());
    }
    if gateways.is_empty() {
        return Err("at least one gateway needs a proxy certificate".into());
    }
    for gateway in gateways {
        check_gateway_name(gateway)?;
    }
    let (state, change) = match previous {
        None => {
            let mut signing = new_authority(now)?;
            signing.signing_since = Some(now);
            let next = new_authority(now)?;
            (
                successor(signing, next, None, now, policy, gateways),
                Change::Created,
            )
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
                let state = successor(signing, next, Some(retired), now, policy, gateways);
                (state, Change::Promoted)
            } else {
                let mut state = prev.clone();
                state.issued_at = now;
                state.expires_at = now + policy.validity;
                state.gateways = gateways.clone();
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
    gateways: &BTreeSet<String>,
) -> State {
    State {
        version: STATE_VERSION,
        signing,
        next,
        retired,
        issued_at: now,
        expires_at: now + policy.validity,
        gateways: gateways.clone(),
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
    let issuer = signer(state)?;
    // DNS names, or addresses for a controller reached by IP (rcgen tells them apart).
    let controller =
        CertificateParams::new(controller_names.to_vec()).map_err(|e| e.to_string())?;
    let mut proxies = BTreeMap::new();
    for gateway in &state.gateways {
        proxies.insert(gateway.clone(), gateway_leaf(state, &issuer, now, gateway)?);
    }
    Ok(Issued {
        ca_bundle: state.bundle(now),
        controller: leaf(
            state,
            &issuer,
            now,
            controller,
            &controller_names[0],
            ExtendedKeyUsagePurpose::ServerAuth,
        )?,
        proxies,
    })
}

/// A client certificate for `gateway`'s proxies from the current signing CA, as a rotation
/// issues it (same lifetime: until `state.expires_at`), and the trust bundle to mount with it.
/// For the controller's own issuing ([`crate::provision`]); `frontdesk-certs` uses [`rotate`].
pub fn gateway_credentials(
    state: &State,
    now: i64,
    gateway: &str,
) -> Result<(String, Pair), String> {
    check_gateway_name(gateway)?;
    let issuer = signer(state)?;
    Ok((
        state.bundle(now),
        gateway_leaf(state, &issuer, now, gateway)?,
    ))
}

fn signer(state: &State) -> Result<Issuer<'static, KeyPair>, String> {
    let key = KeyPair::from_pem(&state.signing.key)
        .map_err(|e| format!("the signing CA's key does not load: {e}"))?;
    Ok(Issuer::new(ca_params(&state.signing.name), key))
}

fn leaf(
    state: &State,
    issuer: &Issuer<'static, KeyPair>,
    now: i64,
    mut params: CertificateParams,
    name: &str,
    usage: ExtendedKeyUsagePurpose,
) -> Result<Pair, String> {
    let key = KeyPair::generate().map_err(|e| e.to_string())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![usage];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.not_before = time(now - BACKDATE)?;
    params.not_after = time(state.expires_at)?;
    let cert = params.signed_by(&key, issuer).map_err(|e| e.to_string())?;
    Ok(Pair {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// The client certificate naming `gateway` (URI SAN `spiffe://frontdesk/gateway/<gateway>`).
fn gateway_leaf(
    state: &State,
    issuer: &Issuer<'static, KeyPair>,
    now: i64,
    gateway: &str,
) -> Result<Pair, String> {
    let uri = gateway_uri(gateway);
    let mut params = CertificateParams::default();
    let san = uri
        .as_str()
        .try_into()
        .map_err(|e: rcgen::Error| e.to_string())?;
    params.subject_alt_names = vec![SanType::URI(san)];
    // The CN is for people reading the certificate (X.520 caps it at 64); the SAN decides.
    let cn = &gateway[..gateway.len().min(64)];
    leaf(
        state,
        issuer,
        now,
        params,
        cn,
        ExtendedKeyUsagePurpose::ClientAuth,
    )
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

    /// A set of gateway names.
    pub(crate) fn gateway_set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn gateways() -> BTreeSet<String> {
        gateway_set(&["default", "partner", "web"])
    }

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

    /// Do the proxies of every gateway holding `proxy` accept a controller holding
    /// `controller`, and the other way round, at `now`? Checked with rustls' own verifiers, as
    /// the handshake does; each proxy certificate must also name its own gateway.
    fn accept_each_other(proxy: &Issued, controller: &Issued, now: i64) -> Result<(), String> {
        assert!(!proxy.proxies.is_empty());
        for gateway in proxy.proxies.keys() {
            accept_each_other_for(gateway, proxy, controller, now)?;
        }
        Ok(())
    }

    fn accept_each_other_for(
        gateway: &str,
        proxy: &Issued,
        controller: &Issued,
        now: i64,
    ) -> Result<(), String> {
        let proxy_pair = &proxy.proxies[gateway];
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
        let chain = certs(&proxy_pair.cert);
        client
            .verify_client_cert(&chain[0], &[], when)
            .map_err(|e| format!("the controller refuses the proxy of {gateway}: {e}"))?;
        assert_eq!(
            crate::channel_identity::Identity::of(Some(&chain)),
            crate::channel_identity::Identity::Gateway(gateway.to_string())
        );
        // The keys are the certificates' own.
        for pair in [proxy_pair, &controller.controller] {
            let key = PrivateKeyDer::from_pem_slice(pair.key.as_bytes()).unwrap();
            let signer = rustls::crypto::ring::sign::any_supported_type(&key).unwrap();
            let ck = rustls::sign::CertifiedKey::new(certs(&pair.cert), signer);
            ck.keys_match().unwrap();
        }
        Ok(())
    }

    #[test]
    fn a_first_rotation_creates_credentials_that_work_together() {
        let (state, issued, change) = rotate(None, T0, &POLICY, &names(), &gateways()).unwrap();
        assert_eq!(change, Change::Created);
        assert_eq!(certs(&issued.ca_bundle).len(), 2, "signing and next");
        accept_each_other(&issued, &issued, T0).unwrap();
        // Not valid for another name, nor after expiry.
        assert!(accept_each_other(&issued, &issued, state.expires_at + 1).is_err());
        assert!(!state.due(T0, &POLICY, &gateways()));
        assert!(state.due(state.expires_at - POLICY.renew_before, &POLICY, &gateways()));
    }

    /// What the controller issues for a provisioned Gateway works with the job's controller
    /// certificate, names that Gateway, and expires with the job's certificates.
    #[test]
    fn gateway_credentials_issued_apart_work_with_the_rotations_certificates() {
        let (state, issued, _) = rotate(None, T0, &POLICY, &names(), &gateways()).unwrap();
        let (bundle, pair) = gateway_credentials(&state, T0 + 60, "edge-public").unwrap();
        let apart = Issued {
            ca_bundle: bundle,
            controller: issued.controller.clone(),
            proxies: BTreeMap::from([("edge-public".to_string(), pair)]),
        };
        accept_each_other_for("edge-public", &apart, &issued, T0 + 120).unwrap();
        assert!(gateway_credentials(&state, T0, "a/b").is_err());
    }

    #[test]
    fn each_gateway_gets_a_certificate_of_its_own_that_names_it() {
        use crate::channel_identity::Identity;
        let (state, issued, _) = rotate(None, T0, &POLICY, &names(), &gateways()).unwrap();
        assert_eq!(state.gateways, gateways());
        let names: Vec<&String> = issued.proxies.keys().collect();
        assert_eq!(names, ["default", "partner", "web"]);
        let keys: BTreeSet<&String> = issued.proxies.values().map(|p| &p.key).collect();
        assert_eq!(keys.len(), 3, "no key is shared");
        let web = Identity::of(Some(&certs(&issued.proxies["web"].cert)));
        assert_eq!(web.refuses("web"), None);
        assert!(web.refuses("partner").is_some(), "web's key opens only web");
        // The controller's certificate names no gateway: it cannot subscribe as a proxy.
        let controller = Identity::of(Some(&certs(&issued.controller.cert)));
        assert!(controller.refuses("web").is_some());
    }

    #[test]
    fn old_and_new_files_accept_each_other_across_every_rotation() {
        let (mut state, first, _) = rotate(None, T0, &POLICY, &names(), &gateways()).unwrap();
        let mut old = first.clone();
        let mut now = T0;
        for round in 0..5 {
            now += 7 * 86400;
            let (next_state, new, change) =
                rotate(Some(&state), now, &POLICY, &names(), &gateways()).unwrap();
            assert_eq!(change, Change::Promoted, "round {round}");
            assert_ne!(next_state.signing.name, state.signing.name);
            assert_eq!(next_state.signing.name, state.next.name, "next is promoted");
            // Any mix of old and new files, in either role, for every gateway, while pods
            // catch up.
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
            assert_eq!(state.gateways, gateways());
            old = new;
        }
    }

    #[test]
    fn quick_successive_rotations_reissue_without_promoting() {
        let (state, first, _) = rotate(None, T0, &POLICY, &names(), &gateways()).unwrap();
        let (second_state, second, change) =
            rotate(Some(&state), T0 + 60, &POLICY, &names(), &gateways()).unwrap();
        assert_eq!(change, Change::Reissued);
        assert_eq!(second_state.signing.name, state.signing.name);
        for gateway in gateways() {
            assert_ne!(
                second.proxies[&gateway].cert, first.proxies[&gateway].cert,
                "new certificates all the same"
            );
        }
        let (_, third, change) = rotate(
            Some(&second_state),
            T0 + 120,
            &POLICY,
            &names(),
            &gateways(),
        )
        .unwrap();
        assert_eq!(change, Change::Reissued);
        accept_each_other(&first, &third, T0 + 120).unwrap();
        accept_each_other(&third, &first, T0 + 120).unwrap();
    }

    #[test]
    fn a_changed_gateway_list_is_due_and_the_next_rotation_issues_for_it() {
        let (state, first, _) = rotate(None, T0, &POLICY, &names(), &gateways()).unwrap();
        let added = gateway_set(&["default", "partner", "web", "mobile"]);
        let removed = gateway_set(&["default", "web"]);
        assert!(state.due(T0 + 60, &POLICY, &added));
        assert!(state.due(T0 + 60, &POLICY, &removed));
        let (next, issued, change) =
            rotate(Some(&state), T0 + 60, &POLICY, &names(), &added).unwrap();
        assert_eq!(change, Change::Reissued);
        assert_eq!(next.gateways, added);
        assert!(!next.due(T0 + 60, &POLICY, &added));
        // The new gateway's proxies and the others' old files all work with either controller.
        accept_each_other(&issued, &first, T0 + 60).unwrap();
        accept_each_other(&first, &issued, T0 + 60).unwrap();
        let (_, fewer, _) = rotate(Some(&next), T0 + 120, &POLICY, &names(), &removed).unwrap();
        assert_eq!(fewer.proxies.keys().collect::<Vec<_>>(), ["default", "web"]);
    }

    /// The state as the build before per-gateway certificates wrote it (no `gateways`) is read
    /// as issued for no gateway: `--if-due` rotates at once, keeping the CAs, so pods still on
    /// the shared certificate and pods with their gateway's accept each other meanwhile.
    #[test]
    fn a_state_from_before_per_gateway_certificates_is_read_and_due_at_once() {
        let (state, shared_era, _) = rotate(None, T0, &POLICY, &names(), &gateways()).unwrap();
        let mut json: serde_json::Value = serde_json::from_slice(&state.to_json()).unwrap();
        assert_eq!(json["version"], 1, "the stored version did not change");
        json.as_object_mut().unwrap().remove("gateways").unwrap();
        let old = State::parse(json.to_string().as_bytes()).unwrap();
        assert!(old.gateways.is_empty());
        assert!(old.due(T0 + 60, &POLICY, &gateways()), "due although young");
        let (next, issued, change) =
            rotate(Some(&old), T0 + 60, &POLICY, &names(), &gateways()).unwrap();
        assert_eq!(change, Change::Reissued, "the CAs are kept");
        assert_eq!(next.signing.name, state.signing.name);
        assert_eq!(next.gateways, gateways());
        accept_each_other(&issued, &shared_era, T0 + 60).unwrap();
        accept_each_other(&shared_era, &issued, T0 + 60).unwrap();
        // And what this build writes, the previous one reads: only a field was added.
        let written: serde_json::Value = serde_json::from_slice(&next.to_json()).unwrap();
        let mut fields: Vec<&String> = written.as_object().unwrap().keys().collect();
        fields.sort();
        assert_eq!(
            fields,
            [
                "expiresAt",
                "gateways",
                "issuedAt",
                "next",
                "retired",
                "signing",
                "version"
            ]
        );
    }

    #[test]
    fn a_retired_ca_leaves_the_bundle_when_its_certificates_expire() {
        let (s1, _, _) = rotate(None, T0, &POLICY, &names(), &gateways()).unwrap();
        let later = T0 + 86400;
        let (s2, issued, _) = rotate(Some(&s1), later, &POLICY, &names(), &gateways()).unwrap();
        assert_eq!(certs(&issued.ca_bundle).len(), 3, "retired, signing, next");
        assert_eq!(certs(&s2.bundle(s1.expires_at + 1)).len(), 2);
    }

    #[test]
    fn a_ca_near_its_end_is_due_and_replaced_even_when_young() {
        let (mut state, _, _) = rotate(None, T0, &POLICY, &names(), &gateways()).unwrap();
        state.signing.not_after = T0 + POLICY.validity - 1;
        assert!(state.due(T0 + 10, &POLICY, &gateways()));
        let (next, _, change) =
            rotate(Some(&state), T0 + 10, &POLICY, &names(), &gateways()).unwrap();
        assert_eq!(change, Change::Promoted);
        assert!(!next.due(T0 + 10, &POLICY, &gateways()));
    }

    #[test]
    fn bad_state_and_bad_policy_are_refused_with_reasons() {
        assert!(State::parse(b"{").unwrap_err().contains("does not parse"));
        let (state, _, _) = rotate(None, T0, &POLICY, &names(), &gateways()).unwrap();
        let mut json: serde_json::Value = serde_json::from_slice(&state.to_json()).unwrap();
        json["version"] = 9.into();
        let err = State::parse(json.to_string().as_bytes()).unwrap_err();
        assert!(err.contains("version 9"), "{err}");
        let bad = Policy {
            renew_before: POLICY.validity,
            ..POLICY
        };
        let refused = |policy: &Policy, names: &[String], gateways: &[&str]| {
            rotate(None, T0, policy, names, &gateway_set(gateways)).unwrap_err()
        };
        assert!(refused(&bad, &names(), &["web"]).contains("renew-before"));
        assert!(refused(&POLICY, &[], &["web"]).contains("DNS name"));
        assert!(refused(&POLICY, &names(), &[]).contains("at least one gateway"));
        let err = refused(&POLICY, &names(), &["web", ".."]);
        assert!(err.contains("\"..\""), "{err}");
        // The keys never show in Debug.
        assert!(!format!("{state:?}").contains("PRIVATE KEY"));
    }
}
