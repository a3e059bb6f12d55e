//! JWT authentication: find the token, pick the key, verify the signature, check the claims.
//!
//! Successful verifications are cached per token until the token expires (bounded in size, and
//! dropped when a remote key set changes), so a client repeating the same token costs a map
//! lookup, not a signature check.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use frontdesk_snapshot as snap;
use jsonwebtoken::Algorithm;
use serde_json::Value;

use super::jwks::RemoteJwks;
use super::keys::KeySet;

pub use crate::identity::Claims;

/// Most verified tokens remembered per policy.
pub const CACHE_ENTRIES: usize = 10_000;
/// A token without `exp` is re-verified at least this often.
const NO_EXP_CACHE_SECS: u64 = 300;

/// Why a token was refused: said in the 401's `error_description`, never containing the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    /// The token is bad: 401.
    Invalid(String),
    /// No key set could be obtained to check it: 503.
    NoKeys(String),
}

pub struct JwtRuntime {
    issuers: Vec<String>,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    skew: u64,
    static_keys: Option<KeySet>,
    remote: Option<Arc<RemoteJwks>>,
    pub from: Vec<snap::CredentialSource>,
    pub claims_to_headers: Vec<(String, http::HeaderName)>,
    cache: Mutex<HashMap<Box<str>, Cached>>,
}

struct Cached {
    claims: Arc<Claims>,
    /// Unix seconds after which the entry must not be used.
    until: u64,
    nbf: Option<u64>,
    generation: u64,
}

impl JwtRuntime {
    pub fn build(cfg: &snap::Jwt, shared: &super::AuthShared) -> Result<Self, String> {
        let algorithms = cfg
            .algorithms
            .iter()
            .map(|a| Algorithm::from_str(a).map_err(|_| format!("unsupported algorithm {a:?}")))
            .collect::<Result<_, _>>()?;
        let static_keys = match &cfg.jwks {
            None => None,
            Some(text) => Some(KeySet::parse(text.expose().as_bytes())?.0),
        };
        Ok(JwtRuntime {
            issuers: cfg.issuers.clone(),
            audiences: cfg.audiences.clone(),
            algorithms,
            skew: cfg.clock_skew_secs,
            static_keys,
            remote: match &cfg.remote_jwks {
                None => None,
                Some(r) => {
                    let http = match &r.tls {
                        None => None,
                        Some(t) => Some(shared.client_for(Some(t))?),
                    };
                    Some(shared.jwks.get(r, http))
                }
            },
            from: cfg.from.clone(),
            claims_to_headers: cfg
                .claims_to_headers
                .iter()
                .map(|c| {
                    http::HeaderName::from_str(&c.header)
                        .map(|h| (c.claim.clone(), h))
                        .map_err(|e| e.to_string())
                })
                .collect::<Result<_, _>>()?,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Verifies `token` now.
    pub async fn verify(&self, token: &str) -> Result<Arc<Claims>, Rejected> {
        self.verify_at(token, now()).await
    }

    pub async fn verify_at(&self, token: &str, now: u64) -> Result<Arc<Claims>, Rejected> {
        let generation = self.remote.as_ref().map_or(0, |r| r.generation());
        if let Some(claims) = self.cached(token, now, generation) {
            return Ok(claims);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            Rejected::Invalid("the token is malformed or its algorithm is not supported".into())
        })?;
        if !self.algorithms.contains(&header.alg) {
            return Err(Rejected::Invalid(format!(
                "the token's algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let kid = header.kid.as_deref();
        let mut remote_keys = self.remote.as_ref().and_then(|r| r.current());
        let known = |keys: &Option<Arc<KeySet>>| {
            self.static_keys.as_ref().is_some_and(|s| has(s, kid))
                || keys.as_ref().is_some_and(|s| has(s, kid))
        };
        if !known(&remote_keys)
            && let Some(remote) = &self.remote
        {
            remote.refetch(generation).await;
            remote_keys = remote.current();
            if remote_keys.is_none() && self.static_keys.is_none() {
                return Err(Rejected::NoKeys(format!(
                    "the key set at {} could not be fetched",
                    remote.uri()
                )));
            }
        }
        if !known(&remote_keys) {
            return Err(Rejected::Invalid(match kid {
                Some(k) => format!("the token's key id {k:?} is unknown"),
                None => "no key can verify this token".into(),
            }));
        }
        let malformed = || Rejected::Invalid("the token is malformed".into());
        let (message, signature) = token.rsplit_once('.').ok_or_else(malformed)?;
        let payload = message.split_once('.').ok_or_else(malformed)?.1;
        let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| malformed())?;
        let mut signature_checked = false;
        let mut verified = false;
        for key in self
            .static_keys
            .iter()
            .chain(remote_keys.as_deref())
            .flat_map(|s| s.candidates(kid, header.alg))
        {
            signature_checked = true;
            if key.verify(header.alg, message.as_bytes(), &signature) {
                verified = true;
                break;
            }
        }
        if !verified {
            return Err(Rejected::Invalid(if signature_checked {
                "the token's signature does not verify".into()
            } else {
                format!("no key for algorithm {:?}", header.alg)
            }));
        }
        let claims: Claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or_else(|| Rejected::Invalid("the token's claims are not a JSON object".into()))?;
        let times = check_claims(&claims, &self.issuers, &self.audiences, self.skew, now)
            .map_err(Rejected::Invalid)?;
        let claims = Arc::new(claims);
        self.remember(token, &claims, times, now, generation);
        Ok(claims)
    }

    fn cached(&self, token: &str, now: u64, generation: u64) -> Option<Arc<Claims>> {
        let cache = self.cache.lock();
        let c = cache.get(token)?;
        let fresh = c.generation == generation
            && now <= c.until
            && c.nbf.is_none_or(|nbf| nbf <= now + self.skew);
        fresh.then(|| c.claims.clone())
    }

    fn remember(&self, token: &str, claims: &Arc<Claims>, t: Times, now: u64, generation: u64) {
        let mut cache = self.cache.lock();
        if cache.len() >= CACHE_ENTRIES {
            cache.retain(|_, c| c.until >= now);
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
        }
        let until = match t.exp {
            Some(exp) => exp.saturating_add(self.skew),
            None => now + NO_EXP_CACHE_SECS,
        };
        cache.insert(
            token.into(),
            Cached {
                claims: claims.clone(),
                until,
                nbf: t.nbf,
                generation,
            },
        );
    }

    /// How many tokens are remembered (for tests).
    pub fn cached_tokens(&self) -> usize {
        self.cache.lock().len()
    }
}

fn has(set: &KeySet, kid: Option<&str>) -> bool {
    match kid {
        Some(k) => set.has_kid(k),
        None => !set.is_empty(),
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Times {
    pub exp: Option<u64>,
    pub nbf: Option<u64>,
}

/// The registered claims: `exp` and `nbf` with `skew` seconds of tolerance, `iss` among
/// `issuers`, and one of `audiences` in `aud` (a string or an array). Empty lists accept any.
pub fn check_claims(
    claims: &Claims,
    issuers: &[String],
    audiences: &[String],
    skew: u64,
    now: u64,
) -> Result<Times, String> {
    let time = |name: &str| -> Result<Option<u64>, String> {
        match claims.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|f| *f >= 0.0)
                .map(|f| Some(f as u64))
                .ok_or_else(|| format!("the {name} claim is not a number")),
        }
    };
    let exp = time("exp")?;
    let nbf = time("nbf")?;
    if let Some(exp) = exp
        && now > exp.saturating_add(skew)
    {
        return Err("the token has expired".into());
    }
    if let Some(nbf) = nbf
        && nbf > now.saturating_add(skew)
    {
        return Err("the token is not valid yet".into());
    }
    if !issuers.is_empty() {
        let iss = claims.get("iss").and_then(Value::as_str);
        if !iss.is_some_and(|i| issuers.iter().any(|x| x == i)) {
            return Err("the token's issuer is not accepted".into());
        }
    }
    if !audiences.is_empty() {
        let ok = match claims.get("aud") {
            Some(Value::String(a)) => audiences.contains(a),
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .any(|a| audiences.iter().any(|x| x == a)),
            _ => false,
        };
        if !ok {
            return Err("the token's audience is not accepted".into());
        }
    }
    Ok(Times { exp, nbf })
}

/// A claim as a header value: strings as they are, anything else as JSON.
pub fn claim_header_value(v: &Value) -> Option<http::HeaderValue> {
    match v {
        Value::String(s) => http::HeaderValue::from_str(s).ok(),
        Value::Null => None,
        other => http::HeaderValue::from_str(&other.to_string()).ok(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claims(v: Value) -> Claims {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn registered_claims() {
        let iss = vec!["https://auth/".to_string()];
        let aud = vec!["orders".to_string()];
        let ok = claims(
            json!({"iss": "https://auth/", "aud": ["x", "orders"], "exp": 1000, "nbf": 900}),
        );
        assert!(check_claims(&ok, &iss, &aud, 30, 950).is_ok());
        // Clock skew on both ends.
        assert!(check_claims(&ok, &iss, &aud, 30, 1030).is_ok());
        assert_eq!(
            check_claims(&ok, &iss, &aud, 30, 1031).unwrap_err(),
            "the token has expired"
        );
        assert!(check_claims(&ok, &iss, &aud, 30, 870).is_ok());
        assert_eq!(
            check_claims(&ok, &iss, &aud, 30, 869).unwrap_err(),
            "the token is not valid yet"
        );
        let wrong_iss = claims(json!({"iss": "https://evil/", "aud": "orders"}));
        assert!(
            check_claims(&wrong_iss, &iss, &aud, 0, 0)
                .unwrap_err()
                .contains("issuer")
        );
        let wrong_aud = claims(json!({"iss": "https://auth/", "aud": "billing"}));
        assert!(
            check_claims(&wrong_aud, &iss, &aud, 0, 0)
                .unwrap_err()
                .contains("audience")
        );
        let no_aud = claims(json!({"iss": "https://auth/"}));
        assert!(check_claims(&no_aud, &iss, &aud, 0, 0).is_err());
        assert!(check_claims(&no_aud, &[], &[], 0, 0).is_ok());
        let bad_exp = claims(json!({"exp": "soon"}));
        assert!(check_claims(&bad_exp, &[], &[], 0, 0).is_err());
    }

    #[tokio::test]
    async fn verified_tokens_are_cached_until_they_expire() {
        use jsonwebtoken::jwk::Jwk;
        let pem = include_bytes!("../../../tests/keys/ec256.pem");
        let key = jsonwebtoken::EncodingKey::from_ec_pem(pem).unwrap();
        let mut jwk =
            serde_json::to_value(Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap()).unwrap();
        jwk["kid"] = json!("k");
        let cfg = snap::Jwt {
            issuers: vec![],
            audiences: vec![],
            algorithms: vec!["ES256".into()],
            clock_skew_secs: 10,
            jwks: Some(snap::Secret::new(json!({"keys": [jwk]}).to_string())),
            remote_jwks: None,
            from: vec![],
            claims_to_headers: vec![],
        };
        let shared = crate::stages::authenticate::AuthShared::default();
        let rt = JwtRuntime::build(&cfg, &shared).unwrap();
        let mut header = jsonwebtoken::Header::new(Algorithm::ES256);
        header.kid = Some("k".into());
        let token =
            jsonwebtoken::encode(&header, &json!({"sub": "u", "exp": 1_000}), &key).unwrap();
        assert_eq!(rt.verify_at(&token, 900).await.unwrap()["sub"], "u");
        assert_eq!(rt.cached_tokens(), 1);
        // The cache is read: its entry, filed under a string that is no JWT at all, answers.
        {
            let mut cache = rt.cache.lock();
            let c = &cache[token.as_str()];
            let copy = Cached {
                claims: c.claims.clone(),
                until: c.until,
                nbf: c.nbf,
                generation: c.generation,
            };
            cache.insert("not-a-jwt".into(), copy);
        }
        assert_eq!(rt.verify_at("not-a-jwt", 900).await.unwrap()["sub"], "u");
        rt.cache.lock().remove("not-a-jwt");
        // A hit is checked against the clock again: within the skew, then expired.
        assert!(rt.verify_at(&token, 1_010).await.is_ok());
        assert_eq!(
            rt.verify_at(&token, 1_011).await.unwrap_err(),
            Rejected::Invalid("the token has expired".into())
        );
        // A tampered copy (another subject, the same signature: well-formed base64 all the
        // way) is a different token: verified, and refused by the signature check.
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(json!({"sub": "admin", "exp": 1_000}).to_string());
        parts[1] = &forged;
        let tampered = parts.join(".");
        assert_eq!(
            rt.verify_at(&tampered, 900).await.unwrap_err(),
            Rejected::Invalid("the token's signature does not verify".into())
        );
        assert_eq!(rt.cached_tokens(), 1);
    }
}
