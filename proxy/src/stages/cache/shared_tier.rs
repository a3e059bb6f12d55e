//! The cache's shared tier: answers of `Global` cache sections kept in Redis too, so the
//! gateway's proxies share them. Each proxy's memory stays the first tier: Redis is asked only
//! when the memory misses (once per key at a time, by the request that leads it), and what it
//! holds goes to memory. Every call has the Redis deadline; a failure is a miss, never an
//! error for the client.
//!
//! Layout, under `frontdesk:cache:<gateway>:`: each key's latest answer (`e:` + the key),
//! expiring when it is no longer of use (fresh, then the stale windows, plus a minute to
//! revalidate); a set per URI (`u:` + the URI part of the key) and per tag (`t:` + tag) naming
//! the entries, for invalidations and purges.
//!
//! An entry is a small binary record ([`encode`], [`decode`]): a value that does not read is a
//! miss.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::rfc9111::{CacheControl, Freshness};
use super::stored::Stored;
use crate::redis_client::Redis;

/// Stores an entry and names it in its URI's and tags' sets, which live as long as their
/// longest entry.
const STORE: &str = r#"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local ttl = tonumber(ARGV[2])
for i = 2, #KEYS do
  redis.call('SADD', KEYS[i], KEYS[1])
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return 1
"#;

/// Removes the entries a set names, and the set.
const REMOVE_SET: &str = r#"
local entries = redis.call('SMEMBERS', KEYS[1])
for _, k in ipairs(entries) do redis.call('DEL', k) end
redis.call('DEL', KEYS[1])
return #entries
"#;

/// Starts every record: the format's name and version.
const MAGIC: &[u8; 4] = b"FDC1";

/// How long an entry stays after it can no longer be served without revalidation: time for a
/// revalidation to find it.
const KEEP_FOR_REVALIDATION: Duration = Duration::from_secs(60);

pub struct SharedTier {
    redis: Arc<Redis>,
    prefix: String,
    store: redis::Script,
    remove_set: redis::Script,
}

/// An entry as Redis holds it.
pub struct Entry {
    pub stored: Stored,
    pub vary: Vec<HeaderName>,
    pub values: Vec<Option<Vec<u8>>>,
}

impl SharedTier {
    pub fn new(redis: Arc<Redis>, gateway: &str) -> Self {
        SharedTier {
            redis,
            prefix: format!("frontdesk:cache:{gateway}:"),
            store: redis::Script::new(STORE),
            remove_set: redis::Script::new(REMOVE_SET),
        }
    }

    fn entry_key(&self, key: &str) -> String {
        format!("{}e:{key}", self.prefix)
    }

    fn uri_key(&self, uri: &str) -> String {
        format!("{}u:{uri}", self.prefix)
    }

    fn tag_key(&self, tag: &str) -> String {
        format!("{}t:{tag}", self.prefix)
    }

    /// The entry under `key`; `Err` when Redis could not say.
    pub async fn get(&self, key: &str) -> Result<Option<Entry>, String> {
        let mut conn = self.redis.connection();
        let cmd = redis::cmd("GET").arg(self.entry_key(key)).clone();
        let value: Option<Vec<u8>> = self.redis.within(cmd.query_async(&mut conn)).await?;
        Ok(value.and_then(|v| decode(&v)))
    }

    /// Keeps `entry` under `key` (whose URI part is `uri`), in the background.
    pub fn put(self: &Arc<Self>, key: &str, uri: &str, entry: Parts<'_>, now: SystemTime) {
        let f = &entry.stored.freshness;
        let windows = f
            .directives
            .stale_while_revalidate
            .max(f.directives.stale_if_error)
            .map_or(Duration::ZERO, Duration::from_secs);
        let ttl = f.lifetime.saturating_sub(f.age(now)) + windows + KEEP_FOR_REVALIDATION;
        let value = encode(&entry);
        let mut keys = vec![self.entry_key(key), self.uri_key(uri)];
        keys.extend(entry.stored.tags.iter().map(|t| self.tag_key(t)));
        let ttl_ms = ttl.as_millis() as u64;
        let tier = self.clone();
        tokio::spawn(async move {
            let mut call = tier.store.prepare_invoke();
            for k in &keys {
                call.key(k);
            }
            call.arg(value.as_ref()).arg(ttl_ms);
            let mut conn = tier.redis.connection();
            if let Err(e) = tier.redis.within(call.invoke_async::<i64>(&mut conn)).await {
                tracing::debug!(error = %e, "the cache's shared tier did not keep an answer");
            }
        });
    }

    /// Removes the entry of `key`, in the background.
    pub fn remove_key(self: &Arc<Self>, key: &str) {
        let entry = self.entry_key(key);
        let tier = self.clone();
        tokio::spawn(async move {
            let mut conn = tier.redis.connection();
            let del = redis::cmd("DEL").arg(entry).clone();
            if let Err(e) = tier.redis.within(del.query_async::<i64>(&mut conn)).await {
                tracing::warn!(error = %e, "the cache's shared tier did not remove an answer");
            }
        });
    }

    /// Removes the entries of a URI (an unsafe method's invalidation), in the background.
    pub fn remove_uri(self: &Arc<Self>, uri: &str) {
        self.remove_set(self.uri_key(uri));
    }

    /// Removes the entries tagged `tag`, in the background.
    pub fn remove_tag(self: &Arc<Self>, tag: &str) {
        self.remove_set(self.tag_key(tag));
    }

    fn remove_set(self: &Arc<Self>, set: String) {
        let tier = self.clone();
        tokio::spawn(async move {
            let mut conn = tier.redis.connection();
            let mut call = tier.remove_set.prepare_invoke();
            call.key(set);
            if let Err(e) = tier.redis.within(call.invoke_async::<i64>(&mut conn)).await {
                tracing::warn!(error = %e, "the cache's shared tier did not remove answers");
            }
        });
    }

    /// Removes the entries whose key starts with `prefix`, in the background (a scan of the
    /// gateway's entries: an operator's purge, not a request's).
    pub fn remove_prefix(self: &Arc<Self>, prefix: &str) {
        let pattern = format!("{}*", glob_escaped(&self.entry_key(prefix)));
        let tier = self.clone();
        tokio::spawn(async move {
            let mut conn = tier.redis.connection();
            let mut cursor = 0u64;
            loop {
                let scan = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .clone();
                let (next, keys): (u64, Vec<Vec<u8>>) =
                    match tier.redis.within(scan.query_async(&mut conn)).await {
                        Ok(page) => page,
                        Err(e) => {
                            tracing::warn!(error = %e, "the cache's shared tier was not purged");
                            return;
                        }
                    };
                if !keys.is_empty() {
                    let del = redis::cmd("DEL").arg(keys).clone();
                    let _: Result<i64, _> = tier.redis.within(del.query_async(&mut conn)).await;
                }
                if next == 0 {
                    return;
                }
                cursor = next;
            }
        });
    }
}

/// `s` with Redis's glob characters escaped.
fn glob_escaped(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn put_bytes(out: &mut BytesMut, b: &[u8]) {
    out.put_u32(b.len() as u32);
    out.put_slice(b);
}

fn since_epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// An entry's parts, borrowed.
pub struct Parts<'a> {
    pub stored: &'a Stored,
    pub vary: &'a [HeaderName],
    pub values: &'a [Option<Vec<u8>>],
}

/// An entry as a record.
pub fn encode(e: &Parts<'_>) -> Bytes {
    let s = &e.stored;
    let mut out = BytesMut::with_capacity(64 + s.body.len());
    out.put_slice(MAGIC);
    out.put_u16(s.status.as_u16());
    out.put_u64(since_epoch_ms(s.freshness.received));
    out.put_u64(s.freshness.lifetime.as_millis() as u64);
    out.put_u64(s.freshness.initial_age.as_millis() as u64);
    out.put_u32(s.headers.len() as u32);
    for (name, value) in &s.headers {
        put_bytes(&mut out, name.as_str().as_bytes());
        put_bytes(&mut out, value.as_bytes());
    }
    out.put_u32(e.vary.len() as u32);
    for (name, value) in e.vary.iter().zip(e.values) {
        put_bytes(&mut out, name.as_str().as_bytes());
        match value {
            Some(v) => {
                out.put_u8(1);
                put_bytes(&mut out, v);
            }
            None => out.put_u8(0),
        }
    }
    out.put_u32(s.tags.len() as u32);
    for t in &s.tags {
        put_bytes(&mut out, t.as_bytes());
    }
    put_bytes(&mut out, &s.body);
    out.freeze()
}

/// A record as an entry; `None` for anything that does not read whole.
pub fn decode(mut b: &[u8]) -> Option<Entry> {
    fn bytes<'a>(b: &mut &'a [u8]) -> Option<&'a [u8]> {
        if b.remaining() < 4 {
            return None;
        }
        let n = b.get_u32() as usize;
        if b.remaining() < n {
            return None;
        }
        let (v, rest) = b.split_at(n);
        *b = rest;
        Some(v)
    }
    fn count(b: &mut &[u8]) -> Option<usize> {
        (b.remaining() >= 4).then(|| b.get_u32() as usize)
    }
    if b.remaining() < MAGIC.len() + 2 + 24 || &b[..4] != MAGIC {
        return None;
    }
    b.advance(4);
    let status = StatusCode::from_u16(b.get_u16()).ok()?;
    let received = SystemTime::UNIX_EPOCH + Duration::from_millis(b.get_u64());
    let lifetime = Duration::from_millis(b.get_u64());
    let initial_age = Duration::from_millis(b.get_u64());
    let mut headers = HeaderMap::new();
    for _ in 0..count(&mut b)? {
        let name = HeaderName::from_bytes(bytes(&mut b)?).ok()?;
        let value = HeaderValue::from_bytes(bytes(&mut b)?).ok()?;
        headers.append(name, value);
    }
    let mut vary = Vec::new();
    let mut values = Vec::new();
    for _ in 0..count(&mut b)? {
        vary.push(HeaderName::from_bytes(bytes(&mut b)?).ok()?);
        if !b.has_remaining() {
            return None;
        }
        values.push(match b.get_u8() {
            0 => None,
            1 => Some(bytes(&mut b)?.to_vec()),
            _ => return None,
        });
    }
    let mut tags = Vec::new();
    for _ in 0..count(&mut b)? {
        tags.push(Box::from(std::str::from_utf8(bytes(&mut b)?).ok()?));
    }
    let body = Bytes::copy_from_slice(bytes(&mut b)?);
    if b.has_remaining() {
        return None;
    }
    let directives = CacheControl::parse(&headers);
    Some(Entry {
        stored: Stored {
            status,
            headers,
            body,
            freshness: Freshness {
                lifetime,
                initial_age,
                received,
                directives,
            },
            tags,
        },
        vary,
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        let mut headers = HeaderMap::new();
        headers.insert(
            "cache-control",
            HeaderValue::from_static("max-age=60, stale-if-error=5"),
        );
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        Entry {
            stored: Stored {
                status: StatusCode::NOT_FOUND,
                freshness: Freshness {
                    lifetime: Duration::from_secs(60),
                    initial_age: Duration::from_millis(1500),
                    received: SystemTime::UNIX_EPOCH + Duration::from_millis(1_800_000_000_123),
                    directives: CacheControl::parse(&headers),
                },
                headers,
                body: Bytes::from_static(b"not here"),
                tags: vec!["a".into(), "b c".into()],
            },
            vary: vec![
                HeaderName::from_static("accept-language"),
                HeaderName::from_static("x-b"),
            ],
            values: vec![Some(b"fr".to_vec()), None],
        }
    }

    fn parts(e: &Entry) -> Parts<'_> {
        Parts {
            stored: &e.stored,
            vary: &e.vary,
            values: &e.values,
        }
    }

    #[test]
    fn a_record_reads_back_as_the_entry_it_was() {
        let e = entry();
        let d = decode(&encode(&parts(&e))).unwrap();
        assert_eq!(d.stored.status, e.stored.status);
        assert_eq!(d.stored.headers, e.stored.headers);
        assert_eq!(d.stored.body, e.stored.body);
        assert_eq!(d.stored.freshness, e.stored.freshness);
        assert_eq!(d.vary, e.vary);
        assert_eq!(d.values, e.values);
        assert_eq!(d.stored.tags, e.stored.tags);
    }

    #[test]
    fn a_record_that_does_not_read_whole_is_a_miss() {
        let good = encode(&parts(&entry()));
        for cut in [0, 3, 4, 10, 40, good.len() - 1] {
            assert!(decode(&good[..cut]).is_none(), "cut at {cut}");
        }
        let mut longer = good.to_vec();
        longer.push(0);
        assert!(decode(&longer).is_none());
        let mut other = good.to_vec();
        other[3] = b'9';
        assert!(decode(&other).is_none(), "another format");
        // A huge count with nothing behind it.
        let mut huge = good[..30].to_vec();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode(&huge).is_none());
    }

    #[test]
    fn purge_patterns_match_only_their_prefix() {
        assert_eq!(glob_escaped("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
