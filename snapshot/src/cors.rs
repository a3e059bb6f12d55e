//! A Policy's `cors`: which browser origins may call the routes it applies to, and how.

use serde::{Deserialize, Serialize};

/// Cross-origin resource sharing, answered by the proxy: preflights never reach a backend.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cors {
    /// Origins allowed exactly (`scheme://host[:port]`, lower-case), or `*`: any origin.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub origins: Vec<String>,
    /// `scheme://*.domain[:port]`: any subdomain of `domain` (not `domain` itself).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub origin_suffixes: Vec<String>,
    /// Regular expressions an origin must match whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub origin_regexes: Vec<String>,
    /// Methods a preflight may ask for (upper-case, as sent).
    pub methods: Vec<String>,
    /// Request headers a preflight may ask for (lower-case); `*`: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
    /// Response headers the browser may show the page (`Access-Control-Expose-Headers`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// Whether the browser may send cookies and credentials, and show the answer.
    #[serde(default)]
    pub credentials: bool,
    /// How long a browser may keep a preflight's answer, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<u64>,
}

impl Cors {
    /// What a snapshot must hold for the proxy to build it: `(field, why)` otherwise.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.credentials && self.origins.iter().any(|o| o == "*") {
            return Err((
                "origins",
                "`*` cannot be allowed with credentials: list the origins".into(),
            ));
        }
        if self.credentials && self.expose_headers.iter().any(|h| h == "*") {
            return Err((
                "exposeHeaders",
                "`*` exposes nothing with credentials: list the headers".into(),
            ));
        }
        for r in &self.origin_regexes {
            regex::Regex::new(r).map_err(|e| ("originRegexes", e.to_string()))?;
        }
        for m in &self.methods {
            http::Method::from_bytes(m.as_bytes())
                .map_err(|_| ("methods", format!("{m:?} is not a method")))?;
        }
        for h in self.headers.iter().chain(&self.expose_headers) {
            if h != "*" {
                crate::validate::check_header_name(h).map_err(|why| ("headers", why))?;
            }
        }
        Ok(())
    }
}
