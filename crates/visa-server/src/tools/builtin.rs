//! The builtin tools, which need no provider: `echo` returns its input, `sleep` waits
//! `{ "ms": N }` (N <= 10000), `fail` answers like a provider failing with `{ "status": N }` (mapped by the
//! same rule as a real provider's answer), `echo_chat` is a chat model answering the last user
//! message back (a first OpenAI-compatible call without any provider key), streamed or not.

use super::UpstreamFailure;
use super::catalog::Builtin;
use super::stream::ChatStream;
use crate::error::ApiError;
use serde_json::{Value, json};
use std::time::Duration;

pub const MAX_SLEEP_MS: u64 = 10_000;

fn sleep_ms(input: &Value) -> Result<u64, ApiError> {
    match input.get("ms") {
        None => Ok(0),
        Some(v) => v
            .as_u64()
            .filter(|ms| *ms <= MAX_SLEEP_MS)
            .ok_or_else(|| ApiError::invalid(format!("input.ms must be an integer from 0 to {MAX_SLEEP_MS}"))),
    }
}

fn fail_status(input: &Value) -> Result<u16, ApiError> {
    input
        .get("status")
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (400..=599).contains(s))
        .ok_or_else(|| ApiError::invalid("input.status must be an HTTP error status from 400 to 599"))
}

/// The text of the last user message (its text parts joined), as `echo_chat` answers it.
fn last_user_text(input: &Value) -> Result<String, ApiError> {
    let messages = input
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::invalid("input.messages must be an array of chat messages"))?;
    let last = messages.iter().rev().find(|m| m["role"] == "user");
    Ok(match last.map(|m| &m["content"]) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join(" "),
        _ => String::new(),
    })
}

/// `echo_chat`'s completion: deterministic, no tokens counted (its price is flat).
fn echo_completion(input: &Value) -> Result<Value, ApiError> {
    let text = last_user_text(input)?;
    Ok(json!({
        "id": "chatcmpl-echo",
        "object": "chat.completion",
        "model": "echo-chat",
        "choices": [{ "index": 0, "finish_reason": "stop", "message": { "role": "assistant", "content": text } }],
        "usage": { "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0 },
    }))
}

pub fn validate(tool: Builtin, input: &Value) -> Result<(), ApiError> {
    match tool {
        Builtin::Echo => Ok(()),
        Builtin::Sleep => sleep_ms(input).map(drop),
        Builtin::Fail => fail_status(input).map(drop),
        Builtin::EchoChat => last_user_text(input).map(drop),
    }
}

/// `echo_chat` streamed: its answer as OpenAI streams one (a role-and-content chunk, a finish
/// chunk, the usage chunk when the caller asked for it).
pub fn stream_echo_chat(input: &Value, stream: &ChatStream) {
    let text = last_user_text(input).unwrap_or_default();
    let id = "chatcmpl-echo";
    let answer = json!([{ "index": 0, "delta": { "role": "assistant", "content": text }, "finish_reason": null }]);
    let finish = json!([{ "index": 0, "delta": {}, "finish_reason": "stop" }]);
    // The finish is content too (it releases nothing held back), but delivers no more text.
    for (choices, delivered) in [(answer, text.as_str()), (finish, "")] {
        stream.relay_chunk(&stream.chunk(id, choices), Some(delivered));
    }
    if let Some(usage) = stream.no_usage_chunk(id) {
        stream.relay_chunk(&usage, None);
    }
}

pub async fn run(tool: Builtin, input: &Value) -> Result<Value, UpstreamFailure> {
    match tool {
        Builtin::Echo => Ok(input.clone()),
        Builtin::Sleep => {
            let ms = sleep_ms(input).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(json!({ "slept_ms": ms }))
        }
        Builtin::Fail => {
            let status = fail_status(input).unwrap_or(500);
            Err(super::provider::classify(status, "simulated failure", None))
        }
        Builtin::EchoChat => echo_completion(input).map_err(|e| UpstreamFailure::retryable(e.0.message)),
    }
}
