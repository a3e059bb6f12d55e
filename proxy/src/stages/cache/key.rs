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
const SEP: char = '\u{1}';

impl KeyRules {
    /// The key of `req`; `consumer` when the answer is cached per consumer.
    pub fn key(&self, req: &Request<'_>, consumer: Option<&str>) -> String {
        let method = if *req.method == Method::HEAD {
            Method::GET.as_str()
        } else {
            req.method.as_str()
        };
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
        for name in &self.vary_headers {
            key.push(SEP);
            key.push_str(name.as_str());
            for (i, v) in req.headers.get_all(name).iter().enumerate() {
                key.push(if i == 0 { '=' } else { ',' });
                key.push_str(&String::from_utf8_lossy(v.as_bytes()));
            }
        }
        if let Some(consumer) = consumer {
            key.push(SEP);
            key.push_str("consumer=");
            key.push_str(consumer);
        }
        key
    }

    /// The query's parameters that are part of the key, in the order sent.
    fn push_query(&self, key: &mut String, query: &str) {
        let kept = |param: &&str| {
            let name = param.split_once('=').map_or(*param, |(n, _)| n);
            match &self.query {
                QueryKey::All => true,
                QueryKey::Ignore(names) => !names.iter().any(|n| n == name),
                QueryKey::Only(names) => names.iter().any(|n| n == name),
            }
        };
        let mut first = true;
        for param in query.split('&').filter(|p| !p.is_empty()).filter(kept) {
            key.push(if first { '?' } else { '&' });
            key.push_str(param);
            first = false;
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
