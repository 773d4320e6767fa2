//! The JSON API's wire shapes, in one place: every request and response body (one module per
//! resource), the list envelope and its cursors, the error envelope as the OpenAPI document
//! states it, timestamps as RFC 3339, and the JSON Schema of the input rules (`schema`). The
//! use cases (`crate::app`) take and return these; the surfaces only bind them to HTTP.

pub mod account;
pub mod admin_keys;
pub mod audit;
pub mod balance;
pub mod execute;
pub mod executions;
pub mod keys;
pub mod members;
pub mod schema;
pub mod sessions;
pub mod spend;
pub mod usage;
pub mod webhooks;

use crate::error::{ApiError, ApiResult};
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use visa_core::ErrorCode;
use visa_core::pagination::PageRequest;

/// The error envelope, for the OpenAPI document.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Always false.
    pub success: bool,
    /// What went wrong, for a human.
    pub error: String,
    #[schema(schema_with = schema::error_code)]
    pub error_code: String,
    /// Whether the same request may succeed if sent again later.
    pub retryable: bool,
    /// Seconds to wait before retrying; also sent as `Retry-After`.
    pub retry_after: Option<u64>,
    /// On a refusal by a limit (`RATE_LIMITED`): which one.
    #[schema(schema_with = schema::limit)]
    pub limit: Option<String>,
    /// When that limit lets a call through again by itself (RFC 3339): the daily cap at 00:00
    /// UTC, the rate limit when it has room; absent for the total cap and the balance.
    pub resets_at: Option<String>,
}

/// The limit that refused a call: what `limit` names on a refusal (docs/errors.md).
pub use visa_store::rules::Limit;

/// What every list answer carries besides its items:
/// `{success, object: "list", <items>, limit, has_more, next_cursor, previous_cursor}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ListPage {
    pub success: bool,
    /// Always `list`.
    pub object: String,
    pub limit: u32,
    pub has_more: bool,
    /// Pass as `starting_after` for the next (older) page.
    pub next_cursor: Option<i64>,
    /// Pass as `ending_before` for the previous (newer) page.
    pub previous_cursor: Option<i64>,
}

impl ListPage {
    pub fn of<T>(page: &visa_core::pagination::Page<T>) -> Self {
        Self {
            success: true,
            object: "list".into(),
            limit: page.limit,
            has_more: page.has_more,
            next_cursor: page.next_cursor,
            previous_cursor: page.previous_cursor,
        }
    }
}

/// Cursor pagination query (`limit`, `starting_after`, `ending_before`).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1 to 100, default 25.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// An id: return items older than it (a page's `next_cursor`). Not with `ending_before`.
    #[param(value_type = Option<i64>, minimum = 1)]
    starting_after: Option<String>,
    /// An id: return items newer than it (a page's `previous_cursor`). Not with `starting_after`.
    #[param(value_type = Option<i64>, minimum = 1)]
    ending_before: Option<String>,
}

impl ListQuery {
    /// The cursors and limit of a request's query string (`limit=100`, `starting_after=12`).
    fn from_uri_query(text: &str) -> ApiResult<Self> {
        let uri: axum::http::Uri =
            format!("/?{text}").parse().map_err(|_| ApiError::invalid("invalid query string"))?;
        query(Query::<ListQuery>::try_from_uri(&uri))
    }

    pub fn page(&self) -> ApiResult<PageRequest> {
        Ok(PageRequest::parse(self.limit.as_deref(), self.starting_after.as_deref(), self.ending_before.as_deref())?)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ListQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        ListQuery::from_uri_query(parts.uri.query().unwrap_or_default())
    }
}

/// An id in a path: a positive integer, else the resource's "not found" (`code`, `message`),
/// as the store answers for an id that names nothing of the caller's.
pub fn path_id(text: &str, code: ErrorCode, message: &str) -> ApiResult<i64> {
    visa_core::number::positive_id(text).ok_or_else(|| ApiError::new(code, message))
}

/// Timestamps on the wire: RFC 3339 in UTC.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.checked_to_offset(time::UtcOffset::UTC)
        .unwrap_or(at)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// An optional RFC 3339 query value (`visa_core::policy::parse_instant`); a bad one is a 400
/// naming `field`.
pub fn parse_rfc3339(field: &str, text: Option<&str>) -> ApiResult<Option<OffsetDateTime>> {
    text.map(|t| visa_core::policy::parse_instant(field, t).map_err(ApiError)).transpose()
}

/// A query string's fields, or a 400 saying what is wrong with them.
pub fn query<T>(query: Result<Query<T>, axum::extract::rejection::QueryRejection>) -> ApiResult<T> {
    let Query(query) = query.map_err(|e| ApiError::invalid(format!("invalid query string: {}", e.body_text())))?;
    Ok(query)
}
