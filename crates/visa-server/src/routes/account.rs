//! `GET` and `PATCH /v1/api/account` (`crate::app::account`).

use crate::app;
use crate::auth::Session;
use crate::error::ApiResult;
use crate::extract::JsonBody;
use crate::state::SharedState;
use crate::wire::account::{AccountSettings, UpdateAccountSettings};
use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This resource's routes, each registered with its OpenAPI operation (`super::api`).
pub fn routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new().routes(routes!(get, update))
}

#[utoipa::path(get, path = "/v1/api/account", tag = "account", responses((status = 200, body = AccountSettings)),
    security(("session" = [])))]
pub async fn get(State(state): State<SharedState>, session: Session) -> ApiResult<Json<AccountSettings>> {
    Ok(Json(app::account::get(&state, &session).await?))
}

#[utoipa::path(patch, path = "/v1/api/account", tag = "account", request_body = UpdateAccountSettings,
    responses((status = 200, body = AccountSettings), (status = 400, body = crate::wire::ErrorBody),
        (status = 403, body = crate::wire::ErrorBody)), security(("session" = [])))]
pub async fn update(
    State(state): State<SharedState>,
    session: Session,
    JsonBody(req): JsonBody<UpdateAccountSettings>,
) -> ApiResult<Json<AccountSettings>> {
    Ok(Json(app::account::update(&state, &session, req).await?))
}
