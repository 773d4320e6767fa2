//! `POST /v1/openai/responses`: OpenAI's Responses API, what the OpenAI Agents SDK and the
//! Vercel AI SDK call by default, served by the same `openai_chat` tools as chat completions
//! and as one paid call on the same money path (`call`): the request is translated to the chat
//! request it stands for (`request`), held from its `max_output_tokens`, metered from the
//! provider's `usage`, and the chat completion is answered as a response object (`output`) —
//! or, with `stream: true`, as the response's typed events as the provider's chunks arrive
//! (`events`), ended by `response.completed` once the call is settled. The answer stored for
//! replays is what the caller received.

mod events;
mod output;
mod request;

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
    let echo = output::Echo::of(&request);
    // A streamed call's events reach the response through this channel (a plain call has none),
    // written by `events::Writer` from the chunks the provider streams.
    let (stream, events) = if streamed {
        let (sender, events) = tokio::sync::mpsc::unbounded_channel();
        let created = state.now().unix_timestamp();
        let id = uuid::Uuid::now_v7().simple().to_string();
        let writer = Arc::new(events::Writer::new(id, model.clone(), created, echo.clone()));
        let stream = ChatStream::new(true, model.clone(), created, sender).with_writer(writer.clone());
        (Some((Arc::new(stream), writer)), Some(events))
    } else {
        (None, None)
    };
    let surface: Arc<dyn Answer> = Arc::new(Responses { model, echo, stream: stream.clone() });
    let call = execution::prepare(&state, key, tool, chat, (surface, idempotency_key, end_user), client_ip)?;
    // The call holds the only other handles on the stream and its writer.
    drop(stream);
    call::run(state, call, events).await
}

/// The Responses API's words for a plain (not streamed) call of `model`, given its chat request
/// already: what the money-path simulation drives beside execute and MCP.
pub fn surface(model: &str) -> Arc<dyn Answer> {
    Arc::new(Responses { model: model.to_owned(), echo: output::Echo::default(), stream: None })
}

/// This surface's words: the chat completion as a response object under the model name the
/// caller used (or its events), with the charge in `visa`; refusals in OpenAI's error shape.
struct Responses {
    model: String,
    echo: output::Echo,
    /// With `stream: true`: where the events go, and what writes them.
    stream: Option<(Arc<ChatStream>, Arc<events::Writer>)>,
}

impl Answer for Responses {
    fn route(&self) -> &'static str {
        // A streamed request and a plain one are different requests under one Idempotency-Key.
        if self.stream.is_some() { "POST openai/responses stream" } else { "POST openai/responses" }
    }

    fn success(
        &self,
        _: &Tool,
        execution: &ExecutionRecord,
        result: Value,
        charged: Micros,
        receipt: Option<Receipt>,
    ) -> Vec<u8> {
        if let Some((stream, writer)) = &self.stream {
            // What the caller received, then the response completed (sent to a caller still
            // reading: `paid_call::finish_stream`) and the charge.
            let mut body = stream.recorded();
            for event in writer.completed() {
                body.extend_from_slice(&event);
            }
            body.extend_from_slice(&super::charge_comment(
                execution,
                charged,
                receipt,
                Some(stream.metered().as_str()),
            ));
            return body;
        }
        let id = execution.public_id.replace('-', "");
        let created = execution.created_at.unix_timestamp();
        let Value::Object(members) = output::response(&result, &id, &self.model, created, &self.echo) else {
            return Vec::new();
        };
        super::charged_body(&members, execution, charged, receipt)
    }

    fn failure(&self, error: &ApiError) -> Value {
        super::error_body(error)
    }

    fn stream(&self) -> Option<&ChatStream> {
        self.stream.as_ref().map(|(stream, _)| stream.as_ref())
    }
}
