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

use super::call;
use crate::app::paid_call::{self as execution, Answer};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ClientIp, RawJsonBody};
use crate::state::SharedState;
use crate::tools::catalog::{AdapterSpec, Tool};
use crate::tools::stream::ChatStream;
use crate::wire::execute::Receipt;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::Value;
use std::net::IpAddr;
use std::sync::Arc;
use visa_core::money::Micros;
use visa_store::{AuthRecord, ExecutionRecord};

pub async fn completions(
    State(state): State<SharedState>,
    client_ip: Result<ClientIp, ApiError>,
    headers: HeaderMap,
    body: Result<RawJsonBody, ApiError>,
) -> Response {
    call::serve(state, client_ip, headers, body, complete).await
}

async fn complete(
    state: SharedState,
    key: &AuthRecord,
    headers: &HeaderMap,
    body: RawJsonBody,
    client_ip: IpAddr,
) -> ApiResult<Response> {
    let mut request: Value = body.parse()?;
    let end_user = call::end_user(&mut request)?;
    let (model, tool) = call::model_tool(&state, key, &request, client_ip, ("chat", AdapterSpec::is_chat))?;
    let streamed = request.get("stream").and_then(Value::as_bool) == Some(true);
    let include_usage = request["stream_options"]["include_usage"].as_bool() == Some(true);
    let idempotency_key = call::idempotency_key(headers, key)?;
    // A streamed call's events reach the response through this channel (a plain call has none).
    let (stream, events) = if streamed {
        let (sender, events) = tokio::sync::mpsc::unbounded_channel();
        let created = state.now().unix_timestamp();
        (Some(Arc::new(ChatStream::new(include_usage, model.clone(), created, sender))), Some(events))
    } else {
        (None, None)
    };
    let surface: Arc<dyn Answer> = Arc::new(Completion { model, stream: stream.clone() });
    let call = execution::prepare(&state, key, tool, request, (surface, idempotency_key, end_user), client_ip)?;
    // The call holds the only other handle on the stream.
    drop(stream);
    call::run(state, call, events).await
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
