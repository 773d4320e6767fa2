//! The use cases, one function each, under every surface: the JSON API (`crate::routes`), the
//! dashboard and the OpenAI surface call these, and none of them calls another surface. A use
//! case takes its caller (a signed-in `Session`, a `Reader`, the operator) and typed input (the
//! wire shapes of `crate::wire`, ids already parsed), checks the caller's permission, runs the
//! store operation and what follows it (the key cache told of a change), and returns the wire
//! answer or a refusal (`ApiError`, which each surface renders in its own shape).
pub mod account;
pub mod admin_keys;
pub mod audit;
pub mod balance;
pub mod executions;
pub mod keys;
pub mod members;
pub mod oauth;
pub mod operator;
pub mod paid_call;
pub mod sessions;
pub mod spend;
pub mod usage;
pub mod webhooks;
