//! Running a tool: input checks that happen before any money is held, the hold a call needs,
//! then the adapter call under the tool's timeout. In the preview environment a tool answers
//! from its catalog sandbox sample instead of calling a provider.

mod builtin;
mod fal;
mod provider;
pub mod upstream;

use crate::catalog::{AdapterSpec, Tool};
use crate::error::ApiError;
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

    /// An upstream answering with HTTP `status`: 429 and 5xx may pass on retry, other 4xx not.
    pub fn from_status(status: u16, detail: &str) -> Self {
        Self {
            code: ErrorCode::UpstreamError,
            message: format!("the upstream tool failed with HTTP {status}: {detail}"),
            retryable: status == 429 || status >= 500,
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

/// Checks the input and the tool's readiness before anything is held or recorded.
pub fn check_runnable(tool: &Tool, input: &Value, sandbox: bool) -> Result<(), ApiError> {
    match &tool.adapter {
        AdapterSpec::Builtin { name } => builtin::validate(*name, input),
        _ if sandbox => Ok(()),
        adapter => {
            if let Some(var) = adapter.secret_env().filter(|_| !tool.is_ready()) {
                return Err(unavailable(tool, format!("is not configured: the server has no usable {var} set")));
            }
            match adapter {
                AdapterSpec::OpenaiChat { .. } if !input["messages"].is_array() => {
                    Err(ApiError::invalid("input.messages must be an array of chat messages"))
                }
                _ => Ok(()),
            }
        }
    }
}

/// The hold a call needs: the most it can cost. Token-metered chat tools hold what the
/// prompt and `max_tokens` could cost; every other tool holds its `max_price`.
pub fn hold_for(tool: &Tool, input: &Value) -> Micros {
    match tool.adapter {
        AdapterSpec::OpenaiChat { .. } => provider::chat_hold(tool, input),
        _ => tool.max_price,
    }
}

/// What a run may use besides the tool and its input.
pub struct RunContext<'a> {
    pub upstream: &'a upstream::Upstream,
    pub store: &'a dyn visa_store::Store,
    pub execution: &'a visa_store::ExecutionRecord,
}

/// Runs the tool under its timeout. In sandbox it answers from the catalog sample when there is one.
pub async fn run(ctx: &RunContext<'_>, tool: &Tool, input: &Value) -> Result<ToolOutput, UpstreamFailure> {
    let (upstream, hold) = (ctx.upstream, ctx.execution.hold);
    if let (true, Some(sample)) = (ctx.execution.sandbox, &tool.sandbox) {
        return Ok(ToolOutput { result: sample.clone(), cost: tool.price.min(hold) });
    }
    let flat = |result: Value| ToolOutput { result, cost: tool.price };
    let call = async {
        match (&tool.adapter, &tool.endpoint) {
            (AdapterSpec::Builtin { name }, _) => builtin::run(*name, input).await.map(flat),
            (AdapterSpec::OpenaiChat { model, .. }, Some(endpoint)) => {
                provider::run_chat(upstream, tool, endpoint, model, input, hold).await
            }
            (AdapterSpec::Http { .. }, Some(endpoint)) => {
                provider::post_json(upstream, tool, endpoint, input).await.map(flat)
            }
            // The catalog gives every chat and http tool its endpoint; a tool built otherwise has none.
            (AdapterSpec::OpenaiChat { .. } | AdapterSpec::Http { .. }, None) => {
                Err(UpstreamFailure::retryable("the tool has no provider URL"))
            }
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
                queue.run(tool, ctx.execution, input).await
            }
        }
    };
    tokio::time::timeout(tool.timeout, call).await.unwrap_or_else(|_| {
        Err(UpstreamFailure::retryable(format!("the tool did not answer within {} ms", tool.timeout.as_millis())))
    })
}
