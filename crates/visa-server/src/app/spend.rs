//! An account's spend read back. `GET /v1/api/spend?days=N`: per UTC day over the last N days
//! (1 to 366, default 30), split by key, from the per-day counters the money path keeps in the
//! same transaction as each capture, so it always agrees with the ledger; the dashboard's spend
//! charts read it. `GET /v1/api/spend/series`: calls, charges and refusals per hour or day by
//! key, tool or end user, from the rollups the money path writes. `GET
//! /v1/api/spend/export.csv`: every execution of a time range as CSV, streamed. A key sees only
//! its own spend.

use crate::auth::Reader;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, SharedState};
use crate::wire::parse_rfc3339;
use crate::wire::rfc3339;
use crate::wire::spend::{
    DaySpendView, EXPORT_COLUMNS, ExportQuery, KeySpend, SeriesBucket, SeriesQuery, SeriesResponse, SpendQuery,
    SpendResponse, date_of, export_row,
};
use bytes::Bytes;
use futures::StreamExt;
use std::collections::BTreeMap;
use visa_core::money::Micros;
use visa_core::pagination::{Cursor, PageRequest};
use visa_store::ExecutionFilter;
use visa_store::rules::utc_day_number;
use visa_store::{Granularity, SeriesGroup, SeriesRequest, SeriesRow};

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

/// The most buckets a series answers: 31 days of hours, or 366 days.
const MAX_HOURS: i64 = 31 * 24;
const MAX_DAYS: i64 = 366;

/// A spend series (`GET /v1/api/spend/series`): the calls that ended, their charges and the
/// calls refused by each limit, per hour or UTC day, split by key, tool or end user, read from
/// the rollups the money path writes in the transactions that end or refuse the calls. A key
/// sees only its own calls.
pub async fn series(state: &AppState, reader: &Reader, query: SeriesQuery) -> ApiResult<SeriesResponse> {
    let series = read_series(state, reader, query).await?;
    let start = |bucket: i64| {
        time::OffsetDateTime::from_unix_timestamp(bucket * series.seconds).map(rfc3339).unwrap_or_default()
    };
    Ok(SeriesResponse {
        success: true,
        object: "spend_series".into(),
        granularity: if series.seconds == 3_600 { "hour" } else { "day" }.into(),
        group_by: series.group_by,
        from: start(series.from_bucket),
        to: start(series.to_bucket),
        buckets: series.buckets.into_iter().map(|((bucket, group), b)| b.view(start(bucket), group)).collect(),
    })
}

/// A spend series read, before it is put in the API's words.
pub struct Series {
    /// A bucket's length, and the first bucket and the one after the last (in buckets since 1970).
    pub seconds: i64,
    pub from_bucket: i64,
    pub to_bucket: i64,
    pub group_by: String,
    /// By bucket, then group.
    pub buckets: BTreeMap<(i64, Option<String>), BucketSums>,
}

/// The series `query` asks for (checked as `series` says).
pub async fn read_series(state: &AppState, reader: &Reader, query: SeriesQuery) -> ApiResult<Series> {
    let granularity = match query.granularity.as_deref() {
        None | Some("day") => Granularity::Day,
        Some("hour") => Granularity::Hour,
        Some(_) => return Err(ApiError::invalid("granularity must be hour or day")),
    };
    let group = match query.group_by.as_deref() {
        None | Some("none") => SeriesGroup::None,
        Some("key") => SeriesGroup::Key,
        Some("tool") => SeriesGroup::Tool,
        Some("end_user") => SeriesGroup::EndUser,
        Some(_) => return Err(ApiError::invalid("group_by must be none, key, tool or end_user")),
    };
    if group == SeriesGroup::EndUser && granularity == Granularity::Hour {
        return Err(ApiError::invalid("a series by end user is counted per UTC day: use granularity=day"));
    }
    let (default_span, most) = match granularity {
        Granularity::Day => (time::Duration::days(DEFAULT_DAYS), MAX_DAYS),
        Granularity::Hour => (time::Duration::hours(24), MAX_HOURS),
    };
    let to = parse_rfc3339("to", query.to.as_deref())?.unwrap_or_else(|| state.now());
    let from = parse_rfc3339("from", query.from.as_deref())?.unwrap_or(to - default_span);
    if from >= to {
        return Err(ApiError::invalid("from must be before to"));
    }
    let seconds = 3_600 * granularity.hours();
    let from_bucket = from.unix_timestamp().div_euclid(seconds);
    // Rounded up: a `to` inside a bucket (now, by default) includes that bucket.
    let nanos = i128::from(seconds) * 1_000_000_000;
    let to_bucket = ((to.unix_timestamp_nanos() + nanos - 1).div_euclid(nanos) as i64).max(from_bucket + 1);
    if to_bucket - from_bucket > most {
        return Err(ApiError::invalid(format!("a series spans at most {most} buckets of its granularity")));
    }
    let request = SeriesRequest {
        account_id: reader.account_id(),
        key_id: reader.key_id(),
        granularity,
        group,
        from_bucket,
        to_bucket,
    };
    let rows = state.store.spend_series(request).await?;
    Ok(Series {
        seconds,
        from_bucket,
        to_bucket,
        group_by: query.group_by.unwrap_or_else(|| "none".into()),
        buckets: buckets(rows),
    })
}

/// What one bucket of one group sums to.
#[derive(Default)]
pub struct BucketSums {
    pub calls: i64,
    pub charged: Micros,
    pub refusals: BTreeMap<String, i64>,
}

impl BucketSums {
    fn view(self, start: String, group: Option<String>) -> SeriesBucket {
        SeriesBucket {
            start,
            group,
            calls: self.calls,
            charged_micros: self.charged.to_string(),
            charged_cents: self.charged.cents_ceil(),
            refusals: self.refusals,
        }
    }
}

/// A series' rows (one per outcome) gathered per bucket and group.
fn buckets(rows: Vec<SeriesRow>) -> BTreeMap<(i64, Option<String>), BucketSums> {
    let mut buckets: BTreeMap<(i64, Option<String>), BucketSums> = BTreeMap::new();
    for row in rows {
        let sums = buckets.entry((row.bucket, row.group)).or_default();
        if row.outcome == visa_store::ENDED_OUTCOME {
            sums.calls += row.calls;
            sums.charged = sums.charged.checked_add(row.charged).unwrap_or(Micros(i64::MAX));
        } else {
            *sums.refusals.entry(row.outcome).or_default() += row.calls;
        }
    }
    buckets
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
