//! The OAuth surface for MCP clients that sign in instead of holding a key (docs/mcp.md,
//! "OAuth"): the protected resource's metadata (RFC 9728) for `/v1/mcp`, the authorization
//! server's metadata (RFC 8414), dynamic client registration (RFC 7591) and the token endpoint
//! (RFC 6749, PKCE S256 only, RFC 8707 resources). The authorize step is a dashboard page
//! (`crate::dashboard::oauth`), where a member signs in and approves. The use cases are
//! `crate::app::oauth`; this module only speaks OAuth's wire: its refusals are OAuth's
//! `{error, error_description}` (the protocol's own shape, as the OpenAI surface answers in
//! OpenAI's), never cached.

use crate::app::oauth::{self, OAuthError, TokenRequest};
use crate::auth::Origin;
use crate::extract::{ClientIp, PublicOrigin};
use crate::mcp;
use crate::state::SharedState;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// Where the consent page is (under the dashboard, where a member's session cookie is sent).
pub const AUTHORIZE_PATH: &str = "/dashboard/oauth/authorize";
const TOKEN_PATH: &str = "/oauth/token";
const REGISTER_PATH: &str = "/oauth/register";

pub fn router() -> Router<SharedState> {
    Router::new()
        .route(mcp::RESOURCE_METADATA, get(resource_metadata))
        .route(&format!("{}{}", mcp::RESOURCE_METADATA, mcp::PATH), get(resource_metadata))
        .route("/.well-known/oauth-authorization-server", get(server_metadata))
        .route(REGISTER_PATH, post(register))
        .route(TOKEN_PATH, post(token))
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": self.error, "error_description": self.description }));
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"visa-keys\""));
        }
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        no_store(response)
    }
}

/// Tokens and the errors about them are never cached (RFC 6749 §5.1).
fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// RFC 9728 §3.2: the MCP endpoint, and this server as its authorization server.
async fn resource_metadata(origin: PublicOrigin) -> Json<Value> {
    Json(json!({
        "resource": mcp::resource_url(&origin),
        "authorization_servers": [origin.0],
        "bearer_methods_supported": ["header"],
        "resource_name": "Visa Keys",
        "resource_documentation": format!("{}/docs/mcp.md", origin.0),
    }))
}

/// RFC 8414 §2.
async fn server_metadata(origin: PublicOrigin) -> Json<Value> {
    let at = |path: &str| format!("{}{path}", origin.0);
    Json(json!({
        "issuer": origin.0,
        "authorization_endpoint": at(AUTHORIZE_PATH),
        "token_endpoint": at(TOKEN_PATH),
        "registration_endpoint": at(REGISTER_PATH),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "service_documentation": at("/docs/mcp.md"),
    }))
}

/// RFC 7591 §3: 201 with the client's registration.
async fn register(
    State(state): State<SharedState>,
    ClientIp(ip): ClientIp,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| OAuthError::new("invalid_client_metadata", format!("the body is not JSON: {e}")))?;
    let client = oauth::register(&state, ip, body).await?;
    Ok(no_store((StatusCode::CREATED, Json(client)).into_response()))
}

/// RFC 6749 §3.2: a form-encoded request, a JSON answer. A parameter sent twice is refused
/// (§3.2: "request and response parameters MUST NOT be included more than once").
async fn token(
    State(state): State<SharedState>,
    origin: PublicOrigin,
    client: Origin,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let mut fields = serde_json::Map::new();
    for (name, value) in url::form_urlencoded::parse(&body) {
        if fields.insert(name.clone().into_owned(), Value::String(value.into_owned())).is_some() {
            return Err(OAuthError::new("invalid_request", format!("{name} is sent more than once")));
        }
    }
    let request: TokenRequest =
        serde_json::from_value(Value::Object(fields)).map_err(|e| OAuthError::new("invalid_request", e.to_string()))?;
    let tokens = oauth::token(&state, &client, request, &mcp::resource_url(&origin)).await?;
    Ok(no_store(Json(tokens).into_response()))
}
