//! `GET /v1/api/spend?days=N` (`crate::app::spend`).

use crate::app;
use crate::auth::Reader;
use crate::error::ApiResult;
use crate::state::SharedState;
use crate::wire::spend::{ExportQuery, SeriesQuery, SeriesResponse, SpendQuery, SpendResponse};
use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This resource's routes, each registered with its OpenAPI operation (`super::api`).
pub fn routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new().routes(routes!(spend)).routes(routes!(export)).routes(routes!(series))
}

#[utoipa::path(get, path = "/v1/api/spend/export.csv", tag = "billing", params(ExportQuery),
    responses((status = 200, content_type = "text/csv", body = String,
        description = "A header row, then one row per execution created in [from, to), newest first (docs/end-users.md)"),
        (status = 400, body = crate::wire::ErrorBody), (status = 401, body = crate::wire::ErrorBody)),
    security(("session" = []), ("api_key" = [])))]
pub async fn export(
    State(state): State<SharedState>,
    reader: Reader,
    query: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let rows = app::spend::export(state, &reader, crate::wire::query(query)?)?;
    let headers = [
        (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
        (header::CONTENT_DISPOSITION, "attachment; filename=\"visa-executions.csv\""),
    ];
    Ok((headers, Body::from_stream(rows)).into_response())
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

#[utoipa::path(get, path = "/v1/api/spend/series", tag = "billing", params(SeriesQuery),
    responses((status = 200, body = SeriesResponse), (status = 400, body = crate::wire::ErrorBody),
        (status = 401, body = crate::wire::ErrorBody)),
    security(("session" = []), ("api_key" = [])))]
pub async fn series(
    State(state): State<SharedState>,
    reader: Reader,
    query: Result<Query<SeriesQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<SeriesResponse>> {
    Ok(Json(app::spend::series(&state, &reader, crate::wire::query(query)?).await?))
}
