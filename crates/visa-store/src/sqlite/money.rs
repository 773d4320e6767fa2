//! The money path over SQLite: the hold (idempotency record + cap and balance checks +
//! hold, one transaction), the settlement (capture/release or void, one transaction),
//! reconciliation after a crash, and the ledger audit that recomputes every counter.
//!
//! These functions run inside the writer's group transaction (or a reader for lists and the
//! audit); they never commit themselves.

use super::map_sqlite_error;
use super::queries::{from_db, to_db};
use crate::model::*;
use crate::{StoreError, StoreResult};
use rusqlite::{Connection, OptionalExtension, Row, params};
use visa_core::money::{MICROS_PER_CENT, Micros};
use visa_core::pagination::{Cursor, Page, PageRequest};

const EXECUTION_COLUMNS: &str = "id, public_id, account_id, key_id, tool, state, sandbox, hold_micros, charged_micros, \
    receipt_id, created_at, finished_at, day_number";

fn execution_from_row(row: &Row<'_>) -> rusqlite::Result<ExecutionRecord> {
    let state: String = row.get(5)?;
    Ok(ExecutionRecord {
        id: row.get(0)?,
        public_id: row.get(1)?,
        account_id: row.get(2)?,
        key_id: row.get(3)?,
        tool: row.get(4)?,
        state: ExecutionState::parse(&state)
            .ok_or_else(|| rusqlite::Error::InvalidColumnType(5, "state".into(), rusqlite::types::Type::Text))?,
        sandbox: row.get(6)?,
        hold: Micros(row.get(7)?),
        charged: Micros(row.get(8)?),
        receipt_id: row.get(9)?,
        created_at: from_db(row.get(10)?),
        finished_at: row.get::<_, Option<i64>>(11)?.map(from_db),
        day_number: row.get(12)?,
    })
}

fn execution_by_id(conn: &Connection, id: i64) -> StoreResult<ExecutionRecord> {
    conn.prepare_cached(&format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = ?1"))
        .and_then(|mut stmt| stmt.query_row([id], execution_from_row))
        .optional()
        .map_err(map_sqlite_error)?
        .ok_or(StoreError::NotFound)
}

fn sql(conn: &Connection, statement: &str, params: impl rusqlite::Params) -> StoreResult<usize> {
    conn.prepare_cached(statement).and_then(|mut stmt| stmt.execute(params)).map_err(map_sqlite_error)
}

fn ledger(conn: &Connection, e: &ExecutionRecord, kind: &str, amount: Micros, now: Timestamp) -> StoreResult<()> {
    if amount.0 == 0 && kind != "hold" {
        return Ok(());
    }
    sql(
        conn,
        "INSERT INTO ledger (account_id, key_id, execution_id, kind, amount_micros, sandbox, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![e.account_id, e.key_id, e.id, kind, amount.0, e.sandbox, to_db(now)],
    )?;
    Ok(())
}

/// What an existing Idempotency-Key record says about a new request.
fn existing_outcome(conn: &Connection, start: &ExecutionStart) -> StoreResult<Option<BeginOutcome>> {
    let found = conn
        .prepare_cached(
            "SELECT r.execution_id, r.expires_at, e.request_hash, e.state, e.response_status, e.response_body \
             FROM idempotency_records r JOIN executions e ON e.id = r.execution_id \
             WHERE r.key_id = ?1 AND r.idempotency_key = ?2",
        )
        .and_then(|mut stmt| {
            stmt.query_row(params![start.key_id, start.idempotency_key], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<u16>>(4)?,
                    r.get::<_, Option<Vec<u8>>>(5)?,
                ))
            })
            .optional()
        })
        .map_err(map_sqlite_error)?;
    let Some((execution_id, expires_at, hash, state, status, body)) = found else {
        return Ok(None);
    };
    if expires_at <= to_db(start.now) {
        sql(
            conn,
            "DELETE FROM idempotency_records WHERE key_id = ?1 AND idempotency_key = ?2",
            params![start.key_id, start.idempotency_key],
        )?;
        return Ok(None);
    }
    if hash != start.request_hash {
        return Ok(Some(BeginOutcome::Mismatch));
    }
    let outcome = match (ExecutionState::parse(&state), status, body) {
        (Some(ExecutionState::Running), _, _) => BeginOutcome::InFlight,
        (Some(ExecutionState::ReconcileRequired), _, _) => {
            BeginOutcome::ReconcileRequired(execution_by_id(conn, execution_id)?)
        }
        (Some(_), Some(status), Some(body)) => BeginOutcome::Replay { status, body },
        _ => return Err(StoreError::Internal(format!("execution {execution_id} has no stored response"))),
    };
    Ok(Some(outcome))
}

struct KeyCounters {
    daily_cap_cents: i64,
    total_cap_cents: Option<i64>,
    revoked: bool,
    day_number: i64,
    spent_day: i64,
    held_day: i64,
    spent_total: i64,
    held_total: i64,
}

fn key_counters(conn: &Connection, key_id: i64) -> StoreResult<KeyCounters> {
    conn.prepare_cached(
        "SELECT daily_cap_cents, total_cap_cents, revoked_at IS NOT NULL, spent_day_number, spent_day_micros, \
         held_day_micros, spent_total_micros, held_total_micros FROM keys WHERE id = ?1",
    )
    .and_then(|mut stmt| {
        stmt.query_row([key_id], |r| {
            Ok(KeyCounters {
                daily_cap_cents: r.get(0)?,
                total_cap_cents: r.get(1)?,
                revoked: r.get(2)?,
                day_number: r.get(3)?,
                spent_day: r.get(4)?,
                held_day: r.get(5)?,
                spent_total: r.get(6)?,
                held_total: r.get(7)?,
            })
        })
    })
    .optional()
    .map_err(map_sqlite_error)?
    .ok_or(StoreError::NotFound)
}

/// Would a hold of `hold` fit under the key's caps (on `day_number`)? Pure arithmetic.
fn cap_refusal(key: &KeyCounters, day_number: i64, hold: i64) -> Option<HoldRefusal> {
    let (spent_day, held_day) = if key.day_number == day_number { (key.spent_day, key.held_day) } else { (0, 0) };
    let over = |used: i64, cap_cents: i64| used.saturating_add(hold) > cap_cents.saturating_mul(MICROS_PER_CENT);
    if key.revoked {
        Some(HoldRefusal::KeyRevoked)
    } else if over(spent_day + held_day, key.daily_cap_cents) {
        Some(HoldRefusal::DailyCap)
    } else if key.total_cap_cents.is_some_and(|cap| over(key.spent_total + key.held_total, cap)) {
        Some(HoldRefusal::TotalCap)
    } else {
        None
    }
}

fn available_balance(conn: &Connection, account_id: i64) -> StoreResult<i64> {
    conn.prepare_cached("SELECT balance_micros - held_micros FROM accounts WHERE id = ?1")
        .and_then(|mut stmt| stmt.query_row([account_id], |r| r.get(0)))
        .map_err(map_sqlite_error)
}

pub(crate) fn begin(conn: &Connection, start: &ExecutionStart) -> StoreResult<BeginOutcome> {
    if let Some(outcome) = existing_outcome(conn, start)? {
        return Ok(outcome);
    }
    let key = key_counters(conn, start.key_id)?;
    if let Some(refusal) = cap_refusal(&key, start.day_number, start.hold.0) {
        return Ok(BeginOutcome::Refused(refusal));
    }
    if !start.sandbox && available_balance(conn, start.account_id)? < start.hold.0 {
        return Ok(BeginOutcome::Refused(HoldRefusal::Balance));
    }
    let now = to_db(start.now);
    sql(
        conn,
        "INSERT INTO executions (public_id, account_id, key_id, secret_id, idempotency_key, request_hash, tool, state, \
         sandbox, day_number, hold_micros, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'running', ?8, ?9, ?10, ?11)",
        params![
            start.public_id,
            start.account_id,
            start.key_id,
            start.secret_id,
            start.idempotency_key,
            &start.request_hash[..],
            start.tool,
            start.sandbox,
            start.day_number,
            start.hold.0,
            now
        ],
    )?;
    let execution_id = conn.last_insert_rowid();
    sql(
        conn,
        "INSERT INTO idempotency_records (key_id, idempotency_key, execution_id, expires_at) VALUES (?1, ?2, ?3, ?4)",
        params![start.key_id, start.idempotency_key, execution_id, to_db(start.idempotency_expires_at)],
    )?;
    // A new UTC day starts the daily counters from zero.
    let (spent_day, held_day) = if key.day_number == start.day_number { (key.spent_day, key.held_day) } else { (0, 0) };
    sql(
        conn,
        "UPDATE keys SET spent_day_number = ?2, spent_day_micros = ?3, held_day_micros = ?4, \
         held_total_micros = held_total_micros + ?5 WHERE id = ?1",
        params![start.key_id, start.day_number, spent_day, held_day + start.hold.0, start.hold.0],
    )?;
    if !start.sandbox {
        sql(
            conn,
            "UPDATE accounts SET held_micros = held_micros + ?2 WHERE id = ?1",
            params![start.account_id, start.hold.0],
        )?;
    }
    let execution = execution_by_id(conn, execution_id)?;
    ledger(conn, &execution, "hold", start.hold, start.now)?;
    Ok(BeginOutcome::Started(execution))
}

/// Ends a hold: `charged` is captured (zero for a void) and the rest released or voided.
fn settle(conn: &Connection, e: &ExecutionRecord, charged: Micros, voided: bool, now: Timestamp) -> StoreResult<()> {
    let hold = e.hold.0;
    let charged = charged.0.clamp(0, hold);
    // The daily counters only move if the key is still on the execution's day.
    sql(
        conn,
        "UPDATE keys SET held_total_micros = held_total_micros - ?2, spent_total_micros = spent_total_micros + ?3, \
         held_day_micros = CASE WHEN spent_day_number = ?4 THEN held_day_micros - ?2 ELSE held_day_micros END, \
         spent_day_micros = CASE WHEN spent_day_number = ?4 THEN spent_day_micros + ?3 ELSE spent_day_micros END \
         WHERE id = ?1",
        params![e.key_id, hold, charged, e.day_number],
    )?;
    if !e.sandbox {
        sql(
            conn,
            "UPDATE accounts SET held_micros = held_micros - ?2, balance_micros = balance_micros - ?3 WHERE id = ?1",
            params![e.account_id, hold, charged],
        )?;
    }
    if voided {
        ledger(conn, e, "void", e.hold, now)
    } else {
        ledger(conn, e, "capture", Micros(charged), now)?;
        ledger(conn, e, "release", Micros(hold - charged), now)
    }
}

/// Moves `e` from the state it is in to `state`, with its charge and stored answer. Fails
/// (changing nothing) when the stored state is not `e.state`: an execution ends once.
fn record_outcome(
    conn: &Connection,
    e: &ExecutionRecord,
    state: ExecutionState,
    charged: Micros,
    receipt_id: Option<&str>,
    answer: Option<(u16, &[u8])>,
    now: Timestamp,
) -> StoreResult<ExecutionRecord> {
    let charged_to_account = if e.sandbox { Micros::ZERO } else { Micros(charged.0.clamp(0, e.hold.0)) };
    let receipt_id = receipt_id.filter(|_| charged_to_account > Micros::ZERO);
    let changed = sql(
        conn,
        "UPDATE executions SET state = ?2, charged_micros = ?3, receipt_id = ?4, response_status = ?5, \
         response_body = ?6, finished_at = ?7 WHERE id = ?1 AND state = ?8",
        params![
            e.id,
            state.as_str(),
            charged_to_account.0,
            receipt_id,
            answer.map(|a| a.0),
            answer.map(|a| a.1),
            to_db(now),
            e.state.as_str()
        ],
    )?;
    if changed != 1 {
        return Err(StoreError::Refused(format!("execution {} is no longer {}", e.public_id, e.state.as_str())));
    }
    Ok(ExecutionRecord {
        state,
        charged: charged_to_account,
        receipt_id: receipt_id.map(str::to_owned),
        finished_at: Some(now),
        ..e.clone()
    })
}

fn free_idempotency_key(conn: &Connection, execution_id: i64) -> StoreResult<()> {
    sql(conn, "DELETE FROM idempotency_records WHERE execution_id = ?1", [execution_id])?;
    Ok(())
}

fn require_state(e: &ExecutionRecord, expected: ExecutionState) -> StoreResult<()> {
    if e.state == expected {
        Ok(())
    } else {
        Err(StoreError::Refused(format!(
            "execution {} is {}, not {}",
            e.public_id,
            e.state.as_str(),
            expected.as_str()
        )))
    }
}

/// Ends a running execution. `e` is the record `begin` returned; the guarded update checks
/// that it is still running.
pub(crate) fn finish(
    conn: &Connection,
    e: &ExecutionRecord,
    finish: &Finish,
    now: Timestamp,
) -> StoreResult<ExecutionRecord> {
    let e = ExecutionRecord { state: ExecutionState::Running, ..e.clone() };
    conclude(conn, &e, finish, now)
}

/// Records the outcome first (it refuses an execution that already ended), then moves the money.
fn conclude(conn: &Connection, e: &ExecutionRecord, finish: &Finish, now: Timestamp) -> StoreResult<ExecutionRecord> {
    match finish {
        Finish::Capture { cost, receipt_id, status, body } => {
            let done = record_outcome(
                conn,
                e,
                ExecutionState::Succeeded,
                *cost,
                Some(receipt_id),
                Some((*status, body)),
                now,
            )?;
            settle(conn, e, *cost, false, now)?;
            Ok(done)
        }
        Finish::VoidRetryable => {
            let done = record_outcome(conn, e, ExecutionState::Voided, Micros::ZERO, None, None, now)?;
            settle(conn, e, Micros::ZERO, true, now)?;
            free_idempotency_key(conn, e.id)?;
            Ok(done)
        }
        Finish::VoidFinal { status, body } => {
            let done = record_outcome(conn, e, ExecutionState::Failed, Micros::ZERO, None, Some((*status, body)), now)?;
            settle(conn, e, Micros::ZERO, true, now)?;
            Ok(done)
        }
    }
}

pub(crate) fn reconcile(
    conn: &Connection,
    public_id: &str,
    decision: &Reconcile,
    now: Timestamp,
) -> StoreResult<ExecutionRecord> {
    let id: i64 = conn
        .query_row("SELECT id FROM executions WHERE public_id = ?1", [public_id], |r| r.get(0))
        .optional()
        .map_err(map_sqlite_error)?
        .ok_or(StoreError::NotFound)?;
    let e = execution_by_id(conn, id)?;
    require_state(&e, ExecutionState::ReconcileRequired)?;
    let finish = match decision {
        Reconcile::Capture { cost, .. } if *cost > e.hold => {
            return Err(StoreError::Refused(format!("cannot capture more than the hold of {} micros", e.hold)));
        }
        Reconcile::Capture { cost, receipt_id, status, body } => {
            Finish::Capture { cost: *cost, receipt_id: receipt_id.clone(), status: *status, body: body.clone() }
        }
        Reconcile::Void => Finish::VoidRetryable,
    };
    conclude(conn, &e, &finish, now)
}

pub(crate) fn mark_interrupted(conn: &Connection) -> StoreResult<u64> {
    sql(conn, "UPDATE executions SET state = 'reconcile_required' WHERE state = 'running'", []).map(|n| n as u64)
}

fn filter_sql(filter: &ExecutionFilter) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    let mut clauses = vec![];
    let mut values = vec![];
    if let Some(account_id) = filter.account_id {
        values.push(Value::Integer(account_id));
        clauses.push(format!("account_id = ?{}", values.len()));
    }
    if let Some(key_id) = filter.key_id {
        values.push(Value::Integer(key_id));
        clauses.push(format!("key_id = ?{}", values.len()));
    }
    if let Some(state) = filter.state {
        values.push(Value::Text(state.as_str().into()));
        clauses.push(format!("state = ?{}", values.len()));
    }
    (clauses.iter().map(|c| format!(" AND {c}")).collect(), values)
}

pub(crate) fn get(
    conn: &Connection,
    filter: &ExecutionFilter,
    public_id: &str,
) -> StoreResult<Option<ExecutionRecord>> {
    let (clauses, mut values) = filter_sql(filter);
    values.push(rusqlite::types::Value::Text(public_id.to_owned()));
    let sql = format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE public_id = ?{}{clauses}", values.len());
    conn.query_row(&sql, rusqlite::params_from_iter(values), execution_from_row).optional().map_err(map_sqlite_error)
}

pub(crate) fn list(
    conn: &Connection,
    filter: &ExecutionFilter,
    page: PageRequest,
) -> StoreResult<Page<ExecutionRecord>> {
    let (clauses, mut values) = filter_sql(filter);
    let (op, order, cursor) = match page.cursor {
        Cursor::Start => ("<", "DESC", i64::MAX),
        Cursor::StartingAfter(id) => ("<", "DESC", id),
        Cursor::EndingBefore(id) => (">", "ASC", id),
    };
    values.push(rusqlite::types::Value::Integer(cursor));
    let cursor_param = values.len();
    values.push(rusqlite::types::Value::Integer(i64::from(page.fetch_limit())));
    let sql = format!(
        "SELECT {EXECUTION_COLUMNS} FROM executions WHERE id {op} ?{cursor_param}{clauses} ORDER BY id {order} LIMIT ?{}",
        values.len()
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(map_sqlite_error)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(values), execution_from_row)
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(map_sqlite_error)?;
    Ok(Page::cut(&page, rows, |e| e.id))
}

/// Recomputes every counter from the ledger and checks each execution's entries.
pub(crate) fn verify(conn: &Connection) -> StoreResult<Vec<String>> {
    let mut problems = vec![];
    let mut check = |what: String, sql: &str| -> StoreResult<()> {
        let mut stmt = conn.prepare(sql).map_err(map_sqlite_error)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(map_sqlite_error)?;
        for (id, stored, derived) in rows {
            problems.push(format!("{what} {id}: stored {stored}, ledger says {derived}"));
        }
        Ok(())
    };
    // Sums of ledger entries per account and per key, by kind, real money and sandbox apart.
    let sum = |owner: &str, kinds: &str, sandbox: &str| {
        format!(
            "COALESCE((SELECT SUM(l.amount_micros) FROM ledger l WHERE l.{owner} AND l.kind IN ({kinds}) {sandbox}), 0)"
        )
    };
    let real = "AND l.sandbox = 0";
    let account_balance =
        format!("{} - {}", sum("account_id = a.id", "'credit'", real), sum("account_id = a.id", "'capture'", real));
    let account_held = format!(
        "{} - {}",
        sum("account_id = a.id", "'hold'", real),
        sum("account_id = a.id", "'capture','release','void'", real)
    );
    check(
        "account balance".into(),
        &format!("SELECT id, balance_micros, {account_balance} AS d FROM accounts a WHERE balance_micros <> d"),
    )?;
    check(
        "account held".into(),
        &format!("SELECT id, held_micros, {account_held} AS d FROM accounts a WHERE held_micros <> d"),
    )?;
    check("negative balance".into(), "SELECT id, balance_micros, 0 FROM accounts WHERE balance_micros < 0")?;
    let key_spent = sum("key_id = k.id", "'capture'", "");
    let key_held =
        format!("{} - {}", sum("key_id = k.id", "'hold'", ""), sum("key_id = k.id", "'capture','release','void'", ""));
    check(
        "key spent_total".into(),
        &format!("SELECT id, spent_total_micros, {key_spent} AS d FROM keys k WHERE spent_total_micros <> d"),
    )?;
    check(
        "key held_total".into(),
        &format!("SELECT id, held_total_micros, {key_held} AS d FROM keys k WHERE held_total_micros <> d"),
    )?;
    let on_day = "AND l.execution_id IN (SELECT id FROM executions WHERE day_number = k.spent_day_number)";
    let day_spent = sum("key_id = k.id", "'capture'", on_day);
    let day_held = format!(
        "{} - {}",
        sum("key_id = k.id", "'hold'", on_day),
        sum("key_id = k.id", "'capture','release','void'", on_day)
    );
    check(
        "key spent_day".into(),
        &format!("SELECT id, spent_day_micros, {day_spent} AS d FROM keys k WHERE spent_day_micros <> d"),
    )?;
    check(
        "key held_day".into(),
        &format!("SELECT id, held_day_micros, {day_held} AS d FROM keys k WHERE held_day_micros <> d"),
    )?;
    check(
        "key over its daily cap".into(),
        "SELECT id, spent_day_micros + held_day_micros, daily_cap_cents * 10000 FROM keys WHERE spent_day_micros + held_day_micros > daily_cap_cents * 10000",
    )?;
    check(
        "key over its total cap".into(),
        "SELECT id, spent_total_micros + held_total_micros, total_cap_cents * 10000 FROM keys \
         WHERE total_cap_cents IS NOT NULL AND spent_total_micros + held_total_micros > total_cap_cents * 10000",
    )?;
    // Each execution: exactly one hold; open ones nothing else; settled ones end it exactly.
    let entries = |kinds: &str| sum("execution_id = e.id", kinds, "");
    let count =
        |kind: &str| format!("(SELECT COUNT(*) FROM ledger l WHERE l.execution_id = e.id AND l.kind = '{kind}')");
    check(
        "execution holds (count)".into(),
        &format!("SELECT id, {} AS n, 1 FROM executions e WHERE n <> 1", count("hold")),
    )?;
    check(
        "execution hold amount".into(),
        &format!("SELECT id, hold_micros, {} AS d FROM executions e WHERE hold_micros <> d", entries("'hold'")),
    )?;
    check(
        "open execution settled".into(),
        &format!(
            "SELECT id, {} AS d, 0 FROM executions e WHERE state IN ('running', 'reconcile_required') AND d <> 0",
            entries("'capture','release','void'")
        ),
    )?;
    check(
        "settled execution does not end its hold".into(),
        &format!(
            "SELECT id, hold_micros, {} AS d FROM executions e WHERE state IN ('succeeded', 'failed', 'voided') AND hold_micros <> d",
            entries("'capture','release','void'")
        ),
    )?;
    check(
        "execution charge".into(),
        &format!(
            "SELECT id, charged_micros, {} AS d FROM executions e WHERE sandbox = 0 AND charged_micros <> d",
            entries("'capture'")
        ),
    )?;
    Ok(problems)
}
