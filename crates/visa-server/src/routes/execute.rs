//! `POST /v1/api/tools/:tool/execute`, the data plane. The steps, in order:
//!
//! 1. authenticate the key (`auth::tool_key`);
//! 2. authorize the tool (exists, allowed, account approved, key not read-only);
//! 3. validate the `Idempotency-Key` and the body;
//! 4. check the input and the tool's readiness;
//! 5. run the tool and answer with the seed's `tool_execution` envelope.

use crate::auth::tool_key;
use crate::catalog::Tool;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ClientIp, RawJsonBody};
use crate::state::SharedState;
use crate::tools;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;
use visa_core::ErrorCode;
use visa_core::key::Environment;
use visa_core::money::Micros;
use visa_core::policy::truncate_for_message;
use visa_store::AuthRecord;

pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

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

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Receipt {
    pub id: String,
    pub execution_id: String,
    pub charged_micros: String,
    pub created_at: String,
}

/// The seed's success envelope, plus `execution_id`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
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
           ("Idempotency-Key" = String, Header, description = "UUID v4, reused on retries of one logical call")),
    responses((status = 200, body = ExecutionResponse), (status = 400, body = crate::routes::ErrorBody),
              (status = 401, body = crate::routes::ErrorBody), (status = 403, body = crate::routes::ErrorBody),
              (status = 404, body = crate::routes::ErrorBody), (status = 502, body = crate::routes::ErrorBody)),
    security(("api_key" = [])))]
pub async fn execute(
    State(state): State<SharedState>,
    Path(tool_name): Path<String>,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    body: RawJsonBody,
) -> ApiResult<Json<ExecutionResponse>> {
    let key = tool_key::authenticate(&state, &headers, client_ip).await?;
    let tool = authorize(&state, &key, &tool_name)?;
    let _idempotency_key = idempotency_key(&headers)?;
    let input = parse_input(&body)?;
    let sandbox = state.environment == Environment::Preview;
    tools::check_runnable(tool, &input, sandbox)?;
    let output = tools::run(tool, &input, sandbox).await.map_err(tools::UpstreamFailure::into_api_error)?;
    let charged = if sandbox { Micros::ZERO } else { output.cost.min(Micros::ZERO) };
    Ok(Json(ExecutionResponse {
        success: true,
        object: "tool_execution".into(),
        tool: tool.id.clone(),
        result: output.result,
        usage: Usage { charged_cents: charged.cents_ceil(), charged_micros: charged.to_string() },
        receipt: None,
        execution_id: Uuid::new_v4().to_string(),
    }))
}

/// The tool checks after authentication, in the seed's order.
fn authorize<'a>(state: &'a SharedState, key: &AuthRecord, tool_name: &str) -> ApiResult<&'a Tool> {
    let tool = state.catalog.resolve(tool_name).ok_or_else(|| {
        ApiError::new(ErrorCode::ToolNotFound, format!("no tool '{}'", truncate_for_message(tool_name)))
    })?;
    if !key.key.policy.grant.permits(&tool.id) {
        return Err(ApiError::new(ErrorCode::ToolNotPermitted, format!("this key may not run '{}'", tool.id)));
    }
    if !key.account_approved {
        return Err(ApiError::new(ErrorCode::AccountNotApproved, "the key's account is not approved yet"));
    }
    if key.key.policy.read_only {
        return Err(ApiError::new(ErrorCode::Forbidden, "this key is read-only; it cannot execute tools"));
    }
    Ok(tool)
}

/// The `Idempotency-Key` header: a UUID version 4, any case.
fn idempotency_key(headers: &HeaderMap) -> ApiResult<Uuid> {
    let text = headers
        .get(IDEMPOTENCY_KEY_HEADER)
        .ok_or_else(|| ApiError::invalid("send an Idempotency-Key header (a UUID v4) with every execution"))?
        .to_str()
        .map_err(|_| ApiError::invalid("Idempotency-Key must be a UUID v4"))?;
    Uuid::try_parse(text.trim())
        .ok()
        .filter(|u| u.get_version_num() == 4)
        .ok_or_else(|| ApiError::invalid("Idempotency-Key must be a UUID v4"))
}

fn parse_input(body: &RawJsonBody) -> ApiResult<Value> {
    let request: ExecuteRequest = body.parse()?;
    if !request.input.is_object() {
        return Err(ApiError::invalid("input must be a JSON object; send {} for tools without parameters"));
    }
    Ok(request.input)
}
