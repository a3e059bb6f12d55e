//! Header edits and path rewrites, precompiled per rule at snapshot time: the pure pieces the
//! request transforms, response transforms and redirect stages are made of. Applying them
//! allocates only the new path.

use frontdesk_snapshot::{self as snap, PathRewrite, Segment};
use http::{HeaderMap, HeaderName, HeaderValue};

/// What the route match found, as path rewrites read it.
#[derive(Clone, Copy, Debug, Default)]
pub struct MatchedPath<'a> {
    /// The canonical request path.
    pub path: &'a str,
    /// Template captures `(name, raw segment)`.
    pub captures: &'a [(&'a str, &'a str)],
    /// The PathPrefix that matched.
    pub prefix: Option<&'a str>,
}

/// Header edits ready to apply: remove, then set, then add.
#[derive(Default)]
pub struct HeaderEdits {
    remove: Vec<HeaderName>,
    set: Vec<(HeaderName, HeaderValue)>,
    add: Vec<(HeaderName, HeaderValue)>,
}

impl HeaderEdits {
    pub fn new(ops: &snap::HeaderOps) -> Result<Self, String> {
        let pair = |h: &snap::Header| -> Result<(HeaderName, HeaderValue), String> {
            Ok((
                HeaderName::from_bytes(h.name.as_bytes())
                    .map_err(|e| format!("{}: {e}", h.name))?,
                HeaderValue::from_str(&h.value).map_err(|e| format!("{}: {e}", h.name))?,
            ))
        };
        Ok(HeaderEdits {
            remove: ops
                .remove
                .iter()
                .map(|n| HeaderName::from_bytes(n.as_bytes()).map_err(|e| format!("{n}: {e}")))
                .collect::<Result<_, _>>()?,
            set: ops.set.iter().map(pair).collect::<Result<_, _>>()?,
            add: ops.add.iter().map(pair).collect::<Result<_, _>>()?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }

    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
    }
}

/// The new path for a request. `captures` are the Template captures of the match, `prefix` the
/// PathPrefix that matched. Captured segments are inserted as they arrived (still
/// percent-encoded, and never containing '/'), so a capture cannot add path segments.
pub fn rewrite_path(
    rw: &PathRewrite,
    path: &str,
    captures: &[(&str, &str)],
    prefix: Option<&str>,
) -> String {
    match rw {
        PathRewrite::Full { parts } => {
            let mut out = String::with_capacity(path.len() + 16);
            for part in parts {
                match part {
                    Segment::Literal(l) => out.push_str(l),
                    Segment::Capture(c) => {
                        out.push_str(captures.iter().find(|(n, _)| n == c).map_or("", |(_, v)| v));
                    }
                }
            }
            out
        }
        PathRewrite::Prefix { value } => {
            // The prefix matched, perhaps ignoring case: strip as many bytes (canonical paths
            // are ASCII, so case never changes a length).
            let rest = prefix
                .and_then(|p| {
                    path.get(..p.len())
                        .filter(|head| head.eq_ignore_ascii_case(p))
                        .map(|_| &path[p.len()..])
                })
                .unwrap_or(path);
            match (value.is_empty(), rest.is_empty()) {
                (true, true) => "/".to_string(),
                (true, false) => rest.to_string(),
                (false, _) => format!("{value}{rest}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(parts: &[Segment]) -> PathRewrite {
        PathRewrite::Full {
            parts: parts.to_vec(),
        }
    }

    #[test]
    fn full_rewrites_substitute_captures() {
        let rw = full(&[
            Segment::Literal("/v2/orders/".into()),
            Segment::Capture("id".into()),
        ]);
        assert_eq!(
            rewrite_path(&rw, "/api/orders/7", &[("id", "7")], None),
            "/v2/orders/7"
        );
    }

    #[test]
    fn prefix_rewrites_keep_the_rest() {
        let rw = PathRewrite::Prefix {
            value: "/orders".into(),
        };
        assert_eq!(
            rewrite_path(&rw, "/api/orders/7", &[], Some("/api/orders")),
            "/orders/7"
        );
        assert_eq!(
            rewrite_path(&rw, "/api/orders", &[], Some("/api/orders")),
            "/orders"
        );
        let to_root = PathRewrite::Prefix {
            value: String::new(),
        };
        assert_eq!(rewrite_path(&to_root, "/api", &[], Some("/api")), "/");
        assert_eq!(rewrite_path(&to_root, "/api/x", &[], Some("/api")), "/x");
    }

    #[test]
    fn header_edits_apply_in_order() {
        let ops = snap::HeaderOps {
            set: vec![snap::Header {
                name: "x-a".into(),
                value: "set".into(),
                sensitive: false,
            }],
            add: vec![snap::Header {
                name: "x-a".into(),
                value: "added".into(),
                sensitive: false,
            }],
            remove: vec!["cookie".into()],
        };
        let mut h = HeaderMap::new();
        h.insert("x-a", "old".parse().unwrap());
        h.insert("cookie", "c".parse().unwrap());
        HeaderEdits::new(&ops).unwrap().apply(&mut h);
        let values: Vec<_> = h.get_all("x-a").iter().collect();
        assert_eq!(values, ["set", "added"]);
        assert!(!h.contains_key("cookie"));
    }
}
