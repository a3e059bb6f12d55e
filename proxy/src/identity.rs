//! Who made a request, once a policy authenticated it: what the authenticate stage hands to
//! the stages after it (authorize, rate limit, and the access log).

use std::sync::Arc;

use serde_json::{Map, Value};

/// A verified token's claims.
pub type Claims = Map<String, Value>;

/// The authenticated client.
#[derive(Clone, Debug)]
pub struct Identity {
    /// `jwt`, `apiKey`, `basic`, `external` (or `anonymous` for authorization alone).
    pub method: &'static str,
    /// The API key's consumer, the basic-auth user, or the JWT's `sub`.
    pub consumer: Option<Arc<str>>,
    pub claims: Option<Arc<Claims>>,
}

impl Identity {
    /// Nobody in particular: what authorization rules see without authentication.
    pub const ANONYMOUS: Identity = Identity {
        method: "anonymous",
        consumer: None,
        claims: None,
    };

    /// A claim by dot path, when the identity has claims.
    pub fn claim(&self, path: &str) -> Option<&Value> {
        lookup(self.claims.as_deref()?, path)
    }
}

/// A claim by dot path (`realm_access.roles`); a claim whose name contains dots is found too.
pub fn lookup<'a>(claims: &'a Claims, path: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    let mut parts = path.split('.');
    let mut v = claims.get(parts.next()?)?;
    for p in parts {
        v = v.as_object()?.get(p)?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn claims_are_found_by_dot_path_or_dotted_name() {
        let claims = json!({"realm_access": {"roles": ["a"]}, "x.y": 1});
        let claims = claims.as_object().unwrap();
        assert_eq!(lookup(claims, "realm_access.roles"), Some(&json!(["a"])));
        assert_eq!(lookup(claims, "x.y"), Some(&json!(1)));
        assert_eq!(lookup(claims, "realm_access.missing"), None);
        assert_eq!(Identity::ANONYMOUS.claim("sub"), None);
    }
}
