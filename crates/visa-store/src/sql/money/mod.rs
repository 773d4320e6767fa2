//! The money path: the hold (idempotency record + cap and balance checks +
//! hold, one transaction), the settlement (capture/release or void, one transaction) and
//! reconciliation after a crash. Beside it, by job: `batch` (many steps in one transaction),
//! `room` (the one hold decision), `nodes` (leases and reclaiming a dead node's calls),
//! `retention` (forgetting what is kept only for a while), `read` (executions read back and
//! the ledger audit's facts).
//!
//! These functions run inside their caller's transaction (SQLite's group-committing writer,
//! a PostgreSQL transaction at READ COMMITTED) or a reader; they never commit themselves.
//! Where writers run concurrently (`Dialect::single_writer` is false), `begin` first locks
//! the key's `key_spend` row, then (production) the account's row, so every read after it
//! sees each begin and finish of that key and account that committed before; a finish
//! guards on the execution's state and moves counters by increments only. docs/money.md
//! says why each invariant holds.

use super::audit;
use super::db::{ClockSql, Db, Row, corrupt, params};
use super::{from_db, to_db};
use crate::audit::execution_snapshot;
use crate::model::*;
use crate::rules::{self, Cap, CapAlert};
use crate::sql::{Engine, SqlStore};
use crate::{Durability, Hold, Refusal, StoreError, StoreResult};
use async_trait::async_trait;
use batch::Step;
use visa_core::money::Micros;
use visa_core::pagination::{Page, PageRequest};
use visa_core::policy::{CidrAllowlist, ToolGrant};

/// Whether node `$node` (a placeholder) still holds its lease by the database's clock, as an
/// SQL expression for a `ClockSql`: the one spelling of the check a hold makes before it
/// starts anything, alone (`lock_for_hold`) or in a batch.
macro_rules! node_lease_live {
    ($node:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM nodes n WHERE n.id = ",
            $node,
            " AND n.reclaimed_at IS NULL AND n.lease_expires_at > {clock})"
        )
    };
}

pub(crate) mod batch;
pub(crate) mod nodes;
pub(crate) mod read;
pub(crate) mod retention;
mod rollup;
mod room;

const EXECUTION_COLUMNS: &str = "id, public_id, account_id, key_id, tool, state, sandbox, hold_micros, charged_micros, \
    receipt_id, created_at, finished_at, day_number, end_user";

fn execution_from_row(row: &Row) -> StoreResult<ExecutionRecord> {
    let state: String = row.get(5)?;
    Ok(ExecutionRecord {
        id: row.get(0)?,
        public_id: row.get(1)?,
        account_id: row.get(2)?,
        key_id: row.get(3)?,
        tool: row.get(4)?,
        state: ExecutionState::parse(&state).ok_or_else(|| super::db::corrupt("execution state"))?,
        sandbox: row.get(6)?,
        hold: Micros(row.get(7)?),
        charged: Micros(row.get(8)?),
        receipt_id: row.get(9)?,
        created_at: from_db(row.get(10)?),
        finished_at: row.get::<Option<i64>>(11)?.map(from_db),
        day_number: row.get(12)?,
        end_user: row
            .get::<Option<String>>(13)?
            .map(|text| EndUser::parse(&text).map_err(|_| super::db::corrupt("end user")))
            .transpose()?,
    })
}

/// The execution whose unique `column` (`id` or `public_id`) is `value`.
fn execution_where(conn: &dyn Db, column: &str, value: impl super::ToValue) -> StoreResult<ExecutionRecord> {
    conn.query_row(
        &format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE {column} = ?1"),
        params![value],
        execution_from_row,
    )?
    .ok_or(StoreError::NotFound)
}

fn execution_by_id(conn: &dyn Db, id: i64) -> StoreResult<ExecutionRecord> {
    execution_where(conn, "id", id)
}

/// The ledger's insert of 1, 2 or 3 entries (a settlement writes at most three), built once.
static LEDGER_INSERTS: std::sync::LazyLock<[String; 3]> = std::sync::LazyLock::new(|| {
    [1, 2, 3].map(|count| {
        let rows: Vec<String> = (0..count)
            .map(|i| {
                let n = 7 * i;
                format!("(?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{})", n + 1, n + 2, n + 3, n + 4, n + 5, n + 6, n + 7)
            })
            .collect();
        format!(
            "INSERT INTO ledger (account_id, key_id, execution_id, kind, amount_micros, sandbox, created_at) VALUES {}",
            rows.join(", ")
        )
    })
});

/// Appends `entries` (kind, amount) for `e` to the ledger in one statement.
fn ledger(conn: &dyn Db, e: &ExecutionRecord, entries: &[(LedgerKind, Micros)], now: Timestamp) -> StoreResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let sql = LEDGER_INSERTS
        .get(entries.len() - 1)
        .ok_or_else(|| StoreError::Internal(format!("{} ledger entries for one statement", entries.len())))?;
    let mut values = Vec::with_capacity(7 * entries.len());
    for (kind, amount) in entries {
        values.extend_from_slice(params![e.account_id, e.key_id, e.id, kind.as_str(), amount.0, e.sandbox, to_db(now)]);
    }
    conn.execute(sql, &values)?;
    Ok(())
}

/// An Idempotency-Key record found for the key, with its execution and stored answer.
struct Recorded {
    execution_id: i64,
    expires_at: i64,
    request_hash: Vec<u8>,
    state: String,
    status: Option<u16>,
    body: Option<Vec<u8>>,
}

/// What an existing Idempotency-Key record says about a new request. A record past its
/// retention is forgotten, unless its execution is still open (running or awaiting an
/// operator): expiry never frees the key of a call that may yet be charged.
fn existing_outcome(
    conn: &dyn Db,
    start: &ExecutionStart,
    recorded: Option<Recorded>,
) -> StoreResult<Option<BeginOutcome<ExecutionRecord>>> {
    let Some(Recorded { execution_id, expires_at, request_hash, state, status, body }) = recorded else {
        return Ok(None);
    };
    let state = ExecutionState::parse(&state)
        .ok_or_else(|| StoreError::Internal(format!("execution {execution_id} has an unknown state")))?;
    if expires_at <= to_db(start.now) && !state.is_open() {
        forget_record(conn, start.key_id, &start.idempotency_key, execution_id)?;
        return Ok(None);
    }
    if request_hash != start.request_hash {
        return Ok(Some(BeginOutcome::Mismatch));
    }
    let outcome = match (state, status, body) {
        (ExecutionState::Running, _, _) => BeginOutcome::InFlight,
        (ExecutionState::ReconcileRequired, _, _) => {
            BeginOutcome::ReconcileRequired(execution_by_id(conn, execution_id)?)
        }
        (_, Some(status), Some(body)) => BeginOutcome::Replay { status, body },
        _ => return Err(StoreError::Internal(format!("execution {execution_id} has no stored response"))),
    };
    Ok(Some(outcome))
}

/// Everything the hold is decided on, read in its transaction by one statement.
struct HoldState {
    /// The key's rate-limit state (`rules::RateWindow`).
    rate_tat: i64,
    key_revoked: bool,
    secret_live: bool,
    expires_at: Option<Timestamp>,
    read_only: bool,
    grant: ToolGrant,
    allowed_cidrs: CidrAllowlist,
    account_approved: bool,
    daily_cap_cents: i64,
    total_cap_cents: Option<i64>,
    available: i64,
    latest_day: i64,
    spent_total: i64,
    held_total: i64,
    /// Captured and held on the day the hold would count on (`rules::hold_day`).
    spent_day: i64,
    held_day: i64,
    /// The Idempotency-Key's record, if the key has one.
    recorded: Option<Recorded>,
    /// The request hash of a provider request (a queue submission an earlier attempt left to
    /// resume) that the Idempotency-Key still names.
    resumable_request: Option<Vec<u8>>,
    /// The account's low-balance thresholds and those that fired (cents).
    low_balance_thresholds: Vec<i64>,
    low_balance_fired: Vec<i64>,
    /// The cap alerts already sent (`rules::CapAlert` bits): for the read day, and in total.
    day_alerts: i64,
    total_alerts: i64,
    /// The key's cap alert percentage.
    cap_alert_percent: i64,
    /// The key's caps on each end user, and the call's end user's counters (zero without one).
    end_user: rules::EndUserState,
    /// The database's clock (`RateClock::Database`).
    database_clock: i64,
}

impl HoldState {
    /// Whether the Idempotency-Key names a resumable provider request made for a different
    /// request: reusing the key for other input must not replace it.
    fn resumable_request_differs(&self, start: &ExecutionStart) -> bool {
        self.resumable_request.as_ref().is_some_and(|h| *h != start.request_hash)
    }
}

fn hold_state(conn: &dyn Db, start: &ExecutionStart) -> StoreResult<HoldState> {
    conn.query_row(
        HOLD_STATE.get(conn.dialect()),
        params![
            start.key_id,
            start.secret_id,
            to_db(start.now),
            start.day_number,
            start.idempotency_key[..],
            start.end_user.as_ref().map(EndUser::as_str)
        ],
        |row| hold_state_from_row(row, start.key_id),
    )?
    .ok_or(StoreError::NotFound)
}

/// The hold's one read, with the database's clock (`Dialect::clock`) last.
static HOLD_STATE: ClockSql = ClockSql::new(
    "SELECT k.revoked_at IS NOT NULL, \
               s.id IS NOT NULL AND s.revoked_at IS NULL AND (s.expires_at IS NULL OR s.expires_at > ?3), \
               k.expires_at, k.read_only, k.tool_scope, k.allowed_tools, k.allowed_cidrs, a.approved, \
               k.daily_cap_cents, k.total_cap_cents, a.balance_micros - a.held_micros, \
               ks.latest_day, ks.spent_total_micros, ks.held_total_micros, \
               COALESCE(d.spent_micros, 0), COALESCE(d.held_micros, 0), ks.rate_tat_micros, \
               r.execution_id, r.expires_at, e.request_hash, e.state, x.status, x.body, p.request_hash, \
               a.low_balance_thresholds, a.low_balance_fired, COALESCE(d.alerts, 0), ks.alerts, k.cap_alert_percent, \
               k.end_user_daily_cap_cents, k.end_user_total_cap_cents, COALESCE(ud.spent_micros, 0), \
               COALESCE(ud.held_micros, 0), COALESCE(ut.spent_micros, 0), COALESCE(ut.held_micros, 0), {clock} \
             FROM keys k JOIN key_spend ks ON ks.key_id = k.id JOIN accounts a ON a.id = k.account_id \
             LEFT JOIN key_secrets s ON s.id = ?2 AND s.key_id = k.id \
             LEFT JOIN key_days d ON d.key_id = k.id \
               AND d.day_number = CASE WHEN ks.latest_day > ?4 THEN ks.latest_day ELSE ?4 END \
             LEFT JOIN idempotency_records r ON r.key_id = k.id AND r.idempotency_key = ?5 \
             LEFT JOIN executions e ON e.id = r.execution_id \
             LEFT JOIN execution_responses x ON x.execution_id = r.execution_id \
             LEFT JOIN provider_requests p ON p.key_id = k.id AND p.idempotency_key = ?5 AND p.expires_at > ?3 \
             LEFT JOIN end_user_days ud ON ud.key_id = k.id AND ud.end_user = ?6 \
               AND ud.day_number = CASE WHEN ks.latest_day > ?4 THEN ks.latest_day ELSE ?4 END \
             LEFT JOIN end_user_totals ut ON ut.key_id = k.id AND ut.end_user = ?6 \
             WHERE k.id = ?1",
);

fn hold_state_from_row(row: &Row, key_id: KeyId) -> StoreResult<HoldState> {
    let corrupt = |what: &str| StoreError::Internal(format!("key {key_id} has a corrupt {what}"));
    let recorded = match row.get::<Option<i64>>(17)? {
        None => None,
        Some(execution_id) => Some(Recorded {
            execution_id,
            expires_at: row.get(18)?,
            request_hash: row.get(19)?,
            state: row.get(20)?,
            status: row.get(21)?,
            body: row.get(22)?,
        }),
    };
    Ok(HoldState {
        key_revoked: row.get(0)?,
        secret_live: row.get(1)?,
        expires_at: row.get::<Option<i64>>(2)?.map(from_db),
        read_only: row.get(3)?,
        grant: crate::columns::grant_from_db(&row.get::<String>(4)?, &row.get::<String>(5)?).map_err(corrupt)?,
        allowed_cidrs: crate::columns::cidrs_from_db(&row.get::<String>(6)?).map_err(corrupt)?,
        account_approved: row.get(7)?,
        daily_cap_cents: row.get(8)?,
        total_cap_cents: row.get(9)?,
        available: row.get(10)?,
        latest_day: row.get(11)?,
        spent_total: row.get(12)?,
        held_total: row.get(13)?,
        spent_day: row.get(14)?,
        held_day: row.get(15)?,
        rate_tat: row.get(16)?,
        recorded,
        resumable_request: row.get(23)?,
        low_balance_thresholds: super::accounts::cents_list(&row.get::<String>(24)?)?,
        low_balance_fired: super::accounts::cents_list(&row.get::<String>(25)?)?,
        day_alerts: row.get(26)?,
        total_alerts: row.get(27)?,
        cap_alert_percent: row.get(28)?,
        end_user: rules::EndUserState {
            daily_cap_cents: row.get(29)?,
            total_cap_cents: row.get(30)?,
            spent_day: Micros(row.get(31)?),
            held_day: Micros(row.get(32)?),
            spent_total: Micros(row.get(33)?),
            held_total: Micros(row.get(34)?),
        },
        database_clock: row.get(35)?,
    })
}

/// Where writers run concurrently, locks what the hold reads, in the one order every money
/// transaction follows (execution, `key_spend`, `key_days`, account): the key's counters
/// (with its rate-limit state, so nodes take turns on it), and for real money the account's
/// balance. Concurrent begins of one key (and one Idempotency-Key) run one after the other
/// from here on. SQLite's single writer needs no lock.
fn lock_for_hold(conn: &dyn Db, start: &ExecutionStart) -> StoreResult<()> {
    if conn.dialect().single_writer() {
        return Ok(());
    }
    // With the lock, whether this node's lease is live by the database's clock: a node that
    // stalled past its lease (and may have been reclaimed) starts nothing under it.
    static LOCK_KEY: ClockSql = ClockSql::new(concat!(
        "SELECT ks.key_id, ",
        node_lease_live!("?2"),
        " FROM key_spend ks WHERE ks.key_id = ?1 FOR UPDATE"
    ));
    let live: Option<bool> =
        conn.query_row(LOCK_KEY.get(conn.dialect()), params![start.key_id, start.node.0], |r| r.get(1))?;
    match live {
        None => return Err(StoreError::NotFound),
        Some(false) => return Err(StoreError::Refused(Refusal::NodeLeaseLost)),
        Some(true) => {}
    }
    if !start.sandbox {
        conn.query("SELECT id FROM accounts WHERE id = ?1 FOR UPDATE", params![start.account_id])?;
    }
    Ok(())
}

/// Records the Idempotency-Key and places the hold, or decides what else to answer. The key's
/// rate limit comes first: every call that reaches the store takes its turn, a replay too.
pub(crate) fn begin(conn: &dyn Db, start: &ExecutionStart) -> StoreResult<BeginOutcome<ExecutionRecord>> {
    lock_for_hold(conn, start)?;
    let mut held = hold_state(conn, start)?;
    let mut rooms = room::Rooms::default();
    if let Err(retry_after) = rooms.take_turn(start, &held) {
        rollup::count(conn, rollup::Counted::refused(start, rules::Limit::KeyRate))?;
        return Ok(BeginOutcome::Refused(HoldRefusal::RateLimited { retry_after }));
    }
    let tat = rooms.keys[&start.key_id].rate_tat;
    let outcome = match existing_outcome(conn, start, held.recorded.take())? {
        Some(outcome) => outcome,
        None if held.resumable_request_differs(start) => BeginOutcome::Mismatch,
        None => {
            let depletes = rooms.depletes(start, &held);
            match (rooms.low_balance_crossed(start, &held), rooms.cap_alerts(start, &held), rooms.admit(start, &held)) {
                (_, (day, alerts), Err(refusal)) => {
                    fire_cap_alerts(conn, start, day, alerts.into_iter().filter(|a| a.refused(&refusal)))?;
                    if depletes && refusal == HoldRefusal::Balance {
                        fire_depleted(conn, start, &held)?;
                    }
                    if let Some(limit) = rules::Limit::of(&refusal) {
                        rollup::count(conn, rollup::Counted::refused(start, limit))?;
                    }
                    BeginOutcome::Refused(refusal)
                }
                (crossed, (_, alerts), Ok(day)) => {
                    place_hold(conn, start, day, tat)?;
                    fire_low_balance(conn, start, &held, &crossed)?;
                    fire_cap_alerts(
                        conn,
                        start,
                        day,
                        alerts.into_iter().filter(|a| matches!(a, CapAlert::Threshold(_))),
                    )?;
                    let id = conn.insert(
                    "INSERT INTO executions (public_id, account_id, key_id, secret_id, idempotency_key, request_hash, \
                     tool, state, sandbox, day_number, hold_micros, created_at, node_id, end_user) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'running', ?8, ?9, ?10, ?11, ?12, ?13) RETURNING id",
                    params![
                        start.public_id,
                        start.account_id,
                        start.key_id,
                        start.secret_id,
                        start.idempotency_key[..],
                        start.request_hash[..],
                        start.tool,
                        start.sandbox,
                        day,
                        start.hold.0,
                        to_db(start.now),
                        start.node.0,
                        start.end_user.as_ref().map(EndUser::as_str)
                    ],
                )?;
                    let execution = started(start, id, day);
                    conn.execute(
                        "INSERT INTO idempotency_records (key_id, idempotency_key, execution_id, expires_at) \
                     VALUES (?1, ?2, ?3, ?4)",
                        params![
                            start.key_id,
                            start.idempotency_key[..],
                            execution.id,
                            to_db(start.idempotency_expires_at)
                        ],
                    )?;
                    ledger(conn, &execution, &[(LedgerKind::Hold, start.hold)], start.now)?;
                    return Ok(BeginOutcome::Started(execution));
                }
            }
        }
    };
    conn.execute("UPDATE key_spend SET rate_tat_micros = ?2 WHERE key_id = ?1", params![start.key_id, tat])?;
    Ok(outcome)
}

/// Fires `balance.low` for each threshold (cents) the hold `start` just took the account's
/// available balance under, and marks them fired until a credit lifts the balance again.
fn fire_low_balance(conn: &dyn Db, start: &ExecutionStart, held: &HoldState, crossed: &[i64]) -> StoreResult<()> {
    if crossed.is_empty() {
        return Ok(());
    }
    let mut fired = held.low_balance_fired.clone();
    fired.extend_from_slice(crossed);
    super::accounts::write_low_balance_fired(conn, start.account_id, &fired)?;
    let available = Micros(held.available - start.hold.0);
    for threshold in crossed {
        let data = crate::events::balance_low(*threshold, available);
        super::webhooks::emit(conn, start.account_id, crate::events::BALANCE_LOW, data, start.now)?;
    }
    Ok(())
}

/// Sends `balance.depleted` (a call of the account was refused for want of balance) and
/// records it sent until a credit.
fn fire_depleted(conn: &dyn Db, start: &ExecutionStart, held: &HoldState) -> StoreResult<()> {
    let mut fired = held.low_balance_fired.clone();
    fired.push(rules::DEPLETED);
    super::accounts::write_low_balance_fired(conn, start.account_id, &fired)?;
    let data = crate::events::balance_depleted(Micros(held.available), start.hold);
    super::webhooks::emit(conn, start.account_id, crate::events::BALANCE_DEPLETED, data, start.now)
}

/// Sends the cap alerts `alerts` of the key of `start` (the hold counting, or refused, on
/// `day`) and records them sent, so each goes once per key and cap (and day).
fn fire_cap_alerts(
    conn: &dyn Db,
    start: &ExecutionStart,
    day: i64,
    alerts: impl Iterator<Item = CapAlert>,
) -> StoreResult<()> {
    let alerts: Vec<CapAlert> = alerts.collect();
    if alerts.is_empty() {
        return Ok(());
    }
    for alert in &alerts {
        match alert.cap() {
            Cap::Daily => conn.execute(
                "INSERT INTO key_days (key_id, day_number, alerts) VALUES (?1, ?2, ?3) ON CONFLICT (key_id, day_number) \
                 DO UPDATE SET alerts = key_days.alerts | excluded.alerts",
                params![start.key_id, day, alert.bit()],
            )?,
            Cap::Total => conn.execute(
                "UPDATE key_spend SET alerts = alerts | ?2 WHERE key_id = ?1",
                params![start.key_id, alert.bit()],
            )?,
        };
    }
    let key = super::keys::require_key(conn, start.account_id, start.key_id)?;
    for alert in alerts {
        let (kind, data) = crate::events::cap_alert(&key, alert, day);
        super::webhooks::emit(conn, start.account_id, kind, data, start.now)?;
    }
    Ok(())
}

/// The record of a call whose hold was placed as execution `id`, counting on `day`.
fn started(start: &ExecutionStart, id: i64, day: i64) -> ExecutionRecord {
    ExecutionRecord {
        id,
        public_id: start.public_id.clone(),
        account_id: start.account_id,
        key_id: start.key_id,
        tool: start.tool.clone(),
        state: ExecutionState::Running,
        sandbox: start.sandbox,
        hold: start.hold,
        charged: Micros::ZERO,
        receipt_id: None,
        created_at: start.now,
        finished_at: None,
        day_number: day,
        end_user: start.end_user.clone(),
    }
}

/// Writes a hold that `rules` admitted: the key's total and `day` counters and its rate-limit
/// state, the account's held money (production only).
fn place_hold(conn: &dyn Db, start: &ExecutionStart, day: i64, tat: i64) -> StoreResult<()> {
    conn.execute(
        "UPDATE key_spend SET latest_day = ?2, held_total_micros = held_total_micros + ?3, rate_tat_micros = ?4 \
         WHERE key_id = ?1",
        params![start.key_id, day, start.hold.0, tat],
    )?;
    conn.execute(
        "INSERT INTO key_days (key_id, day_number, held_micros) VALUES (?1, ?2, ?3) \
         ON CONFLICT (key_id, day_number) DO UPDATE SET held_micros = key_days.held_micros + excluded.held_micros",
        params![start.key_id, day, start.hold.0],
    )?;
    if let Some(user) = &start.end_user {
        hold_end_user(conn, start.key_id, user, day, start.hold.0)?;
    }
    if !start.sandbox {
        conn.execute(
            "UPDATE accounts SET held_micros = held_micros + ?2 WHERE id = ?1",
            params![start.account_id, start.hold.0],
        )?;
    }
    Ok(())
}

/// Counts a hold of `hold` on an end user's counters of a key, on `day` and in total (the
/// rows are made by an end user's first hold).
fn hold_end_user(conn: &dyn Db, key: KeyId, user: &EndUser, day: i64, hold: i64) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO end_user_days (key_id, end_user, day_number, held_micros) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (key_id, end_user, day_number) DO UPDATE SET held_micros = end_user_days.held_micros + excluded.held_micros",
        params![key, user.as_str(), day, hold],
    )?;
    conn.execute(
        "INSERT INTO end_user_totals (key_id, end_user, held_micros) VALUES (?1, ?2, ?3) \
         ON CONFLICT (key_id, end_user) DO UPDATE SET held_micros = end_user_totals.held_micros + excluded.held_micros",
        params![key, user.as_str(), hold],
    )?;
    Ok(())
}

/// What ending the hold of `e` moves: captured (what `rules::settle` makes of `reported`,
/// nothing for a void), and the ledger's entries (the rest released or voided, any overage).
/// A zero amount is written only for a hold (every call has one): an ending leaves them out.
struct Ending {
    charged: Micros,
    entries: Vec<(LedgerKind, Micros)>,
}

fn ending(e: &ExecutionRecord, reported: Micros, voided: bool) -> Ending {
    let (charged, entries) = if voided {
        (Micros::ZERO, vec![(LedgerKind::Void, e.hold)])
    } else {
        let rules::Settlement { charged, overage } = rules::settle(e.hold, reported);
        if overage > Micros::ZERO {
            tracing::warn!(execution = %e.public_id, hold = e.hold.0, overage = overage.0, "a provider reported more than the hold; the excess is the platform's loss");
        }
        let released = Micros(e.hold.0 - charged.0);
        (charged, vec![(LedgerKind::Capture, charged), (LedgerKind::Release, released), (LedgerKind::Overage, overage)])
    };
    Ending { charged, entries: entries.into_iter().filter(|(_, amount)| amount.0 != 0).collect() }
}

/// Ends a hold as `ending` says, on the day the hold counted on.
fn settle(conn: &dyn Db, e: &ExecutionRecord, reported: Micros, voided: bool, now: Timestamp) -> StoreResult<()> {
    let hold = e.hold.0;
    let Ending { charged, entries } = ending(e, reported, voided);
    conn.execute(
        "UPDATE key_spend SET held_total_micros = held_total_micros - ?2, spent_total_micros = spent_total_micros + ?3 \
         WHERE key_id = ?1",
        params![e.key_id, hold, charged.0],
    )?;
    conn.execute(
        "UPDATE key_days SET held_micros = held_micros - ?3, spent_micros = spent_micros + ?4 \
         WHERE key_id = ?1 AND day_number = ?2",
        params![e.key_id, e.day_number, hold, charged.0],
    )?;
    if let Some(user) = &e.end_user {
        conn.execute(
            "UPDATE end_user_days SET held_micros = held_micros - ?4, spent_micros = spent_micros + ?5 \
             WHERE key_id = ?1 AND end_user = ?2 AND day_number = ?3",
            params![e.key_id, user.as_str(), e.day_number, hold, charged.0],
        )?;
        conn.execute(
            "UPDATE end_user_totals SET held_micros = held_micros - ?3, spent_micros = spent_micros + ?4 \
             WHERE key_id = ?1 AND end_user = ?2",
            params![e.key_id, user.as_str(), hold, charged.0],
        )?;
    }
    if !e.sandbox {
        conn.execute(
            "UPDATE accounts SET held_micros = held_micros - ?2, balance_micros = balance_micros - ?3 WHERE id = ?1",
            params![e.account_id, hold, charged.0],
        )?;
    }
    ledger(conn, e, &entries, now)
}

/// What a finish makes of an execution: its record after, and what the ending stores.
struct Concluded<'f> {
    record: ExecutionRecord,
    /// The cost to settle on (nothing for a void) and whether the hold is voided.
    reported: Micros,
    voided: bool,
    /// The answer kept for replays (a retryable void keeps none, and frees the key instead).
    answer: Option<(u16, &'f [u8])>,
}

fn concluded<'f>(e: &ExecutionRecord, finish: &'f Finish, now: Timestamp) -> Concluded<'f> {
    let (reported, receipt_id, answer) = match finish {
        Finish::Capture { reported, receipt_id, status, body } => {
            (*reported, Some(receipt_id.as_str()), Some((*status, body.as_slice())))
        }
        Finish::VoidRetryable => (Micros::ZERO, None, None),
        Finish::VoidFinal { status, body } => (Micros::ZERO, None, Some((*status, body.as_slice()))),
    };
    let voided = !matches!(finish, Finish::Capture { .. });
    let charged = rules::settle(e.hold, reported).to_account(e.sandbox);
    let record = ExecutionRecord {
        state: finish.state(),
        charged,
        receipt_id: receipt_id.filter(|_| charged > Micros::ZERO).map(str::to_owned),
        finished_at: Some(now),
        ..e.clone()
    };
    Concluded { record, reported, voided, answer }
}

/// Moves `e` from the state it is in to the concluded one, with its charge and stored answer.
/// Fails (changing nothing) when the stored state is not `e.state`: an execution ends once.
fn record_outcome(conn: &dyn Db, e: &ExecutionRecord, done: &Concluded, now: Timestamp) -> StoreResult<()> {
    let r = &done.record;
    let changed = conn.execute(
        "UPDATE executions SET state = ?2, charged_micros = ?3, receipt_id = ?4, finished_at = ?5 \
         WHERE id = ?1 AND state = ?6",
        params![e.id, r.state.as_str(), r.charged.0, r.receipt_id.as_deref(), to_db(now), e.state.as_str()],
    )?;
    if changed != 1 {
        let now_state = execution_by_public_id(conn, &e.public_id).map(|now| now.state)?;
        return Err(StoreError::Refused(Refusal::ExecutionState {
            execution: e.public_id.clone(),
            actual: now_state.as_str(),
            expected: e.state.as_str(),
        }));
    }
    if let Some((status, body)) = done.answer {
        conn.execute(
            "INSERT INTO execution_responses (execution_id, status, body) VALUES (?1, ?2, ?3)",
            params![e.id, status, body],
        )?;
    }
    Ok(())
}

fn free_idempotency_key(conn: &dyn Db, execution_id: i64) -> StoreResult<()> {
    conn.execute(
        "DELETE FROM idempotency_records WHERE (key_id, idempotency_key) = \
         (SELECT key_id, idempotency_key FROM executions WHERE id = ?1) AND execution_id = ?1",
        params![execution_id],
    )?;
    Ok(())
}

fn require_state(e: &ExecutionRecord, expected: ExecutionState) -> StoreResult<()> {
    if e.state == expected {
        Ok(())
    } else {
        Err(StoreError::Refused(Refusal::ExecutionState {
            execution: e.public_id.clone(),
            actual: e.state.as_str(),
            expected: expected.as_str(),
        }))
    }
}

/// Ends a running execution. `e` is the record `begin` returned; the guarded update checks
/// that it is still running.
pub(crate) fn finish(
    conn: &dyn Db,
    e: &ExecutionRecord,
    finish: &Finish,
    now: Timestamp,
) -> StoreResult<ExecutionRecord> {
    let running = ExecutionRecord { state: ExecutionState::Running, ..e.clone() };
    let refused = match conclude(conn, &running, finish, now) {
        Err(StoreError::Refused(Refusal::ExecutionState { actual: "reconcile_required", .. })) => {
            // Reclaimed while this node stalled past its lease, and no operator decided yet:
            // the node that ran the call knows its outcome, so it ends it (the hold was kept).
            let reclaimed = ExecutionRecord { state: ExecutionState::ReconcileRequired, ..e.clone() };
            return conclude(conn, &reclaimed, finish, now);
        }
        Err(StoreError::Refused(refused @ Refusal::ExecutionState { .. })) => refused,
        other => return other,
    };
    // Only the call that placed a hold finishes it (others reclaim it into
    // `reconcile_required`, and an operator decides), so an execution already in this
    // finish's state with its receipt *and its stored answer*, byte for byte, is this finish sent
    // again after its COMMIT's answer was lost. An operator's decision stores another answer
    // (or none), even when it captured nothing: the late finish is refused, never taken for it.
    let recorded = execution_by_id(conn, e.id)?;
    let same_receipt = match finish {
        Finish::Capture { receipt_id, .. } => recorded.receipt_id.as_ref().is_none_or(|r| r == receipt_id),
        _ => true,
    };
    if recorded.state == finish.state() && same_receipt && stored_answer(conn, e.id)? == finish.answer() {
        return Ok(recorded);
    }
    Err(StoreError::Refused(refused))
}

/// The answer stored for an execution (status and body), if any.
fn stored_answer(conn: &dyn Db, execution_id: i64) -> StoreResult<Option<(u16, Vec<u8>)>> {
    conn.query_row("SELECT status, body FROM execution_responses WHERE execution_id = ?1", params![execution_id], |r| {
        Ok((u16::try_from(r.get::<i64>(0)?).map_err(|_| corrupt("answer status"))?, r.get(1)?))
    })
}

/// A begin whose answer was lost: voids the hold it placed, if it did (its call never ran).
pub(crate) fn abandon(conn: &dyn Db, public_id: &str, now: Timestamp) -> StoreResult<bool> {
    let e = match execution_by_public_id(conn, public_id) {
        Ok(e) if e.state == ExecutionState::Running => e,
        Ok(_) | Err(StoreError::NotFound) => return Ok(false),
        Err(other) => return Err(other),
    };
    conclude(conn, &e, &Finish::VoidRetryable, now)?;
    Ok(true)
}

/// A running execution whose outcome cannot be recorded: an operator decides it (the hold stays).
pub(crate) fn require_reconcile(conn: &dyn Db, public_id: &str) -> StoreResult<bool> {
    let rows = conn.query(
        &format!(
            "UPDATE executions SET state = 'reconcile_required' WHERE public_id = ?1 AND state = 'running' \
             RETURNING {RECONCILE_EVENT_COLUMNS}"
        ),
        params![public_id],
    )?;
    if !rows.is_empty() {
        announce_reconcile(conn, &rows, nodes::database_clock(conn)?)?;
    }
    Ok(rows.len() == 1)
}

/// What `announce_reconcile` reads of each execution that became `reconcile_required`.
const RECONCILE_EVENT_COLUMNS: &str = "public_id, account_id, key_id, tool, hold_micros";

/// Sends `execution.reconcile_required` for each execution of `rows` (`RECONCILE_EVENT_COLUMNS`),
/// in the transaction that moved it there.
fn announce_reconcile(conn: &dyn Db, rows: &[Row], now: Timestamp) -> StoreResult<()> {
    for row in rows {
        let (public_id, account_id, key_id): (String, AccountId, KeyId) = (row.get(0)?, row.get(1)?, row.get(2)?);
        let data = crate::events::reconcile_required(&public_id, key_id, &row.get::<String>(3)?, Micros(row.get(4)?));
        super::webhooks::emit(conn, account_id, crate::events::EXECUTION_RECONCILE_REQUIRED, data, now)?;
    }
    Ok(())
}

/// Records the outcome first (it refuses an execution that already ended), then moves the money.
fn conclude(conn: &dyn Db, e: &ExecutionRecord, finish: &Finish, now: Timestamp) -> StoreResult<ExecutionRecord> {
    let done = concluded(e, finish, now);
    record_outcome(conn, e, &done, now)?;
    settle(conn, e, done.reported, done.voided, now)?;
    rollup::count(conn, rollup::Counted::ended(e, done.record.charged))?;
    if done.answer.is_none() {
        free_idempotency_key(conn, e.id)?;
    }
    Ok(done.record)
}

pub(crate) fn execution_by_public_id(conn: &dyn Db, public_id: &str) -> StoreResult<ExecutionRecord> {
    execution_where(conn, "public_id", public_id)
}

pub(crate) fn reconcile(
    conn: &dyn Db,
    public_id: &str,
    decision: &Reconcile,
    ctx: &AuditContext,
) -> StoreResult<ExecutionRecord> {
    let e = execution_by_public_id(conn, public_id)?;
    require_state(&e, ExecutionState::ReconcileRequired)?;
    let finish = match decision {
        Reconcile::Capture { cost, .. } if *cost > e.hold => {
            return Err(StoreError::Refused(Refusal::CaptureOverHold { hold: e.hold }));
        }
        Reconcile::Capture { cost, receipt_id, status, body, .. } => {
            Finish::Capture { reported: *cost, receipt_id: receipt_id.clone(), status: *status, body: body.clone() }
        }
        Reconcile::Void => Finish::VoidRetryable,
    };
    let after = conclude(conn, &e, &finish, ctx.now)?;
    // The operator decided: the Idempotency-Key answers that decision for a whole retention
    // from now (a capture), and the provider request it started is never resumed.
    if let Reconcile::Capture { retain_until, .. } = decision {
        conn.execute("UPDATE idempotency_records SET expires_at = CASE WHEN expires_at > ?2 THEN expires_at ELSE ?2 END WHERE (key_id, idempotency_key) = \
             (SELECT key_id, idempotency_key FROM executions WHERE id = ?1) AND execution_id = ?1",
            params![e.id, to_db(*retain_until)],
        )?;
    }
    conn.execute(
        "DELETE FROM provider_requests WHERE (key_id, idempotency_key) = \
         (SELECT key_id, idempotency_key FROM executions WHERE id = ?1)",
        params![e.id],
    )?;
    let (before_fields, after_fields) = (execution_snapshot(&e), execution_snapshot(&after));
    let target = format!("execution:{}", e.public_id);
    audit::record(conn, e.account_id, ctx, "execution.reconciled", &target, before_fields, after_fields)?;
    Ok(after)
}

/// Forgets an Idempotency-Key record past its retention, with the stored answer it replayed
/// (nothing else reads it; the execution and its ledger entries stay).
fn forget_record(conn: &dyn Db, key_id: KeyId, idempotency_key: &[u8], execution_id: i64) -> StoreResult<()> {
    conn.execute(
        "DELETE FROM idempotency_records WHERE key_id = ?1 AND idempotency_key = ?2",
        params![key_id, idempotency_key],
    )?;
    conn.execute("DELETE FROM execution_responses WHERE execution_id = ?1", params![execution_id]).map(drop)
}

/// The money path: a paid call's hold and settlement, executions read back, the operator's reconcile. Part of the store (`crate::Store`).
#[async_trait]
pub trait MoneyStore: Send + Sync {
    /// In one transaction: look up the Idempotency-Key; if new, check the key's daily and
    /// total caps and the account's available balance, place the hold and record the key.
    ///
    /// Every outcome but `Started` is returned only once it is durable (a replay may be
    /// reading an answer that was not on disk yet). `Started` may be returned as soon as the
    /// hold commits (every later transaction sees it), so the tool can start meanwhile: its
    /// `Hold` carries what `finish_execution` needs to answer only once the hold is durable.
    /// Concurrent begins with one Idempotency-Key yield exactly one `Started`; the others see
    /// `InFlight` or the replay, never an error from the unique index.
    async fn begin_execution(&self, start: ExecutionStart) -> StoreResult<BeginOutcome>;
    /// In one transaction: capture or void the hold of a `running` execution (or of one
    /// reclaimed into `reconcile_required` that no operator decided yet) and store the
    /// answer; refused once it has ended otherwise. Answers once the finish and the hold are
    /// durable. The same finish sent again (its first COMMIT landed but the answer was lost)
    /// answers the recorded execution and changes nothing.
    async fn finish_execution(&self, hold: &Hold, finish: Finish, now: Timestamp) -> StoreResult<ExecutionRecord>;
    /// A begin whose answer never came back (the store went away during its COMMIT): if it
    /// placed its hold, void it and free its Idempotency-Key, for the call never ran. `true`
    /// when there was such a hold. Called only by the node that sent the begin, with the
    /// begin's `public_id`.
    async fn abandon_execution(&self, public_id: &str, now: Timestamp) -> StoreResult<bool>;
    async fn get_execution(&self, filter: ExecutionFilter, public_id: &str) -> StoreResult<Option<ExecutionRecord>>;
    async fn list_executions(&self, filter: ExecutionFilter, page: PageRequest) -> StoreResult<Page<ExecutionRecord>>;
    /// A running execution whose outcome could not be recorded for a reason a retry will not
    /// cure (not an outage): it becomes `reconcile_required`, its hold kept, for an operator.
    /// `false` if it was not running.
    async fn require_reconcile(&self, public_id: &str) -> StoreResult<bool>;
    /// Captures or voids a `reconcile_required` execution. Under an `OperatorRequest` a retry
    /// is answered with the reconciled execution instead of a refusal.
    async fn reconcile_execution(
        &self,
        public_id: &str,
        decision: Reconcile,
        audit: AuditContext,
        request: Option<OperatorRequest>,
    ) -> StoreResult<ExecutionRecord>;
}

#[async_trait]
impl<E: Engine> MoneyStore for SqlStore<E> {
    async fn begin_execution(&self, start: ExecutionStart) -> StoreResult<BeginOutcome> {
        let (done, durable) = self.engine.write_money(Step::Begin(start)).await?;
        let outcome = done.begun()?;
        if matches!(outcome, BeginOutcome::Started(_)) {
            return Ok(outcome.map_started(|execution| Hold::new(execution, durable)));
        }
        durable.wait().await?;
        Ok(outcome.map_started(|execution| Hold::new(execution, Durability::done())))
    }

    async fn finish_execution(&self, hold: &Hold, finish: Finish, now: Timestamp) -> StoreResult<ExecutionRecord> {
        let step = Step::Finish { execution: hold.execution.clone(), finish, now };
        let finished = match self.engine.write_money(step).await {
            Ok((done, durable)) => durable.wait().await.and_then(|()| done.finished()),
            Err(e) => Err(e),
        };
        // Resolved long before (the hold's fsync ran first); a failed one taints what followed.
        let held = hold.durable().await;
        held.and(finished)
    }

    async fn abandon_execution(&self, public_id: &str, now: Timestamp) -> StoreResult<bool> {
        let public_id = public_id.to_owned();
        self.write_locking(move |conn| abandon(conn, &public_id, now)).await
    }

    async fn get_execution(&self, filter: ExecutionFilter, public_id: &str) -> StoreResult<Option<ExecutionRecord>> {
        let public_id = public_id.to_owned();
        self.read(move |conn| read::get(conn, &filter, &public_id)).await
    }

    async fn list_executions(&self, filter: ExecutionFilter, page: PageRequest) -> StoreResult<Page<ExecutionRecord>> {
        self.read(move |conn| read::list(conn, &filter, page)).await
    }

    async fn require_reconcile(&self, public_id: &str) -> StoreResult<bool> {
        let public_id = public_id.to_owned();
        self.write_locking(move |conn| require_reconcile(conn, &public_id)).await
    }

    async fn reconcile_execution(
        &self,
        public_id: &str,
        decision: Reconcile,
        ctx: AuditContext,
        request: Option<OperatorRequest>,
    ) -> StoreResult<ExecutionRecord> {
        let public_id = public_id.to_owned();
        self.write(move |conn| {
            if crate::sql::operator_requests::replay(conn, request.as_ref())?.is_some() {
                return execution_by_public_id(conn, &public_id);
            }
            let done = reconcile(conn, &public_id, &decision, &ctx)?;
            crate::sql::operator_requests::remember(conn, request.as_ref(), &public_id, None, ctx.now)?;
            Ok(done)
        })
        .await
    }
}
