//! The web dashboard at `/dashboard`, served by the same binary and port: server-rendered HTML
//! (maud, checked at compile time) over the same handlers and rules as the API, signed in with
//! a member's login and password. Nothing here decides anything the API does not: each page
//! calls the API's handler with the member's [`Session`](crate::auth::Session), so roles,
//! validation, messages and the audit trail are the API's.
//!
//! - `session.rs`: the session cookie, the CSRF token bound to it, the `Origin` check;
//! - `layout.rs`: the page shell (navigation, environment banner), the security headers and
//!   the stylesheet;
//! - `form.rs` reads a submitted form; `policy.rs` is a key's policy as a form;
//! - one module per page: `sign_in.rs`, `keys.rs` (the table, creating), `key.rs` (a key),
//!   `usage.rs` (a key's traffic chart).

mod form;
mod key;
mod keys;
mod layout;
mod policy;
mod session;
mod sign_in;
mod usage;

use crate::state::SharedState;
use axum::Router;
use axum::response::Redirect;
use axum::routing::{get, post};

/// Where a signed-in member lands.
const HOME: &str = "/dashboard/keys";

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/dashboard", get(|| async { Redirect::to(HOME) }))
        .route("/dashboard/sign-in", get(sign_in::form).post(sign_in::submit))
        .route("/dashboard/sign-out", post(sign_in::sign_out))
        .route("/dashboard/keys", get(keys::list).post(keys::create))
        .route("/dashboard/keys/new", get(keys::new))
        .route("/dashboard/keys/{id}", get(key::show).post(key::update))
        .route("/dashboard/keys/{id}/rotate", post(key::rotate))
        .route("/dashboard/keys/{id}/usage", get(usage::fragment))
        .route("/dashboard/keys/{id}/revoke", get(key::confirm_revoke).post(key::revoke))
        .route("/dashboard/keys/{id}/secrets/{secret_id}/revoke", post(key::revoke_secret))
        .route("/dashboard/style.css", get(layout::stylesheet))
        .route("/dashboard/app.js", get(layout::script))
        .layer(axum::middleware::from_fn(layout::security_headers))
}
