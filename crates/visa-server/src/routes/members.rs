//! Members over HTTP (`crate::app::members`): `/v1/api/members`; accepting an invitation
//! signs the invitee in (`crate::app::sessions::accept_invite`).

use crate::app;
use crate::auth::{Origin, Session};
use crate::error::ApiResult;
use crate::extract::JsonBody;
use crate::state::SharedState;
use crate::wire::members::{
    AcceptInviteRequest, ChangeRoleRequest, InviteRequest, InviteResponse, MemberList, MemberResponse, RemovedResponse,
    member_id,
};
use crate::wire::sessions::SessionResponse;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This resource's routes, each registered with its OpenAPI operation (`super::api`).
pub fn routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new().routes(routes!(list, invite)).routes(routes!(accept)).routes(routes!(change_role, remove))
}

#[utoipa::path(get, path = "/v1/api/members", tag = "members", responses((status = 200, body = MemberList)),
    security(("session" = [])))]
pub async fn list(State(state): State<SharedState>, session: Session) -> ApiResult<Json<MemberList>> {
    Ok(Json(app::members::list(&state, &session).await?))
}

#[utoipa::path(post, path = "/v1/api/members", tag = "members", request_body = InviteRequest,
    responses((status = 201, body = InviteResponse), (status = 403, body = crate::wire::ErrorBody), (status = 409, body = crate::wire::ErrorBody)),
    security(("session" = [])))]
pub async fn invite(
    State(state): State<SharedState>,
    session: Session,
    JsonBody(req): JsonBody<InviteRequest>,
) -> ApiResult<(StatusCode, Json<InviteResponse>)> {
    Ok((StatusCode::CREATED, Json(app::members::invite(&state, &session, req).await?)))
}

#[utoipa::path(patch, path = "/v1/api/members/{id}", tag = "members", params(("id" = i64, Path, minimum = 1)),
    request_body = ChangeRoleRequest,
    responses((status = 200, body = MemberResponse), (status = 403, body = crate::wire::ErrorBody), (status = 409, body = crate::wire::ErrorBody)),
    security(("session" = [])))]
pub async fn change_role(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<ChangeRoleRequest>,
) -> ApiResult<Json<MemberResponse>> {
    Ok(Json(app::members::change_role(&state, &session, member_id(&id)?, req).await?))
}

#[utoipa::path(delete, path = "/v1/api/members/{id}", tag = "members", params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = RemovedResponse), (status = 403, body = crate::wire::ErrorBody), (status = 409, body = crate::wire::ErrorBody)),
    security(("session" = [])))]
pub async fn remove(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
) -> ApiResult<Json<RemovedResponse>> {
    Ok(Json(app::members::remove(&state, &session, member_id(&id)?).await?))
}

#[utoipa::path(post, path = "/v1/api/members/accept", tag = "members", request_body = AcceptInviteRequest,
    responses((status = 201, body = SessionResponse), (status = 401, body = crate::wire::ErrorBody),
              (status = 409, body = crate::wire::ErrorBody), (status = 429, body = crate::wire::ErrorBody)))]
pub async fn accept(
    State(state): State<SharedState>,
    origin: Origin,
    JsonBody(req): JsonBody<AcceptInviteRequest>,
) -> ApiResult<(StatusCode, Json<SessionResponse>)> {
    Ok((StatusCode::CREATED, Json(app::sessions::accept_invite(&state, &origin, req).await?)))
}
