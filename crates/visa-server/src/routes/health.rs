//! Liveness: `GET /healthz` answers once the server accepts requests.

use axum::Json;
use serde_json::{Value, json};

#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "`{\"ok\":true}`")))]
pub async fn healthz() -> Json<Value> {
    Json(json!({ "ok": true }))
}
