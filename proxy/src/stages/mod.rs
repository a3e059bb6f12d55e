//! The stages of the request path, declared in the order a request meets them. Each stage
//! module holds its config-to-runtime build, its runtime and its unit tests, and says in its
//! doc comment when it runs and what it does by default. [`crate::pipeline`] sequences them;
//! no stage imports another: what one stage hands the next travels in
//! [`crate::exchange::Exchange`] or as plain values passed by the pipeline.
//!
//! ```text
//! request_target → route → cors → authenticate → authorize → rate_limit → cache →
//!   request_transforms → action (forward | aggregate | redirect | direct) →
//!   response_transforms → respond (every answer, the proxy's own problems included)
//! ```

pub mod action;
pub mod authenticate;
pub mod authorize;
pub mod cache;
pub mod cors;
pub mod rate_limit;
pub mod request_target;
pub mod request_transforms;
pub mod respond;
pub mod response_transforms;
pub mod route;
