//! Sessions: `POST /v1/api/sessions` trades a member's login and password for a session
//! token, which acts with that member's role, read afresh on every request;
//! `GET /v1/api/sessions/current` says who a credential is (`visa-cli whoami`) and
//! `DELETE /v1/api/sessions/current` ends the session at once (`visa-cli logout`).

use crate::auth::{SESSION_TOKEN_PREFIX, Session, password};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ClientIp, JsonBody};
use crate::routes::rfc3339;
use crate::state::{AppState, SharedState};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use visa_core::ErrorCode;
use visa_core::key::random_token;
use visa_store::{Actor, Member, NewSession};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInRequest {
    pub login: String,
    pub password: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionResponse {
    pub success: bool,
    /// Send as `Authorization: Bearer <session_token>`. Shown once.
    pub session_token: String,
    pub expires_at: String,
    /// The member signed in.
    pub login: String,
}

/// Mints and stores a session for `member`: the answer of a sign-in (or an accepted invitation).
pub async fn open_session(state: &AppState, member: &Member) -> ApiResult<(StatusCode, Json<SessionResponse>)> {
    let token = random_token(SESSION_TOKEN_PREFIX);
    let now = state.now();
    let expires_at = now + state.session_ttl;
    let new = NewSession {
        account_id: member.account_id,
        member_id: member.id,
        token_hash: state.hasher.hash(&token),
        created_at: now,
        expires_at,
    };
    state.store.create_session(new).await?;
    let response = SessionResponse {
        success: true,
        session_token: token,
        expires_at: rfc3339(expires_at),
        login: member.login.clone(),
    };
    Ok((StatusCode::CREATED, Json(response)))
}

#[utoipa::path(post, path = "/v1/api/sessions", tag = "sessions", request_body = SignInRequest,
    responses((status = 201, body = SessionResponse), (status = 401, body = crate::routes::ErrorBody),
              (status = 429, body = crate::routes::ErrorBody), (status = 503, body = crate::routes::ErrorBody)))]
pub async fn sign_in(
    State(state): State<SharedState>,
    ClientIp(ip): ClientIp,
    JsonBody(req): JsonBody<SignInRequest>,
) -> ApiResult<(StatusCode, Json<SessionResponse>)> {
    let wrong = || ApiError::new(ErrorCode::AuthInvalid, "wrong login or password");
    state.sign_in.attempt(ip, Some(&req.login))?;
    let member = state.store.member_by_login(&req.login).await?;
    // Verified even for an unknown login (against a dummy hash), so timing does not tell
    // which logins exist.
    let stored = member.as_ref().and_then(|m| m.password_hash.clone());
    if !password::verify(req.password, stored).await? {
        return Err(wrong());
    }
    let member = member.ok_or_else(wrong)?;
    tracing::info!(member = %member.login, "session opened");
    open_session(&state, &member).await
}

/// Who a session (or an admin key) is.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CurrentSession {
    pub success: bool,
    /// `session` or `admin_key`.
    pub credential: String,
    pub account_id: i64,
    pub account: String,
    /// The member's login, or the admin key's label.
    pub actor: String,
    pub role: String,
}

#[utoipa::path(get, path = "/v1/api/sessions/current", tag = "sessions",
    responses((status = 200, body = CurrentSession)), security(("session" = [])))]
pub async fn current(session: Session) -> Json<CurrentSession> {
    let (credential, actor) = match &session.actor {
        Actor::AdminKey { label, .. } => ("admin_key", label.clone()),
        Actor::Member { login, .. } => ("session", login.clone()),
        Actor::Operator => ("operator", String::new()),
    };
    Json(CurrentSession {
        success: true,
        credential: credential.into(),
        account_id: session.account.id,
        account: session.account.login.clone(),
        actor,
        role: session.role.to_string(),
    })
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SignedOut {
    pub success: bool,
}

#[utoipa::path(delete, path = "/v1/api/sessions/current", tag = "sessions",
    responses((status = 200, body = SignedOut)), security(("session" = [])))]
pub async fn sign_out(State(state): State<SharedState>, session: Session) -> ApiResult<Json<SignedOut>> {
    let hash = session.session_hash.ok_or_else(|| {
        ApiError::invalid("an admin key is not a session: revoke it with `visa-cli admin-keys revoke ID`")
    })?;
    state.store.end_session(hash).await?;
    tracing::info!(actor = ?session.actor, "session ended");
    Ok(Json(SignedOut { success: true }))
}
