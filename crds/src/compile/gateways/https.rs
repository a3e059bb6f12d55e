//! A Gateway's HTTPS settings for all its listeners, as annotations (the Gateway API has no
//! field for them), so no Route repeats them:
//!
//! - `frontdesk.dev/redirect-to-https: "true"`: every HTTP listener of the Gateway answers
//!   each request with `308 Permanent Redirect` to the same host and target on `https://`, at
//!   the port of the Gateway's first HTTPS listener (omitted when 443). ACME HTTP-01 challenges
//!   (`/.well-known/acme-challenge/...`) are still routed, so a certificate can be issued.
//! - `frontdesk.dev/hsts: "max-age=31536000; includeSubDomains"`: every answer of the
//!   Gateway's HTTPS listeners carries this `Strict-Transport-Security` value, unless the
//!   backend sent its own. It must start with `max-age=<seconds>`.
//!
//! A setting that cannot apply (no HTTPS listener to redirect to, a malformed value) is left
//! out and said in the Gateway's status diagnostics.

use frontdesk_snapshot::{Listener as SnapListener, ListenerProtocol};

use crate::diagnostic::Diagnostic;
use crate::gateway_api::Gateway;

pub const REDIRECT_ANNOTATION: &str = "frontdesk.dev/redirect-to-https";
pub const HSTS_ANNOTATION: &str = "frontdesk.dev/hsts";

/// Applies `gateway`'s annotations to its accepted `listeners`; the problems found.
pub fn apply(gateway: &Gateway, mut listeners: Vec<&mut SnapListener>) -> Vec<Diagnostic> {
    let annotations = gateway.metadata.annotations.clone().unwrap_or_default();
    let field = |key: &str| format!("metadata.annotations[{key}]");
    let mut problems = Vec::new();
    if let Some(value) = annotations.get(REDIRECT_ANNOTATION) {
        match value.as_str() {
            "true" => {
                let https = listeners
                    .iter()
                    .find(|l| l.protocol == ListenerProtocol::Https)
                    .map(|l| l.port);
                match https {
                    Some(port) => listeners
                        .iter_mut()
                        .filter(|l| l.protocol == ListenerProtocol::Http)
                        .for_each(|l| l.redirect_to_https_port = Some(port)),
                    None => problems.push(Diagnostic::new(
                        field(REDIRECT_ANNOTATION),
                        "the Gateway has no valid HTTPS listener to redirect to",
                    )),
                }
            }
            "false" => {}
            other => problems.push(Diagnostic::new(
                field(REDIRECT_ANNOTATION),
                format!("{other:?} is not \"true\" or \"false\""),
            )),
        }
    }
    if let Some(value) = annotations.get(HSTS_ANNOTATION) {
        match check_hsts(value) {
            Ok(()) => listeners
                .iter_mut()
                .filter(|l| l.protocol == ListenerProtocol::Https)
                .for_each(|l| l.hsts = Some(value.trim().to_string())),
            Err(why) => problems.push(Diagnostic::new(field(HSTS_ANNOTATION), why)),
        }
    }
    problems
}

/// A `Strict-Transport-Security` value (RFC 6797 §6.1): `max-age=<seconds>` first, then
/// directives such as `includeSubDomains` and `preload`, all visible ASCII.
fn check_hsts(value: &str) -> Result<(), String> {
    let value = value.trim();
    let first = value.split(';').next().unwrap_or_default().trim();
    let age = first
        .strip_prefix("max-age=")
        .map(|a| a.trim_matches('"'))
        .filter(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()));
    if age.is_none() {
        return Err(format!(
            "{value:?} does not start with max-age=<seconds> (e.g. \"max-age=31536000; includeSubDomains\")"
        ));
    }
    if !value.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        return Err(format!(
            "{value:?} is not a header value (visible ASCII only)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsts_values_start_with_a_max_age() {
        assert!(check_hsts("max-age=31536000; includeSubDomains; preload").is_ok());
        assert!(check_hsts("max-age=\"600\"").is_ok());
        assert!(check_hsts("includeSubDomains").is_err());
        assert!(check_hsts("max-age=soon").is_err());
        assert!(check_hsts("max-age=60; \u{e9}").is_err());
    }
}
