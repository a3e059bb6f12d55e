//! State that successive runtimes share for as long as any of them uses it: connection pools
//! by endpoint, rate limiters and key-set fetchers by configuration. A snapshot that keeps a
//! key gets the running value (warm connections, counters, fetched keys); a value no runtime
//! holds any more is dropped with its last user, and its entry goes at the next insertion.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

pub struct SharedByKey<K, V> {
    map: Mutex<HashMap<K, Weak<V>>>,
}

impl<K: Eq + Hash + Clone, V> Default for SharedByKey<K, V> {
    fn default() -> Self {
        SharedByKey {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone, V> SharedByKey<K, V> {
    /// The value of `key` while one is alive, else a new one from `make`. Called when a
    /// snapshot is built, never per request.
    pub fn get_or_make(&self, key: &K, make: impl FnOnce() -> Arc<V>) -> Arc<V> {
        match self.try_get_or_make(key, || Ok::<_, std::convert::Infallible>(make())) {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    /// [`Self::get_or_make`] with a `make` that may fail; a failure is kept nowhere.
    pub fn try_get_or_make<E>(
        &self,
        key: &K,
        make: impl FnOnce() -> Result<Arc<V>, E>,
    ) -> Result<Arc<V>, E> {
        let mut map = self.map.lock();
        if let Some(value) = map.get(key).and_then(Weak::upgrade) {
            return Ok(value);
        }
        map.retain(|_, w| w.strong_count() > 0);
        let value = make()?;
        map.insert(key.clone(), Arc::downgrade(&value));
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_shared_while_alive_and_made_again_after() {
        let shared: SharedByKey<&str, u32> = SharedByKey::default();
        let a = shared.get_or_make(&"a", || Arc::new(1));
        let again = shared.get_or_make(&"a", || Arc::new(2));
        assert!(Arc::ptr_eq(&a, &again));
        drop((a, again));
        assert_eq!(*shared.get_or_make(&"a", || Arc::new(3)), 3);
        assert_eq!(shared.map.lock().len(), 1);
    }
}
