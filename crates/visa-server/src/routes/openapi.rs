//! `GET /openapi.json`: the OpenAPI 3.1 document, generated from the handlers' annotations
//! and the request/response types, so it cannot drift from the code. Each resource registers
//! its routes together with their operations (`routes()` in each module, `utoipa-axum`), so a
//! route cannot be missing from the document, nor an operation from the router.
//!
//! The handlers annotate their success answers and the errors only they can give (409, 429,
//! 502…). [`Contract`] adds, in this one place, the errors that follow from an operation's
//! shape — credentials (401, 403), inputs (400), a path id (404), a body (408, 413, 415), the
//! store (503) — so every status a route can answer is documented and none is written twice.
//! The test suite checks the document with a third-party validator and fuzzes the live server
//! against it (`tests/e2e/openapi_fuzz.rs`).

use crate::state::SharedState;
use crate::tools::catalog::Catalog;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use std::sync::LazyLock;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, License, Ref, RefOr, Response, Server};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This resource's routes, each registered with its OpenAPI operation (`super::api`).
pub fn routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new().routes(routes!(document))
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Visa Keys", description = "Scoped API keys that spend a prepaid balance on paid tools."),
    components(schemas(crate::wire::ErrorBody))
)]
pub struct ApiDoc;

/// The document: the operations `super::api` registers with their routes, then the security
/// schemes and the error answers every operation's shape implies (`Contract`). Built once.
pub fn spec() -> &'static utoipa::openapi::OpenApi {
    static SPEC: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(|| {
        let mut doc = super::api().into_openapi();
        SecuritySchemes.modify(&mut doc);
        Contract.modify(&mut doc);
        doc
    });
    &SPEC
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = || SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
        components.add_security_scheme("operator", bearer());
        components.add_security_scheme("session", bearer());
        components
            .add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Api-Key"))));
        // The same tool key may be sent as `Authorization: Bearer VisaKey_…` instead.
        components.add_security_scheme("api_key_bearer", bearer());
    }
}

/// The error answers every operation of a given shape can give, added by rule.
struct Contract;

/// `(status, component name, description)` of every error response the document uses.
const ERROR_RESPONSES: [(u16, &str, &str); 11] = [
    (400, "BadRequest", "The request is malformed or a value is out of range (`INVALID_REQUEST`)"),
    (401, "Unauthorized", "Credentials are missing, unknown, revoked or of the wrong environment"),
    (403, "Forbidden", "The credentials may not do this (role, approval, key scope, source IP, HTTPS)"),
    (404, "NotFound", "No such resource in this account"),
    (408, "RequestTimeout", "The request body did not arrive within the body timeout"),
    (
        409,
        "Conflict",
        "The change conflicts with the current state (a taken name, an idempotent call in flight or with other input, the last owner)",
    ),
    (413, "PayloadTooLarge", "The request body is over the size limit"),
    (415, "UnsupportedMediaType", "The body is not sent as `application/json`"),
    (429, "TooManyRequests", "A rate limit or spend cap; `Retry-After` says when to retry where that is known"),
    (502, "BadGateway", "The provider failed or answered something unreadable; nothing is charged"),
    (503, "ServiceUnavailable", "The store or a provider is unavailable; retry after `Retry-After`"),
];

impl Contract {
    fn add_rules(operation: &mut Operation, tag: &str, write: bool) {
        let params = operation.parameters.as_deref().unwrap_or_default();
        let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
        let has_path_id = params.iter().any(|p| p.parameter_in == ParameterIn::Path);
        let has_input = !params.is_empty() || operation.request_body.is_some();
        let has_body = operation.request_body.is_some();
        let mut statuses = Vec::new();
        if has_input {
            statuses.push(400);
        }
        if secured {
            statuses.extend([401, 403]);
        }
        if has_path_id {
            statuses.push(404);
        }
        // A change to a named resource can meet a state that forbids it (a revoked key, a
        // settled execution): 409.
        if has_path_id && write {
            statuses.push(409);
        }
        if has_body {
            statuses.extend([408, 413, 415]);
        }
        if tag != "health" || secured {
            statuses.push(503);
        }
        let responses = &mut operation.responses.responses;
        // Errors the handler annotated itself point at the same shared responses.
        statuses.extend(responses.keys().filter_map(|s| s.parse::<u16>().ok()).filter(|s| *s >= 400));
        for status in statuses {
            if let Some(shared) = error_ref(status) {
                responses.insert(status.to_string(), shared);
            }
        }
    }
}

/// The shared response for an error status (none for a status the table does not know).
fn error_ref(status: u16) -> Option<RefOr<Response>> {
    let (_, name, _) = ERROR_RESPONSES.iter().find(|(s, ..)| *s == status)?;
    Some(RefOr::Ref(Ref::from_response_name(*name)))
}

impl Modify for Contract {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi.info.license = Some(License::new("Apache-2.0"));
        openapi.servers = Some(vec![Server::new("/")]);
        let mut used = std::collections::BTreeSet::new();
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                (false, &mut item.get),
                (true, &mut item.put),
                (true, &mut item.post),
                (true, &mut item.delete),
                (true, &mut item.patch),
            ];
            for (write, operation) in operations.into_iter().filter_map(|(w, op)| Some((w, op.as_mut()?))) {
                let tag = operation.tags.as_ref().and_then(|t| t.first()).cloned().unwrap_or_default();
                // Handlers are named for what they do (`list`, `create`); the tag makes them unique.
                let name = operation.operation_id.take().unwrap_or_default();
                operation.operation_id = Some(format!("{}_{name}", tag.replace('-', "_")));
                Self::add_rules(operation, &tag, write);
                used.extend(operation.responses.responses.keys().filter_map(|s| s.parse::<u16>().ok()));
            }
        }
        let components = openapi.components.get_or_insert_with(Default::default);
        for (status, name, description) in ERROR_RESPONSES.iter().filter(|(s, ..)| used.contains(s)) {
            let response = Response::builder()
                .description(format!("{description} (HTTP {status})"))
                .content("application/json", Content::new(Some(Ref::from_schema_name("ErrorBody"))))
                .build();
            components.responses.insert(name.to_string(), RefOr::T(response));
        }
    }
}

#[utoipa::path(get, path = "/openapi.json", tag = "health", responses((status = 200, description = "This document")))]
pub async fn document(State(state): State<SharedState>) -> Json<Value> {
    Json(with_catalog(&state.catalog))
}

/// The document with this server's tool names (ids and aliases) as the enum of the execute
/// path and of a key's `allowed_tools`, so a client sees which tools exist.
pub fn with_catalog(catalog: &Catalog) -> Value {
    let names: Vec<&str> =
        catalog.tools().iter().flat_map(|t| std::iter::once(&t.id).chain(&t.aliases)).map(String::as_str).collect();
    let mut doc = serde_json::to_value(spec()).unwrap_or_default();
    let pointers = [
        "/paths/~1v1~1api~1tools~1{tool}~1execute/post/parameters/0/schema",
        "/components/schemas/CreateKeyRequest/properties/allowed_tools/items",
        "/components/schemas/UpdateKeyRequest/properties/allowed_tools/items",
    ];
    for pointer in pointers {
        if let Some(schema) = doc.pointer_mut(pointer).and_then(Value::as_object_mut) {
            schema.insert("enum".into(), json!(names));
        }
    }
    doc
}
