//! What the stages of one request hand each other and the respond path: the request id, the
//! client, what matched, who was authenticated, headers every answer must carry, and what the
//! access log will say. Created when the request arrives, consumed when its response ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use http::uri::Authority;
use http::{HeaderName, HeaderValue, Method, Request, Version};
use tokio::time::Instant;

use crate::access_log::CallLog;
use crate::client_ip::TrustedProxies;
use crate::forwarding::{Peer, ensure_request_id};
use crate::metrics::{RouteId, RouteMetrics};
use crate::server::tls::clients::ClientCertificate;

pub struct Exchange {
    pub started: Instant,
    pub request_id: HeaderValue,
    pub client: SocketAddr,
    /// The client connection's peer as forwarding headers see it (a trusted proxy or not).
    pub peer: Peer,
    /// The client certificate the connection's handshake verified (mutual TLS).
    pub client_certificate: Option<Arc<ClientCertificate>>,
    /// The port's settings (HTTPS redirect, HSTS), when its Gateway has any.
    pub port: Option<Arc<PortSettings>>,
    /// See [`Client::local_port`].
    pub local_port: u16,
    /// See [`Client::relays_raw_fields`].
    pub relays_raw_fields: bool,
    pub method: Method,
    pub version: Version,
    /// The route's id once one matched (metrics label), else the no-route label.
    pub route: RouteId,
    /// The matched rule's request metrics.
    pub metrics: Option<Arc<RouteMetrics>>,
    /// Headers every answer to this request carries, whoever makes it (RateLimit, CORS).
    pub response_headers: Vec<(HeaderName, HeaderValue)>,
    /// The rule's Policy answers CORS: a backend's own `Access-Control-*` headers are dropped
    /// (the policy's, in `response_headers`, are the only ones).
    pub owns_cors: bool,
    /// Who the policy authenticated: API key consumer, basic-auth user or JWT subject.
    pub consumer: Option<Arc<str>>,
    /// A gRPC call (over HTTP/2), or a gRPC-Web one: the proxy's own errors are gRPC statuses
    /// ([`crate::grpc`]).
    pub grpc: bool,
    /// A gRPC-Web call to a rule that speaks gRPC to its backends.
    pub grpc_web: Option<crate::stages::action::grpc_web::Mode>,
    /// Only what the access log needs; `None` when it is off, so nothing is copied for it.
    pub log: Option<LogFields>,
}

/// What only the access log reads.
#[derive(Default)]
pub struct LogFields {
    pub host: String,
    pub path: String,
    pub upstream: Option<Authority>,
    /// Request body bytes sent on, counted as they stream.
    pub bytes_in: Arc<AtomicU64>,
    /// An Aggregate's calls.
    pub calls: Option<Vec<CallLog>>,
    /// Tries made at the backend, when a rule's retries made more than one.
    pub tries: Option<u32>,
}

/// Who is at the other end of a client connection, whether it speaks TLS, and the client
/// certificate the handshake verified (mutual TLS).
#[derive(Clone, Debug)]
pub struct Client {
    pub addr: SocketAddr,
    pub tls: bool,
    pub certificate: Option<Arc<ClientCertificate>>,
    /// What the listener's Gateway asks of every request on this port.
    pub port: Option<Arc<PortSettings>>,
    /// The port the connection came in on, for routes served on some listeners only (0: not
    /// known).
    pub local_port: u16,
    /// Whoever writes the answer understands a backend's fields relayed as sent
    /// ([`crate::http1::raw_fields`]): the HTTP/1 server. Any other caller of
    /// [`crate::runtime::Runtime::handle`] gets every field in the answer's map.
    pub relays_raw_fields: bool,
}

/// A port's settings as they are now: replaced in place when its Gateway's change, so open
/// connections (WebSockets, streams) are not restarted for them; each request reads them.
pub type LivePortSettings = arc_swap::ArcSwapOption<PortSettings>;

/// A listener port's settings from its Gateway (docs/gateways.md, "HTTPS settings").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortSettings {
    /// Answer every request with a redirect to `https://` on this port.
    pub redirect_to_https: Option<u16>,
    /// The `Strict-Transport-Security` value every answer carries.
    pub hsts: Option<HeaderValue>,
}

impl From<SocketAddr> for Client {
    /// A plain (cleartext) connection's client.
    fn from(addr: SocketAddr) -> Self {
        Client {
            addr,
            tls: false,
            certificate: None,
            port: None,
            local_port: 0,
            relays_raw_fields: false,
        }
    }
}

impl Exchange {
    /// Starts the exchange: the request id is the client's when sane, else a new one, set on
    /// the request so the backend sees it.
    pub fn start<B>(
        req: &mut Request<B>,
        client: Client,
        trusted: &TrustedProxies,
        no_route: &RouteId,
        logged: bool,
    ) -> Self {
        let request_id = ensure_request_id(req);
        Exchange {
            started: Instant::now(),
            request_id,
            client: client.addr,
            peer: Peer {
                ip: client.addr.ip(),
                trusted: trusted.trusts(client.addr.ip()),
                tls: client.tls,
            },
            client_certificate: client.certificate,
            port: client.port,
            local_port: client.local_port,
            relays_raw_fields: client.relays_raw_fields,
            method: req.method().clone(),
            version: req.version(),
            route: no_route.clone(),
            metrics: None,
            response_headers: Vec::new(),
            owns_cors: false,
            consumer: None,
            // gRPC needs HTTP/2: HTTP/1 requests are not asked.
            grpc: req.version() == Version::HTTP_2
                && crate::grpc::is_grpc(crate::http1::raw_fields::FieldsView::of(req)),
            grpc_web: None,
            log: logged.then(|| LogFields {
                path: req.uri().path().to_string(),
                ..LogFields::default()
            }),
        }
    }

    /// Notes the backend endpoint for the log.
    pub fn upstream(&mut self, endpoint: &Authority) {
        if let Some(log) = &mut self.log {
            log.upstream = Some(endpoint.clone());
        }
    }

    /// Tries made at the backend (when more than one, the access log says so).
    pub fn tries(&mut self, tries: u32) {
        if let Some(log) = &mut self.log
            && tries > 1
        {
            log.tries = Some(tries);
        }
    }

    /// The request body counter for the log, when it is on.
    pub fn bytes_in(&self) -> Option<Arc<AtomicU64>> {
        self.log.as_ref().map(|l| l.bytes_in.clone())
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// An exchange for stage tests, with the access log fields on.
    pub fn exchange() -> Exchange {
        let mut req = Request::new(());
        Exchange::start(
            &mut req,
            "192.0.2.1:40000".parse::<SocketAddr>().unwrap().into(),
            &TrustedProxies::default(),
            &RouteId("none".into()),
            true,
        )
    }
}
