//! `POST /v1/openai/chat/completions`: OpenAI's chat request as is, `model` naming an
//! `openai_chat` tool (id or alias) the key may use. Authentication, the tool checks and their
//! order, the Idempotency-Key, the hold from `max_tokens`, metering from `usage`, the ledger and
//! the usage counts are the execute route's (`crate::execution`); only the shapes differ.
//!
//! The Idempotency-Key is required here too. SDKs retry on their own (connection errors, 408,
//! 409, 429, 5xx) with the same headers, so a key set per call makes their retries safe; since
//! SDK-generated keys are not UUIDs, any printable ASCII up to 255 characters is accepted and
//! stored as the first 16 bytes of its SHA-256 (scoped per API key, like every key). A key
//! created with `idempotency: "optional"` may omit it; each such call is then a new call.

use super::OpenAiError;
use crate::app::paid_call::{self as execution, Answer};
use crate::auth::tool_key;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ClientIp, RawJsonBody, idempotency_key_header};
use crate::state::SharedState;
use crate::tools::catalog::Tool;
use crate::tools::stream::ChatStream;
use crate::wire::execute::Receipt;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::Value;
use serde_json::json;
use std::net::IpAddr;
use std::sync::Arc;
use visa_core::ErrorCode;
use visa_core::money::Micros;
use visa_core::policy::EndUser;
use visa_core::policy::truncate_for_message;
use visa_store::{AuthRecord, ExecutionRecord};

const MAX_IDEMPOTENCY_KEY: usize = 255;
const MISSING_KEY: &str = "send an Idempotency-Key header with every chat completion, the same on every retry of one \
    call: with the OpenAI SDKs, pass extra_headers={\"Idempotency-Key\": str(uuid4())} (Python) or \
    { headers: { \"Idempotency-Key\": randomUUID() } } (Node) per call; the SDK reuses it on its own retries";

pub async fn completions(
    State(state): State<SharedState>,
    client_ip: Result<ClientIp, ApiError>,
    headers: HeaderMap,
    body: Result<RawJsonBody, ApiError>,
) -> Response {
    let answer = async {
        let ClientIp(client_ip) = client_ip?;
        let key = tool_key::authenticate(&state, &headers, client_ip, tool_key::Audience::Api)
            .await
            .map_err(execution::execute_path_error)?;
        let answer = complete(state.clone(), &key, &headers, body?, client_ip).await;
        execution::record_answer(&state, &key, &answer);
        answer
    };
    match answer.await {
        Ok(response) => response,
        Err(error) => OpenAiError(error).into_response(),
    }
}

async fn complete(
    state: SharedState,
    key: &AuthRecord,
    headers: &HeaderMap,
    body: RawJsonBody,
    client_ip: IpAddr,
) -> ApiResult<Response> {
    let mut request: Value = body.parse()?;
    // OpenAI's `user` names the end user; it is ours to keep, never the provider's.
    let end_user = match request.as_object_mut().and_then(|fields| fields.remove("user")) {
        None | Some(Value::Null) => None,
        Some(Value::String(user)) => Some(EndUser::parse(&user)?),
        Some(_) => return Err(ApiError::invalid("user must be a string: the end user this call is made for")),
    };
    let Some(model) = request.get("model").and_then(Value::as_str).map(str::to_owned) else {
        return Err(ApiError::invalid(
            "model is required: the id of a chat tool this key may use (GET /v1/openai/models)",
        ));
    };
    let tool = execution::authorize(&state, key, &model, client_ip)?.clone();
    if !tool.adapter.is_chat() {
        return Err(ApiError::new(
            ErrorCode::ToolNotFound,
            format!("'{}' is not a chat model (tool '{}' is not a chat tool)", truncate_for_message(&model), tool.id),
        ));
    }
    let streamed = request.get("stream").and_then(Value::as_bool) == Some(true);
    let include_usage = request["stream_options"]["include_usage"].as_bool() == Some(true);
    let idempotency_key = match idempotency_key(headers)? {
        Some(key) => key,
        // The key opted out: each call is its own (a retry is a new call).
        None if key.key.policy.idempotency_optional => *uuid::Uuid::new_v4().as_bytes(),
        None => return Err(ApiError::invalid(MISSING_KEY)),
    };
    // A streamed call's events reach the response through this channel (a plain call has none).
    let (stream, events) = if streamed {
        let (sender, events) = tokio::sync::mpsc::unbounded_channel();
        let created = state.now().unix_timestamp();
        (Some(Arc::new(ChatStream::new(include_usage, model.clone(), created, sender))), Some(events))
    } else {
        (None, None)
    };
    let surface: Arc<dyn Answer> = Arc::new(Completion { model, stream: stream.clone() });
    let mut call = execution::prepare(&state, key, tool, request, (surface, idempotency_key, end_user), client_ip)?;
    if streamed {
        // The provider streams to us, with its usage report at the end, whatever the caller asked.
        call.request["stream"] = Value::Bool(true);
        call.request["stream_options"] = json!({ "include_usage": true });
    }
    // The call holds the only other handle: once it ends, `events` ends too.
    drop(stream);
    // Detached, as on execute: once the hold may be placed, the outcome is recorded whatever
    // the client does (a streamed call included: it is read to its end and settled).
    let mut finished = crate::detached::detached(async move { execution::execute(&state, call).await });
    let Some(mut events) = events else {
        return finished.await;
    };
    // The first event means the provider is streaming: answer with the event stream. An answer
    // before any event (a refusal, a failure, a replay) is sent as it is.
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

/// The `Idempotency-Key`, if sent: 1 to 255 printable ASCII characters, hashed to the store's
/// 16 bytes.
fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<[u8; 16]>> {
    let Some(text) = idempotency_key_header(headers)? else { return Ok(None) };
    if text.is_empty() || text.len() > MAX_IDEMPOTENCY_KEY || !text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(ApiError::invalid("Idempotency-Key must be 1 to 255 printable ASCII characters"));
    }
    Ok(Some(execution::derived_idempotency_key(b"visa-openai-idempotency\0", text)))
}

/// This surface's words: the provider's chat completion under the `model` name the caller
/// used, and OpenAI's error shape; with `stream`, the completion's events as they arrive (the
/// stored answer is the stream the caller received).
struct Completion {
    model: String,
    stream: Option<Arc<ChatStream>>,
}

impl Answer for Completion {
    fn route(&self) -> &'static str {
        "POST openai"
    }

    fn success(
        &self,
        _: &Tool,
        execution: &ExecutionRecord,
        result: Value,
        charged: Micros,
        receipt: Option<Receipt>,
    ) -> Vec<u8> {
        match &self.stream {
            Some(stream) => super::stream_body(stream, execution, charged, receipt),
            None => super::completion_body(result, &self.model, execution, charged, receipt),
        }
    }

    fn failure(&self, error: &ApiError) -> Value {
        super::error_body(error)
    }

    fn stream(&self) -> Option<&ChatStream> {
        self.stream.as_deref()
    }
}
