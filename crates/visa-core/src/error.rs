//! Error codes of the public API (docs/errors.md) and
//! `Rejection`, the one domain error every layer returns. The server turns a `Rejection`
//! into the JSON envelope `{success:false,error,error_code,retryable,retry_after?}`.

use std::fmt;

/// Every `error_code` the API can answer with, and its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidRequest,
    AuthRequired,
    AuthInvalid,
    KeyEnvironmentMismatch,
    KeyExpired,
    KeySourceIpDenied,
    ToolNotPermitted,
    AccountNotApproved,
    Forbidden,
    HttpsRequired,
    ToolNotFound,
    KeyNotFound,
    AccountNotFound,
    ExecutionNotFound,
    MemberNotFound,
    NotFound,
    MethodNotAllowed,
    /// The request body did not arrive within the body timeout.
    RequestTimeout,
    AccountExists,
    MemberExists,
    LastOwner,
    /// A uniqueness rule refused the change (a more specific code is used where one exists).
    Conflict,
    IdempotentReplay,
    IdempotencyInFlight,
    PayloadTooLarge,
    UnsupportedMediaType,
    RateLimited,
    UpstreamError,
    ToolUnavailable,
    IdempotencyUnavailable,
    /// The store is unreachable or busy on a control-plane route (the execute path answers
    /// IDEMPOTENCY_UNAVAILABLE, as the API contract reserves it).
    ServiceUnavailable,
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 32] = [
        Self::InvalidRequest,
        Self::AuthRequired,
        Self::AuthInvalid,
        Self::KeyEnvironmentMismatch,
        Self::KeyExpired,
        Self::KeySourceIpDenied,
        Self::ToolNotPermitted,
        Self::AccountNotApproved,
        Self::Forbidden,
        Self::HttpsRequired,
        Self::ToolNotFound,
        Self::KeyNotFound,
        Self::AccountNotFound,
        Self::ExecutionNotFound,
        Self::MemberNotFound,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::RequestTimeout,
        Self::AccountExists,
        Self::MemberExists,
        Self::LastOwner,
        Self::Conflict,
        Self::IdempotentReplay,
        Self::IdempotencyInFlight,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::RateLimited,
        Self::UpstreamError,
        Self::ToolUnavailable,
        Self::IdempotencyUnavailable,
        Self::ServiceUnavailable,
        Self::Internal,
    ];

    /// The wire spelling, e.g. `KEY_ENVIRONMENT_MISMATCH`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "INVALID_REQUEST",
            Self::AuthRequired => "AUTH_REQUIRED",
            Self::AuthInvalid => "AUTH_INVALID",
            Self::KeyEnvironmentMismatch => "KEY_ENVIRONMENT_MISMATCH",
            Self::KeyExpired => "KEY_EXPIRED",
            Self::KeySourceIpDenied => "KEY_SOURCE_IP_DENIED",
            Self::ToolNotPermitted => "TOOL_NOT_PERMITTED",
            Self::AccountNotApproved => "ACCOUNT_NOT_APPROVED",
            Self::Forbidden => "FORBIDDEN",
            Self::HttpsRequired => "HTTPS_REQUIRED",
            Self::ToolNotFound => "TOOL_NOT_FOUND",
            Self::KeyNotFound => "KEY_NOT_FOUND",
            Self::AccountNotFound => "ACCOUNT_NOT_FOUND",
            Self::ExecutionNotFound => "EXECUTION_NOT_FOUND",
            Self::MemberNotFound => "MEMBER_NOT_FOUND",
            Self::NotFound => "NOT_FOUND",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::RequestTimeout => "REQUEST_TIMEOUT",
            Self::AccountExists => "ACCOUNT_EXISTS",
            Self::MemberExists => "MEMBER_EXISTS",
            Self::LastOwner => "LAST_OWNER",
            Self::Conflict => "CONFLICT",
            Self::IdempotentReplay => "IDEMPOTENT_REPLAY",
            Self::IdempotencyInFlight => "IDEMPOTENCY_IN_FLIGHT",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Self::RateLimited => "RATE_LIMITED",
            Self::UpstreamError => "UPSTREAM_ERROR",
            Self::ToolUnavailable => "TOOL_UNAVAILABLE",
            Self::IdempotencyUnavailable => "IDEMPOTENCY_UNAVAILABLE",
            Self::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            Self::Internal => "INTERNAL",
        }
    }

    /// The HTTP status this code is always sent with.
    pub fn status(self) -> u16 {
        match self {
            Self::InvalidRequest => 400,
            Self::AuthRequired | Self::AuthInvalid | Self::KeyEnvironmentMismatch => 401,
            Self::KeyExpired
            | Self::KeySourceIpDenied
            | Self::ToolNotPermitted
            | Self::AccountNotApproved
            | Self::Forbidden
            | Self::HttpsRequired => 403,
            Self::ToolNotFound
            | Self::KeyNotFound
            | Self::AccountNotFound
            | Self::ExecutionNotFound
            | Self::MemberNotFound
            | Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::RequestTimeout => 408,
            Self::AccountExists
            | Self::MemberExists
            | Self::LastOwner
            | Self::Conflict
            | Self::IdempotentReplay
            | Self::IdempotencyInFlight => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::RateLimited => 429,
            Self::Internal => 500,
            Self::UpstreamError => 502,
            Self::ToolUnavailable | Self::IdempotencyUnavailable | Self::ServiceUnavailable => 503,
        }
    }

    /// Whether retrying the identical request can succeed, unless a call site knows better
    /// (a total-cap 429 or a reconcile-required 503 is not retryable).
    pub fn default_retryable(self) -> bool {
        matches!(
            self,
            Self::IdempotencyInFlight
                | Self::RequestTimeout
                | Self::RateLimited
                | Self::UpstreamError
                | Self::IdempotencyUnavailable
                | Self::ServiceUnavailable
                | Self::Internal
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The longest wait a refusal may ask for and still count as worth an automatic retry.
pub const MAX_PROMPT_RETRY_SECONDS: u64 = 60;

/// Whether a client's own prompt retry (an SDK's automatic retry: a few, within about a minute)
/// can succeed: the refusal is retryable, and does not ask to wait longer than that. A daily cap
/// (retryable, but at midnight), a total cap, the balance, a revoked or expired key, a tool the
/// key may not use: no. Sent as `x-should-retry: false`, which the official SDKs obey.
pub fn prompt_retry(retryable: bool, retry_after: Option<u64>) -> bool {
    retryable && retry_after.is_none_or(|seconds| seconds <= MAX_PROMPT_RETRY_SECONDS)
}

/// A refused request: the code, a human message that never contains a secret, and the
/// retry hints. Extra fields (e.g. `support_id`, `receipt`) ride along in `details`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub code: ErrorCode,
    pub message: String,
    pub retryable: bool,
    pub retry_after: Option<u64>,
    pub details: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Rejection {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), retryable: code.default_retryable(), retry_after: None, details: None }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    pub fn internal() -> Self {
        Self::new(ErrorCode::Internal, "internal error")
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    pub fn with_detail(mut self, name: &str, value: serde_json::Value) -> Self {
        self.details.get_or_insert_with(Default::default).insert(name.to_owned(), value);
        self
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Rejection {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_upper_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(s.chars().all(|c| c.is_ascii_uppercase() || c == '_'), "{s}");
            assert!((400..600).contains(&code.status()));
        }
    }

    #[test]
    fn a_prompt_retry_is_for_retryable_refusals_that_ask_to_wait_a_minute_at_most() {
        assert!(prompt_retry(true, None));
        assert!(prompt_retry(true, Some(MAX_PROMPT_RETRY_SECONDS)));
        assert!(!prompt_retry(true, Some(MAX_PROMPT_RETRY_SECONDS + 1)), "a daily cap: retry at midnight");
        assert!(!prompt_retry(false, None));
        assert!(!prompt_retry(false, Some(1)));
    }

    #[test]
    fn seed_table_statuses() {
        use ErrorCode::*;
        let seed = [
            (InvalidRequest, 400),
            (AuthRequired, 401),
            (AuthInvalid, 401),
            (KeyEnvironmentMismatch, 401),
            (KeyExpired, 403),
            (KeySourceIpDenied, 403),
            (ToolNotPermitted, 403),
            (AccountNotApproved, 403),
            (ToolNotFound, 404),
            (IdempotentReplay, 409),
            (IdempotencyInFlight, 409),
            (RateLimited, 429),
            (IdempotencyUnavailable, 503),
        ];
        for (code, status) in seed {
            assert_eq!(code.status(), status, "{code}");
        }
    }
}
