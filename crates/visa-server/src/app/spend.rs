//! `GET /v1/api/spend?days=N`: what the account spent per UTC day over the last N days (1 to
//! 366, default 30), split by key, from the per-day counters the money path keeps in the same
//! transaction as each capture, so it always agrees with the ledger. A key sees only its own
//! spend. The dashboard's spend charts read it. `GET /v1/api/spend/export.csv`: every execution
//! of a time range as CSV, streamed.

use crate::auth::Reader;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, SharedState};
use crate::wire::parse_rfc3339;
use crate::wire::spend::{
    DaySpendView, EXPORT_COLUMNS, ExportQuery, KeySpend, SpendQuery, SpendResponse, date_of, export_row,
};
use bytes::Bytes;
use futures::StreamExt;
use std::collections::BTreeMap;
use visa_core::money::Micros;
use visa_core::pagination::{Cursor, PageRequest};
use visa_store::ExecutionFilter;
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

/// The export's range when no `from` is given: this many days before `to`.
const DEFAULT_DAYS: i64 = 30;

/// How many executions the export reads at a time.
const EXPORT_PAGE: u32 = 500;

/// The executions created in `[from, to)` as CSV (`GET /v1/api/spend/export.csv`), newest
/// first like the executions list, failed and zero-charge ones included; a key sees only its
/// own. Streamed a page at a time, so any number of rows costs the same memory. A page that
/// cannot be read ends the stream with an error, which breaks the transfer: a client never
/// mistakes a cut export for a whole one.
pub fn export(
    state: SharedState,
    reader: &Reader,
    query: ExportQuery,
) -> ApiResult<impl futures::Stream<Item = Result<Bytes, std::io::Error>> + use<>> {
    let to = parse_rfc3339("to", query.to.as_deref())?.unwrap_or_else(|| state.now());
    let from = parse_rfc3339("from", query.from.as_deref())?.unwrap_or(to - time::Duration::days(DEFAULT_DAYS));
    if from >= to {
        return Err(ApiError::invalid("from must be before to"));
    }
    let filter = ExecutionFilter {
        account_id: Some(reader.account_id()),
        key_id: reader.key_id(),
        created_from: Some(from),
        created_before: Some(to),
        ..Default::default()
    };
    let header = csv_lines([EXPORT_COLUMNS]);
    let pages = futures::stream::try_unfold(Some(Cursor::Start), move |cursor| {
        let state = state.clone();
        async move {
            let Some(cursor) = cursor else { return Ok(None) };
            let page = state
                .store
                .list_executions(filter, PageRequest { limit: EXPORT_PAGE, cursor })
                .await
                .map_err(|e| std::io::Error::other(format!("the export could not read its executions: {e}")))?;
            let rows = csv_lines(page.items.iter().map(export_row));
            let next = page.items.last().filter(|_| page.has_more).map(|e| Cursor::StartingAfter(e.id));
            Ok(Some((Bytes::from(rows), next)))
        }
    });
    Ok(futures::stream::once(async move { Ok(Bytes::from(header)) }).chain(pages))
}

/// CSV lines, one per record, written by one writer (RFC 4180: fields quoted where they must
/// be, `\n` endings).
fn csv_lines<R: IntoIterator<Item = T>, T: AsRef<[u8]>>(records: impl IntoIterator<Item = R>) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for record in records {
        // Writing to memory cannot fail.
        let _ = writer.write_record(record);
    }
    writer.into_inner().unwrap_or_default()
}
