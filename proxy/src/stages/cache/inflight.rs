//! Request coalescing: while one request for a key is at the backend (its leader), the
//! others for that key wait for it to finish and then look again, so concurrent misses make
//! one backend request. A leader finishes when its answer is stored, found not storable, or
//! dropped; its waiters then find the stored answer, or go to the backend themselves.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

/// The keys at the backend now.
#[derive(Default)]
pub struct Inflight {
    keys: Arc<Mutex<HashMap<Box<str>, watch::Receiver<()>>>>,
}

/// The one request of its key at the backend: its waiters wake when it is dropped.
pub struct Leader {
    keys: Arc<Mutex<HashMap<Box<str>, watch::Receiver<()>>>>,
    key: Box<str>,
    done: watch::Sender<()>,
}

pub enum Join {
    Lead(Leader),
    /// Another request leads: wait for it with [`wait`].
    Wait(watch::Receiver<()>),
}

impl Inflight {
    /// Leads `key`, unless a request leads it already.
    pub fn join(&self, key: &str) -> Join {
        let mut keys = self.keys.lock();
        if let Some(rx) = keys.get(key) {
            return Join::Wait(rx.clone());
        }
        let (done, rx) = watch::channel(());
        keys.insert(key.into(), rx);
        Join::Lead(Leader {
            keys: self.keys.clone(),
            key: key.into(),
            done,
        })
    }

    /// Keys led now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.keys.lock().len()
    }
}

/// Until the leader is done.
pub async fn wait(mut rx: watch::Receiver<()>) {
    // Nothing is ever sent: the channel closes when the leader goes.
    while rx.changed().await.is_ok() {}
}

impl Drop for Leader {
    fn drop(&mut self) {
        let mut keys = self.keys.lock();
        if keys
            .get(&self.key)
            .is_some_and(|rx| rx.same_channel(&self.done.subscribe()))
        {
            keys.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_leads_the_others_wait_until_it_goes() {
        let inflight = Inflight::default();
        let Join::Lead(leader) = inflight.join("k") else {
            panic!("the first leads")
        };
        let Join::Wait(rx) = inflight.join("k") else {
            panic!("the second waits")
        };
        assert!(matches!(inflight.join("other"), Join::Lead(_)));
        let waiting = tokio::spawn(wait(rx));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiting.is_finished());
        drop(leader);
        waiting.await.unwrap();
        assert_eq!(inflight.len(), 0);
        assert!(matches!(inflight.join("k"), Join::Lead(_)), "free again");
    }
}
