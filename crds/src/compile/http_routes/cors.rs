//! HTTPRoute's CORS filter (experimental channel, GEP-1767), lowered to the same CORS section
//! a frontdesk Policy has: the rule gets it as the last, most specific, Policy of its list, so
//! the proxy's CORS stage answers preflights and tags answers as for any Policy.
//!
//! The filter's `*` method stands for every method; `maxAge` (seconds, default 5) becomes the
//! Policy's duration. Origins follow frontdesk's rules (exact `scheme://host[:port]`,
//! `scheme://*.domain` for subdomains, or `*` without credentials).

use frontdesk_snapshot as snap;

use crate::diagnostic::Diagnostics;
use crate::gateway_api::http_route::CorsFilter;
use crate::policy::CorsSpec;

/// The Gateway API's default `maxAge`, in seconds.
const DEFAULT_MAX_AGE: i32 = 5;

pub(super) fn lower_cors_filter(
    p: &str,
    f: &CorsFilter,
    d: &mut Diagnostics,
) -> Option<snap::Cors> {
    let every_method = f.allow_methods.iter().any(|m| m == "*");
    let spec = CorsSpec {
        allow_origins: f.allow_origins.clone(),
        allow_origin_regexes: Vec::new(),
        allow_methods: if every_method {
            ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]
                .map(String::from)
                .to_vec()
        } else {
            f.allow_methods.clone()
        },
        allow_headers: f.allow_headers.clone(),
        expose_headers: f.expose_headers.clone(),
        allow_credentials: f.allow_credentials,
        max_age: Some(format!("{}s", f.max_age.unwrap_or(DEFAULT_MAX_AGE).max(0))),
    };
    crate::compile::cors::lower_cors(p, &spec, d)
}
