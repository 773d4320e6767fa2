//! Who is calling. Three credentials reach the API (docs/security.md):
//! the operator token, a session token, and a tool key. Each has an extractor or function
//! here that answers with the contract's 401/403 codes in the documented order. A session (or an
//! admin key) carries its member's role; handlers ask `session.require(permission)` before
//! acting, and pass `session.audit(..)` to the store so the change is audited with its actor.

pub mod key_cache;
pub mod operator_token;
pub mod password;
pub mod throttle;
pub mod tool_key;

use crate::error::{ApiError, ApiResult};
use crate::extract::ClientIp;
use crate::state::{AppState, SharedState};
use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, header, request::Parts};
use std::net::IpAddr;
use visa_core::ErrorCode;
use visa_core::key::{KeyKind, RawKey};
use visa_core::role::{Permission, Role};
use visa_core::secret::SecretHash;
use visa_store::{Account, AccountId, Actor, AuditContext, KeyId};

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

/// Where a request came from: what the audit log records next to the actor.
#[derive(Debug, Clone)]
pub struct Origin {
    pub ip: IpAddr,
    pub user_agent: Option<String>,
}

/// Longest user agent the audit log keeps.
const MAX_USER_AGENT: usize = 256;

impl FromRequestParts<SharedState> for Origin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state).await?;
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(MAX_USER_AGENT).collect());
        Ok(Origin { ip, user_agent })
    }
}

impl Origin {
    /// The audit context of a change `actor` makes from here, now.
    pub fn audit(&self, actor: Actor, now: time::OffsetDateTime) -> AuditContext {
        AuditContext { actor, ip: Some(self.ip), user_agent: self.user_agent.clone(), now }
    }
}

/// The operator: may create accounts, approve them and credit balances.
pub struct Operator {
    pub origin: Origin,
}

impl Operator {
    pub fn audit(&self, state: &AppState) -> AuditContext {
        self.origin.audit(Actor::Operator, state.now())
    }
}

impl FromRequestParts<SharedState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        let token = require_bearer(&parts.headers)?;
        let presented = state.hasher.hash(token);
        if !presented.matches(&state.operator_token) {
            return Err(invalid_credential());
        }
        Ok(Operator { origin: Origin::from_request_parts(parts, state).await? })
    }
}

/// A signed-in account: a member's session token, or an admin key (`VisaKey_admin_live_...`),
/// which is accepted wherever a session is, for automation, and acts with the admin role.
#[derive(Clone)]
pub struct Session {
    pub account: Account,
    pub role: Role,
    /// The member, or the admin key, acting.
    pub actor: Actor,
    pub origin: Origin,
    /// The session token's hash; `None` for an admin key.
    pub session_hash: Option<SecretHash>,
}

impl Session {
    /// 403 FORBIDDEN unless the caller's role grants `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if self.role.allows(permission) {
            return Ok(());
        }
        tracing::warn!(actor = ?self.actor, role = %self.role, ?permission, ip = %self.origin.ip, "permission denied");
        Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("the {} role may not {}", self.role, permission_description(permission)),
        ))
    }

    pub fn is_admin_key(&self) -> bool {
        matches!(self.actor, Actor::AdminKey { .. })
    }

    /// The audit context of a change this caller makes now.
    pub fn audit(&self, state: &AppState) -> AuditContext {
        self.origin.audit(self.actor.clone(), state.now())
    }
}

fn permission_description(permission: Permission) -> &'static str {
    match permission {
        Permission::Read => "read this account",
        Permission::ManageKeys => "manage keys (developer or above)",
        Permission::ManageMembers => "manage members or admin keys (admin or above)",
        Permission::ManageWebhooks => "manage webhooks (admin or above)",
        Permission::Own => "do this (owners only)",
    }
}

impl FromRequestParts<SharedState> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        let token = require_bearer(&parts.headers)?;
        let (account, role, actor, session_hash) = if let Ok(raw) = RawKey::parse(&state.brand, token) {
            let (account, role, actor) = admin_key_principal(state, &raw).await?;
            (account, role, actor, None)
        } else if token.starts_with(SESSION_TOKEN_PREFIX) {
            let token = token.to_owned();
            let origin = Origin::from_request_parts(parts, state).await?;
            return Session::of_session_token(state, &token, origin).await?.ok_or_else(invalid_credential);
        } else {
            return Err(invalid_credential());
        };
        let origin = Origin::from_request_parts(parts, state).await?;
        Ok(Session { account, role, actor, origin, session_hash })
    }
}

impl Session {
    /// The live session a session token names (as a bearer token, or the dashboard's
    /// cookie); `None` if it is unknown, expired or ended.
    pub async fn of_session_token(state: &SharedState, token: &str, origin: Origin) -> ApiResult<Option<Session>> {
        if !token.starts_with(SESSION_TOKEN_PREFIX) {
            return Ok(None);
        }
        let hash = state.hasher.hash(token);
        let Some((account, member)) = state.store.session_principal(hash, state.now()).await? else {
            return Ok(None);
        };
        let actor = Actor::Member { id: member.id, login: member.login };
        Ok(Some(Session { account, role: member.role, actor, origin, session_hash: Some(hash) }))
    }
}

/// An admin key as a principal: same environment, known, not revoked; it acts as an admin.
/// A tool key is not a session credential.
async fn admin_key_principal(state: &SharedState, raw: &RawKey) -> Result<(Account, Role, Actor), ApiError> {
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
    Ok((account, Role::Admin, Actor::AdminKey { id: key.id, label: key.label.as_str().to_owned() }))
}

/// Whoever may read an account's balance and executions: a signed-in session, or one of its
/// tool keys (read-only keys included). A key sees only its own executions.
pub enum Reader {
    Session(Account),
    Key(std::sync::Arc<visa_store::AuthRecord>),
}

impl Reader {
    pub fn account_id(&self) -> AccountId {
        match self {
            Reader::Session(account) => account.id,
            Reader::Key(record) => record.key.account_id,
        }
    }

    /// The key whose view this is limited to, if the caller is a key.
    pub fn key_id(&self) -> Option<KeyId> {
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
            let session = Session::from_request_parts(parts, state).await?;
            session.require(Permission::Read)?;
            return Ok(Reader::Session(session.account));
        }
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state).await?;
        tool_key::authenticate(state, &parts.headers, ip, tool_key::Audience::Api).await.map(Reader::Key)
    }
}

/// The operator or a signed-in account: for actions either may take, such as revoking leaked
/// keys (the operator for any account, a session for its own).
pub enum OperatorOrSession {
    Operator(Operator),
    Session(Session),
}

impl FromRequestParts<SharedState> for OperatorOrSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        match Operator::from_request_parts(parts, state).await {
            Ok(operator) => Ok(OperatorOrSession::Operator(operator)),
            Err(_) => Session::from_request_parts(parts, state).await.map(OperatorOrSession::Session),
        }
    }
}
