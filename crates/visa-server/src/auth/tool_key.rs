//! Authenticating a tool key on the data plane, in the API contract's order:
//! missing → AUTH_REQUIRED; malformed or bad checksum → AUTH_INVALID (no database read);
//! other environment → KEY_ENVIRONMENT_MISMATCH (no database read); unknown, revoked or
//! rotated-out secret → AUTH_INVALID; expired → KEY_EXPIRED; source IP outside the
//! allowlist → KEY_SOURCE_IP_DENIED. An OAuth access token presented anywhere but the MCP
//! resource it was issued for → AUTH_INVALID. Tool checks follow in the execute handler.

use crate::error::ApiError;
use crate::extract::single_header;
use crate::state::AppState;
use axum::http::HeaderMap;
use std::net::IpAddr;
use std::sync::Arc;
use visa_core::ErrorCode;
use visa_core::key::{KeyKind, RawKey};
use visa_store::AuthRecord;
use visa_store::rules::Denial;

pub const API_KEY_HEADER: &str = "x-api-key";

/// The raw key from `X-Api-Key`, or else from `Authorization: Bearer`. Each header once, and
/// when both are sent they must name the same key: otherwise a proxy that reads the other one
/// would bill a different key than we do (400).
fn presented_key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let api_key = single_header(headers, API_KEY_HEADER)?.filter(|k| !k.is_empty());
    single_header(headers, "authorization")?;
    match (api_key, super::bearer_token(headers)) {
        (Some(a), Some(b)) if a != b => {
            Err(ApiError::invalid("X-Api-Key and Authorization name different keys; send the key once"))
        }
        (Some(key), _) | (None, Some(key)) => Ok(Some(key)),
        (None, None) => Ok(None),
    }
}

fn invalid_key() -> ApiError {
    ApiError::new(ErrorCode::AuthInvalid, "the API key is not recognized")
}

/// Where a key is presented. A key minted by an OAuth consent is an access token for one MCP
/// resource, accepted there alone (RFC 8707's audience), never on the API or the OpenAI surface.
#[derive(Debug, Clone, Copy)]
pub enum Audience<'a> {
    Api,
    /// The MCP endpoint, by its URL as the client reached it.
    Mcp(&'a str),
}

/// Authenticates the request's tool key and checks its audience, expiry and source IP.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    client_ip: IpAddr,
    audience: Audience<'_>,
) -> Result<Arc<AuthRecord>, ApiError> {
    let text = presented_key(headers)?
        .ok_or_else(|| ApiError::new(ErrorCode::AuthRequired, "send the key in the X-Api-Key header"))?;
    let raw = RawKey::parse(&state.brand, text).map_err(|_| invalid_key())?;
    if raw.mode().environment != state.environment {
        return Err(ApiError::new(
            ErrorCode::KeyEnvironmentMismatch,
            format!("this is a {} key; this server serves {}", raw.mode().environment, state.environment),
        ));
    }
    if raw.mode().kind == KeyKind::Admin {
        return Err(ApiError::new(ErrorCode::Forbidden, "admin keys manage the account; they cannot execute tools"));
    }
    let record = lookup(state, &raw).await?;
    if let Some(resource) = &record.oauth_resource
        && !matches!(audience, Audience::Mcp(at) if at == resource)
    {
        return Err(ApiError::new(
            ErrorCode::AuthInvalid,
            "this OAuth access token is accepted only by the MCP endpoint it was issued for",
        ));
    }
    let now = state.now();
    record.gate(now).check_identity(now, client_ip).map_err(|d| denied(d, "", client_ip))?;
    state.last_used.record(record.key.id, record.secret_id, now, client_ip);
    Ok(record)
}

/// The answer to a key that may not make a call: the same whether authentication found it
/// or the hold's transaction did (a change landed in between).
pub fn denied(denial: Denial, tool: &str, client_ip: IpAddr) -> ApiError {
    match denial {
        Denial::KeyRevoked => invalid_key(),
        Denial::KeyExpired => ApiError::new(ErrorCode::KeyExpired, "the key has expired"),
        Denial::SourceIpDenied => ApiError::new(
            ErrorCode::KeySourceIpDenied,
            format!("requests from {client_ip} are not allowed for this key"),
        ),
        Denial::ToolNotPermitted => {
            ApiError::new(ErrorCode::ToolNotPermitted, format!("this key may not run '{tool}'"))
        }
        Denial::AccountNotApproved => {
            ApiError::new(ErrorCode::AccountNotApproved, "the key's account is not approved yet")
        }
        Denial::ReadOnly => ApiError::new(ErrorCode::Forbidden, "this key is read-only; it cannot execute tools"),
    }
}

async fn lookup(state: &AppState, raw: &RawKey) -> Result<Arc<AuthRecord>, ApiError> {
    let hash = state.hasher.hash(raw.expose());
    let cached = state.keys.get(&hash);
    state.metrics.key_cache(cached.is_some());
    if let Some(record) = cached {
        return Ok(record);
    }
    // Taken before the read: an invalidation that lands while it runs wins over its result.
    let generation = state.keys.generation();
    let record = state.store.key_by_secret(hash).await?.ok_or_else(invalid_key)?;
    if !record.secret_hash.matches(&hash) {
        return Err(invalid_key());
    }
    let record = Arc::new(record);
    state.keys.insert(hash, record.clone(), generation);
    Ok(record)
}
