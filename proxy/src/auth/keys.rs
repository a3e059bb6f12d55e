//! JSON Web Key Sets, parsed once into verification keys.

use jsonwebtoken::jwk::{JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

/// One usable key: its id, the algorithm it is pinned to (if the JWK says), and the key.
pub struct Key {
    pub kid: Option<String>,
    pub alg: Option<Algorithm>,
    pub key: DecodingKey,
}

/// The keys of one JWKS document.
#[derive(Default)]
pub struct KeySet {
    keys: Vec<Key>,
}

impl KeySet {
    /// Parses a JWKS. Keys that cannot verify signatures (encryption keys, unknown types) are
    /// skipped and named in the second value; a set with no usable key is an error.
    pub fn parse(text: &[u8]) -> Result<(KeySet, Vec<String>), String> {
        let set: JwkSet =
            serde_json::from_slice(text).map_err(|e| format!("not a JSON Web Key Set: {e}"))?;
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for (i, jwk) in set.keys.iter().enumerate() {
            let kid = jwk.common.key_id.clone();
            let name = kid.clone().unwrap_or_else(|| format!("#{i}"));
            if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
                skipped.push(format!("{name}: an encryption key"));
                continue;
            }
            let alg = match jwk
                .common
                .key_algorithm
                .map(|a| a.to_string().parse::<Algorithm>())
            {
                None => None,
                Some(Ok(a)) => Some(a),
                Some(Err(_)) => {
                    skipped.push(format!("{name}: not a signature algorithm"));
                    continue;
                }
            };
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => keys.push(Key { kid, alg, key }),
                Err(e) => skipped.push(format!("{name}: {e}")),
            }
        }
        if keys.is_empty() {
            return Err(format!(
                "the key set has no usable signature key ({})",
                if skipped.is_empty() {
                    "it is empty".to_string()
                } else {
                    skipped.join(", ")
                }
            ));
        }
        Ok((KeySet { keys }, skipped))
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// Keys that may verify a token signed with `alg` and naming `kid`: same id (or any key
    /// when the token names none), a key type of the algorithm's family (never an RSA or EC
    /// key for an HMAC algorithm, or the reverse), and the JWK's own `alg` when it has one.
    pub fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'a Key> + 'a {
        self.keys.iter().filter(move |k| {
            (kid.is_none() || k.kid.as_deref() == kid)
                && k.key.family() == alg.family()
                && k.alg.is_none_or(|a| a == alg)
        })
    }
}
