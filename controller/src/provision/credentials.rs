//! Channel credentials the controller issues for provisioned proxies
//! (`--issue-gateway-credentials`), so a Gateway in any namespace gets its proxies' client
//! certificate without anyone running `frontdesk-certs` for it.
//!
//! The controller reads the certs job's CA state Secret (`<prefix>-ca`, key `state.json`, in
//! its own namespace) and, for each provisioned Gateway, writes a Secret in the Gateway's
//! namespace, named by `--proxy-credentials-secret`, owned by the Gateway, holding `ca.crt`
//! (the trust bundle), `tls.crt` and `tls.key`: a certificate naming
//! `spiffe://frontdesk/gateway/<name>`, signed by the current signing CA and expiring with the
//! job's current certificates ([`crate::certs::gateway_credentials`]). It is issued again when
//! the job rotates (the state's `issuedAt` changes: install, upgrade, and the renewal CronJob,
//! which rotates once less than `--renew-before` remains), so the Gateway's certificate is
//! renewed and re-signed exactly when every other channel certificate is, and is never signed
//! by a CA that the pods stop trusting before it expires. A replica that becomes leader issues
//! once more (it does not read the Secrets back; pods reload rotated files without a restart).
//!
//! Trust: the controller then holds the channel CA's private key, so whoever controls it can
//! mint a certificate for any gateway. It already serves every gateway's snapshot (with their
//! secrets), so that grants little it could not already read; but it also needs write access
//! to Secrets in the Gateways' namespaces. Off unless asked for.
//!
//! The Secrets are labelled `app.kubernetes.io/managed-by: frontdesk-certs`, as the job's are:
//! the label the controller's own Secret watches leave out ([`crate::secret_refs`]), so a
//! Policy naming one never puts channel keys in a snapshot.

use std::collections::BTreeMap;

use frontdesk_crds::gateway_api::Gateway;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use serde_json::Value;

use crate::certs::State;

/// The key of the CA state in the job's Secret.
pub const STATE_KEY: &str = "state.json";

/// Reads the CA state from the job's Secret.
pub fn read_state(secret: &Secret) -> Result<State, String> {
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(STATE_KEY))
        .ok_or_else(|| format!("the CA Secret has no {STATE_KEY}"))?;
    State::parse(&bytes.0)
}

/// One gateway's issued Secret, and the rotation it was issued in.
#[derive(Clone, Debug)]
pub struct IssuedSecret {
    /// The state's `issuedAt` when it was issued: a different one means the job rotated.
    pub rotation: i64,
    pub secret: Value,
}

/// The Secret for `gateway`: kept while the job has not rotated since `previous`, else issued
/// anew.
pub fn secret_for(
    gateway: &Gateway,
    name: &str,
    state: &State,
    now: i64,
    previous: Option<&IssuedSecret>,
) -> Result<IssuedSecret, String> {
    if let Some(previous) = previous.filter(|p| p.rotation == state.issued_at) {
        return Ok(previous.clone());
    }
    let gateway_name = gateway.name_any();
    let (bundle, pair) = crate::certs::gateway_credentials(state, now, &gateway_name)?;
    let mut labels = super::names::labels(&gateway_name);
    labels.insert(
        "app.kubernetes.io/managed-by".into(),
        "frontdesk-certs".into(),
    );
    let secret = Secret {
        type_: Some("kubernetes.io/tls".into()),
        data: Some(BTreeMap::from([
            ("ca.crt".to_string(), ByteString(bundle.into_bytes())),
            ("tls.crt".to_string(), ByteString(pair.cert.into_bytes())),
            ("tls.key".to_string(), ByteString(pair.key.into_bytes())),
        ])),
        ..Default::default()
    };
    let mut value = serde_json::to_value(secret).map_err(|e| e.to_string())?;
    value["apiVersion"] = "v1".into();
    value["kind"] = "Secret".into();
    value["metadata"] = serde_json::json!({
        "name": name,
        "namespace": gateway.namespace().unwrap_or_default(),
        "labels": labels,
        "ownerReferences": [{
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "name": gateway_name,
            "uid": gateway.uid().unwrap_or_default(),
            "controller": true,
            "blockOwnerDeletion": true,
        }],
    });
    Ok(IssuedSecret {
        rotation: state.issued_at,
        secret: value,
    })
}
