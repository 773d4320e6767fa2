//! `GET /v1/api/spend?days=N`: what the account spent per UTC day over the last N days (1 to
//! 366, default 30), split by key, from the per-day counters the money path keeps in the same
//! transaction as each capture, so it always agrees with the ledger. A key sees only its own
//! spend. The dashboard's spend charts read it.

use crate::auth::Reader;
use crate::error::{ApiError, ApiResult};
use crate::state::SharedState;
use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use visa_core::money::Micros;
use visa_store::rules::utc_day_number;

/// This resource's routes, each registered with its OpenAPI operation (`super::api`).
pub fn routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new().routes(routes!(spend))
}

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

#[utoipa::path(get, path = "/v1/api/spend", tag = "billing", params(SpendQuery),
    responses((status = 200, body = SpendResponse), (status = 400, body = crate::routes::ErrorBody)),
    security(("session" = []), ("api_key" = [])))]
pub async fn spend(
    State(state): State<SharedState>,
    reader: Reader,
    query: Result<Query<SpendQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<SpendResponse>> {
    let Query(query) = query.map_err(|e| ApiError::invalid(format!("invalid query string: {}", e.body_text())))?;
    let days = match query.days.as_deref() {
        None => DEFAULT_DAYS,
        Some(text) => visa_core::number::within(text, 1..=MAX_DAYS)
            .ok_or_else(|| ApiError::invalid(format!("days must be a whole number from 1 to {MAX_DAYS}")))?,
    };
    let since_day = utc_day_number(state.now()) - (days - 1);
    let rows = state.store.account_spend(reader.account_id(), since_day).await?;
    let mut by_day: BTreeMap<i64, Vec<KeySpend>> = BTreeMap::new();
    let mut totals: BTreeMap<i64, Micros> = BTreeMap::new();
    for row in rows.iter().filter(|r| reader.key_id().is_none_or(|own| own == r.key_id)) {
        by_day
            .entry(row.day_number)
            .or_default()
            .push(KeySpend { key_id: row.key_id, spent_micros: row.spent.to_string() });
        let total = totals.entry(row.day_number).or_insert(Micros::ZERO);
        *total = total.checked_add(row.spent).unwrap_or(Micros(i64::MAX));
    }
    let days = by_day
        .into_iter()
        .map(|(day, keys)| {
            let spent = totals[&day];
            DaySpendView { date: date_of(day), spent_micros: spent.to_string(), spent_cents: spent.cents_ceil(), keys }
        })
        .collect();
    Ok(Json(SpendResponse { success: true, object: "spend".into(), since: date_of(since_day), days }))
}
