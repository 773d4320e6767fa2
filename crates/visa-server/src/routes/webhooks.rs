//! Webhook endpoints over HTTP (`crate::app::webhooks`): `/v1/api/webhooks`.

use crate::app;
use crate::auth::Session;
use crate::error::ApiResult;
use crate::extract::JsonBody;
use crate::state::SharedState;
use crate::wire::webhooks::*;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This resource's routes, each registered with its OpenAPI operation (`super::api`).
pub fn routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, update, delete))
        .routes(routes!(rotate_secret))
        .routes(routes!(deliveries))
        .routes(routes!(replay))
        .routes(routes!(test))
}

#[utoipa::path(post, path = "/v1/api/webhooks", tag = "webhooks", request_body = CreateWebhookRequest,
    responses((status = 201, body = WebhookCreated), (status = 400, body = crate::wire::ErrorBody),
        (status = 403, body = crate::wire::ErrorBody)), security(("session" = [])))]
pub async fn create(
    State(state): State<SharedState>,
    session: Session,
    JsonBody(req): JsonBody<CreateWebhookRequest>,
) -> ApiResult<(StatusCode, Json<WebhookCreated>)> {
    Ok((StatusCode::CREATED, Json(app::webhooks::create(&state, &session, req).await?)))
}

#[utoipa::path(get, path = "/v1/api/webhooks", tag = "webhooks", responses((status = 200, body = WebhookList)),
    security(("session" = [])))]
pub async fn list(State(state): State<SharedState>, session: Session) -> ApiResult<Json<WebhookList>> {
    Ok(Json(app::webhooks::list(&state, &session).await?))
}

#[utoipa::path(get, path = "/v1/api/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = WebhookAnswer), (status = 404, body = crate::wire::ErrorBody)), security(("session" = [])))]
pub async fn get(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookAnswer>> {
    Ok(Json(app::webhooks::get(&state, &session, webhook_id(&id)?).await?))
}

#[utoipa::path(patch, path = "/v1/api/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path, minimum = 1)),
    request_body = UpdateWebhookRequest, responses((status = 200, body = WebhookAnswer), (status = 404, body = crate::wire::ErrorBody)),
    security(("session" = [])))]
pub async fn update(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<UpdateWebhookRequest>,
) -> ApiResult<Json<WebhookAnswer>> {
    Ok(Json(app::webhooks::update(&state, &session, webhook_id(&id)?, req).await?))
}

#[utoipa::path(delete, path = "/v1/api/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = WebhookDeleted), (status = 404, body = crate::wire::ErrorBody)), security(("session" = [])))]
pub async fn delete(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookDeleted>> {
    Ok(Json(app::webhooks::delete(&state, &session, webhook_id(&id)?).await?))
}

#[utoipa::path(post, path = "/v1/api/webhooks/{id}/rotate-secret", tag = "webhooks", params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = WebhookRotated), (status = 404, body = crate::wire::ErrorBody)), security(("session" = [])))]
pub async fn rotate_secret(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookRotated>> {
    Ok(Json(app::webhooks::rotate_secret(&state, &session, webhook_id(&id)?).await?))
}

#[utoipa::path(get, path = "/v1/api/webhooks/{id}/deliveries", tag = "webhooks", params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = DeliveryList), (status = 404, body = crate::wire::ErrorBody)), security(("session" = [])))]
pub async fn deliveries(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
) -> ApiResult<Json<DeliveryList>> {
    Ok(Json(app::webhooks::deliveries(&state, &session, webhook_id(&id)?).await?))
}

#[utoipa::path(post, path = "/v1/api/webhooks/{id}/replay", tag = "webhooks", params(("id" = i64, Path, minimum = 1)),
    request_body = ReplayRequest, responses((status = 200, body = Replayed), (status = 404, body = crate::wire::ErrorBody)),
    security(("session" = [])))]
pub async fn replay(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<ReplayRequest>,
) -> ApiResult<Json<Replayed>> {
    Ok(Json(app::webhooks::replay(&state, &session, webhook_id(&id)?, req).await?))
}

#[utoipa::path(post, path = "/v1/api/webhooks/{id}/test", tag = "webhooks", params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = TestSent), (status = 404, body = crate::wire::ErrorBody)), security(("session" = [])))]
pub async fn test(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
) -> ApiResult<Json<TestSent>> {
    Ok(Json(app::webhooks::test(&state, &session, webhook_id(&id)?).await?))
}
