//! Executions over HTTP (`crate::app::executions`): `GET /v1/api/executions[/:id]`, and the
//! operator's `GET /v1/operator/executions` and `POST /v1/operator/executions/:id/reconcile`.

use crate::app;
use crate::auth::{Operator, Reader};
use crate::error::ApiResult;
use crate::extract::JsonBody;
use crate::routes::operator::operator_request;
use crate::state::SharedState;
use crate::wire::ListQuery;
use crate::wire::executions::{ExecutionListResponse, ExecutionResponse, ReconcileRequest, StateQuery};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This resource's routes, each registered with its OpenAPI operation (`super::api`).
pub fn routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get))
        .routes(routes!(operator_list))
        .routes(routes!(reconcile))
}

type StateFilter = Result<Query<StateQuery>, axum::extract::rejection::QueryRejection>;

#[utoipa::path(get, path = "/v1/api/executions", tag = "executions", params(ListQuery, StateQuery),
    responses((status = 200, body = ExecutionListResponse), (status = 400, body = crate::wire::ErrorBody)),
    security(("session" = []), ("api_key" = [])))]
pub async fn list(
    State(state): State<SharedState>,
    reader: Reader,
    page: ListQuery,
    filter: StateFilter,
) -> ApiResult<Json<ExecutionListResponse>> {
    let filter = crate::wire::query(filter)?;
    Ok(Json(app::executions::list(&state, &reader, page.page()?, &filter).await?))
}

#[utoipa::path(get, path = "/v1/api/executions/{id}", tag = "executions", params(("id" = String, Path)),
    responses((status = 200, body = ExecutionResponse), (status = 404, body = crate::wire::ErrorBody)),
    security(("session" = []), ("api_key" = [])))]
pub async fn get(
    State(state): State<SharedState>,
    reader: Reader,
    Path(id): Path<String>,
) -> ApiResult<Json<ExecutionResponse>> {
    Ok(Json(app::executions::get(&state, &reader, &id).await?))
}

#[utoipa::path(get, path = "/v1/operator/executions", tag = "operator", params(ListQuery, StateQuery),
    responses((status = 200, body = ExecutionListResponse)), security(("operator" = [])))]
pub async fn operator_list(
    State(state): State<SharedState>,
    operator: Operator,
    page: ListQuery,
    filter: StateFilter,
) -> ApiResult<Json<ExecutionListResponse>> {
    let filter = crate::wire::query(filter)?;
    Ok(Json(app::executions::operator_list(&state, &operator, page.page()?, &filter).await?))
}

#[utoipa::path(post, path = "/v1/operator/executions/{id}/reconcile", tag = "operator",
    params(("id" = String, Path), crate::routes::operator::OperatorIdempotency),
    request_body = ReconcileRequest,
    responses((status = 200, body = ExecutionResponse), (status = 400, body = crate::wire::ErrorBody), (status = 404, body = crate::wire::ErrorBody)),
    security(("operator" = [])))]
pub async fn reconcile(
    State(state): State<SharedState>,
    operator: Operator,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<ReconcileRequest>,
) -> ApiResult<Json<ExecutionResponse>> {
    let fields = json!({ "capture_micros": req.capture_micros, "capture_cents": req.capture_cents, "void": req.void });
    let request = operator_request(&headers, &format!("reconcile:{id}"), &fields)?;
    Ok(Json(app::executions::reconcile(&state, &operator, &id, req, request).await?))
}
