//! Spend analytics' rollups (`spend_hours`, `spend_end_user_days`), written by the money path
//! in the transaction that ends or refuses a call, so they are exact: a call that ended counts
//! once, with what the account was charged, under the hour it was made; a call refused by a
//! limit counts under that limit. Alone (`count`) or summed over a batch (`Counts`).

use super::super::db::{Db, ToValue, Value, params};
use super::super::{Array, to_db};
use crate::model::{AccountId, EndUser, ExecutionRecord, ExecutionStart, KeyId, Timestamp};
use crate::rules::Limit;
use std::collections::BTreeMap;
use visa_core::money::Micros;

use crate::model::ENDED_OUTCOME as ENDED;

const MICROS_PER_HOUR: i64 = 3_600_000_000;

/// The hour (since 1970) and the UTC day a call made at `at` counts under.
fn hour_and_day(at: Timestamp) -> (i64, i64) {
    let hour = to_db(at).div_euclid(MICROS_PER_HOUR);
    (hour, hour.div_euclid(24))
}

/// One call counted: whose, when it was made, and how it came out.
pub(super) struct Counted<'a> {
    account: AccountId,
    key: KeyId,
    tool: &'a str,
    end_user: Option<&'a EndUser>,
    made_at: Timestamp,
    outcome: &'static str,
    charged: Micros,
}

impl<'a> Counted<'a> {
    /// A call that ended, with what its account was charged.
    pub fn ended(e: &'a ExecutionRecord, charged: Micros) -> Self {
        Counted {
            account: e.account_id,
            key: e.key_id,
            tool: &e.tool,
            end_user: e.end_user.as_ref(),
            made_at: e.created_at,
            outcome: ENDED,
            charged,
        }
    }

    /// A call refused by `limit`.
    pub fn refused(start: &'a ExecutionStart, limit: Limit) -> Self {
        Counted {
            account: start.account_id,
            key: start.key_id,
            tool: &start.tool,
            end_user: start.end_user.as_ref(),
            made_at: start.now,
            outcome: limit.as_str(),
            charged: Micros::ZERO,
        }
    }
}

/// Counts one call, in the caller's transaction.
pub(super) fn count(conn: &dyn Db, call: Counted) -> crate::StoreResult<()> {
    let (hour, day) = hour_and_day(call.made_at);
    conn.execute(
        "INSERT INTO spend_hours (account_id, hour, key_id, tool, outcome, calls, charged_micros) \
         VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6) ON CONFLICT (account_id, hour, key_id, tool, outcome) DO UPDATE SET \
         calls = spend_hours.calls + 1, charged_micros = spend_hours.charged_micros + excluded.charged_micros",
        params![call.account, hour, call.key, call.tool, call.outcome, call.charged.0],
    )?;
    if let Some(user) = call.end_user {
        conn.execute(
            "INSERT INTO spend_end_user_days (account_id, day_number, key_id, end_user, outcome, calls, charged_micros) \
             VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6) ON CONFLICT (account_id, day_number, key_id, end_user, outcome) \
             DO UPDATE SET calls = spend_end_user_days.calls + 1, \
             charged_micros = spend_end_user_days.charged_micros + excluded.charged_micros",
            params![call.account, day, call.key, user.as_str(), call.outcome, call.charged.0],
        )?;
    }
    Ok(())
}

/// A rollup row: account, hour or day, key, tool or end user, outcome.
type Row<'a> = (AccountId, i64, KeyId, &'a str, &'static str);

/// Calls counted together (a batch's), summed by the rows they move: (calls, charged micros).
#[derive(Default)]
pub(super) struct Counts<'a> {
    hours: BTreeMap<Row<'a>, (i64, i64)>,
    end_users: BTreeMap<Row<'a>, (i64, i64)>,
}

impl<'a> Counts<'a> {
    pub fn add(&mut self, call: Counted<'a>) {
        let (hour, day) = hour_and_day(call.made_at);
        let bump = |row: &mut (i64, i64)| {
            row.0 += 1;
            row.1 += call.charged.0;
        };
        bump(self.hours.entry((call.account, hour, call.key, call.tool, call.outcome)).or_default());
        if let Some(user) = call.end_user {
            bump(self.end_users.entry((call.account, day, call.key, user.as_str(), call.outcome)).or_default());
        }
    }

    /// The batch write's parameters for them (`?60` to `?73`, `super::batch`): the hours'
    /// rows, then the end users' days'.
    pub fn params(&self) -> Vec<Value> {
        let mut values = vec![];
        for rows in [&self.hours, &self.end_users] {
            let ints = |f: &dyn Fn(&Row, &(i64, i64)) -> i64| {
                Array::Ints(rows.iter().map(|(k, v)| Some(f(k, v))).collect()).to_value()
            };
            let texts = |f: &dyn Fn(&Row) -> String| Array::Texts(rows.keys().map(|k| Some(f(k))).collect()).to_value();
            values.extend([
                ints(&|k, _| k.0.get()),
                ints(&|k, _| k.1),
                ints(&|k, _| k.2.get()),
                texts(&|k| k.3.to_owned()),
                texts(&|k| k.4.to_owned()),
                ints(&|_, v| v.0),
                ints(&|_, v| v.1),
            ]);
        }
        values
    }
}
