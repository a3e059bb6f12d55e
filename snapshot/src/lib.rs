//! The contract between frontdesk's planes: one compiled, versioned [`Snapshot`] per gateway.
//!
//! The compiler (`frontdesk-crds`) produces snapshots from what users write; the proxy builds its
//! runtime from them. Everything here is plain serde data that has already been resolved and
//! checked: regexes are valid, path templates are parsed into segments, backends are resolved to
//! endpoint addresses, and the rules are ranked by precedence. The proxy trusts none of that
//! blindly: [`Snapshot::validate`] re-checks the invariants it relies on, so a snapshot from a
//! buggy or hostile source is rejected whole instead of half-applied.
//!
//! No kube, no hyper: this crate must stay cheap to depend on.
#![forbid(unsafe_code)]

mod backend_tls;
mod cache;
mod circuit_breaker;
mod content_id;
mod cors;
mod endpoints;
mod health_check;
mod listener;
mod load_balancer;
pub mod path;
mod policy;
mod retries;
mod route;
pub mod secret;
mod transcode;
mod validate;

pub use backend_tls::*;
pub use cache::*;
pub use circuit_breaker::*;
pub use content_id::{Changed, ContentDigests};
pub use cors::*;
pub use endpoints::*;
pub use health_check::*;
pub use listener::*;
pub use load_balancer::*;
pub use policy::*;
pub use retries::*;
pub use route::*;
pub use secret::Secret;
pub use transcode::*;
pub use validate::ValidationError;

use serde::{Deserialize, Serialize};

/// Everything one gateway (one group of proxy pods) serves.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Snapshot {
    /// The gateway group this snapshot is for (a Route's `spec.gateways` entry).
    pub gateway: String,
    /// Which configuration this is, assigned by whoever publishes the snapshot; 0 straight
    /// out of the compiler. The controller publishes [`Snapshot::content_id`]: the same
    /// content has the same version on every replica and every proxy serving it. A standalone
    /// proxy reading files counts its reloads instead. Not an order: the controller orders
    /// versions by when it published them.
    #[serde(default)]
    pub version: u64,
    /// The routes, in no particular order: precedence is carried by each match's `rank`.
    /// Shared, so the next version of a snapshot (an endpoint change, say) copies only the
    /// routes it changes.
    #[serde(default)]
    pub routes: Vec<std::sync::Arc<Route>>,
    /// The user objects this snapshot was built from, with their generations, so the control
    /// plane can tell which generation a proxy acknowledged. Shared like the routes: an
    /// endpoint change does not copy one entry per object.
    #[serde(default)]
    pub sources: std::sync::Arc<Vec<SourceRef>>,
    /// Effective policies by key (`Rule::policy`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub policies: std::collections::BTreeMap<String, Policy>,
    /// Hosts belong to namespaces: a request for a host that Routes of one namespace list
    /// falls through to wildcard and host-less Routes of that namespace only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exclusive_hosts: bool,
    /// The ports the gateway serves ([`Listener`]); empty: the proxy's own `--listen`, plain
    /// HTTP.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<Listener>,
    /// The listeners come from Gateway objects: the proxy serves exactly `listeners`, even
    /// none (every listener of the Gateway invalid, e.g. its certificate Secret missing), and
    /// never falls back to its plain `--listen`, so an HTTPS port never turns into HTTP.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub listeners_declared: bool,
}

/// A reference to one user object that contributed to a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub generation: i64,
}

impl Snapshot {
    /// Same content, ignoring the version: used to drop no-op updates.
    pub fn same_content(&self, other: &Snapshot) -> bool {
        self.gateway == other.gateway
            && self.routes == other.routes
            && self.sources == other.sources
            && self.policies == other.policies
            && self.exclusive_hosts == other.exclusive_hosts
            // A rotated certificate changes a listener and nothing else.
            && self.listeners == other.listeners
            && self.listeners_declared == other.listeners_declared
    }

    /// Total number of rules, for logs and metrics.
    pub fn rule_count(&self) -> usize {
        self.routes.iter().map(|r| r.rules.len()).sum()
    }
}
