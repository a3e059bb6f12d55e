//! JWT verification cost, release build: a token seen before (the verification cache) and a
//! token never seen (signature check and claims), per algorithm. `make bench` runs it.
// Real processes and sockets, timed by the wall clock: the paused-time ban (clippy.toml)
// is for the proxy's own code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::time::Instant;

use frontdesk_proxy::stages::authenticate::AuthShared;
use frontdesk_proxy::stages::authenticate::jwt::JwtRuntime;
use frontdesk_snapshot as snap;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let shared = AuthShared::default();
        println!("JWT verification (ns per request, release build)");
        println!("{:<8} {:>10} {:>12}", "alg", "cached", "uncached");
        for (alg, pem) in [
            (Algorithm::RS256, &include_bytes!("../tests/keys/rsa1.pem")[..]),
            (Algorithm::ES256, &include_bytes!("../tests/keys/ec256.pem")[..]),
            (Algorithm::EdDSA, &include_bytes!("../tests/keys/ed25519.pem")[..]),
        ] {
            let key = match alg {
                Algorithm::ES256 => EncodingKey::from_ec_pem(pem).unwrap(),
                Algorithm::EdDSA => EncodingKey::from_ed_pem(pem).unwrap(),
                _ => EncodingKey::from_rsa_pem(pem).unwrap(),
            };
            let mut jwk = serde_json::to_value(Jwk::from_encoding_key(&key, alg).unwrap()).unwrap();
            jwk["kid"] = json!("k");
            let cfg = snap::Jwt {
                issuers: vec!["https://bench/".into()],
                audiences: vec!["bench".into()],
                algorithms: vec![format!("{alg:?}")],
                clock_skew_secs: 30,
                jwks: Some(snap::Secret::new(json!({"keys": [jwk]}).to_string())),
                remote_jwks: None,
                from: vec![],
                claims_to_headers: vec![],
            };
            let runtime = JwtRuntime::build(&cfg, &shared).unwrap();
            let exp = frontdesk_proxy::stages::authenticate::jwt::now() + 3600;
            let mut header = Header::new(alg);
            header.kid = Some("k".into());
            let n = 2_000;
            let tokens: Vec<String> = (0..n)
                .map(|i| {
                    let claims = json!({"iss": "https://bench/", "aud": "bench", "sub": "u", "exp": exp, "jti": i});
                    jsonwebtoken::encode(&header, &claims, &key).unwrap()
                })
                .collect();
            let started = Instant::now();
            for t in &tokens {
                runtime.verify(t).await.unwrap();
            }
            let uncached = started.elapsed().as_nanos() / n as u128;
            let started = Instant::now();
            for _ in 0..50 {
                for t in &tokens {
                    runtime.verify(t).await.unwrap();
                }
            }
            let cached = started.elapsed().as_nanos() / (50 * n) as u128;
            println!("{:<8} {cached:>10} {uncached:>12}", format!("{alg:?}"));
        }
    });
}
