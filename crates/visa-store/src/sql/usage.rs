//! Request counts per key secret over time (`usage_minutes`): adding the counts the server
//! flushes about once a second, reading them back with the charges of the same minutes, and
//! rolling old minutes up into hours and old hours into days so the table stays bounded. And
//! spend read back for analytics: per day from the keys' day counters, and as series from the
//! rollups the money path writes (`money::rollup`).
//!
//! A rolled-up bucket is an ordinary row at the bucket's first minute: hour and day queries
//! stay exact, and a minute query over old data shows each hour (or day) in its first minute.

use super::db::{Db, Dialect, params};
use super::{Engine, SqlStore};
use crate::StoreResult;
use crate::model::{AccountId, DaySpend, KeyId, SecretId, SeriesGroup, SeriesRequest, SeriesRow, UsageCount};
use async_trait::async_trait;
use std::collections::BTreeMap;
use visa_core::money::Micros;

type Errors = BTreeMap<String, u64>;

/// Adds counts to the row of (`secret_id`, `minute`), creating it if needed: one additive
/// upsert (error counts are summed code by code inside the statement), never a read of the
/// row first, so concurrent writers (nodes) can never lose each other's counts.
fn add(
    conn: &dyn Db,
    (key_id, secret_id, minute): (KeyId, SecretId, i64),
    requests: u64,
    successes: u64,
    errors: &Errors,
) -> StoreResult<()> {
    let errors = serde_json::to_string(errors).expect("a map of counts serializes");
    let merged = match conn.dialect() {
        Dialect::Sqlite => {
            "(SELECT json_group_object(code, total) FROM (SELECT key AS code, SUM(value) AS total FROM \
             (SELECT key, value FROM json_each(usage_minutes.errors) UNION ALL \
              SELECT key, value FROM json_each(excluded.errors)) GROUP BY key))"
        }
        Dialect::Postgres => {
            "(SELECT COALESCE(jsonb_object_agg(code, total), '{}'::jsonb)::text FROM \
             (SELECT key AS code, SUM(value::bigint) AS total FROM \
              (SELECT key, value FROM jsonb_each_text(usage_minutes.errors::jsonb) UNION ALL \
               SELECT key, value FROM jsonb_each_text(excluded.errors::jsonb)) AS counts GROUP BY key) AS sums)"
        }
    };
    let sql = format!(
        "INSERT INTO usage_minutes (secret_id, minute, key_id, requests, successes, errors) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (secret_id, minute) DO UPDATE SET \
         requests = usage_minutes.requests + excluded.requests, \
         successes = usage_minutes.successes + excluded.successes, errors = {merged}"
    );
    conn.execute(&sql, params![secret_id, minute, key_id, requests, successes, errors]).map(drop)
}

pub(crate) fn record(conn: &dyn Db, counts: &[UsageCount]) -> StoreResult<()> {
    for c in counts {
        add(conn, (c.key_id, c.secret_id, c.minute), c.requests, c.successes, &c.errors)?;
    }
    Ok(())
}

/// What old rows are rolled up into.
#[derive(Clone, Copy)]
pub(crate) enum Bucket {
    Hour,
    Day,
}

impl Bucket {
    fn minutes(self) -> i64 {
        match self {
            Bucket::Hour => 60,
            Bucket::Day => 1440,
        }
    }

    /// The rows not at the start of their bucket, oldest first; the modulo is written out so
    /// SQLite uses the partial index of the same condition (`usage_unrolled_*`).
    fn due(self) -> &'static str {
        match self {
            Bucket::Hour => {
                "SELECT key_id, secret_id, minute, requests, successes, errors FROM usage_minutes \
                 WHERE minute % 60 != 0 AND minute < ?1 ORDER BY minute LIMIT ?2"
            }
            Bucket::Day => {
                "SELECT key_id, secret_id, minute, requests, successes, errors FROM usage_minutes \
                 WHERE minute % 1440 != 0 AND minute < ?1 ORDER BY minute LIMIT ?2"
            }
        }
    }
}

/// Moves up to `limit` rows older than `before_minute` that are not at the start of their
/// bucket into the row at its start. Returns how many rows moved.
pub(crate) fn roll_up(conn: &dyn Db, before_minute: i64, bucket: Bucket, limit: u32) -> StoreResult<u64> {
    let bucket_minutes = bucket.minutes();
    let rows: Vec<(KeyId, SecretId, i64, i64, i64, String)> =
        conn.query_map(bucket.due(), params![before_minute, limit], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
        })?;
    for (key_id, secret_id, minute, requests, successes, errors) in &rows {
        conn.execute("DELETE FROM usage_minutes WHERE secret_id = ?1 AND minute = ?2", params![secret_id, minute])?;
        let start = minute - minute.rem_euclid(bucket_minutes);
        let errors: Errors = serde_json::from_str(errors).unwrap_or_default();
        add(conn, (*key_id, *secret_id, start), *requests as u64, *successes as u64, &errors)?;
    }
    Ok(rows.len() as u64)
}

/// The counts of `key_id` in [`since_minute`, `until_minute`), by secret and minute, with
/// what executions started in each minute were charged.
pub(crate) fn account_spend(conn: &dyn Db, account_id: AccountId, since_day: i64) -> StoreResult<Vec<DaySpend>> {
    let rows = conn.query(
        "SELECT d.day_number, d.key_id, d.spent_micros FROM key_days d JOIN keys k ON k.id = d.key_id \
         WHERE k.account_id = ?1 AND d.day_number >= ?2 AND d.spent_micros > 0 ORDER BY d.day_number, d.key_id",
        params![account_id, since_day],
    )?;
    rows.iter().map(|r| Ok(DaySpend { day_number: r.get(0)?, key_id: r.get(1)?, spent: Micros(r.get(2)?) })).collect()
}

/// A spend series from the rollups the money path writes (`spend_hours`, and
/// `spend_end_user_days` for end users, by day), one row per bucket, group and outcome.
pub(crate) fn series(conn: &dyn Db, request: &SeriesRequest) -> StoreResult<Vec<SeriesRow>> {
    let (table, bucket, group) = match request.group {
        SeriesGroup::EndUser => ("spend_end_user_days", "day_number", "end_user"),
        SeriesGroup::None => ("spend_hours", "hour", "CAST(NULL AS TEXT)"),
        SeriesGroup::Key => ("spend_hours", "hour", "CAST(key_id AS TEXT)"),
        SeriesGroup::Tool => ("spend_hours", "hour", "tool"),
    };
    let per = if table == "spend_hours" { request.granularity.hours() } else { 1 };
    let (from, to) = (request.from_bucket * per, request.to_bucket * per);
    let key = if request.key_id.is_some() { " AND key_id = ?4" } else { "" };
    let sql = format!(
        "SELECT {bucket} / {per}, {group}, outcome, CAST(SUM(calls) AS BIGINT), CAST(SUM(charged_micros) AS BIGINT) \
         FROM {table} WHERE account_id = ?1 AND {bucket} >= ?2 AND {bucket} < ?3{key} \
         GROUP BY {bucket} / {per}, {group}, outcome ORDER BY 1, 2, 3"
    );
    let mut values = params![request.account_id, from, to].to_vec();
    if let Some(key) = request.key_id {
        values.push(super::db::ToValue::to_value(&key));
    }
    conn.query_map(&sql, &values, |r| {
        Ok(SeriesRow {
            bucket: r.get(0)?,
            group: r.get(1)?,
            outcome: r.get(2)?,
            calls: r.get(3)?,
            charged: Micros(r.get(4)?),
        })
    })
}

pub(crate) fn of_key(
    conn: &dyn Db,
    key_id: KeyId,
    since_minute: i64,
    until_minute: i64,
) -> StoreResult<Vec<UsageCount>> {
    let mut rows: BTreeMap<(SecretId, i64), UsageCount> = Default::default();
    let counted = conn.query(
        "SELECT secret_id, minute, requests, successes, errors FROM usage_minutes \
         WHERE key_id = ?1 AND minute >= ?2 AND minute < ?3",
        params![key_id, since_minute, until_minute],
    )?;
    for r in &counted {
        let (secret_id, minute): (SecretId, i64) = (r.get(0)?, r.get(1)?);
        let errors: String = r.get(4)?;
        rows.insert(
            (secret_id, minute),
            UsageCount {
                key_id,
                secret_id,
                minute,
                requests: r.get::<i64>(2)? as u64,
                successes: r.get::<i64>(3)? as u64,
                errors: serde_json::from_str(&errors).unwrap_or_default(),
                charged: Micros::ZERO,
            },
        );
    }
    // Charges by the minute the execution started; `created_at` is in microseconds.
    let charged = conn.query(
        "SELECT secret_id, created_at / 60000000 AS minute, CAST(SUM(charged_micros) AS BIGINT) FROM executions \
         WHERE key_id = ?1 AND created_at >= CAST(?2 AS BIGINT) * 60000000 \
           AND created_at < CAST(?3 AS BIGINT) * 60000000 \
         GROUP BY secret_id, created_at / 60000000",
        params![key_id, since_minute, until_minute],
    )?;
    for r in &charged {
        let (secret_id, minute, micros): (SecretId, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
        let row = rows.entry((secret_id, minute)).or_insert_with(|| UsageCount {
            key_id,
            secret_id,
            minute,
            ..Default::default()
        });
        row.charged = Micros(micros);
    }
    Ok(rows.into_values().collect())
}

/// Usage counts and spend per day. Part of the store (`crate::Store`).
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Adds request counts (coalesced by the caller) to the per-minute usage table.
    async fn record_usage(&self, counts: Vec<UsageCount>) -> StoreResult<()>;
    /// Usage of a key's secrets in `[since_minute, until_minute)`, one row per secret and minute
    /// with requests or charges, charges included.
    async fn key_usage(&self, key_id: KeyId, since_minute: i64, until_minute: i64) -> StoreResult<Vec<UsageCount>>;
    /// What each key of the account spent on each UTC day from `since_day` (days since the
    /// epoch) on, from the per-day counters the money path keeps: one row per key and day
    /// with a charge, oldest day first.
    async fn account_spend(&self, account_id: AccountId, since_day: i64) -> StoreResult<Vec<DaySpend>>;
    /// A spend series (calls, charges and refusals by limit, per bucket and group), read from
    /// the rollups the money path keeps, never from the executions.
    async fn spend_series(&self, request: SeriesRequest) -> StoreResult<Vec<SeriesRow>>;
}

#[async_trait]
impl<E: Engine> UsageStore for SqlStore<E> {
    async fn record_usage(&self, counts: Vec<UsageCount>) -> StoreResult<()> {
        if counts.is_empty() {
            return Ok(());
        }
        self.write_locking(move |conn| record(conn, &counts)).await
    }

    async fn key_usage(&self, key_id: KeyId, since_minute: i64, until_minute: i64) -> StoreResult<Vec<UsageCount>> {
        self.read(move |conn| of_key(conn, key_id, since_minute, until_minute)).await
    }

    async fn account_spend(&self, account_id: AccountId, since_day: i64) -> StoreResult<Vec<DaySpend>> {
        self.read(move |conn| account_spend(conn, account_id, since_day)).await
    }

    async fn spend_series(&self, request: SeriesRequest) -> StoreResult<Vec<SeriesRow>> {
        self.read(move |conn| series(conn, &request)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_error_codes_add_up_in_one_statement() {
        let memory = crate::sqlite::engine::tests::memory();
        let conn: &dyn Db = &crate::sqlite::engine::SqliteDb::Reader(&memory);
        let errors = |pairs: &[(&str, u64)]| pairs.iter().map(|(c, n)| (c.to_string(), *n)).collect::<Errors>();
        add(conn, (KeyId::new(1), SecretId::new(1), 100), 3, 1, &errors(&[("RATE_LIMITED", 2)])).unwrap();
        add(conn, (KeyId::new(1), SecretId::new(1), 100), 4, 2, &errors(&[("RATE_LIMITED", 1), ("KEY_EXPIRED", 1)]))
            .unwrap();
        add(conn, (KeyId::new(1), SecretId::new(1), 100), 1, 1, &Errors::new()).unwrap();
        let (requests, successes, stored): (i64, i64, String) = conn
            .query_row("SELECT requests, successes, errors FROM usage_minutes", &[], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap()
            .unwrap();
        assert_eq!((requests, successes), (8, 4));
        let stored: Errors = serde_json::from_str(&stored).unwrap();
        assert_eq!(stored, errors(&[("KEY_EXPIRED", 1), ("RATE_LIMITED", 3)]));
    }
}
