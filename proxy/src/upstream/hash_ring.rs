//! Consistent hashing over a backend's endpoints: each endpoint owns many points on a ring of
//! 64-bit hashes, and a key goes to the owner of the first point at or after its hash. When an
//! endpoint leaves, only the keys of its points move (to the next points' owners); the others
//! stay where they were (Karger et al.'s ring, with virtual nodes for even shares).
//!
//! The hash is FNV-1a with a final mix, written here so every proxy version maps keys the same
//! way (std's hasher may change between Rust releases).

/// Points per endpoint: shares within a few percent of even for any number of endpoints.
const POINTS_PER_ENDPOINT: usize = 160;

/// A stable 64-bit hash of `bytes`.
pub fn hash(bytes: &[u8]) -> u64 {
    hash_parts(std::iter::once(bytes), b"")
}

/// [`hash`] of `parts` each followed by `separator`, without joining them first (no allocation
/// on the request path): `hash_parts([a, b], b",") == hash(b"a,b,")`.
pub fn hash_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>, separator: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in parts.into_iter().flat_map(|p| p.iter().chain(separator)) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // splitmix64's finalizer: FNV's low bits alone spread poorly.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The ring of one backend's endpoints, built once per snapshot.
pub struct HashRing {
    /// (point, endpoint index), sorted by point.
    points: Vec<(u64, u32)>,
}

impl HashRing {
    /// `names` are the endpoints' addresses, in the set's order: a point depends on its
    /// endpoint's name only, so other endpoints coming and going never move it.
    pub fn new<'a>(names: impl Iterator<Item = &'a str>) -> Self {
        let mut points = Vec::new();
        for (index, name) in names.enumerate() {
            let mut key = name.as_bytes().to_vec();
            key.push(b'#');
            let at = key.len();
            for point in 0..POINTS_PER_ENDPOINT {
                key.truncate(at);
                key.extend_from_slice(point.to_string().as_bytes());
                points.push((hash(&key), index as u32));
            }
        }
        points.sort_unstable();
        HashRing { points }
    }

    /// Endpoint indexes for `key`, its owner first then the next distinct owners around the
    /// ring (where a key goes when its owner is out).
    pub fn owners(&self, key: u64) -> impl Iterator<Item = usize> + '_ {
        let start = self.points.partition_point(|(p, _)| *p < key);
        let n = self.points.len();
        (0..n).map(move |k| self.points[(start + k) % n].1 as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.0.0.{i}:8080")).collect()
    }

    #[test]
    fn shares_are_near_even_and_a_leaving_endpoint_moves_only_its_keys() {
        let four = names(4);
        let ring = HashRing::new(four.iter().map(String::as_str));
        let owner = |ring: &HashRing, k: u64| ring.owners(hash(&k.to_le_bytes())).next().unwrap();
        let mut counts = [0usize; 4];
        for k in 0..40_000u64 {
            counts[owner(&ring, k)] += 1;
        }
        for c in counts {
            assert!((8_000..12_000).contains(&c), "{counts:?}");
        }
        // The third endpoint leaves: indexes shift, so compare by name.
        let three: Vec<String> = four.iter().filter(|n| *n != &four[2]).cloned().collect();
        let smaller = HashRing::new(three.iter().map(String::as_str));
        for k in 0..40_000u64 {
            let before = &four[owner(&ring, k)];
            let after = &three[owner(&smaller, k)];
            if before != &four[2] {
                assert_eq!(before, after, "key {k} moved though its endpoint stayed");
            }
        }
    }

    #[test]
    fn the_hash_is_stable() {
        assert_ne!(hash(b"a"), hash(b"b"));
        // Pinned: proxies of every version must agree.
        assert_eq!(hash(b"client-1"), 0x38b3_fd24_3825_1cb2);
        assert_eq!(hash_parts([&b"a"[..], b"b"], b","), hash(b"a,b,"));
        let ring = HashRing::new(["a:1"].into_iter());
        assert!(ring.owners(42).all(|i| i == 0));
    }
}
