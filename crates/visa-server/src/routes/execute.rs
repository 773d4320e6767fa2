//! `POST /v1/api/tools/:tool/execute`, the data plane: authenticate the key
//! (`auth::tool_key`), validate the `Idempotency-Key` (UUID v4) and the body (exactly
//! `{"input": {...}}`), then hand the call to the money path (`crate::app::paid_call`) in the
//! execute envelope (`Envelope`), detached
//! (`crate::detached`): it runs in the request's task, and in a task of its own only if the
//! client hangs up, so that a hang-up cannot leave a hold without an outcome.

use crate::app::paid_call::{self as execution, Answer};
use crate::auth::tool_key;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ClientIp, RawJsonBody, idempotency_key_header};
use crate::state::SharedState;
use crate::tools::catalog::Tool;
use crate::wire::execute::{ExecuteRequest, ExecutionResponse, Receipt, Usage};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::Value;
use std::net::IpAddr;
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use visa_core::money::Micros;
use visa_core::policy::EndUser;
use visa_store::{AuthRecord, ExecutionRecord};

/// This resource's routes, each registered with its OpenAPI operation (`super::api`).
pub fn routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new().routes(routes!(execute))
}

#[utoipa::path(post, path = "/v1/api/tools/{tool}/execute", tag = "tools", request_body = ExecuteRequest,
    params(("tool" = String, Path, description = "Tool id or alias"),
           ("X-Visa-End-User" = Option<String>, Header, description = "The end user this call is made for (1 to 128 characters, kept as sent; docs/end-users.md)"),
           ("Idempotency-Key" = String, Header, pattern = "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|\"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\")$",
            description = "A UUID, reused on retries of one logical call (also as an RFC 8941 string, `\"<uuid>\"`)")),
    responses((status = 200, body = ExecutionResponse, description = "Executed (or replayed: header Idempotent-Replayed: true)"),
              (status = 400, body = crate::wire::ErrorBody), (status = 401, body = crate::wire::ErrorBody),
              (status = 403, body = crate::wire::ErrorBody), (status = 404, body = crate::wire::ErrorBody),
              (status = 409, body = crate::wire::ErrorBody), (status = 429, body = crate::wire::ErrorBody),
              (status = 502, body = crate::wire::ErrorBody), (status = 503, body = crate::wire::ErrorBody)),
    security(("api_key" = []), ("api_key_bearer" = [])))]
pub async fn execute(
    State(state): State<SharedState>,
    Path(tool_name): Path<String>,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    body: RawJsonBody,
) -> ApiResult<Response> {
    let key = tool_key::authenticate(&state, &headers, client_ip, tool_key::Audience::Api)
        .await
        .map_err(execution::execute_path_error)?;
    let answer = execute_with_key(state.clone(), &key, tool_name, headers, body, client_ip).await;
    execution::record_answer(&state, &key, &answer);
    answer
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
    let request = (Arc::new(Envelope) as Arc<dyn Answer>, *idempotency_key.as_bytes(), end_user(&headers)?);
    let call = execution::prepare(&state, key, tool, input, request, client_ip)?;
    // Detached: once the hold may be placed, the outcome must be recorded whatever the client does.
    crate::detached::detached(async move { execution::execute(&state, call).await }).await
}

/// The end user a call is made for: the `X-Visa-End-User` header, if sent (UTF-8, checked by
/// `EndUser::parse`: 1 to 128 characters, never cut).
fn end_user(headers: &HeaderMap) -> ApiResult<Option<EndUser>> {
    let Some(value) = headers.get(END_USER_HEADER) else { return Ok(None) };
    let text = std::str::from_utf8(value.as_bytes())
        .map_err(|_| ApiError::invalid(format!("{END_USER_HEADER} must be UTF-8 text")))?;
    Ok(Some(EndUser::parse(text)?))
}

/// The header naming the end user a call on execute is made for.
pub const END_USER_HEADER: &str = "x-visa-end-user";

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

/// This surface's words: the success envelope (`ExecutionResponse`) and the error envelope.
pub struct Envelope;

impl Answer for Envelope {
    fn route(&self) -> &'static str {
        "POST"
    }

    fn success(
        &self,
        tool: &Tool,
        execution: &ExecutionRecord,
        result: Value,
        charged: Micros,
        receipt: Option<Receipt>,
    ) -> Vec<u8> {
        let response = ExecutionResponse {
            success: true,
            object: "tool_execution".into(),
            tool: tool.id.clone(),
            result,
            usage: Usage::of(charged),
            receipt,
            execution_id: execution.public_id.clone(),
        };
        serde_json::to_vec(&response).unwrap_or_default()
    }

    fn failure(&self, error: &ApiError) -> Value {
        error.body()
    }
}
