//! `GET /v1/api/balance` (`crate::app::balance`).

use crate::app;
use crate::auth::Reader;
use crate::error::ApiResult;
use crate::state::SharedState;
use crate::wire::balance::BalanceResponse;
use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This resource's routes, each registered with its OpenAPI operation (`super::api`).
pub fn routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new().routes(routes!(balance))
}

#[utoipa::path(get, path = "/v1/api/balance", tag = "billing",
    responses((status = 200, body = BalanceResponse), (status = 401, body = crate::wire::ErrorBody)),
    security(("session" = []), ("api_key" = [])))]
pub async fn balance(State(state): State<SharedState>, reader: Reader) -> ApiResult<Json<BalanceResponse>> {
    Ok(Json(app::balance::balance(&state, &reader).await?))
}
