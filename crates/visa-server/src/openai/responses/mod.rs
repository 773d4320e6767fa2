//! `POST /v1/openai/responses`: OpenAI's Responses API, what the OpenAI Agents SDK and the
//! Vercel AI SDK call by default, served by the same `openai_chat` tools as chat completions
//! and as one paid call on the same money path (`call`): the request is translated to the chat
//! request it stands for (`request`), held from its `max_output_tokens`, metered from the
//! provider's `usage`, and the chat completion is answered as a response object (`output`) —
//! or, with `stream: true`, as the response's typed events, sent once the provider has
//! answered (not token by token). The answer stored for replays is what the caller received.

mod output;
mod request;

use super::call;
use crate::app::paid_call::{self as execution, Answer};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ClientIp, RawJsonBody};
use crate::state::SharedState;
use crate::tools::catalog::{AdapterSpec, Tool};
use crate::wire::execute::Receipt;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::Value;
use std::net::IpAddr;
use std::sync::Arc;
use visa_core::money::Micros;
use visa_store::{AuthRecord, ExecutionRecord};

pub async fn create(
    State(state): State<SharedState>,
    client_ip: Result<ClientIp, ApiError>,
    headers: HeaderMap,
    body: Result<RawJsonBody, ApiError>,
) -> Response {
    call::serve(state, client_ip, headers, body, respond).await
}

async fn respond(
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
    let idempotency_key = call::idempotency_key(headers, key)?;
    let chat = request::chat_request(&request)?;
    let surface: Arc<dyn Answer> = Arc::new(Responses { model, streamed, echo: output::Echo::of(&request) });
    let paid = execution::prepare(&state, key, tool, chat, (surface, idempotency_key, end_user), client_ip)?;
    // Detached, as on execute: once the hold may be placed, the outcome is recorded.
    crate::detached::detached(async move { execution::execute(&state, paid).await }).await
}

/// This surface's words: the chat completion as a response object under the model name the
/// caller used (or its events), with the charge in `visa`; refusals in OpenAI's error shape.
struct Responses {
    model: String,
    streamed: bool,
    echo: output::Echo,
}

impl Answer for Responses {
    fn route(&self) -> &'static str {
        // A streamed request and a plain one are different requests under one Idempotency-Key.
        if self.streamed { "POST openai/responses stream" } else { "POST openai/responses" }
    }

    fn success(
        &self,
        _: &Tool,
        execution: &ExecutionRecord,
        result: Value,
        charged: Micros,
        receipt: Option<Receipt>,
    ) -> Vec<u8> {
        let id = execution.public_id.replace('-', "");
        let created = execution.created_at.unix_timestamp();
        let response = output::response(&result, &id, &self.model, created, &self.echo);
        if !self.streamed {
            let Value::Object(members) = response else { return Vec::new() };
            return super::charged_body(&members, execution, charged, receipt);
        }
        let mut body = Vec::with_capacity(4096);
        for event in output::events(&response) {
            body.extend_from_slice(b"event: ");
            body.extend_from_slice(event["type"].as_str().unwrap_or_default().as_bytes());
            body.push(b'\n');
            body.extend_from_slice(&super::event(&serde_json::to_vec(&event).unwrap_or_default()));
        }
        body.extend_from_slice(&super::charge_comment(execution, charged, receipt, None));
        body
    }

    fn failure(&self, error: &ApiError) -> Value {
        super::error_body(error)
    }
}
