//! Signing in: `POST /v1/api/sessions` trades a member's login and password for a session
//! token. The session acts with that member's role, read afresh on every request.

use crate::auth::{SESSION_TOKEN_PREFIX, password};
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
use visa_store::{Member, NewSession};

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
}

/// Mints and stores a session for `member`; returns the raw token and its expiry.
pub async fn open_session(state: &AppState, member: &Member) -> ApiResult<(String, String)> {
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
    Ok((token, rfc3339(expires_at)))
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
    let (session_token, expires_at) = open_session(&state, &member).await?;
    tracing::info!(member = %member.login, "session opened");
    Ok((StatusCode::CREATED, Json(SessionResponse { success: true, session_token, expires_at })))
}
