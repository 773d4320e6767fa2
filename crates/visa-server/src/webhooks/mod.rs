//! Webhooks out of the server (docs/webhooks.md): events are written to the store's outbox in
//! the transaction of their cause (`visa_store::events`), and this module delivers them.
//!
//! - `signing`: each endpoint's secret, derived from the server's webhook key (never stored),
//!   and the Standard Webhooks headers;
//! - `schedule`: when a failed attempt is tried again;
//! - `ssrf`: which addresses an endpoint may reach, checked where the connection is made;
//! - `client`: one attempt of a delivery, and what follows from its answer;
//! - `deliver`: the loop that leases due deliveries, attempts them and records each attempt.

pub mod client;
pub mod deliver;
pub mod schedule;
pub mod signing;
pub mod ssrf;
