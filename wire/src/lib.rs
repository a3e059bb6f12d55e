//! The snapshot stream between the controller and proxies (see docs/wire.md).
//!
//! One HTTP/2 request per proxy: `POST /frontdesk.v1/snapshots?gateway=NAME&proxy=ID`. The
//! response body streams [`ToProxy`] messages and the request body streams [`ToController`]
//! messages, each a JSON object on one line (NDJSON). The controller sends the gateway's
//! current snapshot at once, then every new version; the proxy answers each version with an
//! ACK once it serves it, or a NACK with the reason it refused it. Over TLS both sides
//! authenticate with certificates from one CA (`--insecure` for plaintext in development).
#![forbid(unsafe_code)]

mod body;
mod framing;
pub mod tls;

pub use body::ChannelBody;
pub use framing::{FrameError, LineDecoder, encode};

use frontdesk_snapshot::{EndpointChange, Snapshot};
use serde::{Deserialize, Serialize};

/// Path of the stream endpoint.
pub const STREAM_PATH: &str = "/frontdesk.v1/snapshots";

/// Largest message either side accepts (a snapshot with secrets and thousands of routes fits).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Controller → proxy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ToProxy {
    /// The gateway's whole configuration at `snapshot.version`.
    Snapshot { snapshot: Snapshot },
    /// Version `version` is version `base` with only some backends' endpoints changed: a
    /// proxy serving `base` applies `changes` without rebuilding its routes; one serving
    /// anything else refuses it (NACK), and the controller sends the whole snapshot instead.
    Endpoints {
        gateway: String,
        base: u64,
        version: u64,
        changes: Vec<EndpointChange>,
    },
}

/// Proxy → controller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ToController {
    /// The proxy serves this version.
    Ack { version: u64 },
    /// The proxy refused this version and keeps serving the previous one.
    Nack { version: u64, reason: String },
}

/// The query string identifying a subscriber.
pub fn stream_query(gateway: &str, proxy: &str) -> String {
    format!("gateway={}&proxy={}", escape(gateway), escape(proxy))
}

/// Reads `gateway` and `proxy` from a stream query string.
pub fn parse_stream_query(query: &str) -> Option<(String, String)> {
    let mut gateway = None;
    let mut proxy = None;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("gateway", v)) => gateway = Some(v.to_string()),
            Some(("proxy", v)) => proxy = Some(v.to_string()),
            _ => {}
        }
    }
    let valid = |s: &String| !s.is_empty() && s.len() <= 253 && s.bytes().all(is_name_byte);
    Some((gateway.filter(valid)?, proxy.filter(valid)?))
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')
}

/// Names are restricted to DNS-ish characters, so "escaping" drops anything else.
fn escape(s: &str) -> String {
    s.bytes()
        .filter(|b| is_name_byte(*b))
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_a_stable_json_shape() {
        assert_eq!(
            serde_json::to_string(&ToController::Nack {
                version: 3,
                reason: "too big".into()
            })
            .unwrap(),
            r#"{"type":"nack","version":3,"reason":"too big"}"#
        );
        let s = ToProxy::Snapshot {
            snapshot: Snapshot {
                gateway: "g".into(),
                version: 7,
                ..Default::default()
            },
        };
        let json = serde_json::to_string(&s).unwrap();
        assert!(
            json.starts_with(r#"{"type":"snapshot","snapshot":{"gateway":"g","version":7"#),
            "{json}"
        );
    }

    #[test]
    fn stream_queries_round_trip_and_reject_junk() {
        let q = stream_query("public", "proxy-7f9c.default");
        assert_eq!(
            parse_stream_query(&q).unwrap(),
            ("public".into(), "proxy-7f9c.default".into())
        );
        assert!(parse_stream_query("gateway=&proxy=a").is_none());
        assert!(parse_stream_query("gateway=a%2Fb&proxy=a").is_none());
        assert!(parse_stream_query("proxy=a").is_none());
    }
}
