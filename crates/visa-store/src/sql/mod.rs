//! The SQL every SQL backend runs, written once: one module per resource (accounts, keys,
//! admin keys, members, sessions, audit, usage, the money path, provider and operator
//! requests, webhooks) over the `Db` interface, and the `Store` implementation (`SqlStore`) over any
//! `Engine`. A backend (`crate::sqlite`, `crate::postgres`) is an `Engine`: connections,
//! transactions, its schema and its error codes, and nothing of the product's rules.

mod accounts;
mod admin_keys;
mod audit;
mod auth_version;
pub mod db;
mod engine;
mod keys;
mod mcp_sessions;
mod members;
pub(crate) mod money;
mod oauth;
mod operator_requests;
mod provider_requests;
mod sessions;
mod store;
mod usage;
pub(crate) mod webhooks;

pub use accounts::AccountStore;
pub use admin_keys::AdminKeyStore;
pub use audit::AuditStore;
pub use db::{Array, Db, Dialect, FromValue, Row, ToValue, Value};
pub(crate) use engine::write_alone;
pub use engine::{Engine, Isolation};
pub use keys::KeyStore;
pub use mcp_sessions::McpSessionStore;
pub use members::MemberStore;
pub use money::MoneyStore;
pub use money::nodes::NodeStore;
pub use oauth::OAuthStore;
pub use provider_requests::ProviderRequestStore;
pub use sessions::SessionStore;
pub use store::SqlStore;
pub use usage::UsageStore;
pub use webhooks::WebhookStore;

pub(crate) use crate::columns::{from_db, to_db};
