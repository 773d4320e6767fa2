//! `GET /v1/api/spend?days=N` (`crate::app::spend`).

use crate::app;
use crate::auth::Reader;
use crate::error::ApiResult;
use crate::state::SharedState;
use crate::wire::spend::{SpendQuery, SpendResponse};
use axum::Json;
use axum::extract::{Query, State};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This resource's routes, each registered with its OpenAPI operation (`super::api`).
pub fn routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new().routes(routes!(spend))
}

#[utoipa::path(get, path = "/v1/api/spend", tag = "billing", params(SpendQuery),
    responses((status = 200, body = SpendResponse), (status = 400, body = crate::wire::ErrorBody)),
    security(("session" = []), ("api_key" = [])))]
pub async fn spend(
    State(state): State<SharedState>,
    reader: Reader,
    query: Result<Query<SpendQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<SpendResponse>> {
    Ok(Json(app::spend::spend(&state, &reader, crate::wire::query(query)?).await?))
}
