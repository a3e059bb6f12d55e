//! What ends a cache key besides the request: the rule it was stored for and the cache
//! section it was stored under, as stable digests.

use frontdesk_snapshot as snap;

/// What ends a rule's keys: its id and a digest of what makes its answers (its matches,
/// request edits and rewrites, backends by name, the names of its Policies), so that another
/// rule, or this one changed, never finds its answers. Not of what changes without changing
/// them: the backends' endpoints (pods come and go) and TLS settings (certificates are
/// renewed), precedence ranks (other routes come and go), timeouts, retries, response edits
/// (made on every answer, hits included). A Policy's content other than its cache section
/// (whose own digest ends every key) is not in it.
pub fn rule_scope(id: &str, rule: &snap::Rule) -> String {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(o) => {
                for k in [
                    "endpoints",
                    "rank",
                    "timeoutMs",
                    "retries",
                    "responseHeaders",
                    "weight",
                    "tls",
                ] {
                    o.remove(k);
                }
                o.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(rule).unwrap_or_default();
    strip(&mut v);
    format!("{id}#{}", digest(&v))
}

/// The first 64 bits of a SHA-256 of `value`'s JSON, in hex: the same for every build, so
/// proxies of different builds share Redis's entries.
fn digest(value: &impl serde::Serialize) -> String {
    use sha2::{Digest, Sha256};
    let sum = Sha256::digest(serde_json::to_vec(value).unwrap_or_default());
    sum[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// A short digest of the cache section: keys made under another configuration differ.
pub(super) fn config_fingerprint(spec: &snap::Cache) -> String {
    digest(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(endpoints: &[&str], rank: u32, backend: &str, rewrite: bool) -> snap::Rule {
        let json = serde_json::json!({
            "id": "ns/r/0",
            "matches": [{"rank": rank, "path": {"type": "prefix", "value": "/"}}],
            "timeoutMs": 1000 + rank as u64,
            "action": {"type": "forward", "backends": [{"name": backend, "weight": 1, "endpoints": endpoints}]},
        });
        let mut r: snap::Rule = serde_json::from_value(json).unwrap();
        if rewrite {
            r.rewrite = Some(snap::Rewrite {
                path: Some(snap::PathRewrite::Prefix {
                    value: "/v2".into(),
                }),
                host: None,
            });
        }
        r
    }

    #[test]
    fn a_rules_scope_changes_with_what_makes_its_answers_only() {
        let scope = |r: &snap::Rule| rule_scope("ns/r/0", r);
        let base = scope(&rule(&["10.0.0.1:80"], 1, "service/ns/a:80", false));
        // Pods, ranks and timeouts come and go: the answers are the same.
        assert_eq!(
            base,
            scope(&rule(
                &["10.0.0.2:80", "10.0.0.3:80"],
                7,
                "service/ns/a:80",
                false
            ))
        );
        // Another backend, another rewrite: other answers.
        assert_ne!(
            base,
            scope(&rule(&["10.0.0.1:80"], 1, "service/ns/b:80", false))
        );
        assert_ne!(
            base,
            scope(&rule(&["10.0.0.1:80"], 1, "service/ns/a:80", true))
        );
        assert!(base.starts_with("ns/r/0#"));
    }
}
