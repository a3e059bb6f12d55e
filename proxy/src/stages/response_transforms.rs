//! Response transforms: the rule's `responseHeaders` edits (remove, set, add), applied by the
//! respond path to every answer of a matched rule, whoever made it: the backend, a redirect, a
//! direct response, an Aggregate, or the proxy's own problem (401, 429, 502, 503, 504...). By
//! default (no edits) nothing changes.

use frontdesk_snapshot as snap;
use http::HeaderMap;

use crate::transforms::HeaderEdits;

/// The response transforms of one rule.
#[derive(Default)]
pub struct ResponseTransforms {
    headers: HeaderEdits,
}

impl ResponseTransforms {
    pub fn build(rule: &snap::Rule) -> Result<Self, String> {
        Ok(ResponseTransforms {
            headers: HeaderEdits::new(&rule.response_headers)?,
        })
    }

    /// Whether the rule edits no response field.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }

    pub fn apply(&self, headers: &mut HeaderMap) {
        if !self.headers.is_empty() {
            self.headers.apply(headers);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_remove_set_and_add() {
        let ops = snap::HeaderOps {
            set: vec![snap::Header {
                name: "x-served-by".into(),
                value: "frontdesk".into(),
                sensitive: false,
            }],
            add: vec![],
            remove: vec!["server".into()],
        };
        let t = ResponseTransforms {
            headers: HeaderEdits::new(&ops).unwrap(),
        };
        let mut h = HeaderMap::new();
        h.insert("server", "nginx".parse().unwrap());
        t.apply(&mut h);
        assert!(!h.contains_key("server"));
        assert_eq!(h["x-served-by"], "frontdesk");
        let none = ResponseTransforms::default();
        let mut h = HeaderMap::new();
        none.apply(&mut h);
        assert!(h.is_empty());
    }
}
