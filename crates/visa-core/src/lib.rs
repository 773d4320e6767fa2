//! The Visa Keys domain, with no I/O: what a key looks like, what money is, which
//! caps and scopes are valid, how pages of a list are cut, and which error codes exist.
//!
//! Every other crate speaks in these types. Handlers receive values that were validated
//! on construction (`KeyLabel::parse`, `CidrAllowlist::parse`, ...), so an invalid value
//! cannot reach the store.

pub mod error;
pub mod fingerprint;
pub mod id;
pub mod key;
pub mod money;
pub mod number;
pub mod pagination;
pub mod password;
pub mod policy;
pub mod role;
pub mod secret;

pub use error::{ErrorCode, Rejection};
