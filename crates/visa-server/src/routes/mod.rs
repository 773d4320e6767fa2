//! The JSON API, one surface over the use cases (`crate::app`): one module per resource, each
//! registering its routes with their OpenAPI operations (`routes()`), assembled here into the
//! router and the document at once (`api`). `crate::startup::app` serves it beside the other
//! surfaces.

pub mod account;
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
pub mod webhooks;

use crate::state::SharedState;
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
        .merge(webhooks::routes())
        .merge(account::routes())
        .merge(members::routes())
        .merge(audit::routes())
        .merge(tools::routes())
        .merge(execute::routes())
        .merge(balance::routes())
        .merge(spend::routes())
        .merge(executions::routes())
}
