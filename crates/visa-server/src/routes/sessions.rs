//! Sessions over HTTP (`crate::app::sessions`): `/v1/api/sessions`, the current session, its
//! password, and a member's sessions for owners and admins.

use crate::app;
use crate::auth::{Origin, Session};
use crate::error::ApiResult;
use crate::extract::JsonBody;
use crate::state::SharedState;
use crate::wire::members::member_id;
use crate::wire::sessions::{
    ChangePasswordRequest, CurrentSession, PasswordChanged, SessionList, SessionResponse, SessionsEnded, SignInRequest,
    SignedOut, session_id,
};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This resource's routes, each registered with its OpenAPI operation (`super::api`).
pub fn routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new()
        .routes(routes!(sign_in, list))
        .routes(routes!(current, sign_out))
        .routes(routes!(change_password))
        .routes(routes!(end))
        .routes(routes!(member_sessions, end_member_sessions))
}

#[utoipa::path(post, path = "/v1/api/sessions", tag = "sessions", request_body = SignInRequest,
    responses((status = 201, body = SessionResponse), (status = 401, body = crate::wire::ErrorBody),
              (status = 429, body = crate::wire::ErrorBody), (status = 503, body = crate::wire::ErrorBody)))]
pub async fn sign_in(
    State(state): State<SharedState>,
    origin: Origin,
    JsonBody(req): JsonBody<SignInRequest>,
) -> ApiResult<(StatusCode, Json<SessionResponse>)> {
    Ok((StatusCode::CREATED, Json(app::sessions::sign_in(&state, &origin, req).await?)))
}

#[utoipa::path(get, path = "/v1/api/sessions/current", tag = "sessions",
    responses((status = 200, body = CurrentSession)), security(("session" = [])))]
pub async fn current(session: Session) -> Json<CurrentSession> {
    Json(app::sessions::current(&session))
}

#[utoipa::path(delete, path = "/v1/api/sessions/current", tag = "sessions",
    responses((status = 200, body = SignedOut)), security(("session" = [])))]
pub async fn sign_out(State(state): State<SharedState>, session: Session) -> ApiResult<Json<SignedOut>> {
    Ok(Json(app::sessions::sign_out(&state, &session).await?))
}

#[utoipa::path(get, path = "/v1/api/sessions", tag = "sessions",
    responses((status = 200, body = SessionList), (status = 400, body = crate::wire::ErrorBody)), security(("session" = [])))]
pub async fn list(State(state): State<SharedState>, session: Session) -> ApiResult<Json<SessionList>> {
    Ok(Json(app::sessions::list(&state, &session).await?))
}

#[utoipa::path(delete, path = "/v1/api/sessions/{id}", tag = "sessions", params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = SessionsEnded), (status = 404, body = crate::wire::ErrorBody)), security(("session" = [])))]
pub async fn end(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
) -> ApiResult<Json<SessionsEnded>> {
    Ok(Json(app::sessions::end(&state, &session, session_id(&id)?).await?))
}

#[utoipa::path(get, path = "/v1/api/members/{id}/sessions", tag = "members", params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = SessionList), (status = 403, body = crate::wire::ErrorBody), (status = 404, body = crate::wire::ErrorBody)),
    security(("session" = [])))]
pub async fn member_sessions(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
) -> ApiResult<Json<SessionList>> {
    Ok(Json(app::sessions::member_sessions(&state, &session, member_id(&id)?).await?))
}

#[utoipa::path(delete, path = "/v1/api/members/{id}/sessions", tag = "members", params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = SessionsEnded), (status = 403, body = crate::wire::ErrorBody), (status = 404, body = crate::wire::ErrorBody)),
    security(("session" = [])))]
pub async fn end_member_sessions(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
) -> ApiResult<Json<SessionsEnded>> {
    Ok(Json(app::sessions::end_member_sessions(&state, &session, member_id(&id)?).await?))
}

#[utoipa::path(post, path = "/v1/api/sessions/current/password", tag = "sessions", request_body = ChangePasswordRequest,
    responses((status = 200, body = PasswordChanged), (status = 401, body = crate::wire::ErrorBody), (status = 429, body = crate::wire::ErrorBody)),
    security(("session" = [])))]
pub async fn change_password(
    State(state): State<SharedState>,
    session: Session,
    JsonBody(req): JsonBody<ChangePasswordRequest>,
) -> ApiResult<Json<PasswordChanged>> {
    Ok(Json(app::sessions::change_password(&state, &session, req).await?))
}
