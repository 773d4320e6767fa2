//! Adapters that call a provider over HTTP: `http` (a priced JSON POST) and `openai_chat`
//! (any OpenAI-compatible `/chat/completions`, metered by the `usage` it reports).
//!
//! Provider answers are mapped honestly: 429, 5xx, timeouts and connection errors are
//! retryable 502s (with the provider's `Retry-After`), other 4xx are the caller's fault (400,
//! with the provider's message, any provider secret scrubbed from it). The provider secret comes
//! from the environment variable the catalog names (read once, at load), never from the request.

use super::upstream::Upstream;
use super::{ToolOutput, UpstreamFailure};
use crate::catalog::{ProviderSecret, Tool};
use axum::http::{Method, Uri};
use serde_json::Value;
use visa_core::ErrorCode;
use visa_core::money::Micros;

/// The most of a provider's error message we pass on.
const MAX_PROVIDER_MESSAGE: usize = 300;

/// POSTs `body` with the tool's headers and returns the JSON answer of a 2xx, or the failure
/// it maps to.
pub async fn post_json(upstream: &Upstream, tool: &Tool, url: &Uri, body: &Value) -> Result<Value, UpstreamFailure> {
    let answer = upstream.send(Method::POST, url, &tool.headers, Some(body)).await?;
    if (200..300).contains(&answer.status) {
        return serde_json::from_slice(&answer.body)
            .map_err(|_| UpstreamFailure::retryable("the provider answered with something that is not JSON"));
    }
    let secret = tool.secret.as_ref().map(ProviderSecret::expose);
    Err(classify(answer.status, &provider_message(&String::from_utf8_lossy(&answer.body), secret), answer.retry_after))
}

/// What a provider's non-2xx answer means for the caller.
pub fn classify(status: u16, message: &str, retry_after: Option<u64>) -> UpstreamFailure {
    let (code, retryable, text) = match status {
        // Not the caller's fault: the server's own provider credentials were refused.
        401 | 403 => (
            ErrorCode::ToolUnavailable,
            false,
            format!("the provider refused this server's credentials (HTTP {status}); the operator must fix them"),
        ),
        // Redirects are not followed (the provider key must not travel to another URL): the
        // catalog's URL is stale, which only the operator can fix.
        300..=399 => (
            ErrorCode::ToolUnavailable,
            false,
            format!("the provider redirected the call (HTTP {status}); the operator must update the tool's URL"),
        ),
        429 | 500.. => (ErrorCode::UpstreamError, true, format!("the provider failed with HTTP {status}: {message}")),
        _ => (ErrorCode::InvalidRequest, false, format!("the provider refused the input (HTTP {status}): {message}")),
    };
    if code == ErrorCode::ToolUnavailable {
        tracing::warn!(status, "a provider refused the call for a reason only the operator can fix");
    }
    UpstreamFailure { code, message: text, retryable, retry_after: retry_after.filter(|_| retryable) }
}

/// `error.message`, `error` or `message` of a JSON error body, else the text; with the
/// provider secret scrubbed out *before* it is shortened (so no fragment of it survives).
fn provider_message(text: &str, secret: Option<&str>) -> String {
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    let from_json = parsed.as_ref().and_then(|v| {
        v["error"]["message"]
            .as_str()
            .or_else(|| v["error"].as_str())
            .or_else(|| v["message"].as_str())
            .map(str::to_owned)
    });
    let message = scrub(&from_json.unwrap_or_else(|| text.to_owned()), secret);
    visa_core::policy::truncate_for_message(&message.chars().take(MAX_PROVIDER_MESSAGE).collect::<String>())
}

/// Replaces every run of at least `PROBE` characters of `secret` (from its start) with
/// `[redacted]`, so a provider that echoes all or a cut-off part of the key leaks nothing.
pub fn scrub(message: &str, secret: Option<&str>) -> String {
    const PROBE: usize = 8;
    let Some(secret) = secret.filter(|s| s.len() >= PROBE && s.is_ascii()) else {
        return message.to_owned();
    };
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(&secret[..PROBE]) {
        let matched = rest[at..].bytes().zip(secret.bytes()).take_while(|(a, b)| a == b).count();
        out.push_str(&rest[..at]);
        out.push_str("[redacted]");
        rest = &rest[at + matched..];
    }
    out.push_str(rest);
    out
}

/// The chat request sent upstream: the caller's input with the catalog's model, never streamed.
pub fn chat_body(input: &Value, model: &str) -> Value {
    let mut body = input.clone();
    body["model"] = Value::String(model.to_owned());
    body["stream"] = Value::Bool(false);
    body
}

/// What a chat call costs: the reported token usage at the tool's prices, at least the tool's
/// minimum charge. Without a reported usage the call is charged its hold (the most it could
/// have cost), since the provider has billed us something we cannot measure.
pub fn chat_cost(tool: &Tool, answer: &Value, hold: Micros) -> Micros {
    let usage = &answer["usage"];
    match (tool.tokens, usage["prompt_tokens"].as_u64(), usage["completion_tokens"].as_u64()) {
        (Some(price), Some(input), Some(output)) => price.cost(input, output).max(tool.price),
        _ => hold,
    }
}

/// The hold of a chat call: the prompt (counted as one token per byte, an upper bound for
/// the tokenizers in use) plus `max_tokens` of output at the tool's prices; the tool's
/// `max_price` when the caller sets no `max_tokens`. Never above `max_price`.
pub fn chat_hold(tool: &Tool, input: &Value) -> Micros {
    let (Some(price), Some(max_tokens)) = (tool.tokens, input["max_tokens"].as_u64()) else {
        return tool.max_price;
    };
    let prompt_bytes = serde_json::to_vec(&input["messages"]).map(|b| b.len() as u64).unwrap_or(u64::MAX);
    price.cost(prompt_bytes, max_tokens).max(tool.price).min(tool.max_price)
}

pub async fn run_chat(
    upstream: &Upstream,
    tool: &Tool,
    endpoint: &Uri,
    model: &str,
    input: &Value,
    hold: Micros,
) -> Result<ToolOutput, UpstreamFailure> {
    let answer = post_json(upstream, tool, endpoint, &chat_body(input, model)).await?;
    let cost = chat_cost(tool, &answer, hold);
    Ok(ToolOutput { result: answer, cost })
}

#[cfg(test)]
mod tests {
    use super::scrub;

    #[test]
    fn scrubs_whole_and_cut_off_secrets() {
        let secret = Some("sk-abcdefghijklmnop");
        assert_eq!(scrub("you sent Bearer sk-abcdefghijklmnop!", secret), "you sent Bearer [redacted]!");
        assert_eq!(scrub("key sk-abcdefgh... is bad", secret), "key [redacted]... is bad");
        assert_eq!(scrub("sk-abcdefghijklmnop and sk-abcdefghijklmnop", secret), "[redacted] and [redacted]");
        assert_eq!(scrub("nothing here", secret), "nothing here");
        assert_eq!(scrub("short sk-abc", secret), "short sk-abc");
    }
}
