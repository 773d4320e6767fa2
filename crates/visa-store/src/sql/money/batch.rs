//! Many money-path steps in one transaction, as set-based statements, where writers run
//! concurrently (PostgreSQL): the holds and settlements a node receives together lock each key
//! and account once, are decided in Rust by the same rules as a call alone (`super::room`), and
//! are written by one statement (`unnest` arrays), in two round trips whatever their number:
//! `BEGIN` with the locks and the holds' read, then the write with the `COMMIT` (`BatchDb`).
//! So one account's calls no longer queue on its row locks one round trip at a time.
//!
//! The order the batch stands for is one that serial calls could have run in: its settlements
//! end their executions first (the execution's row is the first lock of every money
//! transaction), then its fresh holds are decided in arrival order against the counters as
//! they were before the batch (its settlements' releases count after them: stricter, never
//! looser), then the steps the per-call path answers run one by one after the batch's writes:
//! a retried Idempotency-Key (a record or a provider request exists, or an earlier step of the
//! batch used it), a settlement of a call that is no longer running. docs/postgres.md.

use super::rollup::{self, Counted};
use super::room::Rooms;
use super::{Concluded, HOLD_STATE, concluded, ending, hold_state_from_row, started};
use crate::model::*;
use crate::rules::Limit;
use crate::sql::db::{ClockSql, Db, Row, ToValue, params};
use crate::sql::{Array, Dialect, Value, to_db};
use crate::{Refusal, StoreError, StoreResult};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// One money-path step: a hold, or the end of one.
#[derive(Debug, Clone)]
pub enum Step {
    Begin(ExecutionStart),
    Finish { execution: ExecutionRecord, finish: Finish, now: Timestamp },
}

/// What a step did.
#[derive(Debug)]
pub enum Done {
    Begun(BeginOutcome<ExecutionRecord>),
    Finished(ExecutionRecord),
}

impl Step {
    pub fn account(&self) -> AccountId {
        match self {
            Step::Begin(start) => start.account_id,
            Step::Finish { execution, .. } => execution.account_id,
        }
    }

    /// The step on its own, by the per-call path.
    pub fn run_alone(&self, db: &dyn Db) -> StoreResult<Done> {
        match self {
            Step::Begin(start) => super::begin(db, start).map(Done::Begun),
            Step::Finish { execution, finish, now } => super::finish(db, execution, finish, *now).map(Done::Finished),
        }
    }
}

impl Done {
    pub fn begun(self) -> StoreResult<BeginOutcome<ExecutionRecord>> {
        match self {
            Done::Begun(outcome) => Ok(outcome),
            Done::Finished(_) => Err(StoreError::Internal("a hold was answered as a settlement".into())),
        }
    }

    pub fn finished(self) -> StoreResult<ExecutionRecord> {
        match self {
            Done::Finished(record) => Ok(record),
            Done::Begun(_) => Err(StoreError::Internal("a settlement was answered as a hold".into())),
        }
    }
}

/// A batch's connection: a `Db` whose batch statements travel together (pipelined), the
/// transaction begun with the first ones and committed with the last.
pub(crate) trait BatchDb: Db {
    /// Begins the batch's transaction and runs `statements` in it, in order, in one round trip;
    /// the rows of each.
    fn begin_with(&self, statements: &[(&str, &[Value])]) -> StoreResult<Vec<Vec<Row>>>;
    /// Runs `last` (if any) and commits, in one round trip. An `Err` means not committed,
    /// unless the connection says it is in doubt.
    fn commit_with(&self, last: Option<(&str, &[Value])>) -> StoreResult<()>;
}

/// Runs `steps` in one transaction, committed here; an answer per step, in order. An `Err` of
/// the whole means the transaction did not commit (unless the connection is in doubt): each
/// step must be run again alone.
pub(crate) fn run(db: &dyn BatchDb, steps: &[Step]) -> StoreResult<Vec<StoreResult<Done>>> {
    let mut answers: Vec<Option<StoreResult<Done>>> = steps.iter().map(|_| None).collect();
    let mut alone = BTreeSet::new();
    let lock = Lock::of(steps, &mut alone)?;
    let begins: Vec<(usize, &ExecutionStart)> = steps
        .iter()
        .enumerate()
        .filter_map(|(i, step)| match step {
            Step::Begin(start) => Some((i, start)),
            Step::Finish { .. } => None,
        })
        .collect();
    // What each first use of an Idempotency-Key reads, sent behind the locks: the server runs
    // it once they are held, so it reads what serial calls would have.
    let mut used = HashSet::new();
    let firsts: Vec<(usize, &ExecutionStart)> =
        begins.iter().filter(|(_, start)| used.insert((start.key_id, start.idempotency_key))).copied().collect();
    let lock_params = lock.params();
    let mut statements = vec![(END_AND_LOCK.get(Dialect::Postgres), &lock_params[..])];
    let read_params = hold_states_params(&firsts);
    if !firsts.is_empty() {
        statements.push((HOLD_STATES.as_str(), &read_params[..]));
    }
    let mut results = db.begin_with(&statements)?.into_iter();
    let (ends, locked) = lock.read(&results.next().unwrap_or_default(), &mut alone)?;
    let read = results.next().unwrap_or_default();
    if read.len() != firsts.len() {
        return Err(StoreError::Internal("the batch's read lost a row".into()));
    }
    // (read only for the begins that get that far: a key that does not exist has no state)
    let mut held: HashMap<usize, &Row> = firsts.iter().map(|(i, _)| *i).zip(&read).collect();
    let mut fresh = vec![];
    for &(i, start) in &begins {
        if !locked.keys.contains(&start.key_id) {
            answers[i] = Some(Err(StoreError::NotFound));
        } else if !locked.node_live {
            answers[i] = Some(Err(StoreError::Refused(Refusal::NodeLeaseLost)));
        } else {
            match held.remove(&i) {
                Some(row) => {
                    fresh.push((i, start, hold_state_from_row(row, start.key_id)?, row.get::<i64>(ID_COLUMN)?))
                }
                // A later use of an Idempotency-Key the batch already uses.
                None => drop(alone.insert(i)),
            }
        }
    }
    let mut rooms = Rooms::default();
    let mut admitted = vec![];
    let mut counts = rollup::Counts::default();
    for (i, start, held, id) in fresh {
        // A retried Idempotency-Key, and a hold that would send an alert (`balance.low`, a cap
        // alert: rare, once per crossing), are answered by the per-call path after the batch.
        if held.recorded.is_some()
            || held.resumable_request.is_some()
            || !rooms.low_balance_crossed(start, &held).is_empty()
            || !rooms.cap_alerts(start, &held).1.is_empty()
            || rooms.depletes(start, &held)
        {
            alone.insert(i);
            continue;
        }
        let decided = match rooms.take_turn(start, &held) {
            Err(retry_after) => Err(HoldRefusal::RateLimited { retry_after }),
            Ok(()) => rooms.admit(start, &held),
        };
        match decided {
            Ok(day) => admitted.push(Admitted { step: i, start, day, id }),
            Err(refusal) => {
                if let Some(limit) = Limit::of(&refusal) {
                    counts.add(Counted::refused(start, limit));
                }
                answers[i] = Some(Ok(Done::Begun(BeginOutcome::Refused(refusal))))
            }
        }
    }
    for end in &ends {
        counts.add(Counted::ended(end.execution, end.done.record.charged));
    }
    let mut write_params = write_params(&rooms, &admitted, &ends);
    write_params.extend(counts.params());
    if alone.is_empty() {
        db.commit_with(Some((WRITE, &write_params)))?;
    } else {
        db.execute(WRITE, &write_params)?;
        // The steps the per-call path answers, after the batch's writes, which they must see.
        for &i in &alone {
            let answer = steps[i].run_alone(db);
            if let Err(StoreError::Unavailable(_) | StoreError::Internal(_) | StoreError::Conflict(_)) = &answer {
                // A statement failed: the transaction is lost, and with it every answer.
                return answer.map(|_| vec![]);
            }
            answers[i] = Some(answer);
        }
        db.commit_with(None)?;
    }
    for Admitted { step, start, day, id } in admitted {
        answers[step] = Some(Ok(Done::Begun(BeginOutcome::Started(started(start, id, day)))));
    }
    for end in ends {
        answers[end.step] = Some(Ok(Done::Finished(end.done.record)));
    }
    answers.into_iter().map(|a| a.ok_or_else(|| StoreError::Internal("a step was not answered".into()))).collect()
}

/// A settlement the batch ends: its step, the execution as it was, what it concludes, and the
/// execution's Idempotency-Key (which a retryable void frees).
struct End<'s> {
    step: usize,
    execution: &'s ExecutionRecord,
    done: Concluded<'s>,
    idempotency_key: Vec<u8>,
}

/// The rows the batch locked, and whether the node that began its holds still has its lease.
struct Locked {
    keys: HashSet<KeyId>,
    node_live: bool,
}

/// The batch's first statement, in the order of every money transaction: it ends every running
/// execution a settlement names (the guarded update of the per-call path, for all at once),
/// then locks the counters of every key and then every account the batch touches (its per-call
/// steps' too), each in id order, so two batches never wait on each other in a circle; with
/// them, whether the node's lease is live by the database's clock (a node that stalled past it
/// starts nothing under it). `UNION ALL` runs its parts one after another. The update changes
/// rows only inside a batch's transaction (`visa.batch`, set by its `BEGIN`), and finds them by
/// primary key (`= ANY`: without it the generic plan scanned every running execution).
static END_AND_LOCK: ClockSql = ClockSql::new(concat!(
    "WITH f AS (UPDATE executions e SET state = u.state, charged_micros = u.charged, receipt_id = u.receipt, \
       finished_at = u.finished \
       FROM unnest(?1::bigint[], ?2::text[], ?3::bigint[], ?4::text[], ?5::bigint[]) \
         AS u(id, state, charged, receipt, finished) \
       WHERE e.id = ANY(?1::bigint[]) AND e.id = u.id AND e.state = 'running' \
         AND current_setting('visa.batch', true) = 'on' \
       RETURNING e.id, e.idempotency_key) \
     SELECT 1, f.id, f.idempotency_key, NULL::boolean FROM f \
     UNION ALL SELECT 2, k.key_id, NULL::bytea, ",
    node_lease_live!("?7"),
    " FROM (SELECT key_id FROM key_spend WHERE key_id = ANY(?6::bigint[]) ORDER BY key_id FOR UPDATE) k \
     UNION ALL SELECT 3, a.id, NULL::bytea, NULL::boolean \
       FROM (SELECT id FROM accounts WHERE id = ANY(?8::bigint[]) ORDER BY id FOR UPDATE) a"
));

/// What the batch's first statement ends and locks (`END_AND_LOCK`).
struct Lock<'s> {
    ends: Vec<End<'s>>,
    keys: BTreeSet<KeyId>,
    accounts: BTreeSet<AccountId>,
    node: i64,
}

impl<'s> Lock<'s> {
    /// The settlements to end and the rows to lock. A settlement named twice is left to the
    /// per-call path (`alone`), which knows what to answer.
    fn of(steps: &'s [Step], alone: &mut BTreeSet<usize>) -> StoreResult<Self> {
        let mut ends = vec![];
        let mut seen = HashSet::new();
        let (mut keys, mut accounts, mut nodes) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for (i, step) in steps.iter().enumerate() {
            let (key, sandbox) = match step {
                Step::Begin(start) => {
                    nodes.insert(start.node.0);
                    (start.key_id, start.sandbox)
                }
                Step::Finish { execution, finish, now } => {
                    if seen.insert(execution.id) {
                        let done = concluded(execution, finish, *now);
                        ends.push(End { step: i, execution, done, idempotency_key: vec![] });
                    } else {
                        alone.insert(i);
                    }
                    (execution.key_id, execution.sandbox)
                }
            };
            keys.insert(key);
            if !sandbox {
                accounts.insert(step.account());
            }
        }
        if nodes.len() > 1 {
            return Err(StoreError::Internal("a batch holds the calls of one node".into()));
        }
        Ok(Self { ends, keys, accounts, node: nodes.first().copied().unwrap_or(0) })
    }

    fn params(&self) -> Vec<Value> {
        let column = |f: &dyn Fn(&End) -> Option<i64>| Array::Ints(self.ends.iter().map(f).collect());
        let texts = |f: &dyn Fn(&End) -> Option<String>| Array::Texts(self.ends.iter().map(f).collect());
        let ids = |ids: Vec<i64>| Array::Ints(ids.into_iter().map(Some).collect());
        params![
            column(&|end| Some(end.execution.id)),
            texts(&|end| Some(end.done.record.state.as_str().to_owned())),
            column(&|end| Some(end.done.record.charged.0)),
            texts(&|end| end.done.record.receipt_id.clone()),
            column(&|end| end.done.record.finished_at.map(to_db)),
            ids(self.keys.iter().map(|id| id.get()).collect()),
            self.node,
            ids(self.accounts.iter().map(|id| id.get()).collect()),
        ]
        .to_vec()
    }

    /// What the statement returned: the settlements it ended (a settlement whose execution was
    /// not running is left to the per-call path), the keys it locked, the node's lease.
    fn read(self, rows: &[Row], alone: &mut BTreeSet<usize>) -> StoreResult<(Vec<End<'s>>, Locked)> {
        let mut ended: HashMap<i64, Vec<u8>> = HashMap::new();
        let mut locked = Locked { keys: HashSet::new(), node_live: false };
        for row in rows {
            match row.get::<i64>(0)? {
                1 => drop(ended.insert(row.get(1)?, row.get(2)?)),
                2 => {
                    locked.keys.insert(row.get(1)?);
                    locked.node_live = row.get(3)?;
                }
                _ => {}
            }
        }
        let (mut ended_here, not_running): (Vec<_>, Vec<_>) =
            self.ends.into_iter().partition(|end| ended.contains_key(&end.execution.id));
        alone.extend(not_running.into_iter().map(|end| end.step));
        for end in &mut ended_here {
            end.idempotency_key = ended.remove(&end.execution.id).unwrap_or_default();
        }
        Ok((ended_here, locked))
    }
}

/// The hold's one read (`HOLD_STATE`, the same statement as a call alone) for many begins, in
/// one statement, in order; and beside it (`ID_COLUMN`) the id the execution will have if its
/// hold is admitted, so that the batch's answers never wait on its write's rows (a COMMIT
/// whose answer was lost but that committed still answers every step).
const ID_COLUMN: usize = 36;

static HOLD_STATES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let one = HOLD_STATE
        .get(Dialect::Postgres)
        .replace("?1", "u.key_id")
        .replace("?2", "u.secret_id")
        .replace("?3", "u.now")
        .replace("?4", "u.day")
        .replace("?5", "u.idempotency_key")
        .replace("?6", "u.end_user");
    format!(
        "SELECT h.*, nextval('executions_id_seq') FROM unnest(?1::bigint[], ?2::bigint[], ?3::bigint[], ?4::bigint[], ?5::bytea[], ?6::text[]) \
         WITH ORDINALITY AS u(key_id, secret_id, now, day, idempotency_key, end_user, ord) \
         LEFT JOIN LATERAL ({one}) h ON true ORDER BY u.ord"
    )
});

fn hold_states_params(begins: &[(usize, &ExecutionStart)]) -> Vec<Value> {
    let ints = |f: &dyn Fn(&ExecutionStart) -> i64| Array::Ints(begins.iter().map(|(_, s)| Some(f(s))).collect());
    params![
        ints(&|s| s.key_id.get()),
        ints(&|s| s.secret_id.get()),
        ints(&|s| to_db(s.now)),
        ints(&|s| s.day_number),
        Array::Blobs(begins.iter().map(|(_, s)| s.idempotency_key.to_vec()).collect()),
        Array::Texts(begins.iter().map(|(_, s)| s.end_user.as_ref().map(|u| u.as_str().to_owned())).collect()),
    ]
    .to_vec()
}

/// A hold the batch admitted: its step, its start, the day it counts on, its execution's id.
struct Admitted<'s> {
    step: usize,
    start: &'s ExecutionStart,
    day: i64,
    id: i64,
}

/// Per key: what the batch's holds and settlements move, summed.
#[derive(Default)]
struct KeyMove {
    latest_day: Option<i64>,
    held: i64,
    spent: i64,
    rate_tat: Option<i64>,
}

/// Per key and day: held (holds less settled holds) and captured.
#[derive(Default)]
struct DayMove {
    held: i64,
    spent: i64,
    settled: bool,
}

/// Every write of the batch, one statement: the key, day and account counters by their sums,
/// the new executions with their Idempotency-Key records, the ledger's entries, the stored
/// answers, the keys freed by retryable voids and (`?60` on, `rollup::Counts::params`) the
/// spend analytics' counts (`WRITE`, which returns the new executions'
/// public and row ids): its parameters.
fn write_params(rooms: &Rooms, admitted: &[Admitted], ends: &[End]) -> Vec<Value> {
    let mut keys: BTreeMap<KeyId, KeyMove> = BTreeMap::new();
    let mut days: BTreeMap<(KeyId, i64), DayMove> = BTreeMap::new();
    let mut accounts: BTreeMap<AccountId, (i64, i64)> = BTreeMap::new();
    for (key_id, room) in &rooms.keys {
        let key = keys.entry(*key_id).or_default();
        key.rate_tat = room.rate_moved.then_some(room.rate_tat);
        key.held += room.held_added;
        if room.held_added > 0 {
            key.latest_day = Some(room.latest_day);
        }
        for (day, held) in &room.held_added_by_day {
            days.entry((*key_id, *day)).or_default().held += held;
        }
    }
    // An end user's counters per day and in total (the total's "day" is `None`).
    let mut end_users: BTreeMap<(KeyId, &str, Option<i64>), DayMove> = BTreeMap::new();
    for ((key_id, user), room) in &rooms.end_users {
        for (day, held) in &room.held_added_by_day {
            end_users.entry((*key_id, user, Some(*day))).or_default().held += held;
            end_users.entry((*key_id, user, None)).or_default().held += held;
        }
    }
    for (account_id, room) in &rooms.accounts {
        accounts.entry(*account_id).or_default().0 += room.held_added;
    }
    let mut ledger: Vec<(AccountId, KeyId, i64, LedgerKind, i64, bool, i64)> = vec![];
    for End { execution: e, done, .. } in ends {
        let ending = ending(e, done.reported, done.voided);
        let key = keys.entry(e.key_id).or_default();
        key.held -= e.hold.0;
        key.spent += ending.charged.0;
        let day = days.entry((e.key_id, e.day_number)).or_default();
        day.held -= e.hold.0;
        day.spent += ending.charged.0;
        day.settled = true;
        if let Some(user) = &e.end_user {
            for day in [Some(e.day_number), None] {
                let counters = end_users.entry((e.key_id, user.as_str(), day)).or_default();
                counters.held -= e.hold.0;
                counters.spent += ending.charged.0;
                counters.settled = true;
            }
        }
        if !e.sandbox {
            let account = accounts.entry(e.account_id).or_default();
            account.0 -= e.hold.0;
            account.1 += ending.charged.0;
        }
        let at = done.record.finished_at.map_or(0, to_db);
        for (kind, amount) in &ending.entries {
            ledger.push((e.account_id, e.key_id, e.id, *kind, amount.0, e.sandbox, at));
        }
    }
    let ints = |values: Vec<i64>| Array::Ints(values.into_iter().map(Some).collect());
    let (new_days, settled_days): (Vec<_>, Vec<_>) = days.iter().partition(|(_, d)| !d.settled);
    let answered: Vec<_> = ends.iter().filter_map(|end| Some((end.execution.id, end.done.answer?))).collect();
    let freed: Vec<&End> = ends.iter().filter(|end| end.done.answer.is_none()).collect();
    let starts = || admitted.iter().map(|a| a.start);
    params![
        ints(keys.keys().map(|id| id.get()).collect()),
        Array::Ints(keys.values().map(|k| k.latest_day).collect()),
        ints(keys.values().map(|k| k.held).collect()),
        ints(keys.values().map(|k| k.spent).collect()),
        Array::Ints(keys.values().map(|k| k.rate_tat).collect()),
        ints(new_days.iter().map(|((k, _), _)| k.get()).collect()),
        ints(new_days.iter().map(|((_, d), _)| *d).collect()),
        ints(new_days.iter().map(|(_, m)| m.held).collect()),
        ints(settled_days.iter().map(|((k, _), _)| k.get()).collect()),
        ints(settled_days.iter().map(|((_, d), _)| *d).collect()),
        ints(settled_days.iter().map(|(_, m)| m.held).collect()),
        ints(settled_days.iter().map(|(_, m)| m.spent).collect()),
        ints(accounts.keys().map(|id| id.get()).collect()),
        ints(accounts.values().map(|a| a.0).collect()),
        ints(accounts.values().map(|a| a.1).collect()),
        Array::Texts(starts().map(|s| Some(s.public_id.clone())).collect()),
        ints(starts().map(|s| s.account_id.get()).collect()),
        ints(starts().map(|s| s.key_id.get()).collect()),
        ints(starts().map(|s| s.secret_id.get()).collect()),
        Array::Blobs(starts().map(|s| s.idempotency_key.to_vec()).collect()),
        Array::Blobs(starts().map(|s| s.request_hash.to_vec()).collect()),
        Array::Texts(starts().map(|s| Some(s.tool.clone())).collect()),
        Array::Bools(starts().map(|s| s.sandbox).collect()),
        ints(admitted.iter().map(|a| a.day).collect()),
        ints(starts().map(|s| s.hold.0).collect()),
        ints(starts().map(|s| to_db(s.now)).collect()),
        ints(starts().map(|s| s.node.0).collect()),
        ints(starts().map(|s| to_db(s.idempotency_expires_at)).collect()),
        ints(ledger.iter().map(|l| l.0.get()).collect()),
        ints(ledger.iter().map(|l| l.1.get()).collect()),
        ints(ledger.iter().map(|l| l.2).collect()),
        Array::Texts(ledger.iter().map(|l| Some(l.3.as_str().to_owned())).collect()),
        ints(ledger.iter().map(|l| l.4).collect()),
        Array::Bools(ledger.iter().map(|l| l.5).collect()),
        ints(ledger.iter().map(|l| l.6).collect()),
        ints(answered.iter().map(|(id, _)| *id).collect()),
        ints(answered.iter().map(|(_, (status, _))| i64::from(*status)).collect()),
        Array::Blobs(answered.iter().map(|(_, (_, body))| body.to_vec()).collect()),
        ints(freed.iter().map(|end| end.execution.key_id.get()).collect()),
        Array::Blobs(freed.iter().map(|end| end.idempotency_key.clone()).collect()),
        ints(freed.iter().map(|end| end.execution.id).collect()),
        ints(admitted.iter().map(|a| a.id).collect()),
        Array::Texts(starts().map(|s| s.end_user.as_ref().map(|u| u.as_str().to_owned())).collect()),
    ]
    .iter()
    .cloned()
    // An end user's rows that a settlement ends a hold on exist (updated); the others may not
    // yet (inserted or added to): per day, then in total.
    .chain([(true, false), (true, true), (false, false), (false, true)].into_iter().flat_map(|(daily, settled)| {
        let rows: Vec<_> =
            end_users.iter().filter(|((_, _, day), m)| m.settled == settled && day.is_some() == daily).collect();
        end_user_columns(&rows, daily, settled)
    }))
    .collect()
}

/// An end user's counters of a key on a day (`None`: in total), and what the batch moves them by.
type EndUserMove<'a> = (&'a (KeyId, &'a str, Option<i64>), &'a DayMove);

/// The write's arrays for end users' rows: key, end user, the day (daily rows), held, and
/// spent (settled rows).
fn end_user_columns(rows: &[EndUserMove], daily: bool, settled: bool) -> Vec<Value> {
    let ints = |f: &dyn Fn(&EndUserMove) -> i64| Array::Ints(rows.iter().map(|r| Some(f(r))).collect()).to_value();
    let mut columns = vec![
        ints(&|((key, _, _), _)| key.get()),
        Array::Texts(rows.iter().map(|((_, user, _), _)| Some(user.to_string())).collect()).to_value(),
    ];
    if daily {
        columns.push(ints(&|((_, _, day), _)| day.unwrap_or_default()));
    }
    columns.push(ints(&|(_, m)| m.held));
    if settled {
        columns.push(ints(&|(_, m)| m.spent));
    }
    columns
}

/// The batch's one write (see `write`). Every part runs whether or not the result reads it.
const WRITE: &str = "WITH \
  ks AS (UPDATE key_spend ks SET \
      latest_day = CASE WHEN u.latest > ks.latest_day THEN u.latest ELSE ks.latest_day END, \
      held_total_micros = ks.held_total_micros + u.held, spent_total_micros = ks.spent_total_micros + u.spent, \
      rate_tat_micros = COALESCE(u.tat, ks.rate_tat_micros) \
    FROM unnest(?1::bigint[], ?2::bigint[], ?3::bigint[], ?4::bigint[], ?5::bigint[]) AS u(key_id, latest, held, spent, tat) \
    WHERE ks.key_id = u.key_id), \
  kn AS (INSERT INTO key_days (key_id, day_number, held_micros) \
    SELECT * FROM unnest(?6::bigint[], ?7::bigint[], ?8::bigint[]) \
    ON CONFLICT (key_id, day_number) DO UPDATE SET held_micros = key_days.held_micros + excluded.held_micros), \
  ku AS (UPDATE key_days d SET held_micros = d.held_micros + u.held, spent_micros = d.spent_micros + u.spent \
    FROM unnest(?9::bigint[], ?10::bigint[], ?11::bigint[], ?12::bigint[]) AS u(key_id, day, held, spent) \
    WHERE d.key_id = u.key_id AND d.day_number = u.day), \
  ac AS (UPDATE accounts a SET held_micros = a.held_micros + u.held, balance_micros = a.balance_micros - u.charged \
    FROM unnest(?13::bigint[], ?14::bigint[], ?15::bigint[]) AS u(id, held, charged) WHERE a.id = u.id), \
  ex AS (INSERT INTO executions (id, public_id, account_id, key_id, secret_id, idempotency_key, request_hash, tool, \
      state, sandbox, day_number, hold_micros, created_at, node_id, end_user) \
    SELECT id, public_id, account_id, key_id, secret_id, idem, hash, tool, 'running', sandbox, day, hold, created, node, \
      end_user \
    FROM unnest(?42::bigint[], ?16::text[], ?17::bigint[], ?18::bigint[], ?19::bigint[], ?20::bytea[], ?21::bytea[], \
      ?22::text[], ?23::boolean[], ?24::bigint[], ?25::bigint[], ?26::bigint[], ?27::bigint[], ?43::text[]) \
      AS u(id, public_id, account_id, key_id, secret_id, idem, hash, tool, sandbox, day, hold, created, node, end_user) \
    RETURNING id, account_id, key_id, idempotency_key, sandbox, hold_micros, created_at), \
  ir AS (INSERT INTO idempotency_records (key_id, idempotency_key, execution_id, expires_at) \
    SELECT ex.key_id, ex.idempotency_key, ex.id, u.expires \
    FROM ex JOIN unnest(?42::bigint[], ?28::bigint[]) AS u(id, expires) ON u.id = ex.id), \
  lg AS (INSERT INTO ledger (account_id, key_id, execution_id, kind, amount_micros, sandbox, created_at) \
    SELECT account_id, key_id, id, 'hold', hold_micros, sandbox, created_at FROM ex \
    UNION ALL SELECT * FROM unnest(?29::bigint[], ?30::bigint[], ?31::bigint[], ?32::text[], ?33::bigint[], \
      ?34::boolean[], ?35::bigint[])), \
  rs AS (INSERT INTO execution_responses (execution_id, status, body) \
    SELECT * FROM unnest(?36::bigint[], ?37::bigint[], ?38::bytea[])), \
  un AS (INSERT INTO end_user_days (key_id, end_user, day_number, held_micros) \
    SELECT * FROM unnest(?44::bigint[], ?45::text[], ?46::bigint[], ?47::bigint[]) \
    ON CONFLICT (key_id, end_user, day_number) DO UPDATE SET held_micros = end_user_days.held_micros + excluded.held_micros), \
  uu AS (UPDATE end_user_days d SET held_micros = d.held_micros + u.held, spent_micros = d.spent_micros + u.spent \
    FROM unnest(?48::bigint[], ?49::text[], ?50::bigint[], ?51::bigint[], ?52::bigint[]) AS u(key_id, end_user, day, held, spent) \
    WHERE d.key_id = u.key_id AND d.end_user = u.end_user AND d.day_number = u.day), \
  tn AS (INSERT INTO end_user_totals (key_id, end_user, held_micros) \
    SELECT * FROM unnest(?53::bigint[], ?54::text[], ?55::bigint[]) \
    ON CONFLICT (key_id, end_user) DO UPDATE SET held_micros = end_user_totals.held_micros + excluded.held_micros), \
  tu AS (UPDATE end_user_totals t SET held_micros = t.held_micros + u.held, spent_micros = t.spent_micros + u.spent \
    FROM unnest(?56::bigint[], ?57::text[], ?58::bigint[], ?59::bigint[]) AS u(key_id, end_user, held, spent) \
    WHERE t.key_id = u.key_id AND t.end_user = u.end_user), \
  sh AS (INSERT INTO spend_hours (account_id, hour, key_id, tool, outcome, calls, charged_micros) \
    SELECT * FROM unnest(?60::bigint[], ?61::bigint[], ?62::bigint[], ?63::text[], ?64::text[], ?65::bigint[], ?66::bigint[]) \
    ON CONFLICT (account_id, hour, key_id, tool, outcome) DO UPDATE SET calls = spend_hours.calls + excluded.calls, \
      charged_micros = spend_hours.charged_micros + excluded.charged_micros), \
  se AS (INSERT INTO spend_end_user_days (account_id, day_number, key_id, end_user, outcome, calls, charged_micros) \
    SELECT * FROM unnest(?67::bigint[], ?68::bigint[], ?69::bigint[], ?70::text[], ?71::text[], ?72::bigint[], ?73::bigint[]) \
    ON CONFLICT (account_id, day_number, key_id, end_user, outcome) DO UPDATE SET \
      calls = spend_end_user_days.calls + excluded.calls, \
      charged_micros = spend_end_user_days.charged_micros + excluded.charged_micros), \
  fr AS (DELETE FROM idempotency_records r USING unnest(?39::bigint[], ?40::bytea[], ?41::bigint[]) AS u(key_id, idem, id) \
    WHERE r.key_id = u.key_id AND r.idempotency_key = u.idem AND r.execution_id = u.id) \
SELECT COUNT(*) FROM ex";
