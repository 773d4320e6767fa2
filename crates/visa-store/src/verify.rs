//! The arithmetic of `ledger verify`, written once for every backend: a backend reads the
//! ledger's sums and the stored counters in one snapshot (`LedgerFacts`), and `check`
//! recomputes every counter from the ledger and lists each mismatch.
//!
//! Checked: account balances and holds (real money only), key spend and holds in total and
//! per UTC day (sandbox included, since preview counts against caps), and that every
//! execution has exactly one hold that is open while running and ended exactly once after,
//! and that no execution, ledger entry, Idempotency-Key record or stored answer names a row
//! that does not exist.
//!
//! Caps are not checked against today's counters: lowering a cap below what a key already
//! spent is ordinary use, not corruption. That every hold fitted the caps in force when it
//! was placed is the hold's own guarded rule (`rules::cap_refusal`), proven by the tests.

use std::collections::HashMap;
use std::hash::Hash;

/// One group of ledger entries: the owner's key, the entry kind, the sum and the count.
pub type LedgerSum<K> = (K, String, i64, i64);

/// Everything `check` needs, read by a backend in one consistent snapshot.
#[derive(Debug, Default)]
pub struct LedgerFacts {
    /// Ledger sums by account, of real-money (not sandbox) entries.
    pub by_account: Vec<LedgerSum<i64>>,
    /// Ledger sums by key, of entries that name a key.
    pub by_key: Vec<LedgerSum<i64>>,
    /// Ledger sums by key and the day of the entry's execution.
    pub by_key_day: Vec<LedgerSum<(i64, i64)>>,
    /// Ledger sums by key, end user and the day of the entry's execution, of the executions
    /// that name an end user.
    pub by_end_user_day: Vec<LedgerSum<(i64, String, i64)>>,
    /// Ledger sums by execution.
    pub by_execution: Vec<LedgerSum<i64>>,
    /// `(id, balance, held)` of every account.
    pub accounts: Vec<(i64, i64, i64)>,
    /// `(key, spent_total, held_total)` of every key.
    pub key_totals: Vec<(i64, i64, i64)>,
    /// `(key, day, spent, held)` of every key-day counter.
    pub key_days: Vec<(i64, i64, i64, i64)>,
    /// `(key, end user, day, spent, held)` of every end user's day counter.
    pub end_user_days: Vec<(i64, String, i64, i64, i64)>,
    /// `(key, end user, spent, held)` of every end user's total.
    pub end_user_totals: Vec<(i64, String, i64, i64)>,
    /// `(id, state, sandbox, hold, charged)` of every execution.
    pub executions: Vec<(i64, String, bool, i64, i64)>,
    /// Spend analytics' rows of ended calls as stored, and as the executions say they must be
    /// (`sql::ROLLUPS`, `sql::ROLLUPS_FROM_EXECUTIONS`).
    pub rollups: Vec<Rollup>,
    pub rollups_from_executions: Vec<Rollup>,
    /// `(what, how many)` of the rows naming a row that does not exist (`sql::DANGLING`).
    pub dangling: Vec<(String, i64)>,
}

/// One rollup row of ended calls: (table, account, hour or day, key, tool or end user), and
/// (calls, charged micros).
pub type Rollup = ((String, i64, i64, i64, String), (i64, i64));

/// Ledger totals of one owner (account, key, key-day or execution), by entry kind.
#[derive(Default, Clone, Copy)]
struct Totals {
    credit: i64,
    hold: i64,
    capture: i64,
    release: i64,
    void: i64,
    holds: i64,
}

impl Totals {
    fn add(&mut self, kind: &str, amount: i64, count: i64) {
        use crate::model::LedgerKind;
        match LedgerKind::parse(kind) {
            Some(LedgerKind::Credit) => self.credit += amount,
            Some(LedgerKind::Hold) => {
                self.hold += amount;
                self.holds += count;
            }
            Some(LedgerKind::Capture) => self.capture += amount,
            Some(LedgerKind::Release) => self.release += amount,
            Some(LedgerKind::Void) => self.void += amount,
            // An overage is the platform's loss beside a capture: it moves no counter. (No
            // other kind passes the schema's CHECK.)
            Some(LedgerKind::Overage) | None => {}
        }
    }

    /// What is still held: holds not yet ended by a capture, release or void.
    fn open(&self) -> i64 {
        self.hold - self.capture - self.release - self.void
    }
}

fn group<K: Hash + Eq + Clone>(sums: &[LedgerSum<K>]) -> HashMap<K, Totals> {
    let mut map: HashMap<K, Totals> = HashMap::new();
    for (owner, kind, amount, count) in sums {
        map.entry(owner.clone()).or_default().add(kind, *amount, *count);
    }
    map
}

/// Every mismatch between the stored counters and what the ledger says they must be.
pub fn check(facts: &LedgerFacts) -> Vec<String> {
    let mut problems = vec![];
    let mut mismatch = |what: &str, id: i64, stored: i64, derived: i64| {
        if stored != derived {
            problems.push(format!("{what} {id}: stored {stored}, ledger says {derived}"));
        }
    };
    let accounts = group(&facts.by_account);
    for &(id, balance, held) in &facts.accounts {
        let t = accounts.get(&id).copied().unwrap_or_default();
        mismatch("account balance", id, balance, t.credit - t.capture);
        mismatch("account held", id, held, t.open());
        mismatch("account balance below zero", id, balance.min(0), 0);
    }
    let keys = group(&facts.by_key);
    for &(id, spent, held) in &facts.key_totals {
        let t = keys.get(&id).copied().unwrap_or_default();
        mismatch("key spent_total", id, spent, t.capture);
        mismatch("key held_total", id, held, t.open());
    }
    let mut days = group(&facts.by_key_day);
    for &(id, day, spent, held) in &facts.key_days {
        let t = days.remove(&(id, day)).unwrap_or_default();
        mismatch(&format!("key spent on day {day}, key"), id, spent, t.capture);
        mismatch(&format!("key held on day {day}, key"), id, held, t.open());
    }
    // A day the ledger moved money on must have its counters.
    let mut orphans: Vec<_> = days.into_iter().collect();
    orphans.sort_by_key(|((id, day), _)| (*id, *day));
    for ((id, day), t) in orphans {
        mismatch(&format!("key spent on day {day} (no counters), key"), id, 0, t.capture);
        mismatch(&format!("key held on day {day} (no counters), key"), id, 0, t.open());
    }
    let executions = group(&facts.by_execution);
    for (id, state, sandbox, hold, charged) in &facts.executions {
        let (id, hold) = (*id, *hold);
        let t = executions.get(&id).copied().unwrap_or_default();
        mismatch("execution hold entries", id, t.holds, 1);
        mismatch("execution hold amount", id, hold, t.hold);
        let open = crate::model::ExecutionState::parse(state).is_some_and(crate::model::ExecutionState::is_open);
        mismatch("execution still held", id, t.open(), if open { hold } else { 0 });
        if !sandbox {
            mismatch("execution charge", id, *charged, t.capture);
        }
    }
    check_end_users(facts, &mut problems);
    let mut derived: HashMap<_, _> = facts.rollups_from_executions.iter().cloned().collect();
    for (row, stored) in &facts.rollups {
        let want = derived.remove(row).unwrap_or_default();
        if *stored != want {
            problems.push(format!("{row:?} (calls, charged): stored {stored:?}, the executions say {want:?}"));
        }
    }
    for (row, want) in derived {
        problems.push(format!("{row:?} (calls, charged): no row, the executions say {want:?}"));
    }
    for (what, count) in &facts.dangling {
        if *count != 0 {
            problems.push(format!("{what}: {count}"));
        }
    }
    problems
}

/// An end user's counters (per key, per day and in total) against the ledger of the
/// executions naming that end user.
fn check_end_users(facts: &LedgerFacts, problems: &mut Vec<String>) {
    let mut mismatch = |what: String, stored: i64, derived: i64| {
        if stored != derived {
            problems.push(format!("{what}: stored {stored}, ledger says {derived}"));
        }
    };
    let mut days = group(&facts.by_end_user_day);
    let mut totals: HashMap<(i64, String), Totals> = HashMap::new();
    for ((key, user, _), t) in &days {
        let total = totals.entry((*key, user.clone())).or_default();
        total.hold += t.hold;
        total.capture += t.capture;
        total.release += t.release;
        total.void += t.void;
    }
    for (key, user, day, spent, held) in &facts.end_user_days {
        let t = days.remove(&(*key, user.clone(), *day)).unwrap_or_default();
        mismatch(format!("end user {user:?} of key {key} spent on day {day}"), *spent, t.capture);
        mismatch(format!("end user {user:?} of key {key} held on day {day}"), *held, t.open());
    }
    let mut orphans: Vec<_> = days.into_iter().collect();
    orphans.sort_by(|a, b| a.0.cmp(&b.0));
    for ((key, user, day), t) in orphans {
        mismatch(format!("end user {user:?} of key {key} spent on day {day} (no counters)"), 0, t.capture);
        mismatch(format!("end user {user:?} of key {key} held on day {day} (no counters)"), 0, t.open());
    }
    for (key, user, spent, held) in &facts.end_user_totals {
        let t = totals.remove(&(*key, user.clone())).unwrap_or_default();
        mismatch(format!("end user {user:?} of key {key} spent in total"), *spent, t.capture);
        mismatch(format!("end user {user:?} of key {key} held in total"), *held, t.open());
    }
    let mut orphans: Vec<_> = totals.into_iter().collect();
    orphans.sort_by(|a, b| a.0.cmp(&b.0));
    for ((key, user), t) in orphans {
        mismatch(format!("end user {user:?} of key {key} spent in total (no counters)"), 0, t.capture);
    }
}

/// The queries a SQL backend reads `LedgerFacts` with (the same SQL on SQLite and PostgreSQL,
/// in this order): the four ledger sums, then the four stored counters.
pub mod sql {
    const SUM: &str = "l.kind, CAST(SUM(l.amount_micros) AS BIGINT), COUNT(*) FROM ledger l LEFT JOIN executions e ON e.id = l.execution_id";
    pub fn by_account() -> String {
        format!("SELECT l.account_id, {SUM} WHERE l.sandbox = FALSE GROUP BY l.account_id, l.kind")
    }
    pub fn by_key() -> String {
        format!("SELECT l.key_id, {SUM} WHERE l.key_id IS NOT NULL GROUP BY l.key_id, l.kind")
    }
    pub fn by_key_day() -> String {
        format!(
            "SELECT l.key_id, e.day_number, {SUM} WHERE l.key_id IS NOT NULL AND l.execution_id IS NOT NULL \
             GROUP BY l.key_id, e.day_number, l.kind"
        )
    }
    pub fn by_end_user_day() -> String {
        format!(
            "SELECT l.key_id, e.end_user, e.day_number, {SUM} WHERE l.key_id IS NOT NULL AND e.end_user IS NOT NULL \
             GROUP BY l.key_id, e.end_user, e.day_number, l.kind"
        )
    }
    pub fn by_execution() -> String {
        format!("SELECT l.execution_id, {SUM} WHERE l.execution_id IS NOT NULL GROUP BY l.execution_id, l.kind")
    }
    pub const ACCOUNTS: &str = "SELECT id, balance_micros, held_micros FROM accounts";
    pub const KEY_TOTALS: &str = "SELECT key_id, spent_total_micros, held_total_micros FROM key_spend";
    pub const KEY_DAYS: &str = "SELECT key_id, day_number, spent_micros, held_micros FROM key_days";
    pub const END_USER_DAYS: &str = "SELECT key_id, end_user, day_number, spent_micros, held_micros FROM end_user_days";
    pub const END_USER_TOTALS: &str = "SELECT key_id, end_user, spent_micros, held_micros FROM end_user_totals";
    pub const EXECUTIONS: &str = "SELECT id, state, sandbox, hold_micros, charged_micros FROM executions";
    /// Spend analytics' rows of ended calls (`Rollup`).
    pub const ROLLUPS: &str = "\
        SELECT 'spend_hours', account_id, hour, key_id, tool, calls, charged_micros FROM spend_hours \
            WHERE outcome = 'ended' \
        UNION ALL SELECT 'spend_end_user_days', account_id, day_number, key_id, end_user, calls, charged_micros \
            FROM spend_end_user_days WHERE outcome = 'ended'";
    /// What they must be, from the executions that ended.
    pub const ROLLUPS_FROM_EXECUTIONS: &str = "\
        SELECT 'spend_hours', account_id, created_at / 3600000000, key_id, tool, COUNT(*), \
            CAST(SUM(charged_micros) AS BIGINT) FROM executions WHERE state NOT IN ('running', 'reconcile_required') \
            GROUP BY account_id, created_at / 3600000000, key_id, tool \
        UNION ALL SELECT 'spend_end_user_days', account_id, created_at / 86400000000, key_id, end_user, COUNT(*), \
            CAST(SUM(charged_micros) AS BIGINT) FROM executions \
            WHERE state NOT IN ('running', 'reconcile_required') AND end_user IS NOT NULL \
            GROUP BY account_id, created_at / 86400000000, key_id, end_user";
    /// The money path's references, which PostgreSQL does not enforce by foreign key.
    pub const DANGLING: &str = "\
        SELECT 'executions naming an account that does not exist', COUNT(*) FROM executions e \
            WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = e.account_id) \
        UNION ALL SELECT 'executions naming a key that does not exist', COUNT(*) FROM executions e \
            WHERE NOT EXISTS (SELECT 1 FROM keys k WHERE k.id = e.key_id) \
        UNION ALL SELECT 'executions naming a node that does not exist', COUNT(*) FROM executions e \
            WHERE e.node_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = e.node_id) \
        UNION ALL SELECT 'ledger entries naming an account that does not exist', COUNT(*) FROM ledger l \
            WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = l.account_id) \
        UNION ALL SELECT 'ledger entries naming a key that does not exist', COUNT(*) FROM ledger l \
            WHERE l.key_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM keys k WHERE k.id = l.key_id) \
        UNION ALL SELECT 'ledger entries naming an execution that does not exist', COUNT(*) FROM ledger l \
            WHERE l.execution_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM executions e WHERE e.id = l.execution_id) \
        UNION ALL SELECT 'Idempotency-Key records naming an execution that does not exist', COUNT(*) \
            FROM idempotency_records r WHERE NOT EXISTS (SELECT 1 FROM executions e WHERE e.id = r.execution_id) \
        UNION ALL SELECT 'stored answers naming an execution that does not exist', COUNT(*) FROM execution_responses s \
            WHERE NOT EXISTS (SELECT 1 FROM executions e WHERE e.id = s.execution_id)";
}
