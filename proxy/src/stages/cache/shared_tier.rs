//! The cache's shared tier: answers of `Global` cache sections kept in Redis too, so the
//! gateway's proxies share them. Each proxy's memory stays the first tier: Redis is asked only
//! when the memory has nothing for a request (once per key at a time, by the request that
//! leads it), and what it holds goes to memory. Every call has the Redis deadline; a failure
//! is a miss, never an error for the client. The tier has Redis connections of its own, so
//! answers' bodies never queue ahead of rate limit decisions.
//!
//! Layout, under `frontdesk:cache:<gateway>:`: each key's latest answer (`e:` + the key),
//! expiring when it is no longer of use (fresh, then the stale windows, plus a minute to
//! revalidate); a sorted set per URI (`u:` + the URI part of the key) and per tag (`t:` +
//! tag) naming the entries by when they expire (expired names are trimmed as others are
//! added), for invalidations and purges, which remove them in batches; and after an unsafe
//! method, a marker per URI (`x:`) saying when, so that an answer asked for before it and
//! written after it (writes are in the background) is refused.
//!
//! An entry is a small binary record ([`encode`], [`decode`]): a value that does not read
//! whole, or holds what no stored answer holds, is a miss. Its age is kept as of its writing,
//! and the time since is Redis's (the entry's TTL then and now), so proxies whose clocks
//! differ agree on it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use tokio::sync::Semaphore;

use super::rfc9111::{CacheControl, Freshness};
use super::stored::Stored;
use crate::redis_client::Redis;

/// Stores an entry unless its URI was invalidated after it was asked for, and names it in its
/// URI's and tags' sorted sets (scored by when it expires; the expired names go), which live
/// as long as their longest entry. KEYS: entry, marker, sets...; ARGV: record, TTL (ms), how
/// long ago it was asked for (ms). Times are Redis's.
const STORE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local gone = tonumber(redis.call('GET', KEYS[2]) or '0')
if now - tonumber(ARGV[3]) <= gone then return 0 end
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
for i = 3, #KEYS do
  redis.call('ZADD', KEYS[i], now + ttl, KEYS[1])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return 1
"#;

/// Removes a batch of the entries a sorted set names (ARGV[1] of them), and when a marker is
/// given (KEYS[2]) sets it to Redis's time now for ARGV[2] ms, never lower than it was.
/// Returns how many it removed.
const REMOVE_SET: &str = r#"
if #KEYS > 1 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if now > tonumber(redis.call('GET', KEYS[2]) or '0') then
    redis.call('SET', KEYS[2], now, 'PX', ARGV[2])
  end
end
local ks = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #ks > 0 then
  redis.call('UNLINK', unpack(ks))
  redis.call('ZREM', KEYS[1], unpack(ks))
end
return #ks
"#;

/// An entry and its TTL, in one round trip.
const GET: &str = r#"
return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}
"#;

/// Starts every record: the format's name and version.
const MAGIC: &[u8; 4] = b"FDC2";

/// How long an entry stays after it can no longer be served without revalidation: time for a
/// revalidation to find it.
const KEEP_FOR_REVALIDATION: Duration = Duration::from_secs(60);

/// The longest an entry is kept (a year and a day: no lifetime or window is longer).
const MAX_TTL_MS: u64 = 366 * 24 * 3600 * 1000;

/// How long an unsafe method's marker refuses answers asked for before it.
const MARKER_TTL_MS: u64 = 10 * 60 * 1000;

/// Entries removed per round trip of an invalidation or purge.
const REMOVE_BATCH: usize = 500;

/// Writes to Redis in flight at once; past them, an answer is kept in memory only.
const MAX_WRITES: usize = 64;

/// The most fields, varied fields and tags a record may hold (a stored answer's bounds).
const MAX_FIELDS: usize = 128;
const MAX_VARY: usize = 16;
const MAX_TAGS: usize = 64;

pub struct SharedTier {
    redis: Arc<Redis>,
    prefix: String,
    store: redis::Script,
    remove_set: redis::Script,
    get: redis::Script,
    writes: Arc<Semaphore>,
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
            get: redis::Script::new(GET),
            writes: Arc::new(Semaphore::new(MAX_WRITES)),
        }
    }

    fn entry_key(&self, key: &str) -> String {
        format!("{}e:{key}", self.prefix)
    }

    fn uri_key(&self, uri: &str) -> String {
        format!("{}u:{uri}", self.prefix)
    }

    fn marker_key(&self, uri: &str) -> String {
        format!("{}x:{uri}", self.prefix)
    }

    fn tag_key(&self, tag: &str) -> String {
        format!("{}t:{tag}", self.prefix)
    }

    /// The entry under `key`, as of `now`; `Err` when Redis could not say or its record does
    /// not read.
    pub async fn get(&self, key: &str, now: SystemTime) -> Result<Option<Entry>, String> {
        let mut conn = self.redis.connection();
        let mut call = self.get.prepare_invoke();
        call.key(self.entry_key(key));
        let (value, pttl): (Option<Vec<u8>>, i64) =
            self.redis.within(call.invoke_async(&mut conn)).await?;
        let Some(value) = value else { return Ok(None) };
        let left = Duration::from_millis(u64::try_from(pttl).unwrap_or(0));
        decode(&value, left, now)
            .map(Some)
            .ok_or_else(|| "an entry in Redis does not read".to_string())
    }

    /// Keeps `entry` under `key` (whose URI part is `uri`), asked for at `requested`, in the
    /// background; `stale_if_error` is the Policy's window when the answer has none.
    pub fn put(
        self: &Arc<Self>,
        key: &str,
        uri: &str,
        entry: Parts<'_>,
        requested: SystemTime,
        now: SystemTime,
    ) {
        // What another proxy would refuse to read is not written.
        if entry.stored.headers.len() > MAX_FIELDS
            || entry.vary.len() > MAX_VARY
            || entry.stored.tags.len() > MAX_TAGS
        {
            return;
        }
        let Ok(permit) = self.writes.clone().try_acquire_owned() else {
            tracing::debug!("the cache's shared tier is busy: an answer stays in memory");
            return;
        };
        let f = &entry.stored.freshness;
        let windows = f
            .directives
            .stale_while_revalidate
            .max(f.directives.stale_if_error)
            .map_or(Duration::ZERO, Duration::from_secs);
        let ttl = f.lifetime.saturating_sub(f.age(now)) + windows + KEEP_FOR_REVALIDATION;
        // Never past a year and a day, whatever a record read back said.
        let ttl_ms = u64::try_from(ttl.as_millis())
            .unwrap_or(u64::MAX)
            .min(MAX_TTL_MS);
        let value = encode(&entry, f.age(now), ttl_ms);
        let mut keys = vec![self.entry_key(key), self.marker_key(uri), self.uri_key(uri)];
        keys.extend(entry.stored.tags.iter().map(|t| self.tag_key(t)));
        let tier = self.clone();
        tokio::spawn(async move {
            let mut call = tier.store.prepare_invoke();
            for k in &keys {
                call.key(k);
            }
            // How long ago it was asked for, as the call leaves (Redis compares by its clock).
            let ago = super::now().duration_since(requested).unwrap_or_default();
            call.arg(value.as_ref())
                .arg(ttl_ms)
                .arg(ago.as_millis() as u64);
            let mut conn = tier.redis.connection();
            if let Err(e) = tier.redis.within(call.invoke_async::<i64>(&mut conn)).await {
                tracing::debug!(error = %e, "the cache's shared tier did not keep an answer");
            }
            drop(permit);
        });
    }

    /// Removes the entry of `key`, in the background.
    pub fn remove_key(self: &Arc<Self>, key: &str) {
        let entry = self.entry_key(key);
        let tier = self.clone();
        tokio::spawn(async move {
            let mut conn = tier.redis.connection();
            let del = redis::cmd("UNLINK").arg(entry).clone();
            if let Err(e) = tier.redis.within(del.query_async::<i64>(&mut conn)).await {
                tracing::warn!(error = %e, "the cache's shared tier did not remove an answer");
            }
        });
    }

    /// Removes the entries of a URI (an unsafe method's invalidation), in the background;
    /// answers asked for before it are refused for a while.
    pub fn remove_uri(self: &Arc<Self>, uri: &str) {
        self.remove_set(self.uri_key(uri), Some(self.marker_key(uri)));
    }

    /// Removes the entries tagged `tag`, in the background.
    pub fn remove_tag(self: &Arc<Self>, tag: &str) {
        self.remove_set(self.tag_key(tag), None);
    }

    /// Removes the entries `set` names, a batch per round trip.
    fn remove_set(self: &Arc<Self>, set: String, mut marker: Option<String>) {
        let tier = self.clone();
        tokio::spawn(async move {
            let mut conn = tier.redis.connection();
            loop {
                let mut call = tier.remove_set.prepare_invoke();
                call.key(&set).arg(REMOVE_BATCH);
                if let Some(key) = marker.take() {
                    call.key(key).arg(MARKER_TTL_MS);
                }
                match tier
                    .redis
                    .within(call.invoke_async::<usize>(&mut conn))
                    .await
                {
                    Ok(n) if n == REMOVE_BATCH => {}
                    Ok(_) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "the cache's shared tier did not remove answers");
                        return;
                    }
                }
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
                    let del = redis::cmd("UNLINK").arg(keys).clone();
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

/// An entry's parts, borrowed.
pub struct Parts<'a> {
    pub stored: &'a Stored,
    pub vary: &'a [HeaderName],
    pub values: &'a [Option<Vec<u8>>],
}

/// An entry as a record: its age as of now, written with a TTL of `ttl_ms`.
pub fn encode(e: &Parts<'_>, age: Duration, ttl_ms: u64) -> Bytes {
    let s = e.stored;
    let mut out = BytesMut::with_capacity(64 + s.body.len());
    out.put_slice(MAGIC);
    out.put_u16(s.status.as_u16());
    out.put_u64(s.freshness.lifetime.as_millis() as u64);
    out.put_u64(age.as_millis() as u64);
    out.put_u64(ttl_ms);
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

/// A record as an entry, its TTL now `left`, read at `now`; `None` for anything that does not
/// read whole or holds what no stored answer holds (a status never stored, hop-by-hop fields,
/// more fields than a message may have).
pub fn decode(mut b: &[u8], left: Duration, now: SystemTime) -> Option<Entry> {
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
    fn count(b: &mut &[u8], max: usize) -> Option<usize> {
        let n = (b.remaining() >= 4).then(|| b.get_u32() as usize)?;
        (n <= max).then_some(n)
    }
    if b.remaining() < MAGIC.len() + 2 + 24 || &b[..4] != MAGIC {
        return None;
    }
    b.advance(4);
    let status = StatusCode::from_u16(b.get_u16()).ok()?;
    if status.as_u16() < 200
        || status == StatusCode::PARTIAL_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return None;
    }
    let lifetime = Duration::from_millis(b.get_u64());
    let age_at_write = Duration::from_millis(b.get_u64());
    let ttl_at_write = Duration::from_millis(b.get_u64());
    let mut headers = HeaderMap::new();
    for _ in 0..count(&mut b, MAX_FIELDS)? {
        let name = HeaderName::from_bytes(bytes(&mut b)?).ok()?;
        let value = HeaderValue::from_bytes(bytes(&mut b)?).ok()?;
        headers.try_append(name, value).ok()?;
    }
    let before = headers.len();
    crate::forwarding::remove_hop_by_hop(&mut headers);
    if headers.len() != before {
        return None;
    }
    let mut vary = Vec::new();
    let mut values = Vec::new();
    for _ in 0..count(&mut b, MAX_VARY)? {
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
    for _ in 0..count(&mut b, MAX_TAGS)? {
        tags.push(Box::from(std::str::from_utf8(bytes(&mut b)?).ok()?));
    }
    let body = Bytes::copy_from_slice(bytes(&mut b)?);
    if b.has_remaining() {
        return None;
    }
    // Time since the writing, by Redis's clock.
    let elapsed = ttl_at_write.saturating_sub(left);
    let directives = CacheControl::parse(&headers);
    Some(Entry {
        stored: Stored {
            status,
            headers,
            body,
            freshness: Freshness {
                lifetime,
                initial_age: age_at_write,
                received: now.checked_sub(elapsed).unwrap_or(now),
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

    const WRITTEN: u64 = 1_800_000_000_000;

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
    }

    /// Written at `WRITTEN` with a TTL of 90 s.
    fn record(e: &Entry) -> Bytes {
        encode(&parts(e), e.stored.freshness.age(at(WRITTEN)), 90_000)
    }

    #[test]
    fn a_record_reads_back_as_the_entry_it_was_aged_by_redis_clock() {
        let e = entry();
        // Read 10 s after its writing by Redis's clock (its TTL 80 s now), whatever the
        // reader's clock says.
        let now = at(WRITTEN + 3_600_000);
        let d = decode(&record(&e), Duration::from_secs(80), now).unwrap();
        assert_eq!(d.stored.status, e.stored.status);
        assert_eq!(d.stored.headers, e.stored.headers);
        assert_eq!(d.stored.body, e.stored.body);
        assert_eq!(d.stored.freshness.lifetime, e.stored.freshness.lifetime);
        assert_eq!(
            d.stored.freshness.age(now),
            e.stored.freshness.age(at(WRITTEN)) + Duration::from_secs(10)
        );
        assert_eq!(d.stored.freshness.directives, e.stored.freshness.directives);
        assert_eq!(d.vary, e.vary);
        assert_eq!(d.values, e.values);
        assert_eq!(d.stored.tags, e.stored.tags);
    }

    #[test]
    fn a_record_that_does_not_read_whole_or_holds_what_is_never_stored_is_a_miss() {
        let read = |b: &[u8]| decode(b, Duration::from_secs(80), at(WRITTEN));
        let good = record(&entry());
        for cut in [0, 3, 4, 10, 40, good.len() - 1] {
            assert!(read(&good[..cut]).is_none(), "cut at {cut}");
        }
        let mut longer = good.to_vec();
        longer.push(0);
        assert!(read(&longer).is_none());
        let mut other = good.to_vec();
        other[3] = b'9';
        assert!(read(&other).is_none(), "another format");
        // A huge count with nothing behind it.
        let mut huge = good[..30].to_vec();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(read(&huge).is_none());
        // More fields than a message may have, each small: refused, not a panic.
        let mut many = entry();
        many.stored.headers.clear();
        for i in 0..MAX_FIELDS + 1 {
            many.stored.headers.insert(
                HeaderName::from_bytes(format!("x-{i}").as_bytes()).unwrap(),
                HeaderValue::from_static("1"),
            );
        }
        assert!(read(&record(&many)).is_none());
        // A hop-by-hop field, or a status never stored.
        let mut hop = entry();
        hop.stored
            .headers
            .insert("transfer-encoding", HeaderValue::from_static("chunked"));
        assert!(read(&record(&hop)).is_none());
        let mut partial = entry();
        partial.stored.status = StatusCode::PARTIAL_CONTENT;
        assert!(read(&record(&partial)).is_none());
    }

    #[test]
    fn purge_patterns_match_only_their_prefix() {
        assert_eq!(glob_escaped("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
