//! One transaction on one connection, run again when PostgreSQL reports a serialization
//! failure or a deadlock (after a jittered, growing pause), and never left in doubt: a COMMIT
//! whose answer is lost (the connection broke after it was sent; a proxy or a slow
//! synchronous standby may even apply it seconds later) is resolved before this returns, by
//! asking the database what became of the transaction's id (`txid_status`). While it is still
//! in progress after `DOUBT_PATIENCE`, its server process is ended, which settles it either
//! way (a COMMIT that arrived commits; one that did not, never will). So a caller hears
//! "committed" or "not committed", never "perhaps": a hold is never left behind by a lost
//! answer, nor a settlement taken for lost when it landed.

use super::db::{Conn, PgDb, is_retryable};
use super::map_pg_error;
use super::pool::Pool;
use crate::metrics::StoreMetrics;
use crate::sql::{Db, Isolation};
use crate::{StoreError, StoreResult};
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

/// How many times a transaction that hit a serialization failure or a deadlock is run.
const ATTEMPTS: u32 = 10;
/// The longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_millis(250);
/// How long a transaction whose COMMIT's answer was lost may stay in progress before its
/// server process is ended.
const DOUBT_PATIENCE: Duration = Duration::from_secs(3);
/// How long the outcome of such a transaction is sought at most (the database may be away).
const DOUBT_LIMIT: Duration = Duration::from_secs(10);
const DOUBT_POLL: Duration = Duration::from_millis(50);

/// How each kind of transaction starts (one round trip, which also reads its id).
fn begin_sql(isolation: Isolation) -> &'static str {
    match isolation {
        Isolation::Locking => "BEGIN ISOLATION LEVEL READ COMMITTED; SELECT txid_current()",
        Isolation::Serializable => "BEGIN ISOLATION LEVEL SERIALIZABLE; SELECT txid_current()",
        // The lock is taken before the snapshot (which the first query takes), so changes
        // queued behind each other never conflict on what the previous one wrote.
        Isolation::CredentialChange => {
            "BEGIN ISOLATION LEVEL SERIALIZABLE; LOCK TABLE auth_version IN SHARE ROW EXCLUSIVE MODE; \
             SELECT txid_current()"
        }
    }
}

/// Why a transaction did not answer, and whether it is known not to have committed.
pub(super) struct Failed {
    pub error: StoreError,
    /// The COMMIT was sent and what became of it could not be learnt.
    pub in_doubt: bool,
}

impl From<StoreError> for Failed {
    fn from(error: StoreError) -> Self {
        Self { error, in_doubt: false }
    }
}

/// Runs `work` in one transaction at `isolation`; see the module's comment.
pub(super) fn run<R>(
    pool: &Pool,
    conn: &mut Conn,
    isolation: Isolation,
    work: &(dyn Fn(&dyn Db) -> StoreResult<R> + Sync),
    metrics: &StoreMetrics,
) -> StoreResult<R> {
    let mut attempt = 1;
    loop {
        let started = Instant::now();
        let xid = begin(conn, begin_sql(isolation))?;
        let (outcome, retryable) = {
            let db = PgDb::new(conn);
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&db)))
                .unwrap_or_else(|_| Err(StoreError::Internal("a store job panicked".into())));
            (outcome, db.retryable())
        };
        let failure = match outcome {
            Ok(value) => {
                let commit_started = Instant::now();
                match conn.client.batch_execute("COMMIT") {
                    Ok(()) => {}
                    Err(e) if e.code().is_none() => {
                        // Sent, perhaps applied, answer lost: find out which.
                        resolve_doubt(pool, xid, conn.backend_pid).map_err(|failed| failed.error)?;
                    }
                    Err(e) if is_retryable(&e) => {
                        retry_or_fail(&mut attempt, map_pg_error(e))?;
                        continue;
                    }
                    Err(e) => return Err(map_pg_error(e)),
                }
                // The COMMIT's round trip is the WAL flush on the primary.
                metrics.made_durable(commit_started.elapsed());
                metrics.committed(started.elapsed(), 1);
                return Ok(value);
            }
            Err(e) => {
                let _ = conn.client.batch_execute("ROLLBACK");
                if !retryable {
                    return Err(e);
                }
                e
            }
        };
        retry_or_fail(&mut attempt, failure)?;
    }
}

/// Starts a transaction; its id.
fn begin(conn: &mut Conn, sql: &str) -> StoreResult<i64> {
    txid_of(&conn.client.simple_query(sql).map_err(map_pg_error)?)
}

/// The transaction id a `BEGIN …; SELECT txid_current()` answered.
pub(super) fn txid_of(messages: &[postgres::SimpleQueryMessage]) -> StoreResult<i64> {
    messages
        .iter()
        .find_map(|m| match m {
            postgres::SimpleQueryMessage::Row(row) => row.get(0).and_then(|id| id.parse().ok()),
            _ => None,
        })
        .ok_or_else(|| StoreError::Internal("the database did not say which transaction began".into()))
}

/// Sleeps before the next attempt, or gives up with `failure` after the last.
fn retry_or_fail(attempt: &mut u32, failure: StoreError) -> StoreResult<()> {
    if *attempt >= ATTEMPTS {
        return Err(failure);
    }
    std::thread::sleep(backoff(*attempt));
    *attempt += 1;
    Ok(())
}

/// 1, 2, 4, … ms up to `MAX_BACKOFF`, each between half and all of it, so that transactions
/// that collided do not collide again in step.
fn backoff(attempt: u32) -> Duration {
    let ceiling = Duration::from_millis(1 << attempt.min(16)).min(MAX_BACKOFF);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(attempt);
    let jitter = 0.5 + (hasher.finish() % 1000) as f64 / 2000.0;
    ceiling.mul_f64(jitter)
}

/// What became of transaction `xid` (run by server process `pid`) whose COMMIT was sent but
/// not answered: `Ok` if it committed, `Unavailable` if it did not (or the database stayed out
/// of reach for `DOUBT_LIMIT`, the one case left to the caller's own clean-up: in doubt).
pub(super) fn resolve_doubt(pool: &Pool, xid: i64, pid: i32) -> Result<(), Failed> {
    let started = Instant::now();
    let mut ended = false;
    loop {
        let status = pool.connect().and_then(|mut conn| {
            if !ended && started.elapsed() >= DOUBT_PATIENCE {
                // Also ends it if the connection still lingers on the server's side.
                conn.client.query("SELECT pg_terminate_backend($1)", &[&pid]).map_err(map_pg_error)?;
                ended = true;
            }
            let row = conn.client.query_one("SELECT txid_status($1)", &[&xid]).map_err(map_pg_error)?;
            row.try_get::<_, Option<String>>(0).map_err(map_pg_error)
        });
        match status.as_ref().map(Option::as_deref) {
            Ok(Some("committed")) => {
                tracing::warn!(xid, "a COMMIT whose answer was lost had committed; carrying on");
                return Ok(());
            }
            Ok(Some("aborted") | None) => {
                return Err(StoreError::Unavailable(
                    "the connection to the database broke; nothing was recorded".into(),
                )
                .into());
            }
            Ok(_) | Err(_) if started.elapsed() < DOUBT_LIMIT => std::thread::sleep(DOUBT_POLL),
            Ok(_) | Err(_) => {
                return Err(Failed {
                    error: StoreError::Unavailable(
                        "the connection to the database broke during a COMMIT and its outcome could not be learnt"
                            .into(),
                    ),
                    in_doubt: true,
                });
            }
        }
    }
}

/// Runs `work` in one read-only snapshot.
pub(super) fn snapshot<R>(conn: &mut Conn, work: impl FnOnce(&dyn Db) -> StoreResult<R>) -> StoreResult<R> {
    conn.client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").map_err(map_pg_error)?;
    let result = work(&PgDb::new(conn));
    let _ = conn.client.batch_execute("COMMIT");
    result
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn backoff_grows_to_its_ceiling_with_jitter() {
        for attempt in 1..12 {
            let ceiling = Duration::from_millis(1 << attempt).min(super::MAX_BACKOFF);
            let pause = super::backoff(attempt);
            assert!(pause >= ceiling / 2 && pause <= ceiling, "{attempt}: {pause:?}");
        }
    }
}
