//! Who is calling. Three credentials reach the API (DESIGN.md, "Principals and credentials"):
//! the operator token, a session token, and a tool key. Each has an extractor or function
//! here that answers with the seed's 401/403 codes in the documented order.

pub mod key_cache;
pub mod password;
pub mod tool_key;

use crate::error::ApiError;
use crate::state::SharedState;
use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, header, request::Parts};
use visa_core::ErrorCode;
use visa_core::key::{KeyKind, RawKey};
use visa_store::Account;

/// Prefix of session tokens; tells them apart from keys in logs and scanners.
pub const SESSION_TOKEN_PREFIX: &str = "visa_session";

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

fn require_bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    bearer_token(headers).ok_or_else(|| ApiError::new(ErrorCode::AuthRequired, "send 'Authorization: Bearer <token>'"))
}

fn invalid_credential() -> ApiError {
    ApiError::new(ErrorCode::AuthInvalid, "the credential is not recognized")
}

/// The operator: may create accounts, approve them and credit balances.
pub struct Operator;

impl FromRequestParts<SharedState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        let token = require_bearer(&parts.headers)?;
        let presented = state.hasher.hash(token);
        if presented.matches(&state.operator_token) { Ok(Operator) } else { Err(invalid_credential()) }
    }
}

/// A signed-in account: a session token, or an admin key (`VisaKey_admin_live_...`), which
/// is accepted wherever a session is, for automation.
pub struct Session {
    pub account: Account,
    /// Set when the caller is an admin key rather than a person's session.
    pub admin_key_id: Option<i64>,
}

impl FromRequestParts<SharedState> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        let token = require_bearer(&parts.headers)?;
        if let Ok(raw) = RawKey::parse(&state.brand, token) {
            return admin_key_session(state, &raw).await;
        }
        if !token.starts_with(SESSION_TOKEN_PREFIX) {
            return Err(invalid_credential());
        }
        let account =
            state.store.session_account(state.hasher.hash(token), state.now()).await?.ok_or_else(invalid_credential)?;
        Ok(Session { account, admin_key_id: None })
    }
}

/// An admin key as a session: same environment, known, not revoked. A tool key is not a
/// session credential.
async fn admin_key_session(state: &SharedState, raw: &RawKey) -> Result<Session, ApiError> {
    if raw.mode().kind != KeyKind::Admin {
        return Err(invalid_credential());
    }
    if raw.mode().environment != state.environment {
        return Err(ApiError::new(
            ErrorCode::KeyEnvironmentMismatch,
            format!("this is a {} admin key; this server serves {}", raw.mode().environment, state.environment),
        ));
    }
    let hash = state.hasher.hash(raw.expose());
    let (key, stored) = state.store.admin_key_by_secret(hash).await?.ok_or_else(invalid_credential)?;
    if !stored.matches(&hash) || key.revoked_at.is_some() {
        return Err(invalid_credential());
    }
    let account = state.store.account_by_id(key.account_id).await?.ok_or_else(invalid_credential)?;
    Ok(Session { account, admin_key_id: Some(key.id) })
}

/// Whoever may read an account's balance and executions: a signed-in session, or one of its
/// tool keys (read-only keys included). A key sees only its own executions.
pub enum Reader {
    Session(Account),
    Key(std::sync::Arc<visa_store::AuthRecord>),
}

impl Reader {
    pub fn account_id(&self) -> i64 {
        match self {
            Reader::Session(account) => account.id,
            Reader::Key(record) => record.key.account_id,
        }
    }

    /// The key whose view this is limited to, if the caller is a key.
    pub fn key_id(&self) -> Option<i64> {
        match self {
            Reader::Session(_) => None,
            Reader::Key(record) => Some(record.key.id),
        }
    }
}

impl FromRequestParts<SharedState> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        let admin_prefix = format!("{}_admin_", state.brand);
        let is_key = parts.headers.contains_key(tool_key::API_KEY_HEADER)
            || bearer_token(&parts.headers)
                .is_some_and(|t| t.starts_with(&format!("{}_", state.brand)) && !t.starts_with(&admin_prefix));
        if !is_key {
            return Session::from_request_parts(parts, state).await.map(|s| Reader::Session(s.account));
        }
        let crate::extract::ClientIp(ip) = crate::extract::ClientIp::from_request_parts(parts, state).await?;
        tool_key::authenticate(state, &parts.headers, ip).await.map(Reader::Key)
    }
}

/// The operator or a signed-in account: for actions either may take, such as revoking leaked
/// keys (the operator for any account, a session for its own).
pub enum OperatorOrSession {
    Operator,
    Session(Account),
}

impl FromRequestParts<SharedState> for OperatorOrSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        let token = require_bearer(&parts.headers)?;
        if state.hasher.hash(token).matches(&state.operator_token) {
            return Ok(OperatorOrSession::Operator);
        }
        Session::from_request_parts(parts, state).await.map(|s| OperatorOrSession::Session(s.account))
    }
}
