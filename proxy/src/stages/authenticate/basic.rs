//! HTTP Basic authentication against htpasswd entries: bcrypt, SHA-256/512-crypt and {SHA}.
//!
//! bcrypt and SHA-crypt are slow on purpose (milliseconds), so they run on the blocking pool,
//! and a successful check is remembered for a while under a digest of the credentials, so a
//! client sending the same header does not pay for it on every request.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use base64::Engine;
use frontdesk_snapshot as snap;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Slow hash checks (bcrypt, SHA-crypt) running at once in the whole proxy; more wait up to
/// [`BUSY_WAIT`], then the request gets 503: a flood of wrong passwords cannot take every CPU
/// or the blocking pool.
fn slow_checks() -> &'static tokio::sync::Semaphore {
    static SLOW: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOW.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        tokio::sync::Semaphore::new(cpus * 2)
    })
}
const BUSY_WAIT: Duration = Duration::from_secs(1);

/// Why a Basic credential was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Bad credential: 401, with the reason.
    Invalid(&'static str),
    /// Too many password checks in progress: 503.
    Busy,
}

/// How long a verified user:password pair is remembered.
pub const REMEMBER: Duration = Duration::from_secs(300);
const REMEMBERED: usize = 10_000;

pub struct BasicRuntime {
    /// Where the credential is: `Authorization: Basic ...`.
    pub from: Vec<snap::CredentialSource>,
    pub realm: String,
    users: HashMap<String, Arc<str>>,
    /// The hash an unknown user is checked against, so user names cannot be told apart by
    /// timing: a slow one when there is any, chosen once here, not per request.
    decoy: Option<Arc<str>>,
    verified: Mutex<HashMap<[u8; 32], Instant>>,
}

impl BasicRuntime {
    pub fn build(cfg: &snap::Basic) -> Self {
        let users: HashMap<String, Arc<str>> = cfg
            .users
            .iter()
            .map(|u| (u.user.clone(), Arc::from(u.hash.expose())))
            .collect();
        let mut hashes: Vec<&Arc<str>> = users.values().collect();
        hashes.sort_by_key(|h| (h.starts_with("{SHA}"), h.to_string()));
        BasicRuntime {
            from: vec![snap::CredentialSource::Header {
                name: "authorization".into(),
                prefix: "Basic ".into(),
            }],
            realm: cfg.realm.clone(),
            decoy: hashes.first().map(|h| Arc::clone(h)),
            users,
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// Checks an `Authorization: Basic ...` credential (after the scheme). `Ok(user)` when it
    /// matches an entry.
    pub async fn check(&self, credential: &str) -> Result<String, Refusal> {
        use Refusal::Invalid;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credential.trim())
            .map_err(|_| Invalid("the Basic credential is not base64"))?;
        let text =
            String::from_utf8(decoded).map_err(|_| Invalid("the Basic credential is not UTF-8"))?;
        let (user, password) = text
            .split_once(':')
            .ok_or(Invalid("the Basic credential is not user:password"))?;
        // An unknown user costs the same hash check as a known one (against the decoy).
        let (known, hash) = match (self.users.get(user), &self.decoy) {
            (Some(h), _) => (true, h.clone()),
            (None, Some(decoy)) => (false, decoy.clone()),
            (None, None) => return Err(Invalid("unknown user or wrong password")),
        };
        let hash = &hash;
        // Only a known user's check is remembered, so only it needs the key.
        let key = known.then(|| remembered_key(user, password, hash));
        if key.is_some_and(|k| self.remembered(&k)) {
            return Ok(user.to_string());
        }
        let ok = if hash.starts_with("{SHA}") {
            verify(password, hash)
        } else {
            let _permit = tokio::time::timeout(BUSY_WAIT, slow_checks().acquire())
                .await
                .map_err(|_| Refusal::Busy)?
                .map_err(|_| Refusal::Busy)?;
            let (password, hash) = (password.to_string(), hash.clone());
            tokio::task::spawn_blocking(move || verify(&password, &hash))
                .await
                .unwrap_or(false)
        };
        let (true, Some(key)) = (ok, key) else {
            return Err(Invalid("unknown user or wrong password"));
        };
        let mut v = self.verified.lock();
        if v.len() >= REMEMBERED {
            v.retain(|_, at| at.elapsed() < REMEMBER);
            if v.len() >= REMEMBERED {
                v.clear();
            }
        }
        v.insert(key, Instant::now());
        Ok(user.to_string())
    }

    fn remembered(&self, key: &[u8; 32]) -> bool {
        let v = self.verified.lock();
        v.get(key).is_some_and(|at| at.elapsed() < REMEMBER)
    }
}

/// What a successful check is remembered by: user, password and the hash they matched.
fn remembered_key(user: &str, password: &str, hash: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(user.as_bytes());
    h.update([0]);
    h.update(password.as_bytes());
    h.update([0]);
    h.update(hash.as_bytes());
    h.finalize().into()
}

/// One password against one htpasswd hash.
pub fn verify(password: &str, hash: &str) -> bool {
    if let Some(b64) = hash.strip_prefix("{SHA}") {
        let ours =
            base64::engine::general_purpose::STANDARD.encode(Sha1::digest(password.as_bytes()));
        return bool::from(ours.as_bytes().ct_eq(b64.as_bytes()));
    }
    if hash.starts_with("$2") {
        return bcrypt::verify(password, hash).unwrap_or(false);
    }
    if hash.starts_with("$5$") {
        return sha_crypt::sha256_check(password, hash).is_ok();
    }
    if hash.starts_with("$6$") {
        return sha_crypt::sha512_check(password, hash).is_ok();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htpasswd_hash_formats() {
        // `openssl passwd -6 -salt saltsalt s3cret` and `-5`.
        let sha512 = "$6$saltsalt$As4wrv0kZlfch1du9WeH7qhskyLriQWySXrZzynnvi46nFnNxjdpl6ksRegrrKexvhIa/Iny8S8uF3fVWTMuC1";
        assert!(verify("s3cret", sha512));
        assert!(!verify("s3cret!", sha512));
        let sha256 = "$5$saltsalt$i1q2ZQzc.tl/BQ6CHiENAcVDvEY6nJ1OWlWXKh94b1.";
        assert!(verify("s3cret", sha256));
        assert!(!verify("nope", sha256));
        // `htpasswd -s`: base64(sha1("s3cret")).
        let sha1 = format!(
            "{{SHA}}{}",
            base64::engine::general_purpose::STANDARD.encode(Sha1::digest(b"s3cret"))
        );
        assert!(verify("s3cret", &sha1));
        assert!(!verify("s3cre", &sha1));
        let bcrypt = bcrypt::hash("s3cret", 4).unwrap();
        assert!(verify("s3cret", &bcrypt));
        assert!(!verify("wrong", &bcrypt));
        assert!(!verify("s3cret", "$apr1$abc$xyz"));
        assert!(!verify("s3cret", "s3cret"));
    }

    #[tokio::test]
    async fn unknown_users_and_wrong_passwords_are_refused_alike() {
        let hash = bcrypt::hash("right", 4).unwrap();
        let rt = BasicRuntime::build(&snap::Basic {
            realm: "r".into(),
            users: vec![snap::BasicUser {
                user: "ann".into(),
                hash: snap::Secret::new(hash),
            }],
        });
        let cred =
            |u: &str, p: &str| base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        assert_eq!(rt.check(&cred("ann", "right")).await, Ok("ann".into()));
        let wrong = rt.check(&cred("ann", "wrong")).await;
        // Another user's password never works for a name that does not exist.
        let unknown = rt.check(&cred("bob", "right")).await;
        assert_eq!(wrong, unknown);
        assert_eq!(
            wrong,
            Err(Refusal::Invalid("unknown user or wrong password"))
        );
        // The unknown user really waits for a slow hash check: with every slot taken, it is
        // refused as busy, as a known one would be, instead of at once.
        let all = slow_checks().available_permits() as u32;
        let _taken = slow_checks().acquire_many(all).await.unwrap();
        assert_eq!(rt.check(&cred("bob", "right")).await, Err(Refusal::Busy));
        // With fast and slow hashes side by side, the decoy is a slow one.
        let mixed = BasicRuntime::build(&snap::Basic {
            realm: "r".into(),
            users: ["a", "b", "c"]
                .into_iter()
                .map(|user| snap::BasicUser {
                    user: user.into(),
                    hash: snap::Secret::new(String::from("{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=")),
                })
                .chain([snap::BasicUser {
                    user: "ann".into(),
                    hash: snap::Secret::new(bcrypt::hash("right", 4).unwrap()),
                }])
                .collect(),
        });
        assert_eq!(mixed.check(&cred("bob", "x")).await, Err(Refusal::Busy));
    }
}
