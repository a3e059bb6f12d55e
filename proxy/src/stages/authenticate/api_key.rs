//! API keys: the SHA-256 of the presented key is looked up among the configured digests and
//! then compared in constant time. Keys are never logged or echoed; only the consumer name
//! travels on.

use std::collections::HashMap;
use std::sync::Arc;

use frontdesk_snapshot as snap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub struct ApiKeyRuntime {
    pub from: Vec<snap::CredentialSource>,
    /// Digest → consumer. Looking up by digest leaks nothing useful: the attacker controls the
    /// input, not the stored key, and SHA-256 hides how close a guess came.
    keys: HashMap<[u8; 32], Arc<str>>,
}

impl ApiKeyRuntime {
    pub fn build(cfg: &snap::ApiKeys) -> Result<Self, String> {
        let mut keys = HashMap::new();
        for (i, k) in cfg.keys.iter().enumerate() {
            let digest = parse_hex(k.sha256.expose())
                .ok_or_else(|| format!("apiKeys.keys[{i}]: not a SHA-256 hex digest"))?;
            keys.insert(digest, Arc::from(k.consumer.as_str()));
        }
        Ok(ApiKeyRuntime {
            from: cfg.from.clone(),
            keys,
        })
    }

    /// The consumer owning `key`, if it is a configured key.
    pub fn consumer(&self, key: &str) -> Option<Arc<str>> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let (stored, consumer) = self.keys.get_key_value(&digest)?;
        bool::from(stored.ct_eq(&digest)).then(|| consumer.clone())
    }
}

fn parse_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_consumer_of_a_key() {
        let hex: String = Sha256::digest(b"alice-key")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let rt = ApiKeyRuntime::build(&snap::ApiKeys {
            from: vec![],
            keys: vec![snap::ApiKey {
                sha256: snap::Secret::new(hex),
                consumer: "alice".into(),
            }],
        })
        .unwrap();
        assert_eq!(rt.consumer("alice-key").as_deref(), Some("alice"));
        assert_eq!(rt.consumer("alice-key2"), None);
        assert_eq!(rt.consumer(""), None);
    }
}
