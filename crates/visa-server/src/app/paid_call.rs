//! The money path of one paid call, in one place: from an authenticated key and a parsed
//! request to its recorded outcome, whatever surface it came through (`Answer`: how each words
//! its answers). `routes::execute`, `openai::chat` and `mcp::server` call it; the money-path
//! simulation (`tests/e2e/simulation.rs`) drives the same steps one at a time, against any store.
//!
//! 1. [`authorize`]: the tool exists and this key may run it (the contract's order of checks);
//! 2. [`prepare`]: the tool's plan (the request sent upstream and the hold that bounds it,
//!    `tools::plan`), the key's rate limit, and the hold's description;
//! 3. [`begin`]: one store transaction records the Idempotency-Key and places the hold, after
//!    re-checking the key, its secret, its account and its caps (`visa_store::rules`), or
//!    answers from the existing record once that answer is durable;
//! 4. [`Running::run`]: the tool, under its timeout (never a provider in preview);
//! 5. [`Running::settle`]: one durable transaction captures what the provider reported
//!    (clamped to the hold by `rules::settle`, any excess recorded as an overage) and stores
//!    the answer, or voids the hold; retried on a transient store failure; the answer leaves
//!    only once it is on disk.

use crate::auth::tool_key::denied;
use crate::error::{ApiError, ApiResult};
use crate::in_flight::Tracked;
use crate::metrics::PaidOutcome;
use crate::state::AppState;
use crate::tools::catalog::Tool;
use crate::tools::stream::ChatStream;
use crate::tools::{self, Plan, ToolOutput, UpstreamFailure};
use crate::wire::execute::Receipt;
use crate::wire::{Limit, rfc3339};
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;
use visa_core::ErrorCode;
use visa_core::fingerprint::{request_fingerprint, with_end_user};
use visa_core::key::Environment;
use visa_core::money::Micros;
use visa_core::policy::{EndUser, truncate_for_message};
use visa_store::rules::{self, utc_day_number};
use visa_store::{AuthRecord, BeginOutcome, ExecutionRecord, ExecutionStart, Finish, Hold, HoldRefusal, StoreError};

pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// Waits between attempts to record an outcome when the store is briefly unavailable.
const SETTLE_BACKOFF: [Duration; 5] = [
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(400),
    Duration::from_millis(800),
];
/// Between the background attempts that follow, for as long as the store stays away.
const BACKGROUND_RETRY: Duration = Duration::from_secs(1);

/// On the execute path a store outage is the contract's 503 IDEMPOTENCY_UNAVAILABLE, retryable
/// (nothing was recorded, or what was is durable and answers the retry); elsewhere it is 503
/// SERVICE_UNAVAILABLE.
pub fn execute_path_error(error: ApiError) -> ApiError {
    match error.0.code {
        ErrorCode::ServiceUnavailable => error.with_code(ErrorCode::IdempotencyUnavailable),
        _ => error,
    }
}

fn store_error(e: StoreError) -> ApiError {
    execute_path_error(e.into())
}

/// The tool checks after authentication, in the API contract's order: exists, permitted, account
/// approved, key not read-only.
pub fn authorize<'a>(
    state: &'a AppState,
    key: &AuthRecord,
    tool_name: &str,
    client_ip: IpAddr,
) -> ApiResult<&'a Arc<Tool>> {
    let tool = state.catalog.resolve(tool_name).ok_or_else(|| {
        ApiError::new(ErrorCode::ToolNotFound, format!("no tool '{}'", truncate_for_message(tool_name)))
    })?;
    key.gate(state.now()).check_tool(&tool.id).map_err(|d| denied(d, &tool.id, client_ip))?;
    Ok(tool)
}

/// How the surface a call came through words its answers (success and final failure alike,
/// stored for replays byte for byte); the money path is the same for every surface.
pub trait Answer: Send + Sync {
    /// The name its requests are fingerprinted under: two surfaces never share a stored answer.
    fn route(&self) -> &'static str;
    /// The body of a success.
    fn success(
        &self,
        tool: &Tool,
        execution: &ExecutionRecord,
        result: Value,
        charged: Micros,
        receipt: Option<Receipt>,
    ) -> Vec<u8>;
    /// The body of a refusal or a final failure.
    fn failure(&self, error: &ApiError) -> Value;
    /// Where the call's events go while it runs, if its caller asked for a stream.
    fn stream(&self) -> Option<&ChatStream> {
        None
    }
}

/// A call ready to hold money: what it will send and what it holds.
pub struct PaidCall {
    pub tool: Arc<Tool>,
    pub request: Value,
    pub start: ExecutionStart,
    pub surface: Arc<dyn Answer>,
}

/// Plans the call, made for `end_user` if its caller named one (docs/end-users.md). Nothing is
/// recorded yet, so a refusal here costs nothing.
pub fn prepare(
    state: &AppState,
    key: &AuthRecord,
    tool: Arc<Tool>,
    input: Value,
    (surface, idempotency_key, end_user): (Arc<dyn Answer>, [u8; 16], Option<EndUser>),
    client_ip: IpAddr,
) -> ApiResult<PaidCall> {
    if end_user.is_none() && key.key.policy.end_user_required {
        return Err(ApiError::invalid(
            "this key requires an end user: name it (X-Visa-End-User on execute, user on the OpenAI surface, \
             _meta dev.visakeys/end_user on MCP)",
        ));
    }
    let sandbox = state.environment == Environment::Preview;
    let request_hash =
        with_end_user(request_fingerprint(surface.route(), &tool.id, &input), end_user.as_ref().map(EndUser::as_str));
    let Plan { hold, mut request } = tools::plan(&tool, input, sandbox)?;
    // The end user goes upstream only where the catalog says so (OpenAI's `user`).
    if let (true, Some(user), Some(fields)) = (tool.pass_end_user, &end_user, request.as_object_mut()) {
        fields.insert("user".into(), Value::String(user.as_str().to_owned()));
    }
    let now = state.now();
    let start = ExecutionStart {
        node: state.node.id(),
        // Time-ordered, so the unique index grows at its right edge instead of at random pages.
        public_id: Uuid::now_v7().to_string(),
        account_id: key.key.account_id,
        key_id: key.key.id,
        secret_id: key.secret_id,
        client_ip,
        idempotency_key,
        request_hash,
        tool: tool.id.clone(),
        hold,
        rate_limit_per_second: key.key.policy.rate_limit_per_second,
        rate_clock: visa_store::RateClock::Database,
        sandbox,
        now,
        day_number: utc_day_number(now),
        idempotency_expires_at: now + state.idempotency_ttl,
        end_user,
    };
    Ok(PaidCall { tool, request, start, surface })
}

/// What [`begin`] decided.
pub enum Begun {
    /// The hold is placed: run the tool, then settle.
    Started(Box<Running>),
    /// Nothing new runs: this is the answer (a replay, in flight, a refusal, …).
    Answered(ApiResult<Response>),
}

/// A call whose hold is placed and whose outcome must be recorded.
pub struct Running {
    pub tool: Arc<Tool>,
    pub request: Value,
    pub surface: Arc<dyn Answer>,
    /// The placed hold: the tool may start before it is durable (docs/money.md); finishing
    /// answers only once it is.
    pub hold: Hold,
    /// Tracked in flight until its outcome is recorded (`crate::in_flight`).
    tracked: Tracked,
}

/// Records the Idempotency-Key and places the hold, or answers from what is recorded.
pub async fn begin(state: &AppState, call: PaidCall) -> Begun {
    let PaidCall { tool, request, start, surface } = call;
    let (day, key_id, client_ip, now) = (start.day_number, start.key_id, start.client_ip, start.now);
    let public_id = start.public_id.clone();
    // Tracked before the hold can exist, so a running row of this node that no task tracks
    // is one whose task is gone (`in_flight::sweep_untracked`).
    let tracked = state.in_flight.track(&public_id);
    let outcome = match begin_live(state, start).await {
        Ok(begun) => begun,
        Err(e) => {
            if matches!(e, StoreError::Unavailable(_)) {
                // The hold may have committed with its answer lost: the call will not run,
                // so its hold must not stay (and its Idempotency-Key answer "in flight").
                let store = state.store.clone();
                keep_trying("a hold whose answer was lost", public_id.clone(), tracked, move || {
                    let (store, public_id) = (store.clone(), public_id.clone());
                    Box::pin(async move { store.abandon_execution(&public_id, now).await })
                });
            }
            state.metrics.record_paid(PaidOutcome::Refused("store_unavailable"));
            return Begun::Answered(Err(store_error(e)));
        }
    };
    let other = match outcome {
        BeginOutcome::Started(hold) => {
            state.metrics.record_hold(hold.execution.hold, true);
            return Begun::Started(Box::new(Running { tool, request, surface, hold, tracked }));
        }
        other => other,
    };
    if let Some(counted) = answered_outcome(&other) {
        state.metrics.record_paid(counted);
    }
    if let BeginOutcome::Refused(HoldRefusal::Denied(_)) = other {
        // The key changed after it was cached: the next request reads it afresh.
        state.keys.invalidate_key(key_id);
    }
    Begun::Answered(not_started(other, state, day, &tool.id, client_ip))
}

/// Begins under a live lease: renewed first if this process stalled past it; if the store
/// finds it ended anyway (reclaimed while this node slept), renewed (or registered again) and
/// begun once more under the node's new id. Nothing was written by the refused begin.
async fn begin_live(state: &AppState, mut start: ExecutionStart) -> visa_store::StoreResult<BeginOutcome> {
    state.node.ensure_live(state.store.as_ref(), state.now()).await?;
    start.node = state.node.id();
    match state.store.begin_execution(start.clone()).await {
        Err(StoreError::Refused(visa_store::Refusal::NodeLeaseLost)) => {
            state.node.renew(state.store.as_ref(), state.now()).await?;
            start.node = state.node.id();
            state.store.begin_execution(start).await
        }
        other => other,
    }
}

/// How a call that placed no hold is counted in the metrics.
fn answered_outcome(outcome: &BeginOutcome) -> Option<PaidOutcome> {
    Some(match outcome {
        BeginOutcome::Started(_) => return None,
        BeginOutcome::Replay { .. } => PaidOutcome::Idempotent("replay"),
        BeginOutcome::InFlight => PaidOutcome::Idempotent("in_flight"),
        BeginOutcome::Mismatch => PaidOutcome::Idempotent("mismatch"),
        BeginOutcome::ReconcileRequired(_) => PaidOutcome::ReconcileRequired,
        BeginOutcome::Refused(refusal) => PaidOutcome::Refused(match refusal {
            HoldRefusal::RateLimited { .. } => "rate_limit",
            HoldRefusal::DailyCap => "daily_cap",
            HoldRefusal::TotalCap => "total_cap",
            HoldRefusal::EndUserDailyCap => "end_user_daily_cap",
            HoldRefusal::EndUserTotalCap => "end_user_total_cap",
            HoldRefusal::Balance => "balance",
            HoldRefusal::Denied(_) => "denied",
        }),
    })
}

/// The whole path: begin, run, settle. A streamed call's events reach its caller while it
/// runs; once it is settled (on disk) the stream ends with what the stored answer has beyond
/// them (the charge and `[DONE]`), or with an error event if it could not be recorded.
pub async fn execute(state: &AppState, call: PaidCall) -> ApiResult<Response> {
    match begin(state, call).await {
        Begun::Answered(answer) => answer,
        Begun::Started(running) => {
            let outcome = running.run(state).await;
            let surface = running.surface.clone();
            let sent = surface.stream().map_or(0, ChatStream::sent);
            let answer = running.settle(state, outcome).await;
            match surface.stream() {
                Some(sink) if sent > 0 => finish_stream(&*surface, sink, sent, answer).await,
                _ => answer,
            }
        }
    }
}

/// Sends the rest of a streamed call's stored answer (or the error that kept it from being
/// stored) after the `sent` bytes its caller already has.
async fn finish_stream(
    surface: &dyn Answer,
    sink: &ChatStream,
    sent: usize,
    answer: ApiResult<Response>,
) -> ApiResult<Response> {
    match answer {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
            sink.forward(bytes.slice(sent.min(bytes.len())..));
            Ok(Response::from_parts(parts, Body::from(bytes)))
        }
        Err(error) => {
            let body = serde_json::to_vec(&surface.failure(&error)).unwrap_or_default();
            sink.forward(tools::stream::event(&body));
            Err(error)
        }
    }
}

impl Running {
    /// Runs the tool (the hold's fsync may still be in flight: see docs/money.md). A panic in
    /// an adapter (a bug: no provider input should cause one) is a final failure, so the call
    /// is settled (voided, nothing charged) instead of leaving its hold behind.
    pub async fn run(&self, state: &AppState) -> Result<ToolOutput, UpstreamFailure> {
        use futures::FutureExt;
        let context = tools::RunContext {
            upstream: &state.upstream,
            store: &state.store,
            execution: &self.hold.execution,
            stream: self.surface.stream(),
        };
        let started = std::time::Instant::now();
        let call = std::panic::AssertUnwindSafe(tools::run(&context, &self.tool, &self.request)).catch_unwind();
        let outcome = call.await.unwrap_or_else(|_| {
            tracing::error!(execution = %self.hold.execution.public_id, tool = %self.tool.id, "a tool adapter panicked; the call is voided");
            Err(UpstreamFailure::internal())
        });
        state.metrics.record_provider(&self.tool.id, started.elapsed());
        outcome
    }

    /// Records the outcome; the answer is sent only once it is durable. A success captures
    /// what the tool reported, clamped to the hold; a retryable failure voids the hold and
    /// frees the Idempotency-Key; a final failure voids it and keeps the answer for replays.
    pub async fn settle(self, state: &AppState, outcome: Result<ToolOutput, UpstreamFailure>) -> ApiResult<Response> {
        let Running { tool, hold, surface, tracked, .. } = self;
        let execution = &hold.execution;
        let now = state.now();
        let mut overage = Micros::ZERO;
        let counted = match &outcome {
            Ok(_) => PaidOutcome::Captured,
            Err(failure) => PaidOutcome::Voided { retryable: failure.retryable },
        };
        let (finish, answer) = match outcome {
            Ok(output) => {
                let settlement = rules::settle(execution.hold, output.cost);
                overage = settlement.overage;
                let charged = settlement.to_account(execution.sandbox);
                let receipt_id = format!("rcpt_{}", Uuid::new_v4().simple());
                let receipt =
                    (charged > Micros::ZERO).then(|| Receipt::of(execution, receipt_id.clone(), charged, now));
                let body = surface.success(&tool, execution, output.result, charged, receipt);
                (
                    Finish::Capture { reported: output.cost, receipt_id, status: 200, body: body.clone() },
                    Ok(json_response(StatusCode::OK, body)),
                )
            }
            Err(failure) if failure.retryable => (Finish::VoidRetryable, Err(failure.into_api_error())),
            Err(failure) => {
                let error = failure.into_api_error();
                let body = serde_json::to_vec(&surface.failure(&error)).unwrap_or_default();
                (Finish::VoidFinal { status: error_status(&error).as_u16(), body }, Err(error))
            }
        };
        let mut finished = state.store.finish_execution(&hold, finish.clone(), now).await;
        for wait in SETTLE_BACKOFF {
            if !matches!(finished, Err(StoreError::Unavailable(_))) {
                break;
            }
            tokio::time::sleep(wait).await;
            finished = state.store.finish_execution(&hold, finish.clone(), now).await;
        }
        state.metrics.record_hold(execution.hold, false);
        match finished {
            Ok(_) => {}
            Err(StoreError::Unavailable(_)) => {
                // The outcome is known here, only not recorded: keep recording it (a finish
                // sent again is harmless) while retries of the call answer "in flight". If
                // this node dies first, its lease expires and the call needs an operator.
                let public_id = execution.public_id.clone();
                let (store, hold) = (state.store.clone(), Arc::new(hold));
                keep_trying("an outcome", public_id.clone(), tracked, move || {
                    let (store, hold, finish) = (store.clone(), hold.clone(), finish.clone());
                    Box::pin(async move { store.finish_execution(&hold, finish, now).await })
                });
                let error = ApiError::new(
                    ErrorCode::IdempotencyUnavailable,
                    "the outcome of this request is not recorded yet; retry it with the same Idempotency-Key for its answer",
                )
                .with_retry_after(1);
                return Err(ApiError(error.0.with_detail("support_id", json!(public_id))));
            }
            Err(e) => {
                tracing::error!(execution = %execution.public_id, error = %e, "could not record an execution's outcome");
                state.metrics.record_paid(PaidOutcome::ReconcileRequired);
                if !matches!(e, StoreError::Refused(_)) {
                    // Still running, and no retry of this finish will succeed: an operator
                    // decides it, as the answer says (never a sweep that would void it).
                    let (store, public_id) = (state.store.clone(), execution.public_id.clone());
                    keep_trying("that an operator must decide it", public_id.clone(), tracked, move || {
                        let (store, public_id) = (store.clone(), public_id.clone());
                        Box::pin(async move { store.require_reconcile(&public_id).await })
                    });
                }
                return Err(reconcile_required(execution));
            }
        }
        state.metrics.record_paid(counted);
        if overage > Micros::ZERO {
            state.metrics.record_overage(overage);
        }
        answer
    }
}

type Attempt<T> = std::pin::Pin<Box<dyn std::future::Future<Output = visa_store::StoreResult<T>> + Send>>;

/// Keeps trying, in the background, what the store must learn although it is away now (an
/// outcome; that a hold whose answer was lost will not be used), until it answers; the call
/// stays tracked in flight meanwhile (shutdown waits for it, the sweep leaves it alone).
fn keep_trying<T: Send + 'static>(
    what: &'static str,
    execution: String,
    tracked: Tracked,
    mut attempt: impl FnMut() -> Attempt<T> + Send + 'static,
) {
    tokio::spawn(async move {
        let _tracked = tracked;
        loop {
            tokio::time::sleep(BACKGROUND_RETRY).await;
            match attempt().await {
                Err(StoreError::Unavailable(_)) => continue,
                Ok(_) => tracing::info!(%execution, "recorded {what} once the store answered again"),
                Err(e) => tracing::error!(%execution, error = %e, "could not record {what}"),
            }
            return;
        }
    });
}

/// The answer to an Idempotency-Key that did not start a new execution, or to a refused hold.
fn not_started(
    outcome: BeginOutcome,
    state: &AppState,
    day_number: i64,
    tool: &str,
    client_ip: IpAddr,
) -> ApiResult<Response> {
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
        BeginOutcome::Refused(refusal) => Err(refused(refusal, state, day_number, tool, client_ip)),
    }
}

fn error_status(error: &ApiError) -> StatusCode {
    StatusCode::from_u16(error.0.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A stored answer from bytes: JSON, or a recorded event stream; an error body's retry hints
/// (ours or OpenAI's shape) also go out as headers (`error::retry_headers`).
fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let hints = if status.is_success() {
        None
    } else {
        serde_json::from_slice::<Value>(&body).ok().map(|v| {
            let error = if v["error"].is_object() { &v["error"] } else { &v };
            (error["retryable"].as_bool().unwrap_or(false), error["retry_after"].as_u64())
        })
    };
    // A recorded stream starts with an event (named, on the Responses API), or (nothing but the
    // usage was streamed) with its `: visa` comment; JSON starts with `{`.
    let streamed = body.starts_with(b"data:") || body.starts_with(b"event:") || body.starts_with(b": ");
    let content_type = if streamed { "text/event-stream" } else { "application/json" };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some((retryable, retry_after)) = hints {
        crate::error::retry_headers(response.headers_mut(), retryable, retry_after);
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

/// A hold's refusal in the API's words. A limit's refusal names it (`limit`, docs/errors.md)
/// and, where the limit resets by itself, when (`resets_at`).
fn refused(refusal: HoldRefusal, state: &AppState, day_number: i64, tool: &str, client_ip: IpAddr) -> ApiError {
    let not_retryable = |mut error: ApiError| {
        error.0.retryable = false;
        error
    };
    let now = state.now().unix_timestamp();
    // A daily cap lets calls through again at the next 00:00 UTC.
    let daily = |message: &'static str| {
        let midnight = next_midnight(day_number);
        let error = ApiError::new(ErrorCode::RateLimited, message).with_retry_after((midnight - now).max(1) as u64);
        (error, Some(midnight))
    };
    let (error, resets_at) = match refusal {
        HoldRefusal::RateLimited { retry_after } => {
            let error = ApiError::new(ErrorCode::RateLimited, "the key's request rate limit is reached")
                .with_retry_after(retry_after);
            (error, Some(now + retry_after as i64))
        }
        HoldRefusal::DailyCap => daily("the key's daily cap is reached; it resets at 00:00 UTC"),
        HoldRefusal::TotalCap => {
            let error = ApiError::new(ErrorCode::RateLimited, "the key's total cap is reached; raise it to continue");
            (not_retryable(error), None)
        }
        HoldRefusal::EndUserDailyCap => {
            daily("this end user's daily cap on the key is reached; it resets at 00:00 UTC")
        }
        HoldRefusal::EndUserTotalCap => {
            let error = ApiError::new(
                ErrorCode::RateLimited,
                "this end user's total cap on the key is reached; the key's owner can raise it",
            );
            (not_retryable(error), None)
        }
        HoldRefusal::Balance => {
            let error = ApiError::new(
                ErrorCode::RateLimited,
                "the account's available balance does not cover this call; add credit to continue",
            );
            (not_retryable(error), None)
        }
        HoldRefusal::Denied(denial) => return denied(denial, tool, client_ip),
    };
    let mut error = error.0;
    if let Some(limit) = Limit::of(&refusal) {
        error = error.with_detail("limit", json!(limit.as_str()));
    }
    if let Some(at) = resets_at.and_then(|at| time::OffsetDateTime::from_unix_timestamp(at).ok()) {
        error = error.with_detail("resets_at", json!(rfc3339(at)));
    }
    ApiError(error)
}

/// When the UTC day after `day_number` (days since 1970-01-01) begins, in Unix seconds: when a
/// daily cap counted on that day resets.
pub fn next_midnight(day_number: i64) -> i64 {
    (day_number + 1) * 86_400
}

/// Counts the answer a key was given, for its usage: a success, or an error by its code.
pub fn record_answer(state: &AppState, key: &AuthRecord, answer: &ApiResult<Response>) {
    state.request_counts.record(key.key.id, key.secret_id, state.now(), error_code_of(answer).as_deref());
}

/// An Idempotency-Key in the store's 16 bytes, derived from a surface's own text (a client's
/// longer key, a session and a request id); `tag` keeps the surfaces' keys apart.
pub fn derived_idempotency_key(tag: &[u8], text: &str) -> [u8; 16] {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new().chain_update(tag).chain_update(text).finalize();
    let mut key = [0; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// The `error_code` of an answer, if it is an error (stored replays of errors included).
fn error_code_of(answer: &ApiResult<Response>) -> Option<String> {
    match answer {
        Err(error) => Some(error.0.code.as_str().to_owned()),
        Ok(response) if response.status().is_success() => None,
        Ok(response) => Some(format!("HTTP_{}", response.status().as_u16())),
    }
}
