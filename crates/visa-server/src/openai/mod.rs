//! The OpenAI-compatible surface, `/v1/openai`: the official OpenAI SDKs (and what is built on
//! them) work against Visa Keys with only `base_url` and the key changed. It is a second face
//! of the same money path, not a second money path: a chat completion is one paid call of an
//! `openai_chat` tool (`crate::app::paid_call`, in this surface's words: `chat::Completion`
//! shaping its answers), so keys, policy, caps, balance, rate limit, hold, metering, ledger,
//! Idempotency-Key and audit are exactly the execute route's.
//!
//! - `call.rs`: what every paid call here shares (the key, the Idempotency-Key, `user`, `model`);
//! - `chat.rs`: `POST /v1/openai/chat/completions`;
//! - `embeddings.rs`: `POST /v1/openai/embeddings` (`openai_embeddings` tools);
//! - `responses/`: `POST /v1/openai/responses`, the Responses API over the chat tools;
//! - `models.rs`: `GET /v1/openai/models` and `/models/{id}`, the chat tools a key may use;
//! - here: OpenAI's error shape (`{"error": {"message", "type", "code", "param"}}`, `code`
//!   being our `error_code`) and the completion body a call answers and stores for replays.

mod call;
mod chat;
mod embeddings;
mod models;
mod responses;

pub use responses::surface as responses_surface;

use crate::error::ApiError;
use crate::state::SharedState;
use crate::tools::stream::ChatStream;
pub use crate::tools::stream::event;
use crate::wire::execute::{Receipt, Usage};
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::{Value, json};
use visa_core::ErrorCode;
use visa_core::money::Micros;
use visa_store::ExecutionRecord;

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/v1/openai/chat/completions", post(chat::completions).fallback(method_not_allowed))
        .route("/v1/openai/embeddings", post(embeddings::create).fallback(method_not_allowed))
        .route("/v1/openai/responses", post(responses::create).fallback(method_not_allowed))
        .route("/v1/openai/models", get(models::list).fallback(method_not_allowed))
        .route("/v1/openai/models/{id}", get(models::get).fallback(method_not_allowed))
        .route("/v1/openai/{*rest}", any(|| async { OpenAiError(ApiError::new(ErrorCode::NotFound, "no such route")) }))
}

/// A known route called with another method, in OpenAI's shape (as every answer here is).
async fn method_not_allowed() -> OpenAiError {
    OpenAiError(ApiError::new(ErrorCode::MethodNotAllowed, "this route does not accept that method"))
}

/// OpenAI's `error.type` for a status, as its SDKs and clients expect it.
fn error_type(status: u16) -> &'static str {
    match status {
        400 | 405 | 413 | 415 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        409 => "conflict_error",
        429 => "rate_limit_error",
        _ => "api_error",
    }
}

/// An error in OpenAI's shape: `message`, `type`, `code` (our `error_code`), `param`, plus
/// our `retryable`, `retry_after` and any details (`support_id`, `receipt`).
pub fn error_body(error: &ApiError) -> Value {
    let r = &error.0;
    let mut inner = json!({
        "message": r.message,
        "type": error_type(r.code.status()),
        "code": r.code.as_str(),
        "param": null,
        "retryable": r.retryable,
    });
    if let Some(seconds) = r.retry_after {
        inner["retry_after"] = json!(seconds);
    }
    for (name, value) in r.details.iter().flatten() {
        inner[name] = value.clone();
    }
    json!({ "error": inner })
}

/// A refusal on this surface: OpenAI's shape, the code's status, `Retry-After` when set.
pub struct OpenAiError(pub ApiError);

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.0.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(error_body(&self.0))).into_response();
        crate::error::retry_headers(response.headers_mut(), self.0.0.retryable, self.0.0.retry_after);
        response
    }
}

/// The charge a chat completion carries in its extra `visa` member (SDKs keep unknown
/// members: `completion.model_extra["visa"]` in Python), streamed or not.
#[derive(serde::Serialize)]
struct Charge<'a> {
    execution_id: &'a str,
    charged_micros: String,
    charged_cents: i64,
    /// How a stream's charge was metered (`tools::stream::ChatStream::metered`).
    #[serde(skip_serializing_if = "Option::is_none")]
    metered: Option<&'static str>,
    receipt: Option<Receipt>,
}

impl<'a> Charge<'a> {
    fn new(execution: &'a ExecutionRecord, charged: Micros, receipt: Option<Receipt>) -> Self {
        let Usage { charged_cents, charged_micros } = Usage::of(charged);
        Self { execution_id: &execution.public_id, charged_micros, charged_cents, metered: None, receipt }
    }
}

/// A completion's members followed by `visa`, written straight to bytes (no second tree).
#[derive(serde::Serialize)]
struct Charged<'a> {
    #[serde(flatten)]
    completion: &'a serde_json::Map<String, Value>,
    visa: Charge<'a>,
}

/// What a chat completion answers (and stores for replays): the provider's completion under
/// the model name the caller used, with the charge in an extra `visa` member (last, replacing
/// any the provider sent).
pub fn completion_body(
    mut completion: Value,
    model: &str,
    execution: &ExecutionRecord,
    charged: Micros,
    receipt: Option<Receipt>,
) -> Vec<u8> {
    let mut members = match completion.take() {
        Value::Object(members) => members,
        // `interpret` passes only objects on; anything else is kept whole, not dropped.
        other => serde_json::Map::from_iter([("completion".to_owned(), other)]),
    };
    members.shift_remove("visa");
    members.insert("model".to_owned(), Value::String(model.to_owned()));
    // OpenAI's completions always carry when they were made; a provider's that lacks it gets the call's.
    if !members.get("created").is_some_and(Value::is_u64) {
        members.insert("created".to_owned(), execution.created_at.unix_timestamp().into());
    }
    charged_body(&members, execution, charged, receipt)
}

/// An answer's members followed by the charge in `visa`, as bytes.
pub fn charged_body(
    members: &serde_json::Map<String, Value>,
    execution: &ExecutionRecord,
    charged: Micros,
    receipt: Option<Receipt>,
) -> Vec<u8> {
    let body = Charged { completion: members, visa: Charge::new(execution, charged, receipt) };
    // Sized for a typical completion, so the encoder rarely grows it.
    let mut bytes = Vec::with_capacity(1024);
    serde_json::to_writer(&mut bytes, &body).map_or_else(|_| Vec::new(), |()| bytes)
}

/// A stream's charge as the comment that ends it (`: visa {...}`, ignored by SSE clients, read
/// by people and tests), with how it was metered if it was metered from the stream.
pub fn charge_comment(
    execution: &ExecutionRecord,
    charged: Micros,
    receipt: Option<Receipt>,
    metered: Option<&'static str>,
) -> Vec<u8> {
    let visa = Charge { metered, ..Charge::new(execution, charged, receipt) };
    let mut comment = b": visa ".to_vec();
    comment.extend_from_slice(&serde_json::to_vec(&visa).unwrap_or_default());
    comment.extend_from_slice(b"\n\n");
    comment
}

/// What a streamed completion stores for replays: the events its caller received, then a
/// comment with the charge (`: visa {...}`, ignored by SSE clients, read by people and tests)
/// and `data: [DONE]`.
pub fn stream_body(
    stream: &ChatStream,
    execution: &ExecutionRecord,
    charged: Micros,
    receipt: Option<Receipt>,
) -> Vec<u8> {
    let mut body = stream.recorded();
    body.extend_from_slice(&charge_comment(execution, charged, receipt, Some(stream.metered().as_str())));
    body.extend_from_slice(&event(b"[DONE]"));
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use visa_store::ExecutionState;

    fn execution() -> ExecutionRecord {
        ExecutionRecord {
            id: 7,
            public_id: "exec-7".into(),
            account_id: visa_store::AccountId::new(1),
            key_id: visa_store::KeyId::new(2),
            tool: "chat".into(),
            state: ExecutionState::Succeeded,
            sandbox: false,
            hold: Micros(5_000),
            charged: Micros(450),
            receipt_id: Some("rcpt-7".into()),
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            finished_at: None,
            day_number: 0,
            end_user: None,
        }
    }

    /// The provider's members keep their order with `model` renamed in place; `visa` comes
    /// last, replacing any the provider sent, with the receipt inline.
    #[test]
    fn a_completion_keeps_its_members_and_ends_with_the_charge() {
        let completion = json!({"id": "c1", "model": "upstream-model", "visa": "forged", "choices": [], "usage": {}});
        let receipt = Receipt::of(&execution(), "rcpt-7".into(), Micros(450), time::OffsetDateTime::UNIX_EPOCH);
        let body = completion_body(completion, "gpt-mock", &execution(), Micros(450), Some(receipt));
        let text = String::from_utf8(body).unwrap();
        assert_eq!(
            text,
            r#"{"id":"c1","model":"gpt-mock","choices":[],"usage":{},"created":0,"visa":{"execution_id":"exec-7","charged_micros":"450","charged_cents":1,"receipt":{"id":"rcpt-7","execution_id":"exec-7","charged_micros":"450","created_at":"1970-01-01T00:00:00Z"}}}"#
        );
    }
}
