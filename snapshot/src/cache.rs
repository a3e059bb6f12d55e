//! A Policy's `cache`: which answers of the rules it applies to the proxies keep and serve
//! again (RFC 9111, with RFC 5861's stale extensions).
//!
//! The compiler fills in every default, so the proxy reads plain numbers; [`Cache::check`]
//! holds the bounds both sides enforce.

use serde::{Deserialize, Serialize};

/// How long an answer without explicit freshness is fresh, when a Policy sets no `ttl`.
pub const DEFAULT_CACHE_TTL_MS: u64 = 60_000;
/// No answer is fresh for longer than this, whatever it says, when a Policy sets no `maxTtl`.
pub const DEFAULT_CACHE_MAX_TTL_MS: u64 = 24 * 3_600_000;
/// The longest lifetime or stale window a snapshot may carry (a year).
pub const MAX_CACHE_DURATION_MS: u64 = 365 * 24 * 3_600_000;
/// The largest answer stored, when a Policy sets no `maxEntryBytes`.
pub const DEFAULT_CACHE_MAX_ENTRY_BYTES: u64 = 1024 * 1024;

/// What a rule's answers are kept for, and how they are found again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cache {
    /// Lifetime of an answer that says nothing of its freshness (heuristic freshness, RFC 9111
    /// §4.2.2); 0: such answers are not stored.
    pub ttl_ms: u64,
    /// No answer is fresh for longer, whatever its fields say.
    pub max_ttl_ms: u64,
    /// Methods answered from the cache: `GET`, and `HEAD` (from a stored `GET`).
    pub methods: Vec<String>,
    /// Request fields (lower-case) whose values are part of the key, whatever the answer's
    /// `Vary` says.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vary_headers: Vec<String>,
    /// Which query parameters are part of the key.
    #[serde(default)]
    pub query: CacheQuery,
    /// Answers are kept per authenticated consumer: `private` answers (and answers to
    /// requests with `Authorization`) are stored too, each for its consumer only.
    #[serde(default)]
    pub per_consumer: bool,
    /// Stale answers are served while one request refreshes them, for this long past their
    /// freshness, unless the answer says otherwise (`stale-while-revalidate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_while_revalidate_ms: Option<u64>,
    /// Stale answers are served when the backend fails or times out, for this long past
    /// their freshness, unless the answer says otherwise (`stale-if-error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_if_error_ms: Option<u64>,
    /// Answers larger than this (body and fields) go to the client uncached.
    pub max_entry_bytes: u64,
    /// Answers are kept in Redis too, shared by the gateway's proxies.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub global: bool,
}

/// Which query parameters are part of a cache key. Names match percent-decoded and in any
/// case.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum CacheQuery {
    /// All of them, as sent.
    #[default]
    All,
    /// All but these.
    Ignore(Vec<String>),
    /// Only these.
    Only(Vec<String>),
}

impl Cache {
    /// The bounds a cache section must keep; a failure names the field.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        for (field, ms) in [
            ("ttlMs", Some(self.ttl_ms)),
            ("maxTtlMs", Some(self.max_ttl_ms)),
            ("staleWhileRevalidateMs", self.stale_while_revalidate_ms),
            ("staleIfErrorMs", self.stale_if_error_ms),
        ] {
            if ms.is_some_and(|ms| ms > MAX_CACHE_DURATION_MS) {
                return Err((field, "must be at most a year".into()));
            }
        }
        if self.max_ttl_ms == 0 {
            return Err(("maxTtlMs", "must be greater than 0".into()));
        }
        if self.methods.is_empty() {
            return Err(("methods", "name GET, HEAD or both".into()));
        }
        if let Some(m) = self.methods.iter().find(|m| *m != "GET" && *m != "HEAD") {
            return Err((
                "methods",
                format!("{m:?}: only GET and HEAD answers are cached"),
            ));
        }
        for h in &self.vary_headers {
            crate::validate::check_header_name(h).map_err(|why| ("varyHeaders", why))?;
        }
        if self.max_entry_bytes == 0 {
            return Err(("maxEntryBytes", "must be greater than 0".into()));
        }
        Ok(())
    }
}
