//! `POST /v1/api/tools/:tool/execute`, the data plane and the money path. In order:
//!
//! 1. authenticate the key (`auth::tool_key`) and authorize the tool (exists, allowed,
//!    account approved, key not read-only);
//! 2. validate the `Idempotency-Key` (UUID v4) and the body (exactly `{"input": {...}}`),
//!    and check the input before any money moves;
//! 3. take a token from the key's rate limiter;
//! 4. in one transaction, record the Idempotency-Key and hold the tool's maximum price
//!    against the daily cap, the total cap and the balance, or answer from the record
//!    (replay, in flight, mismatch, reconcile required) once that is durable; a new hold
//!    lets the tool start at commit, and becomes durable with step 5 (docs/money.md);
//! 5. run the tool, then in one durable transaction capture the actual price (never above
//!    the hold) and store the answer, or void the hold on failure.
//!
//! Steps 4 and 5 run in a task of their own, so a client that hangs up cannot leave a hold
//! without an outcome.

use crate::auth::tool_key;
use crate::catalog::Tool;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ClientIp, RawJsonBody};
use crate::routes::{rfc3339, utc_day_number};
use crate::state::SharedState;
use crate::tools::{self, ToolOutput, UpstreamFailure};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use utoipa::ToSchema;
use uuid::Uuid;
use visa_core::ErrorCode;
use visa_core::fingerprint::request_fingerprint;
use visa_core::key::Environment;
use visa_core::money::Micros;
use visa_core::policy::truncate_for_message;
use visa_store::{AuthRecord, BeginOutcome, ExecutionRecord, ExecutionStart, Finish, HoldRefusal};

pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

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
    responses((status = 200, body = ExecutionResponse, description = "Executed (or replayed: header Idempotent-Replayed: true)"),
              (status = 400, body = crate::routes::ErrorBody), (status = 401, body = crate::routes::ErrorBody),
              (status = 403, body = crate::routes::ErrorBody), (status = 404, body = crate::routes::ErrorBody),
              (status = 409, body = crate::routes::ErrorBody), (status = 429, body = crate::routes::ErrorBody),
              (status = 502, body = crate::routes::ErrorBody), (status = 503, body = crate::routes::ErrorBody)),
    security(("api_key" = [])))]
pub async fn execute(
    State(state): State<SharedState>,
    Path(tool_name): Path<String>,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    body: RawJsonBody,
) -> ApiResult<Response> {
    let key = tool_key::authenticate(&state, &headers, client_ip).await?;
    let answer = execute_with_key(state.clone(), &key, tool_name, headers, body).await;
    state.request_counts.record(key.key.id, key.secret_id, state.now(), error_code_of(&answer).as_deref());
    answer
}

/// The `error_code` of an answer, if it is an error (stored replays of errors included).
fn error_code_of(answer: &ApiResult<Response>) -> Option<String> {
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
) -> ApiResult<Response> {
    let tool = authorize(&state, key, &tool_name)?.clone();
    let idempotency_key = idempotency_key(&headers)?;
    let input = parse_input(&body)?;
    let sandbox = state.environment == Environment::Preview;
    tools::check_runnable(&tool, &input, sandbox)?;
    if let Err(seconds) =
        state.rate_limits.take(key.key.id, key.key.policy.rate_limit_per_second, std::time::Instant::now())
    {
        return Err(
            ApiError::new(ErrorCode::RateLimited, "the key's request rate limit is reached").with_retry_after(seconds)
        );
    }
    let now = state.now();
    let start = ExecutionStart {
        // Time-ordered, so the unique index grows at its right edge instead of at random pages.
        public_id: Uuid::now_v7().to_string(),
        account_id: key.key.account_id,
        key_id: key.key.id,
        secret_id: key.secret_id,
        idempotency_key: *idempotency_key.as_bytes(),
        request_hash: request_fingerprint("POST", &tool.id, &input),
        tool: tool.id.clone(),
        hold: tools::hold_for(&tool, &input),
        sandbox,
        now,
        day_number: utc_day_number(now),
        idempotency_expires_at: now + state.idempotency_ttl,
    };
    // Detached: once the hold may be placed, the outcome must be recorded whatever the client does.
    tokio::spawn(hold_run_settle(state, tool, input, start))
        .await
        .map_err(|_| ApiError(visa_core::Rejection::internal()))?
}

async fn hold_run_settle(
    state: SharedState,
    tool: Arc<Tool>,
    input: Value,
    start: ExecutionStart,
) -> ApiResult<Response> {
    let day_number = start.day_number;
    let (begun, hold_durable) = state.store.begin_execution(start).await?;
    let execution = match begun {
        // The tool starts while the hold's fsync is still in flight: the capture (or void)
        // is durable before the answer leaves, and its fsync covers the hold (docs/money.md).
        BeginOutcome::Started(execution) => execution,
        // Anything else is answered from state that must be on disk first.
        other => {
            hold_durable.wait().await?;
            return not_started(other, &state, day_number);
        }
    };
    let context = tools::RunContext { upstream: &state.upstream, store: state.store.as_ref(), execution: &execution };
    let outcome = tools::run(&context, &tool, &input).await;
    settle(&state, &tool, &execution, outcome, hold_durable).await
}

/// The answer to an Idempotency-Key that did not start a new execution, or to a refused hold.
fn not_started(outcome: BeginOutcome, state: &crate::state::AppState, day_number: i64) -> ApiResult<Response> {
    match outcome {
        BeginOutcome::Started(_) => Err(ApiError(visa_core::Rejection::internal())),
        BeginOutcome::Replay { status, body } => Ok(replay(status, body)),
        BeginOutcome::Mismatch => Err(ApiError::new(
            ErrorCode::IdempotentReplay,
            "this Idempotency-Key was used with a different request; use a new key for a new operation",
        )),
        BeginOutcome::InFlight => Err(ApiError::new(
            ErrorCode::IdempotencyInFlight,
            "the original request is still running; retry it shortly",
        )
        .with_retry_after(1)),
        BeginOutcome::ReconcileRequired(execution) => Err(reconcile_required(&execution)),
        BeginOutcome::Refused(refusal) => Err(refused(refusal, state, day_number)),
    }
}

/// Records the outcome of a run; the answer is sent only once it is durable.
async fn settle(
    state: &Arc<crate::state::AppState>,
    tool: &Tool,
    execution: &ExecutionRecord,
    outcome: Result<ToolOutput, UpstreamFailure>,
    hold_durable: visa_store::Durability,
) -> ApiResult<Response> {
    let now = state.now();
    // The answer: the success bytes, or the error (whose envelope is also what replays get).
    let (finish, answer) = match outcome {
        Ok(output) => {
            let cost = output.cost.min(execution.hold);
            let charged = if execution.sandbox { Micros::ZERO } else { cost };
            let receipt_id = format!("rcpt_{}", Uuid::new_v4().simple());
            let body = success_body(tool, execution, output.result, charged, &receipt_id, now);
            (
                Finish::Capture { cost, receipt_id, status: 200, body: body.clone() },
                Ok(json_response(StatusCode::OK, body)),
            )
        }
        Err(failure) if failure.retryable => (Finish::VoidRetryable, Err(failure.into_api_error())),
        Err(failure) => {
            let error = failure.into_api_error();
            let body = serde_json::to_vec(&error.body()).unwrap_or_default();
            (Finish::VoidFinal { status: error_status(&error).as_u16(), body }, Err(error))
        }
    };
    let finished = state.store.finish_execution(execution, finish, now).await;
    // Resolved long before (the hold's fsync ran first); a failed one taints what followed.
    let hold = hold_durable.wait().await;
    if let Err(e) = finished.map(drop).and(hold) {
        tracing::error!(execution = %execution.public_id, error = %e, "could not record an execution's outcome");
        return Err(reconcile_required(execution));
    }
    answer
}

fn success_body(
    tool: &Tool,
    execution: &ExecutionRecord,
    result: Value,
    charged: Micros,
    receipt_id: &str,
    now: time::OffsetDateTime,
) -> Vec<u8> {
    let receipt = (charged > Micros::ZERO).then(|| Receipt {
        id: receipt_id.to_owned(),
        execution_id: execution.public_id.clone(),
        charged_micros: charged.to_string(),
        created_at: rfc3339(now),
    });
    let response = ExecutionResponse {
        success: true,
        object: "tool_execution".into(),
        tool: tool.id.clone(),
        result,
        usage: Usage { charged_cents: charged.cents_ceil(), charged_micros: charged.to_string() },
        receipt,
        execution_id: execution.public_id.clone(),
    };
    serde_json::to_vec(&response).unwrap_or_default()
}

fn error_status(error: &ApiError) -> StatusCode {
    StatusCode::from_u16(error.0.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A JSON answer from bytes; an error body's `retry_after` is also sent as `Retry-After`.
fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let retry_after = if status.is_success() {
        None
    } else {
        serde_json::from_slice::<Value>(&body).ok().and_then(|v| v["retry_after"].as_u64())
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(seconds) = retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// A stored answer, byte for byte, marked as a replay.
fn replay(status: u16, body: Vec<u8>) -> Response {
    let mut response = json_response(StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body);
    response.headers_mut().insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    response
}

fn reconcile_required(execution: &ExecutionRecord) -> ApiError {
    let receipt = json!({
        "id": execution.receipt_id,
        "execution_id": execution.public_id,
        "charged_micros": execution.charged.to_string(),
        "held_micros": execution.hold.to_string(),
        "created_at": rfc3339(execution.created_at),
    });
    let mut error = ApiError::new(
        ErrorCode::IdempotencyUnavailable,
        "the outcome of this request was lost; an operator must reconcile it before it can be retried",
    );
    error.0.retryable = false;
    ApiError(error.0.with_detail("support_id", json!(execution.public_id)).with_detail("receipt", receipt))
}

fn refused(refusal: HoldRefusal, state: &crate::state::AppState, day_number: i64) -> ApiError {
    match refusal {
        HoldRefusal::DailyCap => {
            let midnight = (day_number + 1) * 86_400;
            let seconds = (midnight - state.now().unix_timestamp()).max(1) as u64;
            ApiError::new(ErrorCode::RateLimited, "the key's daily cap is reached; it resets at 00:00 UTC")
                .with_retry_after(seconds)
        }
        HoldRefusal::TotalCap => {
            not_retryable(ApiError::new(ErrorCode::RateLimited, "the key's total cap is reached; raise it to continue"))
        }
        HoldRefusal::Balance => not_retryable(ApiError::new(
            ErrorCode::RateLimited,
            "the account's available balance does not cover this call; add credit to continue",
        )),
        HoldRefusal::KeyRevoked => ApiError::new(ErrorCode::AuthInvalid, "the API key is not recognized"),
    }
}

fn not_retryable(mut error: ApiError) -> ApiError {
    error.0.retryable = false;
    error
}

/// The tool checks after authentication, in the seed's order.
fn authorize<'a>(state: &'a SharedState, key: &AuthRecord, tool_name: &str) -> ApiResult<&'a Arc<Tool>> {
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

/// Checks the body is exactly `{"input": {...}}` and returns the input.
fn parse_input(body: &RawJsonBody) -> ApiResult<Value> {
    let parsed: ExecuteRequest = body.parse()?;
    if !parsed.input.is_object() {
        return Err(ApiError::invalid("input must be a JSON object; send {} for tools without parameters"));
    }
    Ok(parsed.input)
}
