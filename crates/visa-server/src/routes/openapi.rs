//! `GET /openapi.json`: the OpenAPI 3.1 document, generated from the handlers' annotations
//! and the request/response types, so it cannot drift from the code.

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Visa Keys", description = "Scoped API keys that spend a prepaid balance on paid tools."),
    paths(
        super::health::healthz,
        document,
        super::metrics::metrics,
        super::operator::create_account,
        super::operator::update_account,
        super::operator::credit_account,
        super::sessions::sign_in,
        super::keys::create,
        super::keys::list,
        super::keys::get,
        super::keys::update,
        super::keys::revoke,
        super::keys::rotate,
        super::keys::revoke_secret,
        super::usage::usage,
        super::admin_keys::create,
        super::admin_keys::list,
        super::admin_keys::revoke,
        super::leaks::revoke_leaked,
        super::members::list,
        super::members::invite,
        super::members::change_role,
        super::members::remove,
        super::members::accept,
        super::audit::list,
        super::tools::list,
        super::execute::execute,
        super::balance::balance,
        super::executions::list,
        super::executions::get,
        super::executions::operator_list,
        super::executions::reconcile,
    ),
    components(schemas(super::ErrorBody)),
    modifiers(&SecuritySchemes)
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = || SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
        components.add_security_scheme("operator", bearer());
        components.add_security_scheme("session", bearer());
        components
            .add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Api-Key"))));
    }
}

#[utoipa::path(get, path = "/openapi.json", tag = "health", responses((status = 200, description = "This document")))]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
