//! Response cache: the slot after the rate limit (a cached answer is never served to a client
//! the policy refuses) and before the request transforms and the action; a hit will be
//! answered through the respond path like any other answer. Policy `cache` sections are not
//! compiled yet (the caching and CORS issue fills this slot); until then every request goes on
//! to the action.
