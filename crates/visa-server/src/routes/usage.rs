//! `GET /v1/api/keys/:id/usage` (`crate::app::usage`).

use crate::app;
use crate::auth::Reader;
use crate::error::ApiResult;
use crate::state::SharedState;
use crate::wire::keys::key_id;
use crate::wire::usage::{UsageQuery, UsageResponse};
use axum::Json;
use axum::extract::{Path, Query, State};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This resource's routes, each registered with its OpenAPI operation (`super::api`).
pub fn routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new().routes(routes!(usage))
}

#[utoipa::path(get, path = "/v1/api/keys/{id}/usage", tag = "keys", params(("id" = i64, Path, minimum = 1), UsageQuery),
    responses((status = 200, body = UsageResponse), (status = 400, body = crate::wire::ErrorBody), (status = 404, body = crate::wire::ErrorBody)),
    security(("session" = []), ("api_key" = [])))]
pub async fn usage(
    State(state): State<SharedState>,
    reader: Reader,
    Path(id): Path<String>,
    query: Result<Query<UsageQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<UsageResponse>> {
    let query = crate::wire::query(query)?;
    Ok(Json(app::usage::usage(&state, &reader, key_id(&id)?, query).await?))
}
