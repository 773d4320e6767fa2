//! `GET /metrics` (operator token): counters in the Prometheus text format, for dashboards and
//! for checking claims such as "last-used tracking costs no write per request".

use crate::auth::Operator;
use crate::state::SharedState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, description = "Prometheus text format")),
    security(("operator" = [])))]
pub async fn metrics(State(state): State<SharedState>, _: Operator) -> impl IntoResponse {
    let body = format!(
        "# HELP visa_store_commits_total Write transactions committed (each may hold many requests' changes).\n\
         # TYPE visa_store_commits_total counter\n\
         visa_store_commits_total {}\n{}",
        state.store.commits(),
        state.metrics.render()
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
