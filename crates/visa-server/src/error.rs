//! One place that turns every failure into the API's error envelope:
//! `{ success: false, error, error_code, retryable, retry_after? }`, the code's HTTP status,
//! and a `Retry-After` header whenever `retry_after` is set.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use visa_core::{ErrorCode, Rejection};
use visa_store::{Refusal, StoreError};

/// The error type of every handler.
#[derive(Debug)]
pub struct ApiError(pub Rejection);

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self(Rejection::new(code, message))
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self(Rejection::invalid(message))
    }

    /// The envelope as a JSON value (also what an idempotent replay stores).
    pub fn body(&self) -> Value {
        let r = &self.0;
        let mut body = json!({
            "success": false,
            "error": r.message,
            "error_code": r.code.as_str(),
            "retryable": r.retryable,
        });
        if let Some(seconds) = r.retry_after {
            body["retry_after"] = json!(seconds);
        }
        if let Some(details) = &r.details {
            for (name, value) in details {
                body[name] = value.clone();
            }
        }
        body
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        Self(r)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(self.body())).into_response();
        retry_headers(response.headers_mut(), self.0.retryable, self.0.retry_after);
        response
    }
}

/// The name of the header that tells the official OpenAI (and Stainless-built) SDKs whether to
/// retry on their own.
pub const SHOULD_RETRY: &str = "x-should-retry";

/// The retry headers of a refusal, on every surface and on a replayed one: `Retry-After` when
/// it says how long to wait, and `x-should-retry: false` when no prompt retry can succeed
/// (`visa_core::error::prompt_retry`), so that an SDK neither sleeps until midnight nor retries
/// a refusal that needs a person.
pub fn retry_headers(headers: &mut axum::http::HeaderMap, retryable: bool, retry_after: Option<u64>) {
    if let Some(seconds) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    if !visa_core::error::prompt_retry(retryable, retry_after) {
        headers.insert(SHOULD_RETRY, HeaderValue::from_static("false"));
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(message) => Self::new(ErrorCode::Conflict, message),
            StoreError::NotFound => Self::new(ErrorCode::NotFound, "not found"),
            // Well-formed, but the stored state forbids it (a revoked key, a settled execution).
            StoreError::Refused(Refusal::LastOwner) => Self::new(ErrorCode::LastOwner, Refusal::LastOwner.to_string()),
            StoreError::Refused(Refusal::NodeLeaseLost) => {
                Self::new(ErrorCode::ServiceUnavailable, "this server is rejoining its cluster; retry shortly")
                    .with_retry_after(1)
            }
            StoreError::Refused(refusal) => Self::new(ErrorCode::Conflict, refusal.to_string()),
            StoreError::Forbidden(message) => Self::new(ErrorCode::Forbidden, message),
            StoreError::Unavailable(detail) => {
                tracing::warn!(%detail, "store unavailable");
                Self::new(ErrorCode::ServiceUnavailable, "the store is temporarily unavailable; retry shortly")
                    .with_retry_after(1)
            }
            StoreError::Internal(detail) => {
                tracing::error!(%detail, "store failure");
                Self(Rejection::internal())
            }
        }
    }
}

/// Maps a store error, reporting "not found" as `code` (e.g. KEY_NOT_FOUND) with `message`.
pub fn not_found_as(code: ErrorCode, message: &'static str) -> impl Fn(StoreError) -> ApiError {
    move |e| match e {
        StoreError::NotFound => ApiError::new(code, message),
        other => other.into(),
    }
}

impl ApiError {
    pub fn with_retry_after(self, seconds: u64) -> Self {
        Self(self.0.retry_after(seconds))
    }

    /// The same refusal under another code (its message and retry hints kept).
    pub fn with_code(mut self, code: ErrorCode) -> Self {
        self.0.code = code;
        self
    }
}

/// Unknown routes.
pub async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route")
}

/// Known routes called with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(ErrorCode::MethodNotAllowed, "this route does not accept that method")
}
