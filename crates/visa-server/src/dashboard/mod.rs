//! The web dashboard at `/dashboard`, served by the same binary and port: server-rendered HTML
//! (maud, checked at compile time) over the same use cases as the API (`crate::app`), signed in
//! with a member's login and password. Nothing here decides anything the API does not: each
//! page calls the use case with the member's [`Session`](crate::auth::Session), so roles,
//! validation, messages and the audit trail are the API's.
//!
//! - `session.rs`: the session cookie, the CSRF token bound to it, the `Origin` check;
//! - `layout.rs`: the page shell (navigation, environment banner), the security headers and
//!   the stylesheet;
//! - `form.rs` reads a submitted form; `policy.rs` is a key's policy as a form; `paths.rs`
//!   names the pages the navigation bar links to;
//! - one module per page: `sign_in.rs`, `overview.rs` (the first page after sign-in: balance,
//!   spend by tool, top keys and end users, refusals, keys to watch), `keys.rs` (the table, creating), `key.rs` (a key),
//!   `usage.rs` (a key's traffic chart), `spend.rs` (balance, spend, executions), `audit.rs`,
//!   `members.rs` (and accepting an invitation), `admin_keys.rs`, `oauth.rs` (MCP's OAuth
//!   consent and the connected applications), `webhooks.rs` (endpoints and their delivery
//!   log).

mod admin_keys;
mod audit;
mod audit_text;
mod calls;
mod chart;
mod form;
mod key;
mod key_filter;
mod keys;
mod layout;
mod members;
mod oauth;
mod overview;
mod paths;
mod policy;
mod session;
mod sign_in;
mod spend;
mod usage;
mod webhooks;

use crate::state::SharedState;
use axum::Router;
use axum::response::Redirect;
use axum::routing::{get, post};

/// Where a signed-in member lands.
const HOME: &str = paths::OVERVIEW;

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/dashboard", get(|| async { Redirect::to(HOME) }))
        .route("/dashboard/sign-in", get(sign_in::form).post(sign_in::submit))
        .route("/dashboard/sign-out", post(sign_in::sign_out))
        .route(paths::KEYS, get(keys::list).post(keys::create))
        .route("/dashboard/keys/new", get(keys::new))
        .route("/dashboard/keys/{id}", get(key::show).post(key::update))
        .route("/dashboard/keys/{id}/rotate", post(key::rotate))
        .route("/dashboard/keys/{id}/usage", get(usage::fragment))
        .route("/dashboard/keys/{id}/calls", get(calls::fragment))
        .route("/dashboard/keys/{id}/revoke", get(key::confirm_revoke).post(key::revoke))
        .route("/dashboard/keys/{id}/secrets/{secret_id}/revoke", post(key::revoke_secret))
        .route(overview::PATH, get(overview::show))
        .route(spend::PATH, get(spend::show))
        .route("/dashboard/executions/{id}", get(spend::execution))
        .route(audit::PATH, get(audit::show))
        .route("/dashboard/audit/entries", get(audit::fragment))
        .route(members::PATH, get(members::list).post(members::invite))
        .route("/dashboard/members/{id}/role", post(members::change_role))
        .route("/dashboard/members/{id}/remove", get(members::confirm_remove).post(members::remove))
        .route(members::ACCEPT, get(members::accept_form).post(members::accept))
        .route(admin_keys::PATH, get(admin_keys::list).post(admin_keys::create))
        .route(oauth::AUTHORIZE_PATH, get(oauth::authorize).post(oauth::decide))
        .route(oauth::PATH, get(oauth::connected))
        .route("/dashboard/admin-keys/{id}/revoke", get(admin_keys::confirm_revoke).post(admin_keys::revoke))
        .route(webhooks::PATH, get(webhooks::list).post(webhooks::create))
        .route("/dashboard/webhooks/{id}", get(webhooks::show))
        .route("/dashboard/webhooks/{id}/test", post(webhooks::test))
        .route("/dashboard/webhooks/{id}/enable", post(webhooks::enable))
        .route("/dashboard/webhooks/{id}/disable", post(webhooks::disable))
        .route("/dashboard/webhooks/{id}/replay", post(webhooks::replay))
        .route("/dashboard/webhooks/{id}/rotate-secret", post(webhooks::rotate))
        .route("/dashboard/webhooks/{id}/delete", get(webhooks::confirm_delete).post(webhooks::delete))
        .route("/dashboard/style.css", get(layout::stylesheet))
        .route("/dashboard/app.js", get(layout::script))
        .layer(axum::middleware::from_fn(layout::security_headers))
}
