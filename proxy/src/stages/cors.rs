//! CORS: the slot after the route match and before authenticate, so a preflight `OPTIONS` can
//! be answered by the gateway without credentials, and the CORS headers of actual requests
//! join [`crate::exchange::Exchange::response_headers`], which the respond path adds to every
//! answer. Policy `cors` sections are not compiled yet (the caching and CORS issue fills this
//! slot); until then the stage lets every request through unchanged.
