//! Running a tool: input checks that happen before any money is held, then the adapter
//! call under the tool's timeout. In the preview environment a tool answers from its
//! catalog sandbox sample instead of calling a provider.

mod builtin;

use crate::catalog::{AdapterSpec, Tool};
use crate::error::ApiError;
use serde_json::Value;
use visa_core::ErrorCode;
use visa_core::money::Micros;

/// What a successful call produced and what it costs (never above the tool's hold).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput {
    pub result: Value,
    pub cost: Micros,
}

/// How an upstream failed. Nothing is charged for a failure.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamFailure {
    pub message: String,
    pub retryable: bool,
    pub retry_after: Option<u64>,
}

impl UpstreamFailure {
    /// A provider answering with HTTP `status`: 429 and 5xx may pass on retry, other 4xx not.
    pub fn from_status(status: u16, detail: &str) -> Self {
        Self {
            message: format!("the upstream tool failed with HTTP {status}: {detail}"),
            retryable: status == 429 || status >= 500,
            retry_after: None,
        }
    }

    pub fn into_api_error(self) -> ApiError {
        let mut e = ApiError::new(ErrorCode::UpstreamError, self.message);
        e.0.retryable = self.retryable;
        e.0.retry_after = self.retry_after;
        e
    }
}

/// Checks the input and the tool's readiness before anything is held or recorded.
pub fn check_runnable(tool: &Tool, input: &Value, sandbox: bool) -> Result<(), ApiError> {
    match &tool.adapter {
        AdapterSpec::Builtin { name } => builtin::validate(*name, input),
        _ if sandbox => Ok(()),
        adapter => match adapter.secret_env() {
            Some(var) if !tool.is_ready() => Err(ApiError::new(
                ErrorCode::ToolUnavailable,
                format!("tool '{}' is not configured: the server has no {var} set", tool.id),
            )),
            _ => Err(ApiError::new(
                ErrorCode::ToolUnavailable,
                format!("tool '{}': the {} adapter is not available in this build", tool.id, adapter.kind()),
            )),
        },
    }
}

/// Runs the tool under its timeout. `sandbox` answers from the catalog sample when there is one.
pub async fn run(tool: &Tool, input: &Value, sandbox: bool) -> Result<ToolOutput, UpstreamFailure> {
    if let (true, Some(sample)) = (sandbox, &tool.sandbox) {
        return Ok(ToolOutput { result: sample.clone(), cost: tool.price });
    }
    let call = async {
        match &tool.adapter {
            AdapterSpec::Builtin { name } => {
                builtin::run(*name, input).await.map(|result| ToolOutput { result, cost: tool.price })
            }
            other => Err(UpstreamFailure {
                message: format!("the {} adapter is not available in this build", other.kind()),
                retryable: false,
                retry_after: None,
            }),
        }
    };
    tokio::time::timeout(tool.timeout, call).await.unwrap_or_else(|_| {
        Err(UpstreamFailure {
            message: format!("the tool did not answer within {} ms", tool.timeout.as_millis()),
            retryable: true,
            retry_after: None,
        })
    })
}
