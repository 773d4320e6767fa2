//! Admin keys over HTTP (`crate::app::admin_keys`): `/v1/api/admin-keys`.

use crate::app;
use crate::auth::Session;
use crate::error::ApiResult;
use crate::extract::JsonBody;
use crate::state::SharedState;
use crate::wire::admin_keys::{AdminKeyCreated, AdminKeyList, AdminKeyRevoked, CreateAdminKeyRequest, admin_key_id};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This resource's routes, each registered with its OpenAPI operation (`super::api`).
pub fn routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new().routes(routes!(create, list)).routes(routes!(revoke))
}

#[utoipa::path(post, path = "/v1/api/admin-keys", tag = "admin-keys", request_body = CreateAdminKeyRequest,
    responses((status = 201, body = AdminKeyCreated), (status = 403, body = crate::wire::ErrorBody)), security(("session" = [])))]
pub async fn create(
    State(state): State<SharedState>,
    session: Session,
    JsonBody(req): JsonBody<CreateAdminKeyRequest>,
) -> ApiResult<(StatusCode, Json<AdminKeyCreated>)> {
    Ok((StatusCode::CREATED, Json(app::admin_keys::create(&state, &session, req).await?)))
}

#[utoipa::path(get, path = "/v1/api/admin-keys", tag = "admin-keys", responses((status = 200, body = AdminKeyList)),
    security(("session" = [])))]
pub async fn list(State(state): State<SharedState>, session: Session) -> ApiResult<Json<AdminKeyList>> {
    Ok(Json(app::admin_keys::list(&state, &session).await?))
}

#[utoipa::path(delete, path = "/v1/api/admin-keys/{id}", tag = "admin-keys", params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = AdminKeyRevoked), (status = 404, body = crate::wire::ErrorBody)), security(("session" = [])))]
pub async fn revoke(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
) -> ApiResult<Json<AdminKeyRevoked>> {
    Ok(Json(app::admin_keys::revoke(&state, &session, admin_key_id(&id)?).await?))
}
