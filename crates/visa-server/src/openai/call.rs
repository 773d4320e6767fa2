//! What every paid call on this surface shares, whatever it asks for (a chat completion, an
//! embedding): the key authenticated as on execute and the answer counted in its usage, any
//! refusal in OpenAI's shape; the Idempotency-Key (required unless the key opted out); OpenAI's
//! `user` taken as the end user; `model` naming a tool of the right kind the key may use.

use super::OpenAiError;
use crate::app::paid_call as execution;
use crate::auth::tool_key;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ClientIp, RawJsonBody, idempotency_key_header};
use crate::state::SharedState;
use crate::tools::catalog::{AdapterSpec, Tool};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::net::IpAddr;
use std::sync::Arc;
use visa_core::ErrorCode;
use visa_core::policy::{EndUser, truncate_for_message};
use visa_store::AuthRecord;

const MAX_IDEMPOTENCY_KEY: usize = 255;
const MISSING_KEY: &str = "send an Idempotency-Key header with every paid call, the same on every retry of one \
    call: with the OpenAI SDKs, pass extra_headers={\"Idempotency-Key\": str(uuid4())} (Python) or \
    { headers: { \"Idempotency-Key\": randomUUID() } } (Node) per call; the SDK reuses it on its own retries";

/// Serves one paid call: authenticates the key, runs `call` with it, counts the answer in the
/// key's usage, and words a refusal in OpenAI's shape.
pub async fn serve(
    state: SharedState,
    client_ip: Result<ClientIp, ApiError>,
    headers: HeaderMap,
    body: Result<RawJsonBody, ApiError>,
    call: impl AsyncFnOnce(SharedState, &AuthRecord, &HeaderMap, RawJsonBody, IpAddr) -> ApiResult<Response>,
) -> Response {
    let answer = async {
        let ClientIp(client_ip) = client_ip?;
        let key = tool_key::authenticate(&state, &headers, client_ip, tool_key::Audience::Api)
            .await
            .map_err(execution::execute_path_error)?;
        let answer = call(state.clone(), &key, &headers, body?, client_ip).await;
        execution::record_answer(&state, &key, &answer);
        answer
    };
    match answer.await {
        Ok(response) => response,
        Err(error) => OpenAiError(error).into_response(),
    }
}

/// The call's Idempotency-Key: 1 to 255 printable ASCII characters, hashed to the store's 16
/// bytes; without one, a fresh key if the key opted out (each call is its own), else refused.
pub fn idempotency_key(headers: &HeaderMap, key: &AuthRecord) -> ApiResult<[u8; 16]> {
    let Some(text) = idempotency_key_header(headers)? else {
        return match key.key.policy.idempotency_optional {
            true => Ok(*uuid::Uuid::new_v4().as_bytes()),
            false => Err(ApiError::invalid(MISSING_KEY)),
        };
    };
    if text.is_empty() || text.len() > MAX_IDEMPOTENCY_KEY || !text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(ApiError::invalid("Idempotency-Key must be 1 to 255 printable ASCII characters"));
    }
    Ok(execution::derived_idempotency_key(b"visa-openai-idempotency\0", text))
}

/// OpenAI's `user`, taken off the request: the end user, ours to keep, never the provider's.
pub fn end_user(request: &mut Value) -> ApiResult<Option<EndUser>> {
    match request.as_object_mut().and_then(|fields| fields.remove("user")) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(user)) => Ok(Some(EndUser::parse(&user)?)),
        Some(_) => Err(ApiError::invalid("user must be a string: the end user this call is made for")),
    }
}

/// The tool `model` names, if the key may use it and `serves` it (a `kind` of tool:
/// `AdapterSpec::is_chat`, `AdapterSpec::is_embeddings`).
pub fn model_tool(
    state: &SharedState,
    key: &AuthRecord,
    request: &Value,
    client_ip: IpAddr,
    (kind, serves): (&str, fn(&AdapterSpec) -> bool),
) -> ApiResult<(String, Arc<Tool>)> {
    let Some(model) = request.get("model").and_then(Value::as_str).map(str::to_owned) else {
        return Err(ApiError::invalid(format!(
            "model is required: the id of a {kind} tool this key may use (GET /v1/openai/models)"
        )));
    };
    let tool = execution::authorize(state, key, &model, client_ip)?.clone();
    if !serves(&tool.adapter) {
        return Err(ApiError::new(
            ErrorCode::ToolNotFound,
            format!(
                "'{}' is not a {kind} model (tool '{}' is not a {kind} tool)",
                truncate_for_message(&model),
                tool.id
            ),
        ));
    }
    Ok((model, tool))
}

/// Runs a prepared paid call and answers it. Detached, as on execute: once the hold may be
/// placed, the outcome is recorded whatever the client does — a streamed call (`events` set:
/// the surface's stream sends into it) included, whose provider is asked to stream with its
/// usage report at the end whatever the caller asked, and which is read to its end and settled.
/// The caller has dropped its own handle on the stream: once the call ends, `events` ends too.
pub async fn run(
    state: SharedState,
    mut call: execution::PaidCall,
    events: Option<tokio::sync::mpsc::UnboundedReceiver<bytes::Bytes>>,
) -> ApiResult<Response> {
    if events.is_some() {
        call.request["stream"] = Value::Bool(true);
        call.request["stream_options"] = serde_json::json!({ "include_usage": true });
    }
    let finished = crate::detached::detached(async move { execution::execute(&state, call).await });
    answer(events, finished).await
}

/// The answer to a paid call: with `events` (a streamed call's), the event stream as soon as the
/// first event comes (the provider is streaming); otherwise — or when the call answers before
/// any event (a refusal, a failure, a replay) — `finished`'s answer as it is.
async fn answer(
    events: Option<tokio::sync::mpsc::UnboundedReceiver<bytes::Bytes>>,
    mut finished: impl std::future::Future<Output = ApiResult<Response>> + Unpin,
) -> ApiResult<Response> {
    use axum::body::Body;
    use axum::http::{HeaderValue, header};
    use futures::StreamExt;
    let Some(mut events) = events else {
        return finished.await;
    };
    tokio::select! {
        biased;
        first = events.recv() => match first {
            Some(first) => {
                let rest = futures::stream::unfold(events, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
                let body = futures::stream::once(async move { first }).chain(rest).map(Ok::<_, std::convert::Infallible>);
                let mut response = Response::new(Body::from_stream(body));
                let headers = response.headers_mut();
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                Ok(response)
            }
            None => finished.await,
        },
        answer = &mut finished => answer,
    }
}
