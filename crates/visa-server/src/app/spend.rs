//! `GET /v1/api/spend?days=N`: what the account spent per UTC day over the last N days (1 to
//! 366, default 30), split by key, from the per-day counters the money path keeps in the same
//! transaction as each capture, so it always agrees with the ledger. A key sees only its own
//! spend. The dashboard's spend charts read it.

use crate::auth::Reader;
use crate::error::ApiResult;
use crate::state::AppState;
use crate::wire::spend::{DaySpendView, KeySpend, SpendQuery, SpendResponse, date_of};
use std::collections::BTreeMap;
use visa_core::money::Micros;
use visa_store::rules::utc_day_number;

pub async fn spend(state: &AppState, reader: &Reader, query: SpendQuery) -> ApiResult<SpendResponse> {
    let days = query.days_back()?;
    let since_day = utc_day_number(state.now()) - (days - 1);
    let rows = state.store.account_spend(reader.account_id(), since_day).await?;
    let mut by_day: BTreeMap<i64, Vec<KeySpend>> = BTreeMap::new();
    let mut totals: BTreeMap<i64, Micros> = BTreeMap::new();
    for row in rows.iter().filter(|r| reader.key_id().is_none_or(|own| own == r.key_id)) {
        by_day
            .entry(row.day_number)
            .or_default()
            .push(KeySpend { key_id: row.key_id.get(), spent_micros: row.spent.to_string() });
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
    Ok(SpendResponse { success: true, object: "spend".into(), since: date_of(since_day), days })
}
