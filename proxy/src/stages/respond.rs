//! Respond: the one path every answer takes, whoever made it — a backend, a redirect, a direct
//! response, an Aggregate, or the proxy itself (a problem from any stage). In two steps around
//! the matched rule's response transforms:
//!
//! 1. [`Respond::render`]: a problem becomes its RFC 9457 problem+json answer, or a gRPC
//!    status for a gRPC call ([`crate::grpc`]) (counted in `frontdesk_local_replies_total`);
//! 2. [`Respond::finish`]: the headers the stages asked every answer to carry
//!    ([`Exchange::response_headers`]: RateLimit, CORS) and `x-request-id` are added, and
//!    the request's metrics and access-log line are recorded when the body has been sent (or
//!    the client went away).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use http::{Response, Version};
use http_body_util::BodyExt;

use crate::access_log::{self, AccessLog};
use crate::body::{Observed, OnComplete, ProxyBody};
use crate::exchange::Exchange;
use crate::forwarding::X_REQUEST_ID;
use crate::http1::raw_fields::RawFields;
use crate::metrics::{LocalReplyLabels, Metrics, RequestLabels, RouteLabels};
use crate::problem::Problem;

/// Where answers are counted and logged; process-wide.
pub struct Respond {
    pub metrics: Arc<Metrics>,
    pub access_log: AccessLog,
}

impl Respond {
    pub fn new(metrics: Arc<Metrics>, access_log: AccessLog) -> Self {
        Respond {
            metrics,
            access_log,
        }
    }

    /// The answer for an outcome: the response, or the problem's problem+json.
    pub fn render(
        &self,
        outcome: Result<Response<ProxyBody>, Problem>,
        ex: &Exchange,
    ) -> Response<ProxyBody> {
        outcome.unwrap_or_else(|p| {
            self.metrics
                .local_replies
                .get_or_create(&LocalReplyLabels {
                    route: ex.route.clone(),
                    r#type: p.kind.slug(),
                })
                .inc();
            if ex.grpc {
                let content_type = ex.grpc_web.map_or("application/grpc", |m| m.content_type());
                crate::grpc::error_response(p, content_type)
            } else {
                p.into_response(ex.request_id.to_str().unwrap_or_default())
            }
        })
    }

    /// Adds what every answer carries and hooks metrics and the access log to the end of the
    /// body.
    pub fn finish(
        self: &Arc<Self>,
        resp: Response<ProxyBody>,
        mut ex: Exchange,
    ) -> Response<ProxyBody> {
        let (mut head, body) = resp.into_parts();
        // A backend's answer relayed as sent keeps its fields apart from the map; only for
        // servers that write such answers.
        let mut raw = head.extensions.get_mut::<RawFields>();
        debug_assert!(raw.is_none() || ex.relays_raw_fields);
        if ex.owns_cors {
            // The Policy's CORS answer is the only one: a backend's own goes. Relayed as sent,
            // the backend's fields are all in `raw`; else they are in the map.
            match raw.as_deref_mut() {
                Some(raw) => raw.remove_prefixed(crate::stages::cors::PREFIX.as_bytes()),
                None => crate::stages::cors::remove_from(&mut head.headers),
            }
        }
        match raw.as_deref_mut() {
            Some(raw) => raw.extend(&mut ex.response_headers),
            None => {
                for (name, value) in ex.response_headers.drain(..) {
                    head.headers.append(name, value);
                }
            }
        }
        let hsts = ex.port.as_ref().and_then(|p| p.hsts.as_ref());
        match raw {
            Some(raw) => {
                raw.remove(&X_REQUEST_ID);
                raw.add(X_REQUEST_ID.clone(), ex.request_id.clone());
                if let Some(hsts) = hsts
                    && !raw.contains(&http::header::STRICT_TRANSPORT_SECURITY)
                {
                    raw.add(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone());
                }
            }
            None => {
                head.headers
                    .insert(X_REQUEST_ID.clone(), ex.request_id.clone());
                if let Some(hsts) = hsts {
                    head.headers
                        .entry(http::header::STRICT_TRANSPORT_SECURITY)
                        .or_insert_with(|| hsts.clone());
                }
            }
        }
        let hook = Completion {
            respond: self.clone(),
            status: head.status.as_u16(),
            ex,
        };
        let body = Observed::after_last_data(body, None, Some(Box::new(hook))).boxed();
        Response::from_parts(head, body)
    }
}

struct Completion {
    respond: Arc<Respond>,
    status: u16,
    ex: Exchange,
}

impl OnComplete for Completion {
    fn complete(&self, bytes_out: u64, finished: bool) {
        let ex = &self.ex;
        let elapsed = ex.started.elapsed();
        let m = &self.respond.metrics;
        match &ex.metrics {
            Some(rule) => {
                rule.count(&m.requests, self.status);
                rule.duration.observe(elapsed.as_secs_f64());
            }
            None => {
                m.requests
                    .get_or_create(&RequestLabels {
                        route: ex.route.clone(),
                        status: self.status,
                    })
                    .inc();
                m.request_duration
                    .get_or_create(&RouteLabels {
                        route: ex.route.clone(),
                    })
                    .observe(elapsed.as_secs_f64());
            }
        }
        let Some(fields) = &ex.log else { return };
        let started_at = SystemTime::now()
            .checked_sub(elapsed)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let entry = access_log::Entry {
            time: humantime::format_rfc3339_millis(started_at).to_string(),
            request_id: ex.request_id.to_str().unwrap_or_default().to_string(),
            route: ex.route.0.to_string(),
            method: ex.method.to_string(),
            host: fields.host.clone(),
            path: fields.path.clone(),
            protocol: match ex.version {
                Version::HTTP_2 => "HTTP/2",
                Version::HTTP_10 => "HTTP/1.0",
                _ => "HTTP/1.1",
            },
            status: self.status,
            duration_ms: (elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0,
            upstream: fields.upstream.as_ref().map(ToString::to_string),
            bytes_in: fields.bytes_in.load(Ordering::Relaxed),
            bytes_out,
            client: ex.client.ip().to_string(),
            consumer: ex.consumer.as_deref().map(str::to_string),
            calls: fields.calls.clone(),
            tries: fields.tries,
            incomplete: !finished && bytes_out > 0,
        };
        if !self.respond.access_log.log(entry) {
            m.access_log_dropped.inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;
    use crate::body::full;
    use crate::exchange::tests::exchange;
    use crate::problem::ProblemKind;

    #[tokio::test]
    async fn problems_and_responses_alike_get_the_exchange_headers_and_the_request_id() {
        let respond = Arc::new(Respond::new(
            Arc::new(Metrics::new()),
            AccessLog::disabled(),
        ));
        for outcome in [
            Ok(Response::new(full("ok"))),
            Err(Problem::new(ProblemKind::UpstreamTimeout, "slow")),
        ] {
            let mut ex = exchange();
            ex.response_headers.push((
                "ratelimit".parse().unwrap(),
                HeaderValue::from_static("r=1"),
            ));
            let id = ex.request_id.clone();
            let resp = respond.render(outcome, &ex);
            let resp = respond.finish(resp, ex);
            assert_eq!(resp.headers()["ratelimit"], "r=1");
            assert_eq!(resp.headers()["x-request-id"], id);
        }
        let text = respond.metrics.encode();
        assert!(text.contains("frontdesk_local_replies_total"), "{text}");
    }

    /// A backend's fields relayed as sent: the proxy's request id replaces the backend's, and
    /// the port's HSTS is added only when the backend sent none.
    #[tokio::test]
    async fn relayed_fields_keep_the_backends_hsts_and_lose_its_request_id() {
        let respond = Arc::new(Respond::new(
            Arc::new(Metrics::new()),
            AccessLog::disabled(),
        ));
        let port = Arc::new(crate::exchange::PortSettings {
            hsts: Some(HeaderValue::from_static("max-age=60")),
            ..Default::default()
        });
        for (fields, ours) in [
            (
                "X-Request-Id: theirs\r\nStrict-Transport-Security: max-age=1\r\n",
                false,
            ),
            ("X-Request-Id: theirs\r\n", true),
        ] {
            let (raw, _) = crate::http1::raw_fields::tests::read(fields).unwrap();
            let mut resp = Response::new(full("ok"));
            resp.extensions_mut().insert(raw);
            let mut ex = exchange();
            ex.port = Some(port.clone());
            ex.relays_raw_fields = true;
            let id = ex.request_id.clone();
            let mut resp = respond.finish(resp, ex);
            assert!(
                resp.headers().is_empty(),
                "the proxy's fields join the relayed"
            );
            let raw = resp.extensions_mut().remove::<RawFields>();
            crate::http1::raw_fields::into_map(raw, resp.headers_mut());
            let ids: Vec<_> = resp.headers().get_all("x-request-id").iter().collect();
            assert_eq!(ids, [&id], "the backend's id is not relayed");
            let hsts: Vec<_> = resp
                .headers()
                .get_all("strict-transport-security")
                .iter()
                .collect();
            assert_eq!(hsts.len(), 1);
            assert_eq!(hsts[0] == "max-age=60", ours);
        }
    }

    #[test]
    fn local_replies_are_counted_by_type() {
        let respond = Respond::new(Arc::new(Metrics::new()), AccessLog::disabled());
        let ex = exchange();
        respond.render(Err(Problem::new(ProblemKind::UpstreamTimeout, "slow")), &ex);
        let text = respond.metrics.encode();
        assert!(
            text.contains(
                "frontdesk_local_replies_total{route=\"none\",type=\"upstream-timeout\"} 1"
            ),
            "{text}"
        );
    }
}
