//! Response cache: the slot after the rate limit (a cached answer is never served to a client
//! the policy refuses) and before the request transforms and the action; a hit will be
//! answered through the respond path like any other answer. Policy `cache` sections are not
//! compiled yet (the caching issue fills this slot); until then every request goes on to the
//! action.
//!
//! - [`rfc9111`]: what HTTP caching says, as pure functions over requests' and responses'
//!   fields and the clock: whether an answer may be stored by a shared cache, how long it is
//!   fresh, how old it is, and which request fields it varies on.
//! - [`key`]: what two requests must share to be answered by one stored answer.
//! - [`store`]: the memory: answers by key and variant, bounded by size (least recently used
//!   keys evicted, large answers refused), purged by key prefix or tag.

pub mod key;
pub mod rfc9111;
pub mod store;
