//! The tools: the catalog that names them and their adapters (`catalog`), and running one —
//! input checks that happen before any money is held, the hold a call needs, then the adapter
//! call under the tool's timeout. In the preview environment a tool answers from its catalog
//! sandbox sample instead of calling a provider. An adapter is this folder's concern alone: its
//! module, its `AdapterSpec` variant in `catalog.rs`, its arms here.

mod builtin;
pub mod catalog;
mod estimate;
mod fal;
mod provider;
pub mod stream;
pub mod upstream;

use crate::error::ApiError;
use catalog::{AdapterSpec, Builtin, Tool};
use serde_json::Value;
use visa_core::ErrorCode;
use visa_core::money::Micros;

/// What a successful call produced and what it costs (clamped to the hold when settled).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput {
    pub result: Value,
    pub cost: Micros,
}

/// How an upstream failed. Nothing is charged for a failure.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamFailure {
    /// `UPSTREAM_ERROR`, or `INVALID_REQUEST` when a provider refused the caller's input.
    pub code: ErrorCode,
    pub message: String,
    pub retryable: bool,
    pub retry_after: Option<u64>,
}

impl UpstreamFailure {
    pub fn retryable(message: impl Into<String>) -> Self {
        Self { code: ErrorCode::UpstreamError, message: message.into(), retryable: true, retry_after: None }
    }

    /// A provider answered 2xx with something that is not a result we can read. It may have
    /// billed us, so the call is not retried under the same Idempotency-Key (that would bill
    /// it again); nothing is charged to the caller (docs/money.md, "Provider failures").
    pub fn unreadable(message: impl Into<String>) -> Self {
        Self { code: ErrorCode::UpstreamError, message: message.into(), retryable: false, retry_after: None }
    }

    /// The call failed inside this server (a bug, logged where it happened). Final: the
    /// provider may have done the work, so it is not run again under the same Idempotency-Key.
    pub fn internal() -> Self {
        Self {
            code: ErrorCode::Internal,
            message: "the call failed inside the server; nothing was charged, and this Idempotency-Key will not run \
                      again (use a new one to retry)"
                .into(),
            retryable: false,
            retry_after: None,
        }
    }

    pub fn into_api_error(self) -> ApiError {
        let mut e = ApiError::new(self.code, self.message);
        e.0.retryable = self.retryable;
        e.0.retry_after = self.retry_after;
        e
    }
}

fn unavailable(tool: &Tool, why: String) -> ApiError {
    ApiError::new(ErrorCode::ToolUnavailable, format!("tool '{}' {why}", tool.id))
}

/// What a call will send to its tool, and the hold that bounds what it can cost. Decided
/// before anything is held, so a refusal here costs nothing.
#[derive(Debug, Clone)]
pub struct Plan {
    pub hold: Micros,
    /// The adapter's request: the caller's input, bounded to what the hold pays for.
    pub request: Value,
}

/// Checks the input and the tool's readiness, and bounds the request by the hold: chat
/// requests get an output limit the hold covers, queue tools a count the hold covers; what
/// cannot be bounded is refused.
pub fn plan(tool: &Tool, input: Value, sandbox: bool) -> Result<Plan, ApiError> {
    let flat = |request| Ok(Plan { hold: tool.max_price, request });
    if let AdapterSpec::Builtin { name } = &tool.adapter {
        builtin::validate(*name, &input)?;
        return flat(input);
    }
    if let Some(var) = tool.adapter.secret_env().filter(|_| !tool.answers(sandbox)) {
        return Err(unavailable(tool, format!("is not configured: the server has no usable {var} set")));
    }
    match &tool.adapter {
        AdapterSpec::OpenaiChat { model, .. } => provider::chat_plan(tool, model, input),
        AdapterSpec::OpenaiEmbeddings { model, .. } => provider::embeddings_plan(tool, model, input),
        AdapterSpec::FalQueue { per_output_image: true, count_field, .. } => {
            fal::plan_per_image(tool, count_field, input)
        }
        _ => flat(input),
    }
}

/// What a run may use besides the tool and its request.
pub struct RunContext<'a> {
    pub upstream: &'a upstream::Upstream,
    pub store: &'a std::sync::Arc<dyn visa_store::Store>,
    pub execution: &'a visa_store::ExecutionRecord,
    /// Set when a chat completion streams to its caller (the OpenAI surface's `stream: true`).
    pub stream: Option<&'a stream::ChatStream>,
}

/// Runs the tool under its timeout. In preview (sandbox) no provider is ever contacted: the
/// answer is the catalog's sample, or one generated from the adapter's shape; builtins run.
pub async fn run(
    ctx: &RunContext<'_>,
    tool: &std::sync::Arc<Tool>,
    request: &Value,
) -> Result<ToolOutput, UpstreamFailure> {
    let upstream = ctx.upstream;
    let flat = |result: Value| ToolOutput { result, cost: tool.price };
    if ctx.execution.sandbox {
        if let (Some(stream), AdapterSpec::OpenaiChat { .. }) = (ctx.stream, &tool.adapter) {
            let sample = tool.sandbox.clone().unwrap_or_else(|| generated_sample(tool));
            for chunk in sandbox_chunks(&sample, stream) {
                stream.forward_chunk(&chunk);
            }
            return Ok(flat(Value::Null));
        }
        match (&tool.sandbox, &tool.adapter) {
            (Some(sample), _) => return Ok(flat(sample.clone())),
            (None, AdapterSpec::Builtin { .. }) => {}
            (None, _) => return Ok(flat(generated_sample(tool))),
        }
    }
    let timed_out =
        || UpstreamFailure::retryable(format!("the tool did not answer within {} ms", tool.timeout.as_millis()));
    let call = async {
        match (&tool.adapter, &tool.endpoint) {
            (AdapterSpec::Builtin { name }, _) => match (name, ctx.stream) {
                (Builtin::EchoChat, Some(stream)) => {
                    builtin::stream_echo_chat(request, stream);
                    Ok(flat(Value::Null))
                }
                _ => builtin::run(*name, request).await.map(flat),
            },
            (AdapterSpec::OpenaiChat { .. }, Some(endpoint)) => match ctx.stream {
                Some(stream) => {
                    provider::stream_chat(upstream, tool, endpoint, request, ctx.execution.hold, stream).await
                }
                None => {
                    let cost = |answer: &Value| provider::chat_cost(tool, answer, ctx.execution.hold);
                    provider::run_openai(upstream, tool, endpoint, request, "choices", cost).await
                }
            },
            (AdapterSpec::OpenaiEmbeddings { .. }, Some(endpoint)) => {
                let cost = |answer: &Value| provider::embeddings_cost(tool, answer, ctx.execution.hold);
                provider::run_openai(upstream, tool, endpoint, request, "data", cost).await
            }
            (AdapterSpec::Http { .. }, Some(endpoint)) => {
                provider::post_json(upstream, tool, endpoint, request).await.map(flat)
            }
            // The catalog gives every chat, embeddings and http tool its endpoint; a tool built
            // otherwise has none.
            (
                AdapterSpec::OpenaiChat { .. } | AdapterSpec::OpenaiEmbeddings { .. } | AdapterSpec::Http { .. },
                None,
            ) => Err(UpstreamFailure::retryable("the tool has no provider URL")),
            (AdapterSpec::FalQueue { base_url, app, per_output_image, poll_interval_ms, .. }, _) => {
                let queue = fal::FalQueue {
                    upstream,
                    tool,
                    store: ctx.store,
                    base_url,
                    app,
                    per_output_image: *per_output_image,
                    poll_interval: std::time::Duration::from_millis(*poll_interval_ms),
                };
                // The queue applies the deadline itself: a submission is never cut off
                // between the provider accepting it and its id being stored.
                return queue.run(ctx.execution, request, tokio::time::Instant::now() + tool.timeout).await;
            }
        }
    };
    let outcome = tokio::time::timeout(tool.timeout, call).await.unwrap_or_else(|_| Err(timed_out()));
    match (outcome, ctx.stream) {
        // Part of a streamed answer reached the caller before the failure (the tool's
        // timeout): the provider worked and the caller has it, so the call is charged an
        // estimate of what was delivered (no usage came), not voided.
        (Err(_), Some(stream)) if stream.content_delivered() => Ok(ToolOutput {
            result: Value::Null,
            cost: provider::estimated_cost(tool, request, stream, ctx.execution.hold),
        }),
        (outcome, _) => outcome,
    }
}

/// The preview answer of a streamed chat call: the sample's first message as one chunk, then
/// the usage chunk (of nothing: no provider ran) when the caller asked for it.
fn sandbox_chunks(sample: &Value, stream: &stream::ChatStream) -> Vec<Value> {
    let message = &sample["choices"][0]["message"];
    let id = sample["id"].as_str().unwrap_or("chatcmpl-sandbox");
    let choices = serde_json::json!([
        { "index": 0, "delta": { "role": "assistant", "content": message["content"] }, "finish_reason": "stop" }
    ]);
    std::iter::once(stream.chunk(id, choices)).chain(stream.no_usage_chunk(id)).collect()
}

/// A deterministic preview answer for a tool whose catalog entry has no `sandbox` sample, in
/// the shape its adapter's real answers have.
fn generated_sample(tool: &Tool) -> Value {
    let note = "a sandbox answer from the Visa Keys preview environment; no provider was called";
    match &tool.adapter {
        AdapterSpec::OpenaiChat { model, .. } => serde_json::json!({
            "id": format!("chatcmpl-sandbox-{}", tool.id),
            "object": "chat.completion",
            "model": model,
            "choices": [{ "index": 0, "finish_reason": "stop", "message": { "role": "assistant", "content": note } }],
            "usage": { "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0 },
        }),
        AdapterSpec::OpenaiEmbeddings { model, .. } => serde_json::json!({
            "object": "list",
            "model": model,
            "data": [{ "object": "embedding", "index": 0, "embedding": [0.0, 0.0, 0.0] }],
            "usage": { "prompt_tokens": 0, "total_tokens": 0 },
            "sandbox": note,
        }),
        AdapterSpec::FalQueue { .. } => serde_json::json!({
            "images": [{ "url": "https://example.invalid/sandbox.png", "width": 1024, "height": 1024, "content_type": "image/png" }],
            "sandbox": note,
        }),
        _ => serde_json::json!({ "sandbox": note, "tool": tool.id }),
    }
}
