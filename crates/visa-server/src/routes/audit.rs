//! `GET /v1/api/audit` (`crate::app::audit`).

use crate::app;
use crate::auth::Session;
use crate::error::ApiResult;
use crate::state::SharedState;
use crate::wire::ListQuery;
use crate::wire::audit::{AuditList, AuditQuery};
use axum::Json;
use axum::extract::{Query, State};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This resource's routes, each registered with its OpenAPI operation (`super::api`).
pub fn routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[utoipa::path(get, path = "/v1/api/audit", tag = "audit", params(ListQuery, AuditQuery),
    responses((status = 200, body = AuditList), (status = 400, body = crate::wire::ErrorBody)),
    security(("session" = [])))]
pub async fn list(
    State(state): State<SharedState>,
    session: Session,
    page: ListQuery,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<AuditList>> {
    Ok(Json(app::audit::list(&state, &session, page.page()?, crate::wire::query(query)?).await?))
}
