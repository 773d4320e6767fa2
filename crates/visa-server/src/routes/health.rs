//! Health: `GET /healthz` answers `{"ok":true}` while this node can serve, and 503
//! `SERVICE_UNAVAILABLE` (retryable, so a load balancer sends traffic elsewhere) when its store
//! cannot take writes — SQLite stopped after a failed fsync, a database out of reach — so a
//! probe takes a node that can only fail paid calls out of rotation.

use crate::error::{ApiError, ApiResult};
use crate::state::SharedState;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use visa_core::ErrorCode;

/// This resource's routes, each registered with its OpenAPI operation (`super::api`).
pub fn routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new().routes(routes!(healthz))
}

#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "`{\"ok\":true}`"),
    (status = 503, body = crate::wire::ErrorBody)))]
pub async fn healthz(State(state): State<SharedState>) -> ApiResult<Json<Value>> {
    state.store.ready().await.map_err(|e| {
        tracing::warn!(error = %e, "not ready");
        ApiError::new(ErrorCode::ServiceUnavailable, format!("this node cannot serve: {e}")).with_retry_after(1)
    })?;
    Ok(Json(json!({ "ok": true })))
}
