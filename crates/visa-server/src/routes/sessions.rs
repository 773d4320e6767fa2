//! Signing in: `POST /v1/api/sessions` trades a login and password for a session token.

use crate::auth::{SESSION_TOKEN_PREFIX, password};
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::routes::rfc3339;
use crate::state::{AppState, SharedState};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use visa_core::ErrorCode;
use visa_core::key::random_token;
use visa_store::{Account, NewSession};

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

/// Mints and stores a session for `account`; returns the raw token and its expiry.
pub async fn open_session(state: &AppState, account: &Account) -> ApiResult<(String, String)> {
    let token = random_token(SESSION_TOKEN_PREFIX);
    let now = state.now();
    let expires_at = now + state.session_ttl;
    let new = NewSession { account_id: account.id, token_hash: state.hasher.hash(&token), created_at: now, expires_at };
    state.store.create_session(new).await?;
    Ok((token, rfc3339(expires_at)))
}

#[utoipa::path(post, path = "/v1/api/sessions", tag = "sessions", request_body = SignInRequest,
    responses((status = 201, body = SessionResponse), (status = 401, body = crate::routes::ErrorBody)))]
pub async fn sign_in(
    State(state): State<SharedState>,
    JsonBody(req): JsonBody<SignInRequest>,
) -> ApiResult<(StatusCode, Json<SessionResponse>)> {
    let account = state.store.account_by_login(&req.login).await?;
    let stored = account.as_ref().and_then(|a| a.password_hash.clone());
    if !password::verify(req.password, stored).await {
        return Err(ApiError::new(ErrorCode::AuthInvalid, "wrong login or password"));
    }
    let account = account.ok_or_else(|| ApiError::new(ErrorCode::AuthInvalid, "wrong login or password"))?;
    let (session_token, expires_at) = open_session(&state, &account).await?;
    tracing::info!(account = %account.login, "session opened");
    Ok((StatusCode::CREATED, Json(SessionResponse { success: true, session_token, expires_at })))
}
