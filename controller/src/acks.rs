//! What each connected proxy acknowledged: the basis of `Programmed` and of the ack/nack
//! metrics. Pure bookkeeping, shared by the push connections.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

static NEXT_CONNECTION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// One proxy's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyState {
    /// The last version it serves.
    pub acked: Option<u64>,
    /// This replica's publish number of that version: what "at or past a version" compares.
    #[serde(skip)]
    pub acked_seq: u64,
    /// The last version it refused, with the reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nacked: Option<(u64, String)>,
    /// Which connection this state belongs to: a proxy that reconnects before its old
    /// connection is noticed dead must not lose its state when the old one closes.
    #[serde(skip)]
    pub connection: u64,
}

impl ProxyState {
    /// Whether the proxy acknowledged this replica's publish `seq` or a later one.
    pub fn serves(&self, seq: u64) -> bool {
        self.acked.is_some() && self.acked_seq >= seq
    }
}

/// Connected proxies by gateway and proxy id.
#[derive(Clone, Default)]
pub struct AckTracker {
    inner: Arc<Mutex<BTreeMap<String, BTreeMap<String, ProxyState>>>>,
    /// Bumped by every connection, disconnection, ACK and NACK: the status loop looks again
    /// only when it moved.
    changes: Arc<std::sync::atomic::AtomicU64>,
}

impl AckTracker {
    /// Registers a new connection of `proxy`; returns its token for `disconnected`.
    pub fn connected(&self, gateway: &str, proxy: &str) -> u64 {
        let token = NEXT_CONNECTION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.changed();
        let mut inner = self.inner.lock().expect("ack tracker lock");
        inner.entry(gateway.into()).or_default().insert(
            proxy.into(),
            ProxyState {
                connection: token,
                ..ProxyState::default()
            },
        );
        token
    }

    /// Forgets `proxy`, unless a newer connection of the same proxy replaced `token`'s.
    pub fn disconnected(&self, gateway: &str, proxy: &str, token: u64) {
        self.changed();
        let mut inner = self.inner.lock().expect("ack tracker lock");
        if let Some(g) = inner.get_mut(gateway) {
            if g.get(proxy).is_some_and(|s| s.connection == token) {
                g.remove(proxy);
            }
            if g.is_empty() {
                inner.remove(gateway);
            }
        }
    }

    /// `proxy` serves `version`, whose content this replica published as number `seq` of
    /// `gateway` (or later: a proxy serving content that came back serves everything that
    /// publish carries). A proxy answers what it is sent in order, so its last ACK says what it
    /// serves now, even when that is an older publish than the ACK before (endpoints moving
    /// back and forth).
    pub fn ack(&self, gateway: &str, proxy: &str, version: u64, seq: u64) {
        self.changed();
        let mut inner = self.inner.lock().expect("ack tracker lock");
        let state = inner
            .entry(gateway.into())
            .or_default()
            .entry(proxy.into())
            .or_default();
        state.acked = Some(version);
        state.acked_seq = seq;
    }

    pub fn nack(&self, gateway: &str, proxy: &str, version: u64, reason: String) {
        self.changed();
        let mut inner = self.inner.lock().expect("ack tracker lock");
        inner
            .entry(gateway.into())
            .or_default()
            .entry(proxy.into())
            .or_default()
            .nacked = Some((version, reason));
    }

    fn changed(&self) {
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many times the proxies' state changed so far.
    pub fn changes(&self) -> u64 {
        self.changes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many proxies of `gateway` serve this replica's publish `seq` or a later one, out of
    /// how many are connected: the numbers behind `/status`'s "2/2 proxies of gateway public
    /// at version 1234".
    pub fn programmed(&self, gateway: &str, seq: u64) -> (usize, usize) {
        let inner = self.inner.lock().expect("ack tracker lock");
        inner.get(gateway).map_or((0, 0), |proxies| {
            (
                proxies.values().filter(|p| p.serves(seq)).count(),
                proxies.len(),
            )
        })
    }

    pub fn snapshot(&self) -> BTreeMap<String, BTreeMap<String, ProxyState>> {
        self.inner.lock().expect("ack tracker lock").clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programmed_counts_proxies_at_or_past_a_version() {
        let t = AckTracker::default();
        let a = t.connected("public", "a");
        t.connected("public", "b");
        // Versions are content ids, in no order; publish numbers order them.
        t.ack("public", "a", 900, 3);
        t.ack("public", "b", 800, 1);
        t.ack("public", "b", 700, 2); // the last ACK says what it serves
        assert_eq!(t.snapshot()["public"]["b"].acked, Some(700));
        assert_eq!(t.programmed("public", 2), (2, 2));
        assert_eq!(t.programmed("public", 3), (1, 2));
        t.nack("public", "b", 3, "too big".into());
        assert_eq!(
            t.snapshot()["public"]["b"].nacked,
            Some((3, "too big".into()))
        );
        t.disconnected("public", "a", a);
        assert_eq!(t.programmed("public", 3), (0, 1));
        assert_eq!(t.programmed("mobile", 1), (0, 0));
    }

    #[test]
    fn a_stale_disconnect_does_not_erase_a_reconnected_proxy() {
        let t = AckTracker::default();
        let old = t.connected("public", "p");
        let new = t.connected("public", "p");
        t.ack("public", "p", 400, 4);
        t.disconnected("public", "p", old);
        assert_eq!(
            t.programmed("public", 4),
            (1, 1),
            "the new connection's state survives"
        );
        t.disconnected("public", "p", new);
        assert_eq!(t.programmed("public", 4), (0, 0));
    }
}
