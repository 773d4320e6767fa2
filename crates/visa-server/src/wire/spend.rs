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
