//! A message's fields as they were sent, relayed over HTTP/1 without being parsed into a map:
//! a backend's answer to an HTTP/1 client, and an HTTP/1 client's request to its backend.
//!
//! Most messages pass through the proxy untouched: no rule edits their fields, and the proxy
//! only adds its own (`x-request-id`, `X-Forwarded-*`, RateLimit...). Building a
//! [`http::HeaderMap`] for them (a name lookup, a value check and a hash per field, then
//! dropping it all) was the largest single cost of a proxied request, once for the request and
//! once for its answer. For those messages the HTTP/1 reader keeps the head's bytes and where
//! the fields are instead, in a [`RawFields`] extension of a message whose map holds only what
//! the proxy adds, and the HTTP/1 encoder writes the lines as they came, then the map's.
//!
//! The hop-by-hop fields (RFC 9110 §7.6.1) and the framing fields are left out, as the map path
//! leaves them out: the encoder writes its own `Content-Length` (kept here as a number),
//! `Transfer-Encoding` and `Connection`. A message whose `Connection` names other fields takes
//! the map path, where those fields are removed by name.
//!
//! Answers: only the HTTP/1 server asks for this (through
//! [`crate::exchange::Client::relays_raw_fields`]; HTTP/2 clients, Aggregate calls and
//! in-process callers get a map), and the pipeline asks the backend for it
//! ([`crate::upstream::AnswerFields::PassThrough`]) only when nothing after the action reads
//! or edits the answer's fields but the respond path and the HTTP/1 encoder, which know this
//! extension.
//!
//! Requests: the HTTP/1 server reads every request this way. The stages before the route
//! match read the few fields they need here (Host, `X-Request-Id`, a trusted proxy's
//! `X-Forwarded-Proto`) and remove the forwarding claims here; the pipeline turns the fields
//! into a map ([`into_map`]) before anything else reads them: before the route match when a
//! route matches on headers, and after it unless the matched rule reads none
//! ([`crate::runtime::RuleRuntime::relays_request_fields`]). The forwarding fields are
//! written in either form ([`crate::forwarding::add_raw_forwarded`]).
//!
//! httparse already checked the names (tokens) and values (no CR, LF or other controls) as
//! [`http::HeaderName`] and [`http::HeaderValue`] would, so relaying the bytes cannot split a
//! message.

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};
use smallvec::SmallVec;

use super::{FieldRole, FieldSpans, Framing, FramingPass};

/// Fields that concern one connection only; the map path removes them in
/// [`crate::forwarding::remove_hop_by_hop`] (`Connection`, `Keep-Alive` and
/// `Transfer-Encoding` are consumed by the framing pass before).
const HOP_BY_HOP: [&[u8]; 6] = [
    b"proxy-connection",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"te",
    b"trailer",
    b"upgrade",
];

/// Whether a name of this length may be one of [`HOP_BY_HOP`] or `date`: most names are not,
/// and need no comparison.
fn special_length(len: usize) -> bool {
    matches!(len, 2 | 4 | 7 | 16 | 18 | 19)
}

/// The fields of a message's head, kept as they were sent.
#[derive(Clone, Debug)]
pub struct RawFields {
    head: Bytes,
    /// Per relayed field: where its name starts, the name's length, where its value starts and
    /// where it ends.
    lines: SmallVec<[[u32; 4]; 12]>,
    /// The Content-Length the message declared (its fields are not relayed: the encoders write
    /// their own).
    pub content_length: Option<u64>,
    /// A `Date` field is among them (an answer's encoder then writes none).
    pub dated: bool,
    /// Fields the proxy adds (the request id, RateLimit, CORS; a request's forwarding fields),
    /// written after those as sent without going through a map (no hashing for a field only
    /// the encoder reads). Not among what [`Self::contains`] and [`Self::remove`] see.
    added: Vec<(HeaderName, HeaderValue)>,
}

impl RawFields {
    /// The fields of `head` (parsed, split off) as relayed, and the framing they declare;
    /// `None` when a `Connection` field names other fields (the map path handles that).
    pub fn read(head: &Bytes, spans: &FieldSpans) -> Option<(RawFields, Framing)> {
        let mut pass = FramingPass::default();
        let mut raw = RawFields {
            head: head.clone(),
            lines: SmallVec::new(),
            content_length: None,
            dated: false,
            added: Vec::new(),
        };
        for &[name_at, name_len, value_at, value_len] in spans {
            let name = &head[name_at as usize..(name_at + name_len) as usize];
            let value = &head[value_at as usize..(value_at + value_len) as usize];
            match pass.visit(name, value) {
                FieldRole::Framing | FieldRole::ContentLength => continue,
                FieldRole::ConnectionNamingOthers => return None,
                FieldRole::Other => {}
            }
            if special_length(name.len()) {
                if HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
                    continue;
                }
                raw.dated |= name.eq_ignore_ascii_case(b"date");
            }
            debug_assert!(
                head[(name_at + name_len) as usize..value_at as usize]
                    .strip_prefix(b":")
                    .is_some_and(|gap| gap.iter().all(|b| matches!(b, b' ' | b'\t'))),
                "httparse left only a colon and whitespace between a name and its value"
            );
            raw.lines
                .push([name_at, name_len, value_at, value_at + value_len]);
        }
        let framing = pass.finish();
        raw.content_length = framing.content_length.ok().flatten();
        Some((raw, framing))
    }

    fn names(&self) -> impl Iterator<Item = &[u8]> {
        self.lines
            .iter()
            .map(|&[at, len, _, _]| &self.head[at as usize..(at + len) as usize])
    }

    /// Whether a field `name` is among them.
    pub fn contains(&self, name: &HeaderName) -> bool {
        let name = name.as_str().as_bytes();
        self.names().any(|n| n.eq_ignore_ascii_case(name))
    }

    /// The values of the fields `name` (any case), in order.
    pub fn values<'a>(&'a self, name: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.lines
            .iter()
            .filter(move |&&[at, len, _, _]| {
                self.head[at as usize..(at + len) as usize].eq_ignore_ascii_case(name)
            })
            .map(|&[_, _, value_at, end]| &self.head[value_at as usize..end as usize])
    }

    /// The first field `name`'s value, sharing the head's bytes.
    pub fn first(&self, name: &[u8]) -> Option<HeaderValue> {
        let value = self.values(name).next()?;
        HeaderValue::from_maybe_shared(self.head.slice_ref(value)).ok()
    }

    /// Leaves out the fields whose name `keep` refuses (given as sent, in any case).
    pub fn retain(&mut self, mut keep: impl FnMut(&[u8]) -> bool) {
        let head = &self.head;
        self.lines
            .retain(|&mut [at, len, _, _]| keep(&head[at as usize..(at + len) as usize]));
    }

    /// Leaves out the fields `name` (a field the proxy sets in their place).
    pub fn remove(&mut self, name: &HeaderName) {
        let name = name.as_str().as_bytes();
        self.retain(|n| !n.eq_ignore_ascii_case(name));
    }

    /// Leaves out every field whose name starts with `prefix` (lower-case), in one pass.
    pub fn remove_prefixed(&mut self, prefix: &[u8]) {
        self.retain(|name| {
            !(name.len() >= prefix.len() && name[..prefix.len()].eq_ignore_ascii_case(prefix))
        });
    }

    /// Adds a field of the proxy's, written after those as sent.
    pub fn add(&mut self, name: HeaderName, value: HeaderValue) {
        self.added.push((name, value));
    }

    /// Adds the proxy's fields, after those as sent (taking `fields`' buffer when it can).
    pub fn extend(&mut self, fields: &mut Vec<(HeaderName, HeaderValue)>) {
        if self.added.is_empty() {
            self.added = std::mem::take(fields);
        } else {
            self.added.append(fields);
        }
    }

    /// Writes the fields, one `name: value` line each, as they came, then the proxy's. Lines
    /// that follow each other in the head (most do) are copied together.
    pub fn write(&self, out: &mut BytesMut) {
        let head = &self.head[..];
        let mut run: Option<(usize, usize)> = None;
        for &[at, _, _, end] in &self.lines {
            let (at, end) = (at as usize, end as usize);
            run = match run {
                Some((start, last)) if at == last + 2 && &head[last..at] == b"\r\n" => {
                    Some((start, end))
                }
                Some((start, last)) => {
                    out.put_slice(&head[start..last]);
                    out.put_slice(b"\r\n");
                    Some((at, end))
                }
                None => Some((at, end)),
            };
        }
        if let Some((start, last)) = run {
            out.put_slice(&head[start..last]);
            out.put_slice(b"\r\n");
        }
        for (name, value) in &self.added {
            out.put_slice(name.as_str().as_bytes());
            out.put_slice(b": ");
            out.put_slice(value.as_bytes());
            out.put_slice(b"\r\n");
        }
    }

    /// The fields as a map (with the Content-Length), in front of `added`: what the message's
    /// map would have been, for a reader that needs one. With room for a few more fields
    /// (forwarding fields, a rule's edits), so adding them does not grow it.
    pub fn into_map(self, added: HeaderMap) -> HeaderMap {
        let mut map =
            HeaderMap::with_capacity(self.lines.len() + self.added.len() + added.len() + 8);
        for &[at, len, value_at, end] in &self.lines {
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(&self.head[at as usize..(at + len) as usize]),
                HeaderValue::from_maybe_shared(self.head.slice(value_at as usize..end as usize)),
            ) else {
                // httparse checked both; never happens.
                continue;
            };
            map.append(name, value);
        }
        if let Some(n) = self.content_length {
            map.insert(http::header::CONTENT_LENGTH, HeaderValue::from(n));
        }
        for (name, value) in self.added {
            map.append(name, value);
        }
        let mut last = None;
        for (name, value) in added {
            let name = name
                .or(last.clone())
                .expect("a map's first entry has a name");
            last = Some(name.clone());
            map.append(name, value);
        }
        map
    }
}

/// A request's fields as a stage reads them: its map, or its fields kept as the client sent
/// them (the proxy's own additions aside).
#[derive(Clone, Copy)]
pub enum FieldsView<'a> {
    Map(&'a HeaderMap),
    Raw(&'a RawFields),
}

impl<'a> FieldsView<'a> {
    pub fn of<B>(req: &'a http::Request<B>) -> Self {
        FieldsView::of_parts(req.headers(), req.extensions())
    }

    /// The fields of a message held as its `headers` and `extensions`.
    pub fn of_parts(headers: &'a HeaderMap, extensions: &'a http::Extensions) -> Self {
        match extensions.get::<RawFields>() {
            Some(raw) => FieldsView::Raw(raw),
            None => FieldsView::Map(headers),
        }
    }

    /// The values of the fields `name`, in order.
    pub fn values(self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> + 'a {
        let (map, raw) = match self {
            FieldsView::Map(map) => (
                Some(map.get_all(name).iter().map(HeaderValue::as_bytes)),
                None,
            ),
            FieldsView::Raw(raw) => (None, Some(raw.values(name.as_str().as_bytes()))),
        };
        map.into_iter().flatten().chain(raw.into_iter().flatten())
    }

    /// The first field `name`'s value.
    pub fn get(self, name: &HeaderName) -> Option<HeaderValue> {
        match self {
            FieldsView::Map(map) => map.get(name).cloned(),
            FieldsView::Raw(raw) => raw.first(name.as_str().as_bytes()),
        }
    }
}

/// Makes a message's fields a map again if they were kept as sent (`raw`, taken out of its
/// extensions), for a stage that needs the map: the map is `headers` with them in front.
pub fn into_map(raw: Option<RawFields>, headers: &mut HeaderMap) {
    if let Some(raw) = raw {
        let added = std::mem::take(headers);
        *headers = raw.into_map(added);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The fields of a head with `fields` (lines ending in CRLF), read as the client reads them.
    pub(crate) fn read(fields: &str) -> Option<(RawFields, Framing)> {
        let (head, spans) = crate::http1::tests::parsed(fields);
        RawFields::read(&head, &spans)
    }

    fn written(raw: &RawFields) -> String {
        let mut out = BytesMut::new();
        raw.write(&mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn fields_are_relayed_as_sent_without_those_of_the_hop_or_the_framing() {
        let (raw, framing) = read(
            "Server: nginx\r\nDate: Mon, 30 Nov 2026 06:00:00 GMT\r\nContent-Type:text/plain\r\n\
             Content-Length: 5\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\
             Upgrade: h2c\r\nX-Tabbed:\tvalue\r\n",
        )
        .unwrap();
        // Names keep their case and the separator its spelling.
        assert_eq!(
            written(&raw),
            "Server: nginx\r\nDate: Mon, 30 Nov 2026 06:00:00 GMT\r\n\
             Content-Type:text/plain\r\nX-Tabbed:\tvalue\r\n"
        );
        assert_eq!(raw.content_length, Some(5));
        assert_eq!(framing.content_length, Ok(Some(5)));
        assert!(framing.keep_alive && raw.dated);

        let (raw, _) = read("Proxy-Authenticate: Basic\r\nProxy-Authorization: x\r\nTE: trailers\r\nTrailer: x-sum\r\nProxy-Connection: close\r\nContent-Length: 4, 4\r\n").unwrap();
        assert_eq!(written(&raw), "", "none of the hop's fields is relayed");
        assert_eq!(
            raw.content_length,
            Some(4),
            "a list of one length is that length"
        );

        // A value's trailing whitespace is not part of it.
        let (raw, _) = read("X-A: 1\r\nX-Trail: v \t\r\nX-B: 2\r\nX-C: 3\r\n").unwrap();
        assert_eq!(
            written(&raw),
            "X-A: 1\r\nX-Trail: v\r\nX-B: 2\r\nX-C: 3\r\n"
        );

        let (raw, framing) = read("Transfer-Encoding: chunked\r\nX-A: 1\r\n").unwrap();
        assert!(framing.transfer_encoding.unwrap().chunked);
        assert_eq!(written(&raw), "X-A: 1\r\n");
        assert!(!raw.dated);
    }

    #[test]
    fn the_length_shortcut_misses_no_special_name() {
        for name in HOP_BY_HOP.iter().chain([&&b"date"[..]]) {
            assert!(
                special_length(name.len()),
                "{}",
                String::from_utf8_lossy(name)
            );
        }
        // The hop's fields are the map path's, with the three the framing pass consumes.
        let mut ours: Vec<&[u8]> = HOP_BY_HOP.to_vec();
        ours.extend([&b"connection"[..], b"keep-alive", b"transfer-encoding"]);
        let mut theirs: Vec<&[u8]> = crate::forwarding::HOP_BY_HOP
            .iter()
            .map(|n| n.as_str().as_bytes())
            .collect();
        ours.sort();
        theirs.sort();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn a_connection_naming_other_fields_takes_the_map_path() {
        assert!(read("Connection: close, X-Secret\r\nX-Secret: 1\r\n").is_none());
        assert!(read("Connection: close\r\nX-A: 1\r\n").is_some());
    }

    #[test]
    fn fields_the_proxy_sets_replace_the_backends() {
        let (mut raw, _) =
            read("X-Request-Id: theirs\r\nX-A: 1\r\nx-request-id: again\r\n").unwrap();
        let id = HeaderName::from_static("x-request-id");
        assert!(raw.contains(&id));
        raw.remove(&id);
        assert!(!raw.contains(&id));
        assert_eq!(written(&raw), "X-A: 1\r\n");
    }

    #[test]
    fn the_map_is_what_the_map_path_builds_followed_by_what_the_proxy_added() {
        let (raw, _) =
            read("Server: nginx\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nX-Upstream: ::1\r\nContent-Length: 2\r\n")
                .unwrap();
        let mut added = HeaderMap::new();
        added.insert("x-request-id", HeaderValue::from_static("id"));
        added.append("ratelimit", HeaderValue::from_static("r=1"));
        added.append("ratelimit", HeaderValue::from_static("r=2"));
        let map = raw.into_map(added);
        assert_eq!(map["server"], "nginx");
        assert_eq!(map["x-upstream"], "::1", "a value's own colons stay");
        assert_eq!(
            map.get_all("set-cookie").iter().collect::<Vec<_>>(),
            ["a=1", "b=2"]
        );
        assert_eq!(map["content-length"], "2");
        assert_eq!(map["x-request-id"], "id");
        assert_eq!(
            map.get_all("ratelimit").iter().collect::<Vec<_>>(),
            ["r=1", "r=2"]
        );

        let mut parts = http::Response::new(()).into_parts().0;
        let (raw, _) = read("Server: nginx\r\n").unwrap();
        parts.extensions.insert(raw);
        into_map(parts.extensions.remove(), &mut parts.headers);
        assert_eq!(parts.headers["server"], "nginx");
        assert!(parts.extensions.get::<RawFields>().is_none());
    }
}
