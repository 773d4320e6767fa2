//! The builtin tools, which need no provider: `echo` returns its input, `sleep` waits
//! `{ "ms": N }` (N <= 10000), `fail` answers like a provider failing with `{ "status": N }` (mapped by the
//! same rule as a real provider's answer).

use super::UpstreamFailure;
use crate::catalog::Builtin;
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

pub fn validate(tool: Builtin, input: &Value) -> Result<(), ApiError> {
    match tool {
        Builtin::Echo => Ok(()),
        Builtin::Sleep => sleep_ms(input).map(drop),
        Builtin::Fail => fail_status(input).map(drop),
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
    }
}
