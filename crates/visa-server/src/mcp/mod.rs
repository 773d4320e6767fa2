//! The MCP surface, `/v1/mcp`: agents that speak the Model Context Protocol (Streamable HTTP,
//! through the official Rust SDK, `rmcp`) list the paid tools their Visa key may run and call
//! them, each call one paid call on the same money path as execute (`app::paid_call`), charged
//! once per Idempotency-Key. A tool key is the credential (`Authorization: Bearer` or
//! `X-Api-Key`), checked here before rmcp sees the request; sessions and admin keys are refused.
//!
//! - `server.rs`: `tools/list` and `tools/call`;
//! - `answer.rs`: a call's result and its refusals, in MCP's words (docs/mcp.md);
//! - `sessions.rs`: sessions kept in the database, continued on any node.

mod answer;
mod server;
mod sessions;

use crate::app::paid_call;
use crate::auth::{SESSION_TOKEN_PREFIX, bearer_token, tool_key};
use crate::error::ApiError;
use crate::extract::{ClientIp, PublicOrigin};
use crate::state::SharedState;
pub use answer::ToolResult;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use server::{Caller, Server};
use std::sync::Arc;
use visa_core::ErrorCode;

/// Where MCP clients connect.
pub const PATH: &str = "/v1/mcp";

/// The MCP endpoint over `state`. A key, not the `Host`, admits a request, so rmcp's
/// loopback-only `Host` check (against DNS rebinding of a local server) is off. Sessions are
/// kept in the database (`sessions`), so any node continues them.
pub fn router(state: SharedState) -> Router<SharedState> {
    let mcp = Server { state: state.clone() };
    let mut config = StreamableHttpServerConfig::default().disable_allowed_hosts().with_json_response(true);
    config.session_store = Some(Arc::new(sessions::DatabaseSessions { state: state.clone() }));
    let service = StreamableHttpService::new(move || Ok(mcp.clone()), LocalSessionManager::default().into(), config);
    Router::new().nest_service(PATH, service).layer(axum::middleware::from_fn_with_state(state, authenticate))
}

/// Where the MCP endpoint's protected-resource metadata is (RFC 9728; `crate::oauth` serves it).
pub const RESOURCE_METADATA: &str = "/.well-known/oauth-protected-resource";

/// The protected-resource metadata of the MCP endpoint, as `WWW-Authenticate` names it.
pub fn resource_metadata_url(origin: &PublicOrigin) -> String {
    format!("{}{RESOURCE_METADATA}{PATH}", origin.0)
}

/// This server's MCP URL as the client reached it: the OAuth resource its tokens are bound to.
pub fn resource_url(origin: &PublicOrigin) -> String {
    format!("{}{PATH}", origin.0)
}

/// Admits a tool key, or an OAuth access token issued for this resource (every check of
/// execute: revoked, expired, CIDR, approval), and hands it to the server; a missing or wrong
/// one is 401 with `WWW-Authenticate` naming the protected-resource metadata (RFC 9728 §5.1),
/// a session or an admin key 403 naming why.
async fn authenticate(
    State(state): State<SharedState>,
    ClientIp(ip): ClientIp,
    origin: PublicOrigin,
    mut request: Request,
    next: Next,
) -> Response {
    // (An admin key is refused by `tool_key::authenticate` itself, as on execute.)
    if bearer_token(request.headers()).is_some_and(|t| t.starts_with(SESSION_TOKEN_PREFIX)) {
        let message = "MCP takes a tool key (Authorization: Bearer <brand>_live_…): a session cannot run tools";
        return ApiError::new(ErrorCode::Forbidden, message).into_response();
    }
    let resource = resource_url(&origin);
    match tool_key::authenticate(&state, request.headers(), ip, tool_key::Audience::Mcp(&resource))
        .await
        .map_err(paid_call::execute_path_error)
    {
        Ok(key) => {
            request.extensions_mut().insert(Caller { key, ip });
            next.run(request).await
        }
        Err(error) => {
            let mut response = error.into_response();
            if response.status() == axum::http::StatusCode::UNAUTHORIZED {
                let metadata = resource_metadata_url(&origin);
                let challenge = format!("Bearer realm=\"visa-keys\", resource_metadata=\"{metadata}\"");
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
                }
            }
            response
        }
    }
}
