//! Route match: runs after the request target stage, for every request. Finds the rule whose
//! host, path, method, header and query conditions the request meets, with the precedence the
//! compiler decided (Exact > longest PathPrefix/Template > RegularExpression, then more
//! conditions, then the oldest object). No rule matching is answered 404 `no-route`.
//!
//! - [`table`]: the lookup structure, built once per snapshot, generic over what a rule runs.

pub mod table;

pub use table::{Matched, RequestView, RouteTable};
