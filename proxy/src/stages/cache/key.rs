//! The cache key: what two requests must share to be answered by one stored response, before
//! the response's own `Vary` ([`super::rfc9111::vary`]) is consulted.
//!
//! The key is the method (`HEAD` is answered from a stored `GET`, RFC 9111 §4), the scheme,
//! the host the request was routed on, the canonical path
//! ([`frontdesk_snapshot::path::normalize`]), the query as the Policy says (all of it, all but
//! some parameters, or only some), the values of the Policy's `varyHeaders`, and the consumer
//! when the answer is cached per consumer. Fields are separated by a byte no URL or header
//! value holds, so no two different requests share a key.

use http::{HeaderMap, HeaderName, Method};

/// Which query parameters are part of the key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum QueryKey {
    /// The whole query, as sent.
    #[default]
    All,
    /// All parameters but these (tracking parameters such as `utm_source`).
    Ignore(Vec<String>),
    /// Only these parameters.
    Only(Vec<String>),
}

/// How a Policy's cache builds keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyRules {
    pub query: QueryKey,
    /// Request fields whose values are always part of the key (lower-case names).
    pub vary_headers: Vec<HeaderName>,
}

/// What identifies a request to the cache.
pub struct Request<'a> {
    pub method: &'a Method,
    pub scheme: &'a str,
    /// The host the request was routed on (lower-case, without port).
    pub host: &'a str,
    pub port: Option<u16>,
    /// The canonical path.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
}

/// Separates the key's parts: a control character, in no URL and no header value.
pub const SEP: char = '\u{1}';

impl KeyRules {
    /// The key of `req`; `consumer` when the answer is cached per consumer.
    pub fn key(&self, req: &Request<'_>, consumer: Option<&str>) -> String {
        self.key_and_uri(req, consumer).0
    }

    /// The key of `req`, and the length of its start that [`KeyRules::uri_prefix`] would be
    /// (for a `GET` or `HEAD`).
    pub fn key_and_uri(&self, req: &Request<'_>, consumer: Option<&str>) -> (String, usize) {
        let method = if *req.method == Method::HEAD {
            Method::GET.as_str()
        } else {
            req.method.as_str()
        };
        let mut key = self.uri_key(method, req);
        let uri = key.len();
        for name in &self.vary_headers {
            key.push(SEP);
            key.push_str(name.as_str());
            for (i, v) in req.headers.get_all(name).iter().enumerate() {
                key.push(if i == 0 { '=' } else { ',' });
                push_escaped(&mut key, v.as_bytes());
            }
        }
        if let Some(consumer) = consumer {
            key.push(SEP);
            key.push_str("consumer=");
            push_escaped(&mut key, consumer.as_bytes());
        }
        (key, uri)
    }

    /// What every key of a `GET` of `req`'s URI starts with, whatever else it holds: an
    /// unsafe method's invalidation removes them all (RFC 9111 §4.4).
    pub fn uri_prefix(&self, req: &Request<'_>) -> String {
        self.uri_key(Method::GET.as_str(), req)
    }

    /// `method`, the URI, and the separator that ends it.
    fn uri_key(&self, method: &str, req: &Request<'_>) -> String {
        let mut key = String::with_capacity(64 + req.path.len());
        key.push_str(method);
        key.push(SEP);
        key.push_str(req.scheme);
        key.push_str("://");
        key.push_str(req.host);
        if let Some(port) = req.port {
            key.push(':');
            key.push_str(&port.to_string());
        }
        key.push_str(req.path);
        if let Some(query) = req.query {
            self.push_query(&mut key, query);
        }
        // The URI ends here: a purge by the prefix `…/x/1` + SEP spares `…/x/10`.
        key.push(SEP);
        key
    }

    /// The query's part of the key: all of it as sent, or its parameters the Policy keeps,
    /// in the order sent. Names are compared percent-decoded and in any case, so a backend
    /// reading `Page` or `pag%65` as `page` cannot be sent a parameter the key left out. A
    /// query with `;` is kept whole: backends differ on whether it separates parameters
    /// (`a=1;b=2`), so no parameter of it is left out, and it never shares a key with the
    /// same parameters separated by `&`.
    fn push_query(&self, key: &mut String, query: &str) {
        let names = match &self.query {
            QueryKey::Ignore(names) | QueryKey::Only(names) if !query.contains(';') => names,
            _ => {
                key.push('?');
                key.push_str(query);
                return;
            }
        };
        let only = matches!(self.query, QueryKey::Only(_));
        let mut first = true;
        for param in query.split('&').filter(|p| !p.is_empty()) {
            let name = decoded_lower(param.split_once('=').map_or(param, |(n, _)| n));
            if names.iter().any(|n| n.eq_ignore_ascii_case(&name)) != only {
                continue;
            }
            key.push(if first { '?' } else { '&' });
            key.push_str(param);
            first = false;
        }
    }
}

/// A query parameter's name percent-decoded (bytes that are not valid UTF-8 as U+FFFD),
/// lower-case.
fn decoded_lower(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).to_ascii_lowercase()
}

/// A field value or consumer in the key: control bytes (the separator among them), bytes
/// outside ASCII, and `%` itself, percent-encoded, so no two values share a spelling.
fn push_escaped(key: &mut String, value: &[u8]) {
    for &b in value {
        if !(0x20..0x7f).contains(&b) || b == b'%' {
            key.push_str(&format!("%{b:02X}"));
        } else {
            key.push(b as char);
        }
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn key(rules: &KeyRules, method: Method, query: Option<&str>, headers: &HeaderMap) -> String {
        rules.key(
            &Request {
                method: &method,
                scheme: "https",
                host: "shop.example",
                port: None,
                path: "/items",
                query,
                headers,
            },
            None,
        )
    }

    #[test]
    fn head_shares_get_and_other_methods_do_not() {
        let rules = KeyRules::default();
        let none = HeaderMap::new();
        assert_eq!(
            key(&rules, Method::HEAD, None, &none),
            key(&rules, Method::GET, None, &none)
        );
        assert_ne!(
            key(&rules, Method::POST, None, &none),
            key(&rules, Method::GET, None, &none)
        );
    }

    #[test]
    fn the_query_counts_as_the_policy_says() {
        let none = HeaderMap::new();
        let all = KeyRules::default();
        let q = Some("page=2&utm_source=mail&sort=asc");
        assert_ne!(
            key(&all, Method::GET, q, &none),
            key(&all, Method::GET, Some("page=2&sort=asc"), &none)
        );
        let ignoring = KeyRules {
            query: QueryKey::Ignore(vec!["utm_source".into()]),
            ..KeyRules::default()
        };
        assert_eq!(
            key(&ignoring, Method::GET, q, &none),
            key(&ignoring, Method::GET, Some("page=2&sort=asc"), &none)
        );
        let only = KeyRules {
            query: QueryKey::Only(vec!["page".into()]),
            ..KeyRules::default()
        };
        assert_eq!(
            key(&only, Method::GET, q, &none),
            key(&only, Method::GET, Some("page=2"), &none)
        );
        assert_ne!(
            key(&only, Method::GET, q, &none),
            key(&only, Method::GET, Some("page=3"), &none)
        );
        // No parameter kept: the same key as no query at all.
        assert_eq!(
            key(&only, Method::GET, Some("sort=asc"), &none),
            key(&only, Method::GET, None, &none)
        );
    }

    #[test]
    fn a_query_spelled_another_way_is_another_key() {
        let none = HeaderMap::new();
        let ignoring = KeyRules {
            query: QueryKey::Ignore(vec!["utm_source".into()]),
            ..KeyRules::default()
        };
        for rules in [&KeyRules::default(), &ignoring] {
            // Backends differ on `;`: never the key of the `&` spelling.
            assert_ne!(
                key(rules, Method::GET, Some("a=1;b=2"), &none),
                key(rules, Method::GET, Some("a=1&b=2"), &none)
            );
            assert_ne!(
                key(rules, Method::GET, Some("utm_source=x;a=1"), &none),
                key(rules, Method::GET, Some("a=1"), &none)
            );
        }
        // The whole query as sent, when all of it counts.
        assert_ne!(
            key(&KeyRules::default(), Method::GET, Some("a=1&&b=2"), &none),
            key(&KeyRules::default(), Method::GET, Some("a=1&b=2"), &none)
        );
    }

    #[test]
    fn a_parameter_the_backend_may_read_as_a_kept_one_stays_in_the_key() {
        let none = HeaderMap::new();
        let only = KeyRules {
            query: QueryKey::Only(vec!["page".into()]),
            ..KeyRules::default()
        };
        let bare = key(&only, Method::GET, None, &none);
        for sneaky in ["Page=9", "pag%65=9", "x=1;page=9", "PAG%45=9"] {
            assert_ne!(
                key(&only, Method::GET, Some(sneaky), &none),
                bare,
                "{sneaky}"
            );
        }
        let ignoring = KeyRules {
            query: QueryKey::Ignore(vec!["utm_source".into()]),
            ..KeyRules::default()
        };
        assert_eq!(
            key(
                &ignoring,
                Method::GET,
                Some("UTM_Source=x&utm%5Fsource=y"),
                &none
            ),
            key(&ignoring, Method::GET, None, &none)
        );
    }

    #[test]
    fn field_values_and_uris_cannot_be_spelled_two_ways() {
        let rules = KeyRules {
            vary_headers: vec![HeaderName::from_static("x-v")],
            ..KeyRules::default()
        };
        let with = |v: &[u8]| {
            let mut h = HeaderMap::new();
            h.insert("x-v", HeaderValue::from_bytes(v).unwrap());
            key(&rules, Method::GET, None, &h)
        };
        assert_ne!(with(b"\xff"), with(b"\xfe"));
        assert_ne!(with(b"\xff"), with(b"%FF"));
        // The URI is terminated: a prefix purge of one path spares a longer one.
        let none = HeaderMap::new();
        let plain = KeyRules::default();
        let k1 = key(&plain, Method::GET, Some("id=1"), &none);
        let k10 = key(&plain, Method::GET, Some("id=10"), &none);
        let uri = k1
            .split(SEP)
            .take(2)
            .collect::<Vec<_>>()
            .join(&SEP.to_string())
            + &SEP.to_string();
        assert!(k1.starts_with(&uri) && !k10.starts_with(&uri));
    }

    #[test]
    fn vary_headers_and_consumers_are_part_of_the_key() {
        let rules = KeyRules {
            vary_headers: vec![HeaderName::from_static("accept-language")],
            ..KeyRules::default()
        };
        let mut fr = HeaderMap::new();
        fr.insert("accept-language", HeaderValue::from_static("fr"));
        let mut de = HeaderMap::new();
        de.insert("accept-language", HeaderValue::from_static("de"));
        let none = HeaderMap::new();
        let keys = [
            key(&rules, Method::GET, None, &fr),
            key(&rules, Method::GET, None, &de),
            key(&rules, Method::GET, None, &none),
        ];
        assert_ne!(keys[0], keys[1]);
        assert_ne!(keys[0], keys[2]);
        assert_ne!(keys[1], keys[2]);
        // A path that looks like a header or a consumer cannot share a key with them.
        let req = |path: &'static str| Request {
            method: &Method::GET,
            scheme: "https",
            host: "shop.example",
            port: None,
            path,
            query: None,
            headers: &none,
        };
        let plain = KeyRules::default();
        assert_ne!(
            plain.key(&req("/items"), Some("alice")),
            plain.key(&req("/itemsconsumer=alice"), None)
        );
        assert_ne!(
            plain.key(&req("/items"), Some("alice")),
            plain.key(&req("/items"), Some("bob"))
        );
    }
}
