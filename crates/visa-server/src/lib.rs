//! The Visa Keys server. `visa-cli serve` is a thin wrapper over [`Server::start`]; tests
//! start the same server in-process on port 0.
//!
//! Layout (docs/architecture.md): the surfaces — `routes` (the JSON API, one module per
//! resource), `dashboard`, `openai`, `mcp` — call the use cases in `app` (the paid call's money path
//! is `app::paid_call`), which take and return the wire shapes of `wire`; below them `auth`
//! (who is calling), `tools` (running a tool) and `visa_store::Store` (persistence). `error`
//! maps every refusal to the one envelope; `tools::catalog` loads the tool catalog; `state` is what
//! handlers share; `config`, `startup`, `background` and `signals` run the process; `webhooks` delivers the
//! store's outbox of events.

pub mod app;
pub mod auth;
pub mod background;
pub mod clock;
pub mod config;
pub mod connections;
pub mod dashboard;
pub mod data_dir;
pub mod detached;
pub mod error;
pub mod extract;
pub mod in_flight;
pub mod lease;
pub mod mcp;
pub mod metrics;
pub mod oauth;
pub mod openai;
pub mod ratelimit;
pub mod routes;
pub mod signals;
pub mod startup;
pub mod state;
pub mod tls;
pub mod tools;
pub mod trust;
pub mod usage;
pub mod webhooks;
pub mod wire;

pub use config::ServeConfig;
pub use data_dir::write_private_file;
pub use signals::Signals;
pub use startup::{Server, app};

pub const MAX_BODY_BYTES: usize = 1024 * 1024;
pub const DATABASE_FILE: &str = visa_store::SQLITE_FILE;
