//! The response cache's memory: stored answers by key ([`super::key`]), each key holding the
//! variants its answers vary on (RFC 9111 §4.1), bounded by size. To make room, the least
//! recently used keys go first; an answer larger than the per-entry limit is never stored.
//! Purges remove keys by prefix or by tag. A data structure under one lock: no I/O, no clock
//! (what a stored answer's freshness is travels in the stored value).

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{HeaderMap, HeaderName};
use parking_lot::Mutex;

use super::rfc9111::varied_values;

/// What a variant costs besides its answer's bytes: the key, the fields it varies on, the
/// bookkeeping.
const OVERHEAD: usize = 256;

/// The variants kept per key at most: the oldest goes when a new one would pass it.
const MAX_VARIANTS: usize = 16;

/// One stored answer, with the request fields it varies on and their values.
pub struct Variant<V> {
    vary: Vec<HeaderName>,
    values: Vec<Option<Vec<u8>>>,
    tags: Vec<Box<str>>,
    size: usize,
    pub value: Arc<V>,
}

/// Why nothing was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missed {
    /// Nothing is stored under the key.
    Key,
    /// Answers are, none for the request's values of the fields they vary on.
    Variant,
}

/// What storing an answer did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inserted {
    /// Keys and variants that went to make room.
    pub evicted: u64,
    /// What the store holds now.
    pub bytes: usize,
    pub keys: usize,
}

/// Why an answer was not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Larger than the per-entry limit.
    TooLarge,
}

/// What a store holds now, and how many keys it evicted to make room since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub keys: usize,
    pub bytes: usize,
    pub evictions: u64,
}

pub struct Store<V> {
    inner: Mutex<Inner<V>>,
    capacity: usize,
    max_entry: usize,
}

struct Inner<V> {
    /// Ordered, so a purge by prefix reads only the keys it removes.
    keys: BTreeMap<Box<str>, Slot<V>>,
    /// Use order: tick → key; the smallest tick is the least recently used key.
    recency: BTreeMap<u64, Box<str>>,
    tick: u64,
    bytes: usize,
    evictions: u64,
}

struct Slot<V> {
    used: u64,
    variants: Vec<Variant<V>>,
}

impl<V> Inner<V> {
    fn remove_all(&mut self, keys: &[Box<str>]) {
        for k in keys {
            if let Some(slot) = self.keys.remove(k) {
                self.recency.remove(&slot.used);
                self.bytes -= slot.variants.iter().map(|v| v.size).sum::<usize>();
            }
        }
    }
}

impl<V> Store<V> {
    /// A store of at most `capacity` bytes, none of its answers over `max_entry` bytes.
    pub fn new(capacity: usize, max_entry: usize) -> Self {
        Store {
            inner: Mutex::new(Inner {
                keys: BTreeMap::new(),
                recency: BTreeMap::new(),
                tick: 0,
                bytes: 0,
                evictions: 0,
            }),
            capacity,
            max_entry: max_entry.min(capacity),
        }
    }

    /// The answer stored under `key` whose varied fields `request` presents the same of, the
    /// most recent first.
    pub fn get(&self, key: &str, request: &HeaderMap) -> Option<Arc<V>> {
        self.lookup(key, request).ok()
    }

    /// [`Store::get`], saying why nothing was found.
    pub fn lookup(&self, key: &str, request: &HeaderMap) -> Result<Arc<V>, Missed> {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let slot = inner.keys.get_mut(key).ok_or(Missed::Key)?;
        let found = slot
            .variants
            .iter()
            .rev()
            .find(|v| varied_values(&v.vary, request) == v.values)
            .ok_or(Missed::Variant)?
            .value
            .clone();
        inner.tick += 1;
        if let Some(k) = inner.recency.remove(&slot.used) {
            inner.recency.insert(inner.tick, k);
        }
        slot.used = inner.tick;
        Ok(found)
    }

    /// Stores `value` (`size` bytes) under `key` for requests presenting `request`'s values of
    /// the `vary` fields, in place of a variant with the same; `tags` name it for purges.
    /// Least recently used keys go to make room.
    pub fn insert(
        &self,
        key: &str,
        vary: Vec<HeaderName>,
        request: &HeaderMap,
        value: V,
        size: usize,
        tags: Vec<Box<str>>,
    ) -> Result<Inserted, Refused> {
        let size = size.saturating_add(key.len() + OVERHEAD);
        if size > self.max_entry {
            return Err(Refused::TooLarge);
        }
        let values = varied_values(&vary, request);
        let variant = Variant {
            vary,
            values,
            tags,
            size,
            value: Arc::new(value),
        };
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        inner.tick += 1;
        let tick = inner.tick;
        let slot = match inner.keys.get_mut(key) {
            Some(slot) => {
                if let Some(k) = inner.recency.remove(&slot.used) {
                    inner.recency.insert(tick, k);
                }
                slot.used = tick;
                slot
            }
            None => {
                inner.recency.insert(tick, key.into());
                inner.keys.entry(key.into()).or_insert(Slot {
                    used: tick,
                    variants: Vec::new(),
                })
            }
        };
        let mut freed = 0;
        slot.variants.retain(|v| {
            let same = v.vary == variant.vary && v.values == variant.values;
            if same {
                freed += v.size;
            }
            !same
        });
        if slot.variants.len() >= MAX_VARIANTS {
            freed += slot.variants.remove(0).size;
        }
        slot.variants.push(variant);
        inner.bytes = inner.bytes + size - freed;
        let mut evicted = 0;
        // The least recently used other keys go first; then, if this key's own variants are
        // still too many bytes, its oldest ones (the new one alone always fits).
        while inner.bytes > self.capacity {
            let oldest = inner
                .recency
                .iter()
                .find(|(_, k)| &***k != key)
                .map(|(&tick, _)| tick);
            match oldest {
                Some(tick) => {
                    let k = inner.recency.remove(&tick).expect("present");
                    if let Some(gone) = inner.keys.remove(&k) {
                        inner.bytes -= gone.variants.iter().map(|v| v.size).sum::<usize>();
                    }
                }
                None => {
                    let slot = inner.keys.get_mut(key).expect("inserted");
                    inner.bytes -= slot.variants.remove(0).size;
                }
            }
            inner.evictions += 1;
            evicted += 1;
        }
        Ok(Inserted {
            evicted,
            bytes: inner.bytes,
            keys: inner.keys.len(),
        })
    }

    /// Removes everything stored under `key` (an unsafe method's invalidation, RFC 9111 §4.4);
    /// whether there was any.
    pub fn remove(&self, key: &str) -> bool {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let Some(slot) = inner.keys.remove(key) else {
            return false;
        };
        inner.recency.remove(&slot.used);
        inner.bytes -= slot.variants.iter().map(|v| v.size).sum::<usize>();
        true
    }

    /// Removes the answer stored under `key` for `request`'s values of the fields it varies
    /// on (the key goes with its last answer); whether there was one.
    pub fn remove_variant(&self, key: &str, request: &HeaderMap) -> bool {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let Some(slot) = inner.keys.get_mut(key) else {
            return false;
        };
        let Some(i) = slot
            .variants
            .iter()
            .rposition(|v| varied_values(&v.vary, request) == v.values)
        else {
            return false;
        };
        inner.bytes -= slot.variants.remove(i).size;
        if slot.variants.is_empty() {
            let used = slot.used;
            inner.keys.remove(key);
            inner.recency.remove(&used);
        }
        true
    }

    /// Removes the keys that start with `prefix`; how many.
    pub fn purge_prefix(&self, prefix: &str) -> usize {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let keys: Vec<Box<str>> = inner
            .keys
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        inner.remove_all(&keys);
        keys.len()
    }

    /// Removes the keys with a variant tagged `tag`; how many.
    pub fn purge_tag(&self, tag: &str) -> usize {
        self.remove_where(|_, slot| {
            slot.variants
                .iter()
                .any(|v| v.tags.iter().any(|t| &**t == tag))
        })
    }

    fn remove_where(&self, mut gone: impl FnMut(&str, &Slot<V>) -> bool) -> usize {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let keys: Vec<Box<str>> = inner
            .keys
            .iter()
            .filter(|(k, slot)| gone(k, slot))
            .map(|(k, _)| k.clone())
            .collect();
        inner.remove_all(&keys);
        keys.len()
    }

    /// The largest answer it stores, fields and bookkeeping included.
    pub fn max_entry(&self) -> usize {
        self.max_entry
    }

    pub fn stats(&self) -> Stats {
        let inner = self.inner.lock();
        Stats {
            keys: inner.keys.len(),
            bytes: inner.bytes,
            evictions: inner.evictions,
        }
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn asking(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    const KB: usize = 1024;

    #[test]
    fn an_answer_is_found_by_its_key_and_the_fields_it_varies_on() {
        let store = Store::new(64 * KB, 8 * KB);
        let lang = HeaderName::from_static("accept-language");
        let fr = asking(&[("accept-language", "fr")]);
        let de = asking(&[("accept-language", "de")]);
        store
            .insert("k", vec![lang.clone()], &fr, "bonjour", 7, vec![])
            .unwrap();
        store
            .insert("k", vec![lang.clone()], &de, "hallo", 5, vec![])
            .unwrap();
        assert_eq!(store.get("k", &fr).as_deref(), Some(&"bonjour"));
        assert_eq!(store.get("k", &de).as_deref(), Some(&"hallo"));
        assert_eq!(store.get("k", &asking(&[])), None, "absent is a value too");
        assert_eq!(store.get("other", &fr), None);
        // A newer answer for the same values replaces the older, bytes and all.
        let before = store.stats();
        store
            .insert("k", vec![lang], &fr, "salut", 5, vec![])
            .unwrap();
        assert_eq!(store.get("k", &fr).as_deref(), Some(&"salut"));
        assert_eq!(store.stats().bytes, before.bytes - 2);
        assert_eq!(store.stats().keys, 1);
    }

    #[test]
    fn the_least_recently_used_keys_go_to_make_room_and_large_answers_are_refused() {
        let store = Store::new(4 * KB, 2 * KB);
        let none = HeaderMap::new();
        for k in ["a", "b", "c"] {
            store.insert(k, vec![], &none, k, KB, vec![]).unwrap();
        }
        // Used since: "a" is now more recent than "b".
        assert!(store.get("a", &none).is_some());
        store.insert("d", vec![], &none, "d", KB, vec![]).unwrap();
        assert!(store.get("b", &none).is_none(), "the least recently used");
        for k in ["a", "c", "d"] {
            assert!(store.get(k, &none).is_some(), "{k}");
        }
        let stats = store.stats();
        assert_eq!((stats.keys, stats.evictions), (3, 1));
        assert!(stats.bytes <= 4 * KB);
        assert_eq!(
            store.insert("big", vec![], &none, "big", 2 * KB, vec![]),
            Err(Refused::TooLarge)
        );
        assert!(store.get("a", &none).is_some(), "a refusal evicts nothing");
    }

    #[test]
    fn a_key_whose_variants_outgrow_the_store_keeps_its_newest() {
        let store = Store::new(4 * KB, 2 * KB);
        let none = HeaderMap::new();
        store.insert("a", vec![], &none, 0, KB, vec![]).unwrap();
        let lang = HeaderName::from_static("accept-language");
        let values = ["fr", "de", "it", "es", "pt"];
        for (i, v) in values.iter().enumerate() {
            let asked = asking(&[("accept-language", v)]);
            store
                .insert("k", vec![lang.clone()], &asked, i + 1, KB, vec![])
                .unwrap();
        }
        assert!(store.get("a", &none).is_none(), "other keys go first");
        assert_eq!(
            store
                .get("k", &asking(&[("accept-language", "pt")]))
                .as_deref(),
            Some(&5)
        );
        assert!(
            store
                .get("k", &asking(&[("accept-language", "fr")]))
                .is_none()
        );
        let stats = store.stats();
        assert!(stats.bytes <= 4 * KB, "{stats:?}");
        assert_eq!(stats.keys, 1);
    }

    #[test]
    fn one_variant_goes_and_the_key_with_its_last() {
        let store = Store::new(64 * KB, 8 * KB);
        let lang = HeaderName::from_static("accept-language");
        let fr = asking(&[("accept-language", "fr")]);
        let de = asking(&[("accept-language", "de")]);
        store
            .insert("k", vec![lang.clone()], &fr, 1, 10, vec![])
            .unwrap();
        store.insert("k", vec![lang], &de, 2, 10, vec![]).unwrap();
        assert!(store.remove_variant("k", &fr));
        assert!(!store.remove_variant("k", &fr));
        assert_eq!(store.get("k", &de).as_deref(), Some(&2));
        assert!(store.remove_variant("k", &de));
        assert_eq!(store.stats(), Stats::default());
    }

    #[test]
    fn purges_and_invalidations_remove_keys_and_their_bytes() {
        let store = Store::new(64 * KB, 8 * KB);
        let none = HeaderMap::new();
        let tags = |t: &[&str]| t.iter().map(|t| Box::from(*t)).collect();
        store
            .insert("GET https://a/x/1", vec![], &none, 1, 10, tags(&["x"]))
            .unwrap();
        store
            .insert(
                "GET https://a/x/2",
                vec![],
                &none,
                2,
                10,
                tags(&["x", "two"]),
            )
            .unwrap();
        store
            .insert("GET https://a/y", vec![], &none, 3, 10, tags(&[]))
            .unwrap();
        assert_eq!(store.purge_tag("two"), 1);
        assert_eq!(store.purge_prefix("GET https://a/x/"), 1);
        assert!(store.remove("GET https://a/y"));
        assert!(!store.remove("GET https://a/y"));
        assert_eq!(
            store.stats(),
            Stats {
                keys: 0,
                bytes: 0,
                evictions: 0
            }
        );
    }
}
