//! `GET /metrics` (operator token): the server's figures in the OpenMetrics text format
//! (`crate::metrics`), for dashboards and alerts.

use crate::auth::Operator;
use crate::state::SharedState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This resource's routes, each registered with its OpenAPI operation (`super::api`).
pub fn routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, description = "OpenMetrics text format")),
    security(("operator" = [])))]
pub async fn metrics(State(state): State<SharedState>, _: Operator) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, OPENMETRICS)], state.metrics.render())
}

/// The route template a request matched, handed from [`tag_route`] to [`count_requests`].
#[derive(Clone)]
struct RouteTemplate(axum::extract::MatchedPath);

/// Inside the router (only matched routes run it): tags the answer with its route template.
pub async fn tag_route(
    route: axum::extract::MatchedPath,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut response = next.run(request).await;
    response.extensions_mut().insert(RouteTemplate(route));
    response
}

/// Outside everything: counts and times every answer by route template (`unmatched` for a
/// path no route knows, so probes cannot grow the label set), method and status.
pub async fn count_requests(
    State(state): State<SharedState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = request.method().clone();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let route = response.extensions().get::<RouteTemplate>().map_or("unmatched", |r| r.0.as_str());
    let method = if route == "unmatched" { "other" } else { method.as_str() };
    state.metrics.record_request(route, method, response.status().as_u16(), started.elapsed());
    response
}
