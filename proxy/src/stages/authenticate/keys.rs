//! JSON Web Key Sets, parsed once into verification keys, and signature checks with ring.
//!
//! jsonwebtoken reads the JWK documents; the signatures are checked with ring (the crypto the
//! rest of the workspace uses through rustls): an RS256 check costs a few tens of microseconds
//! with ring against about 200 with the pure-Rust `rsa` crate, which matters for tokens the
//! verification cache has not seen (and for floods of forged ones). `make bench` prints both
//! figures (`jwt_verify`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, PublicKeyUse};
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};

/// Smallest RSA modulus accepted, in bytes (2048 bits), as ring requires.
pub const MIN_RSA_BYTES: usize = 256;

/// The public (or, for HMAC, shared) material of one key.
enum Material {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    P256(Vec<u8>),
    P384(Vec<u8>),
    Ed25519(Vec<u8>),
    Hmac(Vec<u8>),
}

/// One usable key: its id, the algorithm it is pinned to (if the JWK says), and the key.
pub struct Key {
    pub kid: Option<String>,
    pub alg: Option<Algorithm>,
    material: Material,
}

impl Key {
    /// Whether this key may check a signature made with `alg`: an RSA key only RS*/PS*, an EC
    /// key only the ES algorithm of its curve, an OKP key only EdDSA, a shared secret only HS*.
    pub fn fits(&self, alg: Algorithm) -> bool {
        use Algorithm::*;
        let family = match &self.material {
            Material::Rsa { .. } => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            Material::P256(_) => alg == ES256,
            Material::P384(_) => alg == ES384,
            Material::Ed25519(_) => alg == EdDSA,
            Material::Hmac(_) => matches!(alg, HS256 | HS384 | HS512),
        };
        family && self.alg.is_none_or(|a| a == alg)
    }

    /// Checks `signature` over `message` for `alg` (the caller checked [`Key::fits`]).
    pub fn verify(&self, alg: Algorithm, message: &[u8], sig: &[u8]) -> bool {
        use Algorithm::*;
        match &self.material {
            Material::Rsa { n, e } => {
                let params: &signature::RsaParameters = match alg {
                    RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    PS256 => &signature::RSA_PSS_2048_8192_SHA256,
                    PS384 => &signature::RSA_PSS_2048_8192_SHA384,
                    PS512 => &signature::RSA_PSS_2048_8192_SHA512,
                    _ => return false,
                };
                RsaPublicKeyComponents { n, e }
                    .verify(params, message, sig)
                    .is_ok()
            }
            Material::P256(point) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
            Material::P384(point) => {
                UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
            Material::Ed25519(x) => UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(message, sig)
                .is_ok(),
            Material::Hmac(k) => {
                let alg = match alg {
                    HS256 => ring::hmac::HMAC_SHA256,
                    HS384 => ring::hmac::HMAC_SHA384,
                    HS512 => ring::hmac::HMAC_SHA512,
                    _ => return false,
                };
                // Constant time.
                ring::hmac::verify(&ring::hmac::Key::new(alg, k), message, sig).is_ok()
            }
        }
    }
}

/// The keys of one JWKS document.
#[derive(Default)]
pub struct KeySet {
    keys: Vec<Key>,
}

impl KeySet {
    /// Parses a JWKS. Keys that cannot verify signatures (encryption keys, unknown types,
    /// RSA under 2048 bits, P-521) are skipped and named in the second value; a set with no
    /// usable key is an error.
    pub fn parse(text: &[u8]) -> Result<(KeySet, Vec<String>), String> {
        Self::parse_with(text, true)
    }

    /// A key set fetched from a URL: a shared secret (`kty: oct`) in a document anyone may
    /// read would let anyone sign tokens, so those keys are skipped.
    pub fn parse_remote(text: &[u8]) -> Result<(KeySet, Vec<String>), String> {
        Self::parse_with(text, false)
    }

    fn parse_with(text: &[u8], shared_secrets: bool) -> Result<(KeySet, Vec<String>), String> {
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
            match material(&jwk.algorithm) {
                Ok(Material::Hmac(_)) if !shared_secrets => {
                    skipped.push(format!(
                        "{name}: a shared secret (kty oct) in a fetched key set"
                    ));
                }
                Ok(material) => keys.push(Key { kid, alg, material }),
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
    /// when the token names none) and [`Key::fits`].
    pub fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'a Key> + 'a {
        self.keys
            .iter()
            .filter(move |k| (kid.is_none() || k.kid.as_deref() == kid) && k.fits(alg))
    }
}

fn b64(field: &str, v: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(v.trim_end_matches('='))
        .map_err(|_| format!("{field} is not base64url"))
}

fn material(p: &AlgorithmParameters) -> Result<Material, String> {
    match p {
        AlgorithmParameters::RSA(r) => {
            let mut n = b64("n", &r.n)?;
            while n.first() == Some(&0) {
                n.remove(0);
            }
            if n.len() < MIN_RSA_BYTES {
                return Err(format!(
                    "an RSA key of {} bits; at least 2048 are required",
                    n.len() * 8
                ));
            }
            Ok(Material::Rsa {
                n,
                e: b64("e", &r.e)?,
            })
        }
        AlgorithmParameters::EllipticCurve(ec) => {
            let (x, y) = (b64("x", &ec.x)?, b64("y", &ec.y)?);
            let point = |len: usize| {
                if x.len() != len || y.len() != len {
                    return Err("x and y do not fit the curve".to_string());
                }
                Ok([&[4u8][..], &x, &y].concat())
            };
            match ec.curve {
                EllipticCurve::P256 => Ok(Material::P256(point(32)?)),
                EllipticCurve::P384 => Ok(Material::P384(point(48)?)),
                _ => Err("curve not supported (P-256 and P-384 are)".into()),
            }
        }
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => Ok(Material::Ed25519(b64("x", &okp.x)?)),
            _ => Err("curve not supported (Ed25519 is)".into()),
        },
        AlgorithmParameters::OctetKey(k) => {
            let key = b64("k", &k.value)?;
            if key.is_empty() {
                return Err("an empty shared secret".into());
            }
            Ok(Material::Hmac(key))
        }
        _ => Err("unknown key type".into()),
    }
}
