//! Provider requests a queue-style adapter submitted (fal's request ids): remembered under the
//! Idempotency-Key that made them, so a retry after a crash or timeout resumes the same
//! submission instead of paying for a second one.

use super::db::{Db, params};
use crate::model::*;
use crate::{StoreError, StoreResult};

pub(crate) fn start(conn: &dyn Db, execution_id: i64) -> StoreResult<()> {
    // Kept as long as the Idempotency-Key that made it. An expired one of the same key
    // may be replaced; a live one never is (`begin` refuses other input for its key).
    // An empty `provider_ref` marks a submission under way.
    let changed = conn.execute(
        "INSERT INTO provider_requests (key_id, idempotency_key, request_hash, provider_ref, expires_at) \
             SELECT e.key_id, e.idempotency_key, e.request_hash, '', r.expires_at \
             FROM executions e JOIN idempotency_records r ON r.execution_id = e.id WHERE e.id = ?1 \
             ON CONFLICT (key_id, idempotency_key) DO UPDATE SET request_hash = excluded.request_hash, \
               provider_ref = excluded.provider_ref, expires_at = excluded.expires_at \
             WHERE provider_requests.expires_at <= (SELECT created_at FROM executions WHERE id = ?1)",
        params![execution_id],
    )?;
    match changed {
        1 => Ok(()),
        _ => Err(StoreError::Conflict("the Idempotency-Key already names another provider request".into())),
    }
}

pub(crate) fn remember(conn: &dyn Db, execution_id: i64, provider_ref: &str) -> StoreResult<()> {
    conn.execute(
        "UPDATE provider_requests SET provider_ref = ?2 WHERE provider_ref = '' AND (key_id, idempotency_key) = \
         (SELECT key_id, idempotency_key FROM executions WHERE id = ?1)",
        params![execution_id, provider_ref],
    )
    .map(drop)
}

pub(crate) fn to_resume(conn: &dyn Db, execution_id: i64) -> StoreResult<Option<ProviderRequest>> {
    let found: Option<String> = conn.query_row(
        "SELECT p.provider_ref FROM executions e JOIN provider_requests p \
             ON p.key_id = e.key_id AND p.idempotency_key = e.idempotency_key AND p.request_hash = e.request_hash \
             WHERE e.id = ?1 AND p.expires_at > e.created_at",
        params![execution_id],
        |r| r.get(0),
    )?;
    Ok(found.map(|r| if r.is_empty() { ProviderRequest::Submitting } else { ProviderRequest::Submitted(r) }))
}

pub(crate) fn forget(conn: &dyn Db, execution_id: i64) -> StoreResult<()> {
    conn.execute(
        "DELETE FROM provider_requests WHERE (key_id, idempotency_key) = \
         (SELECT key_id, idempotency_key FROM executions WHERE id = ?1)",
        params![execution_id],
    )
    .map(drop)
}
