//! The HTTP API: one module per resource, each registering its routes with their OpenAPI
//! operations (`routes()`), assembled here into the router and the document at once (`api`).
//! Unknown routes and wrong methods answer with the error envelope like everything else.

pub mod admin_keys;
pub mod audit;
pub mod balance;
pub mod docs;
pub mod execute;
pub mod executions;
pub mod health;
pub mod keys;
pub mod leaks;
pub mod members;
pub mod metrics;
pub mod openapi;
pub mod operator;
pub mod sessions;
pub mod spend;
pub mod tools;
pub mod usage;

use crate::error;
use crate::state::SharedState;
use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

/// Every route of the JSON API with its OpenAPI operation, resource by resource: the one list
/// both the router and the OpenAPI document (`openapi::document`) are built from.
pub fn api() -> OpenApiRouter<SharedState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(health::routes())
        .merge(openapi::routes())
        .merge(docs::routes())
        .merge(metrics::routes())
        .merge(operator::routes())
        .merge(sessions::routes())
        .merge(keys::routes())
        .merge(usage::routes())
        .merge(leaks::routes())
        .merge(admin_keys::routes())
        .merge(members::routes())
        .merge(audit::routes())
        .merge(tools::routes())
        .merge(execute::routes())
        .merge(balance::routes())
        .merge(spend::routes())
        .merge(executions::routes())
}

pub fn router(state: SharedState) -> Router {
    let (api, _) = api().split_for_parts();
    api.merge(crate::dashboard::router())
        .merge(crate::openai::router())
        .route_layer(axum::middleware::from_fn(metrics::tag_route))
        .method_not_allowed_fallback(error::method_not_allowed)
        .fallback(error::not_found)
        .with_state(state)
}
