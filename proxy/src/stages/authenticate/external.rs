//! External authorization: one HTTP call per request to a service that decides.
//!
//! The proxy sends `GET <url>` with the configured request headers plus `x-forwarded-method`,
//! `x-forwarded-uri`, `x-forwarded-host` and `x-request-id`. A 2xx answer allows the request
//! and may hand headers to the backend; any other answer is the client's answer (status, body
//! up to [`MAX_DENY_BODY`], and its `content-type`, `www-authenticate` and `location`).

use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use frontdesk_snapshot as snap;
use http::header::{CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, Uri};
use http_body_util::{BodyExt, Full, Limited};

use super::HttpClient;
use crate::body::{ProxyBody, full};
use crate::forwarding::X_REQUEST_ID;

/// Largest deny body passed on to the client.
pub const MAX_DENY_BODY: usize = 64 * 1024;

pub struct ExternalRuntime {
    uri: Uri,
    forward: Vec<HeaderName>,
    pub copy: Vec<HeaderName>,
    timeout: Duration,
    pub allow_on_failure: bool,
    /// Shared with every Policy naming the same TLS setting, across snapshots.
    http: std::sync::Arc<HttpClient>,
}

pub enum Decision {
    /// Allowed, with the headers to set on the upstream request.
    Allow(Vec<(HeaderName, HeaderValue)>),
    /// Refused: this is the answer.
    Deny(Response<ProxyBody>),
    /// The service could not decide (unreachable, timeout, bad answer): why.
    Failed(String),
}

impl ExternalRuntime {
    pub fn build(cfg: &snap::External, http: std::sync::Arc<HttpClient>) -> Result<Self, String> {
        let names = |list: &[String]| {
            list.iter()
                .map(|h| HeaderName::from_str(h).map_err(|e| e.to_string()))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(ExternalRuntime {
            uri: Uri::from_str(&cfg.url).map_err(|e| format!("external url: {e}"))?,
            forward: names(&cfg.forward_headers)?,
            copy: names(&cfg.copy_headers)?,
            timeout: Duration::from_millis(cfg.timeout_ms),
            allow_on_failure: cfg.failure_mode == snap::FailureMode::Allow,
            http,
        })
    }

    /// Asks about the client's request `r` (its headers as the policy left them).
    pub async fn ask(&self, r: &super::Request<'_>, headers: &HeaderMap) -> Decision {
        let mut req = Request::get(self.uri.clone());
        let h = req.headers_mut().expect("a fresh builder has headers");
        for name in &self.forward {
            for v in headers.get_all(name) {
                h.append(name.clone(), v.clone());
            }
        }
        h.insert(
            "x-forwarded-method",
            HeaderValue::from_str(r.method.as_str()).unwrap_or(HeaderValue::from_static("GET")),
        );
        let forwarded_uri = match r.uri.query() {
            Some(q) => format!("{}?{q}", r.path),
            None => r.path.to_string(),
        };
        if let Ok(v) = HeaderValue::from_str(&forwarded_uri) {
            h.insert("x-forwarded-uri", v);
        }
        if let Ok(v) = HeaderValue::from_str(r.host) {
            h.insert("x-forwarded-host", v);
        }
        h.insert(X_REQUEST_ID.clone(), r.request_id.clone());
        let req = match req.body(Full::new(Bytes::new())) {
            Ok(req) => req,
            Err(e) => return Decision::Failed(e.to_string()),
        };
        let call = async {
            let resp = self
                .http
                .request(req)
                .await
                .map_err(|e| format!("cannot reach {}: {e}", self.uri))?;
            let status = resp.status();
            if status.is_success() {
                let copied = self
                    .copy
                    .iter()
                    .filter_map(|n| resp.headers().get(n).map(|v| (n.clone(), v.clone())))
                    .collect();
                return Ok(Decision::Allow(copied));
            }
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, MAX_DENY_BODY)
                .collect()
                .await
                .map_err(|e| format!("reading the deny answer of {}: {e}", self.uri))?
                .to_bytes();
            let mut out = Response::new(full(body));
            *out.status_mut() = status;
            for name in [CONTENT_TYPE, WWW_AUTHENTICATE, LOCATION] {
                for v in parts.headers.get_all(&name) {
                    out.headers_mut().append(name.clone(), v.clone());
                }
            }
            Ok(Decision::Deny(out))
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(d)) => d,
            Ok(Err(why)) => Decision::Failed(why),
            Err(_) => Decision::Failed(format!(
                "{} did not answer within {:?}",
                self.uri, self.timeout
            )),
        }
    }
}
