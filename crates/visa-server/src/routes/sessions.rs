//! Sessions: `POST /v1/api/sessions` trades a member's login and password for a session
//! token, which acts with that member's role, read afresh on every request;
//! `GET /v1/api/sessions/current` says who a credential is (`visa-cli whoami`) and
//! `DELETE /v1/api/sessions/current` ends the session at once (`visa-cli logout`).
//! A member lists their live sessions (`GET /v1/api/sessions`: where and when each was
//! opened) and ends any of them (`DELETE /v1/api/sessions/{id}`); owners and admins do the
//! same for another member (`/v1/api/members/{id}/sessions`). Changing the password
//! (`POST /v1/api/sessions/current/password`) ends every other session of the member.

use crate::auth::{Origin, SESSION_TOKEN_PREFIX, Session, password};
use crate::error::{ApiError, ApiResult, not_found_as};
use crate::extract::JsonBody;
use crate::routes::members::{member_error, member_id};
use crate::routes::rfc3339;
use crate::state::{AppState, SharedState};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use visa_core::ErrorCode;
use visa_core::key::random_token;
use visa_core::role::Permission;
use visa_core::secret::SecretHash;
use visa_store::{Actor, AuditContext, Member, NewSession, SessionRecord, SessionsToEnd};

/// This resource's routes, each registered with its OpenAPI operation (`super::api`).
pub fn routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new()
        .routes(routes!(sign_in, list))
        .routes(routes!(current, sign_out))
        .routes(routes!(change_password))
        .routes(routes!(end))
        .routes(routes!(member_sessions, end_member_sessions))
}

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

/// Mints and stores a session for `member`: the answer of a sign-in (or an accepted
/// invitation, or an account's creation). `audit` says who opened it, from where.
pub async fn open_session(
    state: &AppState,
    member: &Member,
    audit: AuditContext,
) -> ApiResult<(StatusCode, Json<SessionResponse>)> {
    let token = random_token(SESSION_TOKEN_PREFIX);
    let now = audit.now;
    let expires_at = now + state.session_ttl;
    let new = NewSession {
        account_id: member.account_id,
        member_id: member.id,
        token_hash: state.hasher.hash(&token),
        created_at: now,
        expires_at,
    };
    state.store.create_session(new, audit).await?;
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
    origin: Origin,
    JsonBody(req): JsonBody<SignInRequest>,
) -> ApiResult<(StatusCode, Json<SessionResponse>)> {
    let member = authenticate(&state, &origin, &req.login, req.password).await?;
    let audit = origin.audit(Actor::Member { id: member.id, login: member.login.clone() }, state.now());
    open_session(&state, &member, audit).await
}

/// The member a login and password name (throttled per IP and login), for a sign-in through
/// the API or the dashboard.
pub async fn authenticate(state: &AppState, origin: &Origin, login: &str, password: String) -> ApiResult<Member> {
    let wrong = || ApiError::new(ErrorCode::AuthInvalid, "wrong login or password");
    state.sign_in.attempt(origin.ip, Some(login))?;
    let member = state.store.member_by_login(login).await?;
    // Verified even for an unknown login (against a dummy hash), so timing does not tell
    // which logins exist.
    let stored = member.as_ref().and_then(|m| m.password_hash.clone());
    if !password::verify(password, stored).await? {
        return Err(wrong());
    }
    let member = member.ok_or_else(wrong)?;
    tracing::info!(member = %member.login, "session opened");
    Ok(member)
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
    let (_, _, hash) = signed_in(&session)?;
    state.store.end_session(hash, session.audit(&state)).await?;
    tracing::info!(actor = ?session.actor, "session ended");
    Ok(Json(SignedOut { success: true }))
}

/// The member behind a session token and its hash; an admin key is refused (it has no
/// sessions or password of its own).
fn signed_in(session: &Session) -> ApiResult<(i64, &str, SecretHash)> {
    match (&session.actor, session.session_hash) {
        (Actor::Member { id, login }, Some(hash)) => Ok((*id, login, hash)),
        _ => Err(ApiError::invalid("an admin key is not a session: revoke it with `visa-cli admin-keys revoke ID`")),
    }
}

/// A live session, without its token.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionView {
    pub id: i64,
    pub member_id: i64,
    pub created_at: String,
    pub expires_at: String,
    /// The client IP that opened it (for the operator's, the operator's).
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// Whether this is the session asking.
    pub current: bool,
}

impl From<SessionRecord> for SessionView {
    fn from(s: SessionRecord) -> Self {
        Self {
            id: s.id,
            member_id: s.member_id,
            created_at: rfc3339(s.created_at),
            expires_at: rfc3339(s.expires_at),
            ip: s.ip.map(|ip| ip.to_string()),
            user_agent: s.user_agent,
            current: s.current,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionList {
    pub success: bool,
    pub object: String,
    pub sessions: Vec<SessionView>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionsEnded {
    pub success: bool,
    /// How many sessions ended.
    pub ended: u64,
}

const SESSION_NOT_FOUND: &str = "no live session with this id";

async fn sessions_of(state: &AppState, session: &Session, member_id: i64) -> ApiResult<Json<SessionList>> {
    let current = session.session_hash;
    let sessions =
        state.store.list_sessions(session.account.id, member_id, current, state.now()).await.map_err(member_error)?;
    Ok(Json(SessionList {
        success: true,
        object: "list".into(),
        sessions: sessions.into_iter().map(SessionView::from).collect(),
    }))
}

#[utoipa::path(get, path = "/v1/api/sessions", tag = "sessions",
    responses((status = 200, body = SessionList), (status = 400, body = crate::routes::ErrorBody)), security(("session" = [])))]
pub async fn list(State(state): State<SharedState>, session: Session) -> ApiResult<Json<SessionList>> {
    let (member, _, _) = signed_in(&session)?;
    sessions_of(&state, &session, member).await
}

#[utoipa::path(delete, path = "/v1/api/sessions/{id}", tag = "sessions", params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = SessionsEnded), (status = 404, body = crate::routes::ErrorBody)), security(("session" = [])))]
pub async fn end(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
) -> ApiResult<Json<SessionsEnded>> {
    let (member, _, _) = signed_in(&session)?;
    let id = crate::routes::path_id(&id, ErrorCode::NotFound, SESSION_NOT_FOUND)?;
    let ended = state
        .store
        .end_sessions(session.account.id, member, SessionsToEnd::One(id), session.role, session.audit(&state))
        .await
        .map_err(not_found_as(ErrorCode::NotFound, SESSION_NOT_FOUND))?;
    tracing::info!(session = id, "session ended by its member");
    Ok(Json(SessionsEnded { success: true, ended }))
}

#[utoipa::path(get, path = "/v1/api/members/{id}/sessions", tag = "members", params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = SessionList), (status = 403, body = crate::routes::ErrorBody), (status = 404, body = crate::routes::ErrorBody)),
    security(("session" = [])))]
pub async fn member_sessions(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
) -> ApiResult<Json<SessionList>> {
    session.require(Permission::ManageMembers)?;
    sessions_of(&state, &session, member_id(&id)?).await
}

#[utoipa::path(delete, path = "/v1/api/members/{id}/sessions", tag = "members", params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = SessionsEnded), (status = 403, body = crate::routes::ErrorBody), (status = 404, body = crate::routes::ErrorBody)),
    security(("session" = [])))]
pub async fn end_member_sessions(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
) -> ApiResult<Json<SessionsEnded>> {
    session.require(Permission::ManageMembers)?;
    let id = member_id(&id)?;
    // A member ending their own sessions this way keeps the one asking.
    let keep = session.session_hash.filter(|_| matches!(session.actor, Actor::Member { id: me, .. } if me == id));
    let ended = state
        .store
        .end_sessions(session.account.id, id, SessionsToEnd::AllExcept(keep), session.role, session.audit(&state))
        .await
        .map_err(member_error)?;
    tracing::info!(member_id = id, ended, "member's sessions ended");
    Ok(Json(SessionsEnded { success: true, ended }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    #[schema(schema_with = crate::routes::schema::password)]
    pub new_password: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PasswordChanged {
    pub success: bool,
    pub login: String,
    /// How many other sessions of the member ended with the change.
    pub other_sessions_ended: u64,
}

#[utoipa::path(post, path = "/v1/api/sessions/current/password", tag = "sessions", request_body = ChangePasswordRequest,
    responses((status = 200, body = PasswordChanged), (status = 401, body = crate::routes::ErrorBody), (status = 429, body = crate::routes::ErrorBody)),
    security(("session" = [])))]
pub async fn change_password(
    State(state): State<SharedState>,
    session: Session,
    JsonBody(req): JsonBody<ChangePasswordRequest>,
) -> ApiResult<Json<PasswordChanged>> {
    let (member_id, login, hash) = signed_in(&session)?;
    // Guessing the current password through a stolen session is throttled like a sign-in.
    state.sign_in.attempt(session.origin.ip, Some(login))?;
    password::validate(&req.new_password)?;
    let stored = state.store.member_by_login(login).await?.filter(|m| m.id == member_id).and_then(|m| m.password_hash);
    if !password::verify(req.current_password, stored).await? {
        return Err(ApiError::new(ErrorCode::AuthInvalid, "the current password is wrong"));
    }
    let new_hash = password::hash(req.new_password).await?;
    let (member, ended) = state
        .store
        .change_password(session.account.id, member_id, new_hash, hash, session.audit(&state))
        .await
        .map_err(member_error)?;
    tracing::info!(member_id, "password changed; other sessions ended");
    Ok(Json(PasswordChanged { success: true, login: member.login, other_sessions_ended: ended }))
}
