//! `POST /v1/api/tools/:tool/execute`, the data plane: authenticate the key
//! (`auth::tool_key`), validate the `Idempotency-Key` (UUID v4) and the body (exactly
//! `{"input": {...}}`), then hand the call to the money path (`crate::execution`), detached
//! (`crate::detached`): it runs in the request's task, and in a task of its own only if the
//! client hangs up, so that a hang-up cannot leave a hold without an outcome.

use crate::auth::tool_key;
use crate::error::{ApiError, ApiResult};
use crate::execution;
use crate::extract::{ClientIp, RawJsonBody, idempotency_key_header};
use crate::state::SharedState;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::IpAddr;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use visa_store::AuthRecord;

/// This resource's routes, each registered with its OpenAPI operation (`super::api`).
pub fn routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new().routes(routes!(execute))
}

/// The body: exactly `{ "input": {...} }`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteRequest {
    /// Tool-specific parameters; `{}` for tools without any.
    #[schema(value_type = Object)]
    pub input: Value,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    /// Micros rounded up to whole cents.
    pub charged_cents: i64,
    /// Exact charge in micros, as a decimal string.
    pub charged_micros: String,
}

impl Usage {
    /// How a charge is shown wherever an answer carries one: exact micros and whole cents up.
    pub fn of(charged: visa_core::money::Micros) -> Self {
        Self { charged_cents: charged.cents_ceil(), charged_micros: charged.to_string() }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = ToolReceipt)]
pub struct Receipt {
    pub id: String,
    pub execution_id: String,
    pub charged_micros: String,
    pub created_at: String,
}

/// The success envelope of a paid call, plus `execution_id`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = ToolExecution)]
pub struct ExecutionResponse {
    pub success: bool,
    /// Always `tool_execution`.
    pub object: String,
    /// The canonical tool id.
    pub tool: String,
    #[schema(value_type = Object)]
    pub result: Value,
    pub usage: Usage,
    /// Null when nothing was charged.
    pub receipt: Option<Receipt>,
    pub execution_id: String,
}

#[utoipa::path(post, path = "/v1/api/tools/{tool}/execute", tag = "tools", request_body = ExecuteRequest,
    params(("tool" = String, Path, description = "Tool id or alias"),
           ("Idempotency-Key" = String, Header, pattern = "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|\"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\")$",
            description = "A UUID, reused on retries of one logical call (also as an RFC 8941 string, `\"<uuid>\"`)")),
    responses((status = 200, body = ExecutionResponse, description = "Executed (or replayed: header Idempotent-Replayed: true)"),
              (status = 400, body = crate::routes::ErrorBody), (status = 401, body = crate::routes::ErrorBody),
              (status = 403, body = crate::routes::ErrorBody), (status = 404, body = crate::routes::ErrorBody),
              (status = 409, body = crate::routes::ErrorBody), (status = 429, body = crate::routes::ErrorBody),
              (status = 502, body = crate::routes::ErrorBody), (status = 503, body = crate::routes::ErrorBody)),
    security(("api_key" = []), ("api_key_bearer" = [])))]
pub async fn execute(
    State(state): State<SharedState>,
    Path(tool_name): Path<String>,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    body: RawJsonBody,
) -> ApiResult<Response> {
    let key = tool_key::authenticate(&state, &headers, client_ip).await.map_err(execution::execute_path_error)?;
    let answer = execute_with_key(state.clone(), &key, tool_name, headers, body, client_ip).await;
    state.request_counts.record(key.key.id, key.secret_id, state.now(), error_code_of(&answer).as_deref());
    answer
}

/// The `error_code` of an answer, if it is an error (stored replays of errors included).
pub(crate) fn error_code_of(answer: &ApiResult<Response>) -> Option<String> {
    match answer {
        Err(error) => Some(error.0.code.as_str().to_owned()),
        Ok(response) if response.status().is_success() => None,
        Ok(response) => Some(format!("HTTP_{}", response.status().as_u16())),
    }
}

async fn execute_with_key(
    state: SharedState,
    key: &AuthRecord,
    tool_name: String,
    headers: HeaderMap,
    body: RawJsonBody,
    client_ip: IpAddr,
) -> ApiResult<Response> {
    let tool = execution::authorize(&state, key, &tool_name, client_ip)?.clone();
    let idempotency_key = idempotency_key(&headers)?;
    let input = parse_input(&body)?;
    let request = (execution::Surface::Execute, *idempotency_key.as_bytes());
    let call = execution::prepare(&state, key, tool, input, request, client_ip)?;
    // Detached: once the hold may be placed, the outcome must be recorded whatever the client does.
    crate::detached::detached(async move { execution::execute(&state, call).await }).await
}

/// The `Idempotency-Key` header: a UUID version 4 in its hyphenated form, any case.
fn idempotency_key(headers: &HeaderMap) -> ApiResult<Uuid> {
    let text = idempotency_key_header(headers)?
        .ok_or_else(|| ApiError::invalid("send an Idempotency-Key header (a UUID v4) with every execution"))?;
    Some(text)
        .filter(|t| t.len() == 36)
        .and_then(|t| Uuid::try_parse(t).ok())
        .filter(|u| u.get_version_num() == 4)
        .ok_or_else(|| ApiError::invalid("Idempotency-Key must be a UUID v4"))
}

/// Checks the body is exactly `{"input": {...}}` and returns the input.
fn parse_input(body: &RawJsonBody) -> ApiResult<Value> {
    let parsed: ExecuteRequest = body.parse()?;
    if !parsed.input.is_object() {
        return Err(ApiError::invalid("input must be a JSON object; send {} for tools without parameters"));
    }
    Ok(parsed.input)
}
