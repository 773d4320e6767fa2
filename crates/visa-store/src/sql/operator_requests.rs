//! The operator's Idempotency-Keys (credits, reconciles): a request is remembered in the same
//! transaction as its change, so a retry after a lost answer (a timeout, a 500 from a failed
//! fsync) answers the first outcome instead of crediting or deciding twice.

use super::db::{Db, params};
use super::to_db;
use crate::model::{Account, OperatorRequest, Timestamp};
use crate::{StoreError, StoreResult};

/// What the first request left: the account's balance and holds after a credit (zero for a
/// reconcile, whose execution is its outcome).
pub(crate) struct FirstOutcome {
    pub balance_after: i64,
    pub held_after: i64,
}

/// The first outcome of this request, if it ran before; `Conflict` if its key was used for
/// another request.
pub(crate) fn replay(conn: &dyn Db, request: Option<&OperatorRequest>) -> StoreResult<Option<FirstOutcome>> {
    let Some(request) = request else { return Ok(None) };
    let found: Option<(Vec<u8>, i64, i64)> = conn.query_row(
        "SELECT fingerprint, balance_after, held_after FROM operator_requests WHERE idempotency_key = ?1",
        params![request.idempotency_key],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    match found {
        None => Ok(None),
        Some((fingerprint, _, _)) if fingerprint[..] != request.fingerprint[..] => {
            Err(StoreError::Conflict("this Idempotency-Key was used for another operator request".into()))
        }
        Some((_, balance_after, held_after)) => Ok(Some(FirstOutcome { balance_after, held_after })),
    }
}

/// Remembers a request that just ran, with the account it left (for a credit).
pub(crate) fn remember(
    conn: &dyn Db,
    request: Option<&OperatorRequest>,
    target: &str,
    account: Option<&Account>,
    now: Timestamp,
) -> StoreResult<()> {
    let Some(request) = request else { return Ok(()) };
    conn.execute(
        "INSERT INTO operator_requests (idempotency_key, fingerprint, target, balance_after, held_after, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            request.idempotency_key,
            request.fingerprint[..],
            target,
            account.map_or(0, |a| a.balance.0),
            account.map_or(0, |a| a.held.0),
            to_db(now)
        ],
    )
    .map(drop)
}
