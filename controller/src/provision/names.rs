//! Names and labels of what the controller provisions for a Gateway.
//!
//! Every object made for Gateway `<name>` (Deployment, Service, ServiceAccount, HPA, PDB) is
//! named `frontdesk-gw-<name>`, in the Gateway's namespace. The prefix makes the name start with
//! a letter, as a Service name must (an RFC 1035 label), and keeps it apart from the chart's own
//! objects (`<release>-controller`, `<release>-proxy-...`), which a Gateway named `controller`
//! in the release namespace would otherwise take over. When `frontdesk-gw-<name>` would not be a
//! valid label (longer than 63 characters, or holding a `.`, which Gateway names may carry), it
//! is cut to fit and ends with `-` and ten hex digits of the SHA-256 of the Gateway's name, so
//! two Gateways of one namespace never share a name.
//!
//! The same rule keeps the `frontdesk.dev/gateway` label value within 63 characters.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// `app.kubernetes.io/managed-by` of every provisioned object.
pub const MANAGED_BY: &str = "frontdesk-controller";
/// The label naming the Gateway an object is for.
pub const GATEWAY_LABEL: &str = "frontdesk.dev/gateway";
/// `app.kubernetes.io/name` of provisioned proxies, apart from the chart's own (`frontdesk`):
/// the chart's Services and NetworkPolicies never select them by accident.
pub const APP_NAME: &str = "frontdesk-proxy";

/// The longest a Kubernetes name that is a DNS label, or a label value, may be.
const MAX: usize = 63;
/// Hex digits of the hash suffix.
const HASH_DIGITS: usize = 10;

/// The name of every object provisioned for Gateway `gateway`.
pub fn object_name(gateway: &str) -> String {
    fit(&format!("frontdesk-gw-{gateway}"), gateway, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
    })
}

/// The value of the `frontdesk.dev/gateway` label for Gateway `gateway`.
pub fn label_value(gateway: &str) -> String {
    fit(gateway, gateway, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')
    })
}

/// `wanted` when it is short enough and made of `allowed` characters; else its first
/// characters (the others replaced by `-`) and a hash of `gateway`.
fn fit(wanted: &str, gateway: &str, allowed: impl Fn(char) -> bool) -> String {
    if wanted.len() <= MAX && wanted.chars().all(&allowed) {
        return wanted.to_string();
    }
    let hash = Sha256::digest(gateway.as_bytes());
    let hex: String = hash
        .iter()
        .flat_map(|b| [b >> 4, b & 0xf])
        .take(HASH_DIGITS)
        .map(|n| char::from_digit(u32::from(n), 16).unwrap_or('0'))
        .collect();
    let head: String = wanted
        .chars()
        .map(|c| if allowed(c) { c } else { '-' })
        .take(MAX - 1 - HASH_DIGITS)
        .collect();
    // A label ends with a letter or digit: no `-` or `.` before the suffix's own `-`.
    let head = head.trim_end_matches(['-', '.', '_']);
    format!("{head}-{hex}")
}

/// The labels that select a Gateway's proxy pods (the Deployment's selector, the Service's,
/// the PDB's).
pub fn selector(gateway: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), APP_NAME.to_string()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            MANAGED_BY.to_string(),
        ),
        (GATEWAY_LABEL.to_string(), label_value(gateway)),
    ])
}

/// The labels of every provisioned object: the selector's and the component.
pub fn labels(gateway: &str) -> BTreeMap<String, String> {
    let mut labels = selector(gateway);
    labels.insert("app.kubernetes.io/component".into(), "proxy".into());
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_kept_and_long_or_dotted_ones_fit_with_a_hash() {
        assert_eq!(object_name("public"), "frontdesk-gw-public");
        assert_eq!(label_value("public"), "public");

        let long = "a".repeat(60);
        let name = object_name(&long);
        assert_eq!(name.len(), 63, "{name}");
        assert!(name.starts_with("frontdesk-gw-aaaa"), "{name}");
        // Stable, and another long name that shares the first 52 characters differs.
        assert_eq!(object_name(&long), name);
        assert_ne!(object_name(&format!("{long}b")), name);
        assert!(label_value(&"b".repeat(100)).len() <= 63);

        // A dot is fine in a label value, not in a Service name.
        assert_eq!(label_value("api.example"), "api.example");
        let dotted = object_name("api.example");
        assert!(dotted.starts_with("frontdesk-gw-api-example-"), "{dotted}");
        assert_ne!(dotted, object_name("api-example"));
        assert!(
            dotted
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );

        // A cut that lands on a `-` does not leave `--` before the hash.
        let name = object_name(&format!("{}-{}", "x".repeat(41), "y".repeat(30)));
        assert!(!name.contains("--"), "{name}");
    }
}
