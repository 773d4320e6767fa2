//! Members of an account (`/v1/api/members`): list, invite by login with a role, change a
//! role, remove. Viewers and developers may list; admins manage members; only an owner may
//! grant the owner role or change or remove an owner; the last owner cannot be demoted or
//! removed (enforced by the store in the change's transaction).
//!
//! An invitation creates the member at once and returns a one-time invitation token; the
//! invitee sets a password with it (`POST /v1/api/members/accept`) and is signed in.

use crate::auth::{Origin, Session, password};
use crate::error::{ApiError, ApiResult, not_found_as};
use crate::extract::JsonBody;
use crate::routes::{rfc3339, sessions::SessionResponse, sessions::open_session};
use crate::state::SharedState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use visa_core::ErrorCode;
use visa_core::key::random_token;
use visa_core::policy::Login;
use visa_core::role::{Permission, Role};
use visa_store::{Actor, Member, NewMember, StoreError};

/// This resource's routes, each registered with its OpenAPI operation (`super::api`).
pub fn routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new().routes(routes!(list, invite)).routes(routes!(accept)).routes(routes!(change_role, remove))
}

/// Prefix of invitation tokens, so scanners and logs can tell them apart.
pub const INVITE_TOKEN_PREFIX: &str = "visa_invite";
/// How long an invitation can be accepted.
const INVITE_TTL: time::Duration = time::Duration::days(7);
const MEMBER_NOT_FOUND: &str = "no such member";

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MemberView {
    pub id: i64,
    pub login: String,
    /// `owner`, `admin`, `developer` or `viewer`.
    pub role: String,
    /// `active`, or `invited` until the invitation is accepted.
    pub status: String,
    pub created_at: String,
    pub invite_expires_at: Option<String>,
}

impl From<&Member> for MemberView {
    fn from(m: &Member) -> Self {
        Self {
            id: m.id,
            login: m.login.clone(),
            role: m.role.as_str().to_owned(),
            status: if m.invite_expires_at.is_some() { "invited" } else { "active" }.to_owned(),
            created_at: rfc3339(m.created_at),
            invite_expires_at: m.invite_expires_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MemberList {
    pub success: bool,
    pub object: String,
    pub members: Vec<MemberView>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MemberResponse {
    pub success: bool,
    pub member: MemberView,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InviteResponse {
    pub success: bool,
    pub member: MemberView,
    /// Give this to the invitee; it is shown once and works until `invite_expires_at`.
    pub invite_token: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RemovedResponse {
    pub success: bool,
    pub removed: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    #[schema(schema_with = crate::routes::schema::login)]
    pub login: String,
    #[schema(schema_with = crate::routes::schema::role)]
    pub role: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRoleRequest {
    #[schema(schema_with = crate::routes::schema::role)]
    pub role: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInviteRequest {
    pub invite_token: String,
    #[schema(schema_with = crate::routes::schema::password)]
    pub password: String,
}

pub(crate) fn member_id(text: &str) -> ApiResult<i64> {
    crate::routes::path_id(text, ErrorCode::MemberNotFound, MEMBER_NOT_FOUND)
}

/// Store refusals of member changes: unknown member, taken login, last owner, owner-only.
pub(crate) fn member_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(message) => ApiError::new(ErrorCode::MemberExists, message),
        StoreError::Forbidden(message) => ApiError::new(ErrorCode::Forbidden, message),
        other => not_found_as(ErrorCode::MemberNotFound, MEMBER_NOT_FOUND)(other),
    }
}

/// Adding a member or changing a role mints a person's credential (an invitation token, a
/// session, and through an admin role new admin keys) that would outlive the admin key that
/// asked for it: a leaked admin key could multiply past its own revocation. Only a signed-in
/// member may.
fn refuse_admin_key(session: &Session) -> ApiResult<()> {
    if session.is_admin_key() {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "admin keys cannot invite members or change roles; a signed-in owner or admin must",
        ));
    }
    Ok(())
}

#[utoipa::path(get, path = "/v1/api/members", tag = "members", responses((status = 200, body = MemberList)),
    security(("session" = [])))]
pub async fn list(State(state): State<SharedState>, session: Session) -> ApiResult<Json<MemberList>> {
    session.require(Permission::Read)?;
    let members = state.store.list_members(session.account.id).await?;
    Ok(Json(MemberList {
        success: true,
        object: "list".into(),
        members: members.iter().map(MemberView::from).collect(),
    }))
}

#[utoipa::path(post, path = "/v1/api/members", tag = "members", request_body = InviteRequest,
    responses((status = 201, body = InviteResponse), (status = 403, body = crate::routes::ErrorBody), (status = 409, body = crate::routes::ErrorBody)),
    security(("session" = [])))]
pub async fn invite(
    State(state): State<SharedState>,
    session: Session,
    JsonBody(req): JsonBody<InviteRequest>,
) -> ApiResult<(StatusCode, Json<InviteResponse>)> {
    session.require(Permission::ManageMembers)?;
    refuse_admin_key(&session)?;
    let login = Login::parse(&req.login)?;
    let role = Role::parse(&req.role)?;
    if role == Role::Owner {
        session.require(Permission::Own)?;
    }
    let token = random_token(INVITE_TOKEN_PREFIX);
    let audit = session.audit(&state);
    let new = NewMember {
        login: login.into_string(),
        role,
        invite_hash: state.hasher.hash(&token),
        invite_expires_at: audit.now + INVITE_TTL,
    };
    let member = state.store.invite_member(session.account.id, new, audit).await.map_err(member_error)?;
    tracing::info!(member_id = member.id, role = %member.role, "member invited");
    let body = InviteResponse { success: true, member: MemberView::from(&member), invite_token: token };
    Ok((StatusCode::CREATED, Json(body)))
}

#[utoipa::path(patch, path = "/v1/api/members/{id}", tag = "members", params(("id" = i64, Path, minimum = 1)),
    request_body = ChangeRoleRequest,
    responses((status = 200, body = MemberResponse), (status = 403, body = crate::routes::ErrorBody), (status = 409, body = crate::routes::ErrorBody)),
    security(("session" = [])))]
pub async fn change_role(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<ChangeRoleRequest>,
) -> ApiResult<Json<MemberResponse>> {
    session.require(Permission::ManageMembers)?;
    refuse_admin_key(&session)?;
    let id = member_id(&id)?;
    let role = Role::parse(&req.role)?;
    // Who may touch an owner is checked by the store, against the member as it is then.
    let member = state
        .store
        .change_member_role(session.account.id, id, role, session.role, session.audit(&state))
        .await
        .map_err(member_error)?;
    tracing::info!(member_id = id, role = %member.role, "member role changed");
    Ok(Json(MemberResponse { success: true, member: MemberView::from(&member) }))
}

#[utoipa::path(delete, path = "/v1/api/members/{id}", tag = "members", params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = RemovedResponse), (status = 403, body = crate::routes::ErrorBody), (status = 409, body = crate::routes::ErrorBody)),
    security(("session" = [])))]
pub async fn remove(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
) -> ApiResult<Json<RemovedResponse>> {
    session.require(Permission::ManageMembers)?;
    let id = member_id(&id)?;
    state
        .store
        .remove_member(session.account.id, id, session.role, session.audit(&state))
        .await
        .map_err(member_error)?;
    tracing::info!(member_id = id, "member removed");
    Ok(Json(RemovedResponse { success: true, removed: id }))
}

#[utoipa::path(post, path = "/v1/api/members/accept", tag = "members", request_body = AcceptInviteRequest,
    responses((status = 201, body = SessionResponse), (status = 401, body = crate::routes::ErrorBody),
              (status = 409, body = crate::routes::ErrorBody), (status = 429, body = crate::routes::ErrorBody)))]
pub async fn accept(
    State(state): State<SharedState>,
    origin: Origin,
    JsonBody(req): JsonBody<AcceptInviteRequest>,
) -> ApiResult<(StatusCode, Json<SessionResponse>)> {
    let unknown = || ApiError::new(ErrorCode::AuthInvalid, "the invitation is unknown, used or expired");
    state.sign_in.attempt(origin.ip, None)?;
    password::validate(&req.password)?;
    let invite_hash = state.hasher.hash(req.invite_token.trim());
    let invited = state.store.member_by_invite(invite_hash).await?.ok_or_else(unknown)?;
    let password_hash = password::hash(req.password).await?;
    let audit = origin.audit(Actor::Member { id: invited.id, login: invited.login.clone() }, state.now());
    let member = state.store.accept_invite(invite_hash, password_hash, audit).await.map_err(|e| match e {
        StoreError::NotFound => unknown(),
        other => member_error(other),
    })?;
    tracing::info!(member_id = member.id, "invitation accepted");
    let audit = origin.audit(Actor::Member { id: member.id, login: member.login.clone() }, state.now());
    open_session(&state, &member, audit).await
}
