//! The key lifecycle over HTTP (`crate::app::keys`): `/v1/api/keys` and a key's routes, each
//! registered with its OpenAPI operation.

use crate::app;
use crate::auth::{Reader, Session};
use crate::error::ApiResult;
use crate::extract::{JsonBody, OptionalJsonBody};
use crate::state::SharedState;
use crate::wire::ListQuery;
use crate::wire::keys::{
    BudgetQuery, CreateKeyRequest, KeyBudget, KeyListResponse, KeyResponse, KeyWithSecretResponse, RevokeResponse,
    RotateKeyRequest, UpdateKeyRequest, key_id, secret_id,
};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This resource's routes, each registered with its OpenAPI operation (`super::api`).
pub fn routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, update, revoke))
        .routes(routes!(rotate))
        .routes(routes!(revoke_secret))
        .routes(routes!(budget))
}

#[utoipa::path(get, path = "/v1/api/key", tag = "keys", params(BudgetQuery),
    responses((status = 200, body = KeyBudget), (status = 401, body = crate::wire::ErrorBody),
        (status = 403, body = crate::wire::ErrorBody)),
    security(("api_key" = [])))]
pub async fn budget(
    State(state): State<SharedState>,
    reader: Reader,
    query: Result<Query<BudgetQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<KeyBudget>> {
    Ok(Json(app::keys::budget(&state, &reader, crate::wire::query(query)?).await?))
}

#[utoipa::path(post, path = "/v1/api/keys", tag = "keys", request_body = CreateKeyRequest,
    responses((status = 201, body = KeyWithSecretResponse), (status = 400, body = crate::wire::ErrorBody)),
    security(("session" = [])))]
pub async fn create(
    State(state): State<SharedState>,
    session: Session,
    JsonBody(req): JsonBody<CreateKeyRequest>,
) -> ApiResult<(StatusCode, Json<KeyWithSecretResponse>)> {
    Ok((StatusCode::CREATED, Json(app::keys::create(&state, &session, req).await?)))
}

#[utoipa::path(get, path = "/v1/api/keys", tag = "keys", params(ListQuery),
    responses((status = 200, body = KeyListResponse), (status = 400, body = crate::wire::ErrorBody)),
    security(("session" = [])))]
pub async fn list(
    State(state): State<SharedState>,
    session: Session,
    query: ListQuery,
) -> ApiResult<Json<KeyListResponse>> {
    Ok(Json(app::keys::list(&state, &session, query.page()?).await?))
}

#[utoipa::path(get, path = "/v1/api/keys/{id}", tag = "keys", params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = KeyResponse), (status = 404, body = crate::wire::ErrorBody)),
    security(("session" = [])))]
pub async fn get(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
) -> ApiResult<Json<KeyResponse>> {
    Ok(Json(app::keys::get(&state, &session, key_id(&id)?).await?))
}

#[utoipa::path(patch, path = "/v1/api/keys/{id}", tag = "keys", params(("id" = i64, Path, minimum = 1)), request_body = UpdateKeyRequest,
    responses((status = 200, body = KeyResponse), (status = 400, body = crate::wire::ErrorBody), (status = 404, body = crate::wire::ErrorBody)),
    security(("session" = [])))]
pub async fn update(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<UpdateKeyRequest>,
) -> ApiResult<Json<KeyResponse>> {
    Ok(Json(app::keys::update(&state, &session, key_id(&id)?, req).await?))
}

#[utoipa::path(delete, path = "/v1/api/keys/{id}", tag = "keys", params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = RevokeResponse), (status = 404, body = crate::wire::ErrorBody)),
    security(("session" = [])))]
pub async fn revoke(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
) -> ApiResult<Json<RevokeResponse>> {
    Ok(Json(app::keys::revoke(&state, &session, key_id(&id)?).await?))
}

#[utoipa::path(post, path = "/v1/api/keys/{id}/secrets/{secret_id}/revoke", tag = "keys",
    params(("id" = i64, Path, minimum = 1), ("secret_id" = i64, Path, minimum = 1)),
    responses((status = 200, body = KeyResponse), (status = 400, body = crate::wire::ErrorBody), (status = 404, body = crate::wire::ErrorBody)),
    security(("session" = [])))]
pub async fn revoke_secret(
    State(state): State<SharedState>,
    session: Session,
    Path((id, secret)): Path<(String, String)>,
) -> ApiResult<Json<KeyResponse>> {
    Ok(Json(app::keys::revoke_secret(&state, &session, key_id(&id)?, secret_id(&secret)?).await?))
}

#[utoipa::path(post, path = "/v1/api/keys/{id}/rotate", tag = "keys", params(("id" = i64, Path, minimum = 1)), request_body(content = Option<RotateKeyRequest>, description = "Optional: an empty body rotates with no grace period"),
    responses((status = 200, body = KeyWithSecretResponse), (status = 400, body = crate::wire::ErrorBody), (status = 404, body = crate::wire::ErrorBody)),
    security(("session" = [])))]
pub async fn rotate(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
    OptionalJsonBody(req): OptionalJsonBody<RotateKeyRequest>,
) -> ApiResult<Json<KeyWithSecretResponse>> {
    Ok(Json(app::keys::rotate(&state, &session, key_id(&id)?, req).await?))
}
