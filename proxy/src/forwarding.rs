//! Headers a proxy owes the next hop: hop-by-hop headers removed (RFC 9110 §7.6.1), the
//! X-Forwarded-* trio, and a request id generated when absent and propagated both ways.
//!
//! Forwarding headers follow one trust model (`--trusted-proxies`): from a peer that is not a
//! trusted proxy, whatever the client says about who it is or what it asked for (`Forwarded`,
//! `X-Forwarded-*`, `X-Real-IP`, `True-Client-IP`, `X-Client-IP`, and the URL overrides
//! `X-Original-URL` and `X-Rewrite-URL`) is removed on arrival, so no stage and no backend can
//! believe it; the proxy then says it itself. From a trusted proxy they are kept and extended
//! (X-Forwarded-Host excepted: it is always the host the request was routed on). The URL
//! overrides are removed whoever sends them, and spellings with `_` are read as `-`. So are
//! `_` spellings of framing and hop-by-hop names (`Transfer_Encoding`, `Content_Length`,
//! `Connection`...): a backend behind CGI-style translation would read them as the real ones.

use std::fmt::Write;
use std::net::IpAddr;

use http::header::{CONNECTION, FORWARDED, HeaderMap, HeaderName, HeaderValue};

use smallvec::SmallVec;

use crate::http1::raw_fields::{FieldsView, RawFields};

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Whether a peer that is a trusted proxy says it took the request over TLS
/// (`X-Forwarded-Proto: https`); never for another peer.
pub fn https_by_trusted_proxy(
    fields: crate::http1::raw_fields::FieldsView<'_>,
    trusted: bool,
) -> bool {
    trusted
        && fields
            .get(&X_FORWARDED_PROTO)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Pre-parsed so removing them costs a hash lookup each, not a parse.
pub(crate) static HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("proxy-authenticate"),
    // Credentials for this proxy, never for the backend.
    HeaderName::from_static("proxy-authorization"),
    HeaderName::from_static("te"),
    HeaderName::from_static("trailer"),
    HeaderName::from_static("transfer-encoding"),
    HeaderName::from_static("upgrade"),
];

/// Removes hop-by-hop headers, including those the Connection header names.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names present finds the few to remove (most messages carry none, or
    // only `Connection: keep-alive`); a hash lookup for each of the nine would cost more.
    let mut present = [false; HOP_BY_HOP.len()];
    let mut any = false;
    for name in headers.keys() {
        // Matching the text is cheaper than comparing with each of the nine names.
        let i = match name.as_str() {
            "connection" => 0,
            "keep-alive" => 1,
            "proxy-connection" => 2,
            "proxy-authenticate" => 3,
            "proxy-authorization" => 4,
            "te" => 5,
            "trailer" => 6,
            "transfer-encoding" => 7,
            "upgrade" => 8,
            _ => continue,
        };
        debug_assert_eq!(HOP_BY_HOP[i], name);
        present[i] = true;
        any = true;
    }
    if !any {
        return;
    }
    if present[0] {
        let mut named: Vec<HeaderName> = Vec::new();
        for token in headers
            .get_all(CONNECTION)
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .map(<[u8]>::trim_ascii)
        {
            // The usual tokens name nothing else to remove.
            if token.eq_ignore_ascii_case(b"keep-alive") {
                present[1] = true;
            } else if !token.eq_ignore_ascii_case(b"close")
                && let Ok(name) = HeaderName::from_bytes(token)
            {
                named.push(name);
            }
        }
        for name in named {
            headers.remove(name);
        }
    }
    for (name, _) in HOP_BY_HOP.iter().zip(present).filter(|(_, p)| *p) {
        headers.remove(name);
    }
}

/// The other end of the connection, whether it is a trusted proxy, and whether it came over
/// TLS (the scheme X-Forwarded-Proto says).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    pub ip: IpAddr,
    pub trusted: bool,
    pub tls: bool,
}

/// Removes what only a trusted proxy may say about the client (see the module doc), and from
/// anyone the URL overrides, which no proxy in front has a reason to send. Names are compared
/// with `_` read as `-`: CGI, WSGI, PHP-FPM and Rack give `X_Real_IP` and `X-Real-IP` the same
/// variable. One pass over the names present.
pub fn remove_forwarding_claims(headers: &mut HeaderMap, trusted_peer: bool) {
    let found: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_claim(name.as_str().as_bytes(), trusted_peer))
        .cloned()
        .collect();
    for name in found {
        headers.remove(name);
    }
}

/// [`remove_forwarding_claims`] for fields kept as the client sent them.
pub fn remove_raw_forwarding_claims(fields: &mut RawFields, trusted_peer: bool) {
    fields.retain(|name| !is_claim(name, trusted_peer));
}

/// Whether a field `name` (in any case) is one [`remove_forwarding_claims`] removes.
fn is_claim(name: &[u8], trusted_peer: bool) -> bool {
    // Names are short: a byte loop, not the string-pattern search.
    let spoofed = name.contains(&b'_');
    // The claims start with one of these; most fields are passed over here.
    if !spoofed && !matches!(name.first(), Some(b'f' | b't' | b'x' | b'F' | b'T' | b'X')) {
        return false;
    }
    // The longest name below is 19 bytes.
    let mut lower = [0u8; 20];
    let Some(text) = lower.get_mut(..name.len()) else {
        return false;
    };
    for (to, from) in text.iter_mut().zip(name) {
        *to = if *from == b'_' {
            b'-'
        } else {
            from.to_ascii_lowercase()
        };
    }
    let text: &[u8] = text;
    let url_override = matches!(text, b"x-original-url" | b"x-rewrite-url");
    let about_the_client = matches!(
        text,
        b"forwarded"
            | b"x-forwarded-for"
            | b"x-forwarded-proto"
            | b"x-forwarded-host"
            | b"x-forwarded-port"
            | b"x-forwarded-prefix"
            | b"x-forwarded-server"
            | b"x-real-ip"
            | b"true-client-ip"
            | b"x-client-ip"
            | b"x-cluster-client-ip"
    );
    // Ambiguous: only the real name may say how the message is framed, routed or known.
    let framing_lookalike = spoofed
        && matches!(
            text,
            b"content-length"
                | b"transfer-encoding"
                | b"connection"
                | b"keep-alive"
                | b"proxy-connection"
                | b"te"
                | b"trailer"
                | b"upgrade"
                | b"host"
                | b"proxy-authorization"
                | b"x-request-id"
        );
    // From a trusted proxy, only the dashed spellings it would send are kept.
    url_override || framing_lookalike || (about_the_client && (!trusted_peer || spoofed))
}

/// Adds the peer to a trusted proxy's X-Forwarded-For (an untrusted peer's is replaced) and to its
/// `Forwarded` when it sent one, sets X-Forwarded-Proto unless a trusted proxy already did, and
/// X-Forwarded-Host to the host the request was routed on.
pub fn add_forwarded(headers: &mut HeaderMap, peer: Peer, host: Option<&HeaderValue>) {
    for (name, value) in forwarded_edits(FieldsView::Map(headers), peer, host) {
        match value {
            Some(v) => headers.insert(name, v),
            None => headers.remove(name),
        };
    }
}

/// [`add_forwarded`] for fields kept as sent. An untrusted peer's forwarding fields were
/// removed on arrival ([`remove_raw_forwarding_claims`]), so only a trusted proxy's need
/// removing before the new ones are added.
pub fn add_raw_forwarded(fields: &mut RawFields, peer: Peer, host: Option<&HeaderValue>) {
    if !peer.trusted {
        // The common case, on every plain forward: nothing of the client's to read or extend,
        // three fields to add (what `forwarded_edits` gives an untrusted peer; the parity
        // test below holds the two together).
        if let Some(v) = client_value(peer.ip) {
            fields.add(X_FORWARDED_FOR.clone(), v);
        }
        let proto = if peer.tls { "https" } else { "http" };
        fields.add(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
        if let Some(h) = host {
            fields.add(X_FORWARDED_HOST.clone(), h.clone());
        }
        return;
    }
    for (name, value) in forwarded_edits(FieldsView::Raw(fields), peer, host) {
        fields.remove(&name);
        if let Some(v) = value {
            fields.add(name, v);
        }
    }
}

/// The forwarding fields a request leaves with: each set to a value in place of the request's
/// own, or removed (`None`). Names not listed stay as they are.
fn forwarded_edits(
    fields: FieldsView<'_>,
    peer: Peer,
    host: Option<&HeaderValue>,
) -> SmallVec<[(HeaderName, Option<HeaderValue>); 4]> {
    let mut edits = SmallVec::new();
    let proto = if peer.tls { "https" } else { "http" };
    let client = peer.ip;
    if peer.trusted && fields.get(&FORWARDED).is_some() {
        // RFC 7239 §6: IPv6 addresses are quoted and bracketed.
        let node = match client {
            IpAddr::V4(v4) => format!("for={v4}"),
            IpAddr::V6(v6) => format!("for=\"[{v6}]\""),
        };
        // Several lines are one list (RFC 7239 §4): all of them, the proxy in front's last,
        // then this hop.
        let mut value = Vec::new();
        for line in fields.values(&FORWARDED) {
            value.extend_from_slice(line);
            value.extend_from_slice(b", ");
        }
        value.extend_from_slice(node.as_bytes());
        if let Ok(v) = HeaderValue::from_bytes(&value) {
            edits.push((FORWARDED, Some(v)));
        }
    }
    // From an untrusted peer the chain is replaced, whatever it says.
    let mut previous = peer
        .trusted
        .then(|| fields.values(&X_FORWARDED_FOR))
        .into_iter()
        .flatten()
        // Visible ASCII only, as `HeaderValue::to_str` reads values.
        .filter(|v| v.iter().all(|b| matches!(b, b'\t' | 0x20..=0x7e)))
        .filter_map(|v| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .peekable();
    let value = if previous.peek().is_none() {
        client_value(client)
    } else {
        let mut xff = String::with_capacity(48);
        for hop in previous {
            xff.push_str(hop);
            xff.push_str(", ");
        }
        let _ = write!(xff, "{client}");
        HeaderValue::from_str(&xff).ok()
    };
    // Only the last value matters to the next hop; several header lines are folded into one.
    if let Some(v) = value {
        edits.push((X_FORWARDED_FOR.clone(), Some(v)));
    }
    // A trusted proxy's word on the scheme and host stands (it terminated TLS, say).
    if !(peer.trusted && fields.get(&X_FORWARDED_PROTO).is_some()) {
        edits.push((
            X_FORWARDED_PROTO.clone(),
            Some(HeaderValue::from_static(proto)),
        ));
    }
    // The host is the one this request was routed on, whoever sent an X-Forwarded-Host.
    edits.push((X_FORWARDED_HOST.clone(), host.cloned()));
    edits
}

/// The client's address as a header value. Consecutive requests mostly come from the same
/// client (a keep-alive connection's): the last one is kept per thread, not formatted again.
fn client_value(client: IpAddr) -> Option<HeaderValue> {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(IpAddr, HeaderValue)>> =
            const { std::cell::RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((ip, v)) = last.as_ref()
            && *ip == client
        {
            return Some(v.clone());
        }
        let v = HeaderValue::from_str(&client.to_string()).ok()?;
        *last = Some((client, v.clone()));
        Some(v)
    })
}

/// The request's id: the client's when it is sane, else a new random one, set in place of the
/// client's (in the request's map, or among its fields kept as sent).
pub fn ensure_request_id<B>(req: &mut http::Request<B>) -> HeaderValue {
    let sane = |v: &HeaderValue| {
        !v.is_empty() && v.len() <= 128 && v.as_bytes().iter().all(u8::is_ascii_graphic)
    };
    match req.extensions_mut().get_mut::<RawFields>() {
        None => {
            if let Some(id) = req.headers().get(&X_REQUEST_ID).filter(|v| sane(v)) {
                return id.clone();
            }
            let id = new_request_id();
            req.headers_mut().insert(X_REQUEST_ID.clone(), id.clone());
            id
        }
        Some(raw) => {
            match raw.first(X_REQUEST_ID.as_str().as_bytes()) {
                Some(id) if sane(&id) => return id,
                Some(_) => raw.remove(&X_REQUEST_ID),
                None => {}
            }
            let id = new_request_id();
            raw.add(X_REQUEST_ID.clone(), id.clone());
            id
        }
    }
}

/// 128 random bits as 32 hex digits.
pub fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bits = fastrand::u128(..);
    let mut id = [0u8; 32];
    for (i, c) in id.iter_mut().enumerate() {
        *c = HEX[((bits >> (4 * i)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&id).expect("hex is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_named_by_connection_go() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, x-secret".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("upgrade", "websocket".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));

        // The usual case: a close or keep-alive token names nothing else.
        let mut h = HeaderMap::new();
        h.insert("connection", "Keep-Alive".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("close", "kept".parse().unwrap());
        h.insert("content-type", "text/plain".parse().unwrap());
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 2);
        let mut h = HeaderMap::new();
        h.insert("te", "trailers".parse().unwrap());
        h.insert("proxy-authorization", "Basic eDp5".parse().unwrap());
        remove_hop_by_hop(&mut h);
        assert!(h.is_empty());
    }

    #[test]
    fn forwarded_headers_append_and_overwrite() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", "1.1.1.1".parse().unwrap());
        h.append("x-forwarded-for", "2.2.2.2".parse().unwrap());
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        add_forwarded(
            &mut h,
            Peer {
                ip: "10.0.0.1".parse().unwrap(),
                trusted: true,
                tls: false,
            },
            Some(&HeaderValue::from_static("api.example.com")),
        );
        assert_eq!(h["x-forwarded-for"], "1.1.1.1, 2.2.2.2, 10.0.0.1");
        assert_eq!(
            h["x-forwarded-proto"], "https",
            "a trusted proxy's scheme stands"
        );
        assert_eq!(h["x-forwarded-host"], "api.example.com");
        // The first hop, for one client and then another (its text is cached per thread).
        for client in ["10.0.0.1", "10.0.0.1", "2001:db8::7"] {
            let mut h = HeaderMap::new();
            let peer = Peer {
                ip: client.parse().unwrap(),
                trusted: false,
                tls: false,
            };
            add_forwarded(&mut h, peer, None);
            assert_eq!(h["x-forwarded-for"], client);
            assert_eq!(h["x-forwarded-proto"], "http");
            assert!(!h.contains_key("x-forwarded-host"));
        }
        // Over TLS the scheme is https.
        let mut h = HeaderMap::new();
        let peer = Peer {
            ip: "10.0.0.1".parse().unwrap(),
            trusted: false,
            tls: true,
        };
        add_forwarded(&mut h, peer, None);
        assert_eq!(h["x-forwarded-proto"], "https");
    }

    #[test]
    fn untrusted_peers_cannot_speak_for_the_client_and_trusted_ones_are_extended() {
        let forged = [
            ("forwarded", "for=1.2.3.4;proto=https"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "admin.internal"),
            ("x-real-ip", "1.2.3.4"),
            ("true-client-ip", "1.2.3.4"),
            ("x-client-ip", "1.2.3.4"),
            ("x-original-url", "/admin"),
            ("x-rewrite-url", "/admin"),
        ];
        let with_forged = || {
            let mut h = HeaderMap::new();
            for (n, v) in forged {
                h.insert(n, v.parse().unwrap());
            }
            h.insert("x-kept", "1".parse().unwrap());
            h
        };
        let mut h = with_forged();
        h.insert("x_real_ip", "1.2.3.4".parse().unwrap());
        h.insert("x_original_url", "/admin".parse().unwrap());
        remove_forwarding_claims(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        let peer = Peer {
            ip: "192.0.2.9".parse().unwrap(),
            trusted: false,
            tls: false,
        };
        add_forwarded(&mut h, peer, None);
        assert_eq!(h["x-forwarded-for"], "192.0.2.9");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert!(!h.contains_key("forwarded"));

        let mut h = with_forged();
        h.insert("x_real_ip", "6.6.6.6".parse().unwrap());
        // Framing and hop-by-hop names spelled with `_` go whoever sends them; other `_`
        // names are the client's business.
        let lookalikes = [
            "transfer_encoding",
            "content_length",
            "proxy_connection",
            "keep_alive",
        ];
        for lookalike in lookalikes {
            h.insert(lookalike, "1".parse().unwrap());
        }
        h.insert("x_tenant", "blue".parse().unwrap());
        remove_forwarding_claims(&mut h, true);
        // From a trusted proxy: the URL overrides and underscore spellings go, the rest stays.
        for gone in ["x-original-url", "x-rewrite-url", "x_real_ip"]
            .into_iter()
            .chain(lookalikes)
        {
            assert!(!h.contains_key(gone), "{gone}");
        }
        assert_eq!(h["x_tenant"], "blue");
        h.remove("x_tenant");
        let peer = Peer {
            ip: "2001:db8::1".parse().unwrap(),
            trusted: true,
            tls: false,
        };
        let routed = HeaderValue::from_static("shop.example.com");
        add_forwarded(&mut h, peer, Some(&routed));
        assert_eq!(h["x-forwarded-for"], "1.2.3.4, 2001:db8::1");
        assert_eq!(
            h["forwarded"],
            "for=1.2.3.4;proto=https, for=\"[2001:db8::1]\""
        );
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "shop.example.com");
        assert_eq!(h["x-real-ip"], "1.2.3.4");

        // Several Forwarded lines are one list: a client's forged first line cannot push the
        // trusted proxy's own entry out.
        let mut h = HeaderMap::new();
        h.append("forwarded", "for=6.6.6.6".parse().unwrap());
        h.append("forwarded", "for=1.2.3.4".parse().unwrap());
        add_forwarded(&mut h, peer, None);
        assert_eq!(
            h.get_all("forwarded").iter().collect::<Vec<_>>(),
            ["for=6.6.6.6, for=1.2.3.4, for=\"[2001:db8::1]\""]
        );
    }

    #[test]
    fn request_ids_are_kept_when_sane_and_generated_otherwise() {
        let mut req = http::Request::new(());
        req.headers_mut()
            .insert("x-request-id", "abc-123".parse().unwrap());
        assert_eq!(ensure_request_id(&mut req), "abc-123");
        req.headers_mut().insert(
            "x-request-id",
            HeaderValue::from_str(&"x".repeat(200)).unwrap(),
        );
        let id = ensure_request_id(&mut req);
        assert_eq!(id.len(), 32);
        assert_eq!(req.headers()["x-request-id"], id);
        assert_ne!(
            ensure_request_id(&mut http::Request::new(())),
            ensure_request_id(&mut http::Request::new(()))
        );
    }

    /// A request whose fields were kept as the client sent them.
    fn raw_request(fields: &str) -> http::Request<()> {
        let mut req = http::Request::new(());
        let (raw, _) = crate::http1::raw_fields::tests::read(fields).unwrap();
        req.extensions_mut().insert(raw);
        req
    }

    fn raw_written(req: &http::Request<()>) -> String {
        let mut out = bytes::BytesMut::new();
        req.extensions().get::<RawFields>().unwrap().write(&mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn request_ids_among_fields_kept_as_sent_are_kept_when_sane_and_replaced_otherwise() {
        let mut req = raw_request("X-Request-ID: abc-123\r\nX-A: 1\r\n");
        assert_eq!(ensure_request_id(&mut req), "abc-123");
        assert!(req.headers().is_empty(), "the client's line is relayed");
        assert_eq!(raw_written(&req), "X-Request-ID: abc-123\r\nX-A: 1\r\n");

        let mut req = raw_request("x-request-id: a b\r\nX-A: 1\r\nX-Request-Id: ok\r\n");
        let id = ensure_request_id(&mut req);
        assert_eq!(id.len(), 32, "the first line decides, as in a map");
        assert_eq!(
            raw_written(&req),
            format!("X-A: 1\r\nx-request-id: {}\r\n", id.to_str().unwrap()),
            "every line of the client's goes"
        );

        let mut req = raw_request("X-A: 1\r\n");
        let id = ensure_request_id(&mut req);
        assert_eq!(
            raw_written(&req),
            format!("X-A: 1\r\nx-request-id: {}\r\n", id.to_str().unwrap())
        );
        assert!(req.headers().is_empty());
    }

    #[test]
    fn claims_among_fields_kept_as_sent_go_as_they_go_from_a_map() {
        let fields = "X-Forwarded-For: 1.2.3.4\r\nFORWARDED: for=1.2.3.4\r\nX_Real_IP: 1.2.3.4\r\n\
                      X-Original-URL: /admin\r\nTransfer_Encoding: chunked\r\nX_Request_Id: x\r\nX-Real-IP: 5.6.7.8\r\n\
                      Content_Type: text/plain\r\nX-Kept: 1\r\nTE-Not: 1\r\n";
        let mut req = raw_request(fields);
        remove_raw_forwarding_claims(req.extensions_mut().get_mut().unwrap(), false);
        assert_eq!(
            raw_written(&req),
            "Content_Type: text/plain\r\nX-Kept: 1\r\nTE-Not: 1\r\n"
        );
        let mut req = raw_request(fields);
        remove_raw_forwarding_claims(req.extensions_mut().get_mut().unwrap(), true);
        assert_eq!(
            raw_written(&req),
            "X-Forwarded-For: 1.2.3.4\r\nFORWARDED: for=1.2.3.4\r\nX-Real-IP: 5.6.7.8\r\n\
             Content_Type: text/plain\r\nX-Kept: 1\r\nTE-Not: 1\r\n"
        );
        // The map path removes the same names.
        let (mut parts, _) = raw_request(fields).into_parts();
        crate::http1::raw_fields::into_map(parts.extensions.remove(), &mut parts.headers);
        remove_forwarding_claims(&mut parts.headers, false);
        let mut names: Vec<_> = parts.headers.keys().map(|n| n.as_str()).collect();
        names.sort();
        assert_eq!(names, ["content_type", "te-not", "x-kept"]);
    }

    /// The forwarding fields a request leaves with, its fields in a map or kept as sent: the
    /// same, whoever the peer is and whatever it claimed.
    #[test]
    fn forwarding_fields_are_the_same_from_a_map_and_as_sent() {
        let asked = [
            "",
            "X-Forwarded-For: 203.0.113.9\r\n",
            "X-Forwarded-For: 203.0.113.9, 10.0.0.2\r\nX-Forwarded-For: 10.0.0.3\r\n",
            "Forwarded: for=203.0.113.9;proto=https\r\nforwarded: for=10.0.0.2\r\n",
            "X-Forwarded-Proto: https\r\nX-Forwarded-Host: admin.internal\r\nX-A: 1\r\n",
            "X-Forwarded-For: caf\u{e9}\r\nX-Forwarded-For: 10.0.0.4\r\n",
        ];
        let host = HeaderValue::from_static("shop.example");
        for fields in asked {
            for (trusted, tls, host) in [
                (false, false, Some(&host)),
                (true, false, Some(&host)),
                (true, true, None),
                (false, true, None),
            ] {
                let peer = Peer {
                    ip: "10.0.0.1".parse().unwrap(),
                    trusted,
                    tls,
                };
                let (mut from_map, _) = raw_request(fields).into_parts();
                crate::http1::raw_fields::into_map(
                    from_map.extensions.remove(),
                    &mut from_map.headers,
                );
                remove_forwarding_claims(&mut from_map.headers, trusted);
                add_forwarded(&mut from_map.headers, peer, host);

                let (mut as_sent, _) = raw_request(fields).into_parts();
                let raw = as_sent.extensions.get_mut::<RawFields>().unwrap();
                remove_raw_forwarding_claims(raw, trusted);
                add_raw_forwarded(raw, peer, host);
                crate::http1::raw_fields::into_map(
                    as_sent.extensions.remove(),
                    &mut as_sent.headers,
                );

                let sorted = |h: &HeaderMap| {
                    let mut all: Vec<(String, Vec<u8>)> = h
                        .iter()
                        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                        .collect();
                    all.sort();
                    all
                };
                assert_eq!(
                    sorted(&from_map.headers),
                    sorted(&as_sent.headers),
                    "{fields:?} trusted {trusted} tls {tls}"
                );
            }
        }
    }
}
