//! A key's usage on the wire: the window and bucket size asked for, and per secret the
//! buckets of requests, successes, errors by code and charged micros.

use super::rfc3339;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

pub const MAX_RANGE_DAYS: i64 = 31;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// RFC 3339; default 24 hours before `until`.
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
    /// RFC 3339; default now.
    #[param(value_type = Option<String>, format = DateTime)]
    pub until: Option<String>,
    /// Bucket size, default `minute`.
    #[param(inline)]
    pub granularity: Option<Granularity>,
}

impl UsageQuery {
    /// The window `since`..now in buckets of `granularity` (the dashboard's chart).
    pub fn since(since: OffsetDateTime, granularity: Granularity) -> Self {
        UsageQuery { since: Some(rfc3339(since)), until: None, granularity: Some(granularity) }
    }
}

/// The size of a usage bucket.
#[derive(Debug, Default, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    #[default]
    Minute,
    Hour,
    Day,
}

impl Granularity {
    pub fn minutes(self) -> i64 {
        match self {
            Self::Minute => 1,
            Self::Hour => 60,
            Self::Day => 1440,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct UsageCounts {
    pub requests: u64,
    pub successes: u64,
    /// error_code -> count (`HTTP_<status>` for replayed stored failures).
    pub errors: BTreeMap<String, u64>,
    pub charged_micros: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UsageBucket {
    /// Start of the bucket (UTC).
    pub start: String,
    #[serde(flatten)]
    pub counts: UsageCounts,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SecretUsage {
    pub secret_id: i64,
    pub key_prefix: String,
    /// Buckets with any traffic, oldest first.
    pub buckets: Vec<UsageBucket>,
    pub totals: UsageCounts,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UsageResponse {
    pub success: bool,
    pub key_id: i64,
    pub granularity: String,
    pub since: String,
    pub until: String,
    pub secrets: Vec<SecretUsage>,
}
