//! A Policy's `loadBalancer`: how a request picks one endpoint of a backend.

use serde::{Deserialize, Serialize};

/// How the endpoints of the backends of the rules a Policy applies to are chosen.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "algorithm", deny_unknown_fields)]
pub enum LoadBalancer {
    /// Each endpoint in turn (the default without a Policy section).
    #[default]
    RoundRobin,
    /// The one with fewer requests in flight from this proxy, of two picked at random (power of
    /// two choices).
    LeastRequest,
    /// The same endpoint for the same key, as long as it is in the backend; when an endpoint
    /// leaves or joins, only the keys it had (or gets) move.
    ConsistentHash {
        /// What the key is.
        on: HashOn,
    },
}

/// A consistent hash's key. A request without one (no such header or cookie) goes round robin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type", deny_unknown_fields)]
pub enum HashOn {
    /// A request header (lower-case name); several values count together.
    Header { name: String },
    /// A cookie of the request.
    Cookie { name: String },
    /// The client's address (X-Forwarded-For only from the proxy's trusted ranges).
    ClientIp,
}

impl LoadBalancer {
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        match self {
            LoadBalancer::ConsistentHash {
                on: HashOn::Header { name },
            } => crate::validate::check_header_name(name)
                .and_then(|()| {
                    if name.bytes().any(|b| b.is_ascii_uppercase()) {
                        Err(format!("{name:?} must be lower-case"))
                    } else {
                        Ok(())
                    }
                })
                .map_err(|why| ("on.name", why)),
            LoadBalancer::ConsistentHash {
                on: HashOn::Cookie { name },
            } => crate::validate::check_header_name(name)
                .map_err(|_| ("on.name", format!("{name:?} is not a valid cookie name"))),
            _ => Ok(()),
        }
    }
}

/// New endpoints of a backend get a growing share of its requests, from `min_weight_percent`
/// of an established endpoint's to all of it over `window_ms`, so a pod that just started
/// (cold caches, a JIT warming up) is not sent its full share at once. Endpoints the backend
/// had when the proxy first built it are established.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlowStart {
    pub window_ms: u64,
    pub min_weight_percent: u32,
}

impl SlowStart {
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.window_ms == 0 || self.window_ms > 3_600_000 {
            return Err(("windowMs", "must be more than 0 and at most an hour".into()));
        }
        if !(1..=100).contains(&self.min_weight_percent) {
            return Err(("minWeightPercent", "must be 1 to 100".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_as_the_manifest_shapes_it_and_checks_names() {
        let lb: LoadBalancer = serde_json::from_str(
            r#"{"algorithm": "consistentHash", "on": {"type": "header", "name": "x-user"}}"#,
        )
        .unwrap();
        assert_eq!(lb.check(), Ok(()));
        let lb: LoadBalancer = serde_json::from_str(r#"{"algorithm": "leastRequest"}"#).unwrap();
        assert_eq!(lb, LoadBalancer::LeastRequest);
        let bad = LoadBalancer::ConsistentHash {
            on: HashOn::Header {
                name: "X-User".into(),
            },
        };
        assert_eq!(bad.check().unwrap_err().0, "on.name");
        let bad = LoadBalancer::ConsistentHash {
            on: HashOn::Cookie { name: "a b".into() },
        };
        assert_eq!(bad.check().unwrap_err().0, "on.name");
    }
}
