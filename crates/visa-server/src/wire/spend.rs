//! Spend on the wire: the query (how many days back) and the answer, per UTC day and key.

use crate::error::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

const DEFAULT_DAYS: i64 = 30;
const MAX_DAYS: i64 = 366;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SpendQuery {
    /// How many UTC days back, today included: 1 to 366, default 30.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 366)]
    days: Option<String>,
}

impl SpendQuery {
    pub fn days(days: i64) -> Self {
        SpendQuery { days: Some(days.to_string()) }
    }

    /// How many days back the answer covers.
    pub fn days_back(&self) -> ApiResult<i64> {
        match self.days.as_deref() {
            None => Ok(DEFAULT_DAYS),
            Some(text) => visa_core::number::within(text, 1..=MAX_DAYS)
                .ok_or_else(|| ApiError::invalid(format!("days must be a whole number from 1 to {MAX_DAYS}"))),
        }
    }
}

/// One key's part of a day.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeySpend {
    pub key_id: i64,
    /// Decimal string of micros.
    pub spent_micros: String,
}

/// One UTC day with spend (days without any are left out).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DaySpendView {
    /// `YYYY-MM-DD`, UTC.
    pub date: String,
    pub spent_micros: String,
    /// Micros rounded up to whole cents.
    pub spent_cents: i64,
    pub keys: Vec<KeySpend>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SpendResponse {
    pub success: bool,
    /// Always `spend`.
    pub object: String,
    /// The first day counted, `YYYY-MM-DD`.
    pub since: String,
    /// Oldest first.
    pub days: Vec<DaySpendView>,
}

/// A day number (days since 1970-01-01) as `YYYY-MM-DD`.
pub fn date_of(day_number: i64) -> String {
    let day = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(day_number);
    day.date().to_string()
}

/// `GET /v1/api/spend/export.csv`: the executions created in `[from, to)`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// RFC 3339; default 30 days before `to`.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// RFC 3339, exclusive; default now.
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
}

/// The export's columns, in order (docs/end-users.md, "Spend export").
pub const EXPORT_COLUMNS: [&str; 12] = [
    "execution_id",
    "created_at",
    "finished_at",
    "key_id",
    "tool",
    "state",
    "sandbox",
    "end_user",
    "held_micros",
    "charged_micros",
    "charged_cents",
    "receipt_id",
];

/// One execution as a row of the export, in `EXPORT_COLUMNS`' order.
pub fn export_row(e: &visa_store::ExecutionRecord) -> [String; 12] {
    [
        e.public_id.clone(),
        super::rfc3339(e.created_at),
        e.finished_at.map(super::rfc3339).unwrap_or_default(),
        e.key_id.to_string(),
        e.tool.clone(),
        e.state.as_str().to_owned(),
        e.sandbox.to_string(),
        e.end_user.as_ref().map(|u| u.as_str().to_owned()).unwrap_or_default(),
        e.hold.to_string(),
        e.charged.to_string(),
        e.charged.cents_ceil().to_string(),
        e.receipt_id.clone().unwrap_or_default(),
    ]
}

/// `GET /v1/api/spend/series`: calls, charges and refusals over time (docs/analytics.md).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SeriesQuery {
    /// RFC 3339; default 30 days (`day`) or 24 hours (`hour`) before `to`. Rounded down to its bucket.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// RFC 3339, exclusive; default now. Rounded up to its bucket.
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
    /// `hour` or `day` (default; UTC days).
    #[param(value_type = Option<String>, pattern = "^(hour|day)$")]
    pub granularity: Option<String>,
    /// `none` (default), `key`, `tool` or `end_user` (by day only).
    #[param(value_type = Option<String>, pattern = "^(none|key|tool|end_user)$")]
    pub group_by: Option<String>,
}

/// One bucket of the series, for one group: the calls that ended (succeeded, failed or voided,
/// by when they were made) with what the account was charged, and the calls refused by each
/// limit. Buckets and groups without any call are left out.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SeriesBucket {
    /// The bucket's first instant (RFC 3339, UTC).
    pub start: String,
    /// The key id, tool or end user; null when not grouped.
    pub group: Option<String>,
    pub calls: i64,
    /// Decimal string of micros.
    pub charged_micros: String,
    /// Micros rounded up to whole cents.
    pub charged_cents: i64,
    /// Refused calls by the limit that refused them (`key_daily_cap`, … as `limit` on a refusal).
    pub refusals: std::collections::BTreeMap<String, i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SeriesResponse {
    pub success: bool,
    /// Always `spend_series`.
    pub object: String,
    pub granularity: String,
    pub group_by: String,
    /// The first bucket's start and the end of the last (RFC 3339).
    pub from: String,
    pub to: String,
    /// Oldest first, then by group.
    pub buckets: Vec<SeriesBucket>,
}
