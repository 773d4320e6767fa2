//! Adapters that call a provider over HTTP: `http` (a priced JSON POST) and `openai_chat`
//! (any OpenAI-compatible `/chat/completions`, metered by the `usage` it reports).
//!
//! Provider answers are mapped by one rule (`interpret`, docs/money.md): 429, 5xx, timeouts and
//! connection errors are retryable 502s (with the provider's `Retry-After`), other 4xx are the
//! caller's fault (400, with the provider's message, any provider secret scrubbed from it), and
//! a 2xx that is not a readable result is a final 502 with nothing charged. The provider secret comes
//! from the environment variable the catalog names (read once, at load), never from the request.

use super::catalog::{ProviderSecret, Tool};
use super::stream::ChatStream;
use super::upstream::{Answer, Upstream};
use super::{Plan, ToolOutput, UpstreamFailure};
use crate::error::ApiError;
use axum::http::{Method, Uri};
use serde_json::Value;
use visa_core::ErrorCode;
use visa_core::money::Micros;
use visa_core::policy::truncate_for_message;

/// The most of a provider's error message we pass on.
const MAX_PROVIDER_MESSAGE: usize = 300;

/// POSTs `body` with the tool's headers and returns the result, or the failure it maps to.
pub async fn post_json(upstream: &Upstream, tool: &Tool, url: &Uri, body: &Value) -> Result<Value, UpstreamFailure> {
    let answer = upstream.send(Method::POST, url, &tool.headers, Some(body)).await?;
    interpret(tool, &answer)
}

/// The one rule for what a provider's answer is (docs/money.md, "Provider failures"):
/// - a 2xx whose body is a JSON object without an `error` member is a result: billable;
/// - a 2xx carrying an `error` object is a failure, mapped like the HTTP status in its
///   `code` (a 5xx when it names none): the provider says it did no work;
/// - a 2xx we cannot read (not JSON, not an object) may have been billed to us: a final
///   failure, nothing charged, not retried under the same Idempotency-Key;
/// - any other status maps by `classify`.
pub fn interpret(tool: &Tool, answer: &Answer) -> Result<Value, UpstreamFailure> {
    let secret = tool.secret.as_ref().map(ProviderSecret::expose);
    let text = || String::from_utf8_lossy(&answer.body);
    if !(200..300).contains(&answer.status) {
        return Err(classify(answer.status, &provider_message(&text(), secret), answer.retry_after));
    }
    match serde_json::from_slice::<Value>(&answer.body) {
        Ok(Value::Object(body)) if body.get("error").is_some_and(|e| !e.is_null()) => {
            let status = body["error"]["code"]
                .as_u64()
                .and_then(|c| u16::try_from(c).ok())
                .filter(|c| (400..=599).contains(c))
                .unwrap_or(502);
            Err(classify(status, &provider_message(&text(), secret), answer.retry_after))
        }
        Ok(body @ Value::Object(_)) => Ok(body),
        _ => Err(UpstreamFailure::unreadable(format!(
            "the provider answered HTTP {} with something that is not a JSON result; nothing was charged, and \
             this Idempotency-Key will not run again (use a new one to retry)",
            answer.status
        ))),
    }
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

/// `error.message`, `error`, `message` or `detail` of a JSON error body, else the text; with the
/// provider secret scrubbed out *before* it is shortened (so no fragment of it survives).
fn provider_message(text: &str, secret: Option<&str>) -> String {
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    let from_json = parsed.as_ref().and_then(|v| {
        v["error"]["message"]
            .as_str()
            .or_else(|| v["error"].as_str())
            .or_else(|| v["message"].as_str())
            .or_else(|| v["detail"].as_str())
            .map(str::to_owned)
    });
    let message: String = from_json.unwrap_or_else(|| text.to_owned()).chars().take(MAX_PROVIDER_MESSAGE).collect();
    visa_core::policy::truncate_for_message(&scrub(&message, secret))
}

/// Replaces every run of the message made of pieces of `secret` at least 8 characters long
/// (anywhere in the secret: its start, its tail, its middle) with `[redacted]`, so a provider
/// that echoes all or part of the key leaks nothing.
pub fn scrub(message: &str, secret: Option<&str>) -> String {
    const WINDOW: usize = 8;
    let Some(secret) = secret.filter(|s| s.len() >= WINDOW && s.is_ascii()) else {
        return message.to_owned();
    };
    // Every byte of the message inside an occurrence of any 8-byte window of the secret: a
    // longer piece of the secret (cut at either end, or whole) is a run of overlapping windows.
    let bytes = message.as_bytes();
    let mut hidden = vec![false; bytes.len()];
    for window in secret.as_bytes().windows(WINDOW) {
        for (at, candidate) in bytes.windows(WINDOW).enumerate() {
            if candidate == window {
                hidden[at..at + WINDOW].fill(true);
            }
        }
    }
    let mut out = String::with_capacity(message.len());
    let mut at = 0;
    while at < bytes.len() {
        // Hidden runs are ASCII (the secret is), so both ends fall on character boundaries.
        let run = hidden[at..].iter().take_while(|h| **h == hidden[at]).count();
        if hidden[at] {
            out.push_str("[redacted]");
        } else {
            out.push_str(&message[at..at + run]);
        }
        at += run;
    }
    out
}

/// Top-level chat fields passed to the provider. Each costs nothing beyond the tokens the plan
/// counts (the whole request's bytes, images, and the output limit it sets); anything else
/// (`prediction`, `audio`, `web_search_options`, `service_tier`, OpenRouter's `models` or
/// `plugins`, …) could make the provider bill more than the hold, so it is refused.
pub const CHAT_FIELDS: &[&str] = &[
    "messages",
    "model",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "temperature",
    "top_p",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "user",
    "seed",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "functions",
    "function_call",
    "response_format",
    "stream",
    "stream_options",
    "metadata",
    "reasoning_effort",
    "verbosity",
];
/// Room for the fields the plan writes into the request after measuring it.
const PLANNED_FIELDS_BYTES: u64 = 96;
/// The most choices one call may ask for.
const MAX_CHOICES: u64 = 128;

fn positive_integer(body: &serde_json::Map<String, Value>, field: &str, max: u64) -> Result<Option<u64>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=max).contains(n))
            .map(Some)
            .ok_or_else(|| ApiError::invalid(format!("input.{field} must be an integer from 1 to {max}"))),
    }
}

/// Image parts in the messages; any other non-text part is refused (its cost is unknown).
fn count_images(messages: &[Value]) -> Result<u64, ApiError> {
    let mut images = 0;
    for (i, message) in messages.iter().enumerate() {
        for (j, part) in message["content"].as_array().into_iter().flatten().enumerate() {
            match part["type"].as_str() {
                Some("text" | "refusal") => {}
                Some("image_url") => images += 1,
                other => {
                    return Err(ApiError::invalid(format!(
                        "input.messages[{i}].content[{j}]: parts of type '{}' are not supported (their cost cannot be bounded)",
                        truncate_for_message(other.unwrap_or("none"))
                    )));
                }
            }
        }
    }
    Ok(images)
}

/// The chat request sent upstream and its hold. The caller's input is sent as given, with
/// the catalog's model, never streamed, and with an output limit per choice (`max_tokens`, or
/// `max_completion_tokens` when the caller uses it or asks for reasoning) that the hold pays
/// for. The hold counts every byte of the request as a token (an upper bound for the
/// tokenizers in use), each image at the catalog's `image_input_tokens`, and `n` choices of
/// the output limit. A limit the tool's `max_price` cannot cover is refused, not cut.
pub fn chat_plan(tool: &Tool, model: &str, input: Value) -> Result<Plan, ApiError> {
    let Value::Object(mut body) = input else {
        return Err(ApiError::invalid("input must be a JSON object"));
    };
    if let Some(field) = body.keys().find(|k| !CHAT_FIELDS.contains(&k.as_str())) {
        return Err(ApiError::invalid(format!(
            "input.{} is not supported: its cost cannot be bounded by the hold (docs/tools.md lists the fields)",
            truncate_for_message(field)
        )));
    }
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::invalid("input.messages must be an array of chat messages"))?;
    let images = count_images(messages)?;
    let choices = positive_integer(&body, "n", MAX_CHOICES)?.unwrap_or(1);
    let asked =
        [positive_integer(&body, "max_tokens", u64::MAX)?, positive_integer(&body, "max_completion_tokens", u64::MAX)?]
            .into_iter()
            .flatten()
            .min();
    let limit_field = if body.contains_key("max_completion_tokens") || body.contains_key("reasoning_effort") {
        "max_completion_tokens"
    } else {
        "max_tokens"
    };
    body.insert("model".into(), Value::String(model.to_owned()));
    body.insert("stream".into(), Value::Bool(false));
    body.remove("stream_options");
    body.remove("max_tokens");
    body.remove("max_completion_tokens");
    let Some(price) = tool.tokens else {
        // A flat-priced chat tool: its price is the contract, whatever the provider counts.
        if let Some(limit) = asked {
            body.insert(limit_field.into(), limit.into());
        }
        return Ok(Plan { hold: tool.max_price, request: Value::Object(body) });
    };
    let image_tokens = match (images, tool.image_input_tokens) {
        (0, _) => 0,
        (n, Some(each)) => n.saturating_mul(each),
        (_, None) => {
            return Err(ApiError::invalid(format!(
                "tool '{}' does not take images (its catalog entry sets no image_input_tokens)",
                tool.id
            )));
        }
    };
    let request_bytes = encoded_len(&body);
    let prompt_tokens = request_bytes.saturating_add(PLANNED_FIELDS_BYTES).saturating_add(image_tokens);
    let affordable = price.affordable_output(prompt_tokens, choices, tool.max_price);
    let limit = match asked {
        _ if affordable == 0 => {
            return Err(ApiError::invalid(format!(
                "the request is too large for tool '{}': its prompt alone could cost more than the tool's max price of {} micros",
                tool.id, tool.max_price
            )));
        }
        Some(limit) if limit > affordable => {
            return Err(ApiError::invalid(format!(
                "input.{limit_field}: at most {affordable} output tokens per choice fit tool '{}''s max price of {} micros \
                 for this prompt and n = {choices}",
                tool.id, tool.max_price
            )));
        }
        Some(limit) => limit,
        None => affordable.min(tool.max_output_tokens),
    };
    body.insert(limit_field.into(), limit.into());
    let hold = price.cost(prompt_tokens, limit.saturating_mul(choices)).max(tool.price);
    Ok(Plan { hold, request: Value::Object(body) })
}

/// The fields an embeddings request may carry: none of them changes what it costs beyond the
/// input the hold counts.
const EMBEDDINGS_FIELDS: [&str; 4] = ["input", "model", "encoding_format", "dimensions"];

/// The embeddings request sent upstream (the caller's, with the catalog's model) and its hold:
/// the input's tokens counted from above — a string's bytes (no tokenizer in use has a token
/// shorter than a byte), a token array's length — at the tool's input price, at least its
/// `price_micros`. An input the tool's `max_price` cannot pay for is refused before anything
/// is held.
pub fn embeddings_plan(tool: &Tool, model: &str, input: Value) -> Result<Plan, ApiError> {
    let Value::Object(mut body) = input else {
        return Err(ApiError::invalid("input must be a JSON object"));
    };
    if let Some(field) = body.keys().find(|k| !EMBEDDINGS_FIELDS.contains(&k.as_str())) {
        return Err(ApiError::invalid(format!(
            "input.{} is not supported for embeddings",
            truncate_for_message(field)
        )));
    }
    let tokens = match body.get("input") {
        Some(Value::String(text)) if !text.is_empty() => text.len() as u64,
        Some(Value::Array(items)) if !items.is_empty() => {
            let mut tokens = 0u64;
            for item in items {
                tokens = tokens.saturating_add(match item {
                    Value::String(text) if !text.is_empty() => text.len() as u64,
                    Value::Number(n) if n.is_u64() => 1,
                    Value::Array(ids) if !ids.is_empty() && ids.iter().all(Value::is_u64) => ids.len() as u64,
                    _ => return Err(ApiError::invalid(EMBEDDINGS_INPUT)),
                });
            }
            tokens
        }
        _ => return Err(ApiError::invalid(EMBEDDINGS_INPUT)),
    };
    body.insert("model".into(), Value::String(model.to_owned()));
    let hold = match tool.tokens {
        Some(price) => price.cost(tokens, 0).max(tool.price),
        None => tool.max_price,
    };
    if hold > tool.max_price {
        return Err(ApiError::invalid(format!(
            "the input is too large for tool '{}': up to {tokens} tokens could cost more than its max price of {} micros",
            tool.id, tool.max_price
        )));
    }
    Ok(Plan { hold, request: Value::Object(body) })
}

const EMBEDDINGS_INPUT: &str = "input.input must be a non-empty string, or a non-empty array of non-empty strings, \
    token ids or arrays of token ids";

/// What an embeddings call costs: the reported `usage.prompt_tokens` at the tool's input price,
/// at least `price_micros`; a flat-priced tool costs its price; a metered answer without usage
/// costs its hold.
pub fn embeddings_cost(tool: &Tool, answer: &Value, hold: Micros) -> Micros {
    match (tool.tokens, answer["usage"]["prompt_tokens"].as_u64()) {
        (None, _) => tool.price,
        (Some(price), Some(tokens)) => price.cost(tokens, 0).max(tool.price),
        (Some(_), None) => hold,
    }
}

/// How many bytes `value` takes as JSON, counted as serde_json writes it (nothing is kept).
fn encoded_len(value: &impl serde::Serialize) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len() as u64;
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value).map_or(u64::MAX, |()| count.0)
}

/// What a chat call costs: the reported token usage at the tool's prices, at least the tool's
/// minimum charge; a flat-priced tool costs its price. A metered answer without usage costs
/// its hold (the most it could have cost), since the provider billed us something we cannot
/// measure.
pub fn chat_cost(tool: &Tool, answer: &Value, hold: Micros) -> Micros {
    let usage = &answer["usage"];
    match (tool.tokens, usage["prompt_tokens"].as_u64(), usage["completion_tokens"].as_u64()) {
        (None, _, _) => tool.price,
        (Some(price), Some(input), Some(output)) => price.cost(input, output).max(tool.price),
        _ => hold,
    }
}

/// Relays a streamed chat completion (the request asks the provider for `stream` with
/// `include_usage`): each event goes to the caller as it arrives (`ChatStream::relay`; those
/// before the first content are held back), under the caller's model name, the usage-only
/// chunk only if the caller asked for it; the cost is metered from the final usage report.
/// - An error event, or an end without any answer, before the first content fails the call
///   exactly as a non-streamed one would: nothing reached the caller, nothing is charged.
/// - A stream that ends after content without a usage report (cut off, an error event, a
///   provider that reports none) is charged an estimate of what was delivered
///   (`tools::estimate`), never above the hold.
///
/// A provider that refuses before streaming fails exactly as a non-streamed call would.
pub async fn stream_chat(
    upstream: &Upstream,
    tool: &Tool,
    endpoint: &Uri,
    request: &Value,
    hold: Micros,
    stream: &ChatStream,
) -> Result<ToolOutput, UpstreamFailure> {
    use http_body_util::BodyExt;
    let opened = upstream.open(Method::POST, endpoint, &tool.headers, Some(request)).await?;
    if !(200..300).contains(&opened.status) {
        let answer = opened.read().await?;
        let refused = interpret(tool, &answer).err();
        return Err(refused.unwrap_or_else(|| UpstreamFailure::retryable("the provider refused the stream")));
    }
    let mut body = opened.body;
    let mut pending: Vec<u8> = Vec::new();
    let mut usage = Value::Null;
    let mut error = None;
    'read: loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    pending.extend(data.iter().filter(|b| **b != b'\r'));
                }
            }
            Some(Err(_)) | None => break,
        }
        while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = pending.drain(..end + 2).collect();
            match relay_event(&event, stream, &mut usage) {
                Relayed::More => {}
                Relayed::Done => break 'read,
                Relayed::Error(payload) => {
                    error = Some(payload);
                    break 'read;
                }
            }
        }
        if pending.len() > MAX_EVENT_BYTES {
            break;
        }
    }
    if !stream.content_delivered() {
        if let Some(payload) = &error {
            return Err(stream_error(tool, payload));
        }
        if usage.is_null() {
            return Err(UpstreamFailure::retryable("the provider's stream ended before any answer"));
        }
    }
    if let Some(payload) = error {
        // After content the caller sees the provider's error event as it came.
        stream.forward(super::stream::event(payload.as_bytes()));
    }
    let cost = match (&usage["prompt_tokens"], &usage["completion_tokens"]) {
        (Value::Number(_), Value::Number(_)) => {
            // An answer without content (an empty completion) is sent once it is complete.
            stream.release_held();
            chat_cost(tool, &serde_json::json!({ "usage": usage }), hold)
        }
        _ => estimated_cost(tool, request, stream, hold),
    };
    Ok(ToolOutput { result: Value::Null, cost })
}

/// What a stream that delivered content is charged without a usage report: an estimate of
/// what was delivered (`tools::estimate`), never above the hold, said in its receipt.
pub fn estimated_cost(tool: &Tool, request: &Value, stream: &ChatStream, hold: Micros) -> Micros {
    stream.charge_estimate();
    let model = request["model"].as_str().unwrap_or_default();
    super::estimate::cost(tool, model, request, &stream.output_text(), hold)
}

/// An error event before any content, as the failure a non-streamed answer carrying it is:
/// mapped by its `code` like `interpret` (a 5xx when it names none).
fn stream_error(tool: &Tool, payload: &str) -> UpstreamFailure {
    let answer = Answer { status: 200, body: payload.as_bytes().to_vec().into(), retry_after: None };
    interpret(tool, &answer).err().unwrap_or_else(|| UpstreamFailure::retryable("the provider's stream failed"))
}

/// The longest single event a provider may send.
const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// What one provider event meant for the stream.
enum Relayed {
    More,
    /// `[DONE]`.
    Done,
    /// An error event (its JSON payload); not forwarded yet.
    Error(String),
}

/// The output text a chunk carries (content, refusal, reasoning, tool calls), or `None` when
/// it carries none; a finish counts as content (the answer is complete, if empty).
fn chunk_content(chunk: &Value) -> Option<String> {
    let mut text = String::new();
    let mut content = false;
    for choice in chunk["choices"].as_array().into_iter().flatten() {
        content |= !choice["finish_reason"].is_null();
        let delta = &choice["delta"];
        for field in ["content", "refusal", "reasoning", "reasoning_content"] {
            if let Some(piece) = delta[field].as_str().filter(|p| !p.is_empty()) {
                text.push_str(piece);
                content = true;
            }
        }
        let calls = delta["tool_calls"].as_array().into_iter().flatten().map(|c| &c["function"]);
        for function in calls.chain(delta.get("function_call")) {
            content = true;
            for field in ["name", "arguments"] {
                text.push_str(function[field].as_str().unwrap_or_default());
            }
        }
    }
    content.then_some(text)
}

/// Passes one provider event on. Comments, keep-alives and events that are not a JSON object
/// are dropped (no provider input can break the relay).
fn relay_event(event: &[u8], stream: &ChatStream, usage: &mut Value) -> Relayed {
    let text = String::from_utf8_lossy(event);
    let data: Vec<&str> =
        text.lines().filter_map(|l| l.strip_prefix("data:")).map(|d| d.strip_prefix(' ').unwrap_or(d)).collect();
    let data = data.join("\n");
    if data.is_empty() {
        return Relayed::More;
    }
    if data.trim() == "[DONE]" {
        return Relayed::Done;
    }
    let Ok(Value::Object(mut chunk)) = serde_json::from_str::<Value>(&data) else { return Relayed::More };
    if chunk.get("error").is_some_and(|e| !e.is_null()) {
        return Relayed::Error(data);
    }
    if let Some(reported) = chunk.get("usage").filter(|u| u.is_object()) {
        *usage = reported.clone();
    }
    if !stream.include_usage {
        let usage_only = chunk.get("choices").and_then(Value::as_array).is_some_and(Vec::is_empty);
        if usage_only {
            return Relayed::More;
        }
        chunk.remove("usage");
    }
    chunk.insert("model".to_owned(), Value::String(stream.model.clone()));
    if !chunk.get("created").is_some_and(Value::is_u64) {
        chunk.insert("created".to_owned(), stream.created.into());
    }
    let chunk = Value::Object(chunk);
    let content = chunk_content(&chunk);
    stream.relay_chunk(&chunk, content.as_deref());
    Relayed::More
}

/// A call of one of OpenAI's APIs (a chat completion, embeddings): the provider's answer, which
/// must carry the array `member` (`choices`, `data`), priced by `cost` (`chat_cost`,
/// `embeddings_cost`).
pub async fn run_openai(
    upstream: &Upstream,
    tool: &Tool,
    endpoint: &Uri,
    request: &Value,
    member: &str,
    cost: impl FnOnce(&Value) -> Micros,
) -> Result<ToolOutput, UpstreamFailure> {
    let answer = post_json(upstream, tool, endpoint, request).await?;
    if !answer[member].is_array() {
        return Err(UpstreamFailure::unreadable(format!(
            "the provider's answer has no {member}; nothing was charged, and this Idempotency-Key will not run again \
             (use a new one to retry)"
        )));
    }
    let cost = cost(&answer);
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
        // Any 8 characters of the key, not only its start: a provider echoing its tail.
        assert_eq!(scrub("key ending ...ghijklmnop is invalid", secret), "key ending ...[redacted] is invalid");
        assert_eq!(scrub("middle: defghijkl.", secret), "middle: [redacted].");
        assert_eq!(scrub("seven: ghijklm", secret), "seven: ghijklm");
        assert_eq!(scrub("ünï sk-abcdefghijklmnop ✓", secret), "ünï [redacted] ✓");
    }
}
