//! Provider requests a queue-style adapter submitted (fal's request ids): remembered under the
//! Idempotency-Key that made them, so a retry after a crash or timeout resumes the same
//! submission instead of paying for a second one.

use super::db::{Db, params};
use super::{Engine, SqlStore};
use crate::model::*;
use crate::{StoreError, StoreResult};
use async_trait::async_trait;

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

/// Provider requests a call may resume after a crash. Part of the store (`crate::Store`).
#[async_trait]
pub trait ProviderRequestStore: Send + Sync {
    /// Records, before a queue-style tool submits, that a submission is under way under the
    /// execution's key, Idempotency-Key and request fingerprint, so that a retry meeting it
    /// waits for it instead of submitting (and paying) again. `Conflict` when the key already
    /// names a live provider request.
    async fn start_provider_request(&self, execution_id: i64) -> StoreResult<()>;
    /// Completes the record with the provider's request id.
    async fn remember_provider_request(&self, execution_id: i64, provider_ref: &str) -> StoreResult<()>;
    /// The provider request an earlier attempt of the same request (same key, Idempotency-Key
    /// and fingerprint) started and did not finish, to resume instead of submitting again.
    async fn provider_request_to_resume(&self, execution_id: i64) -> StoreResult<Option<ProviderRequest>>;
    /// Forgets it once the request finished for good.
    async fn forget_provider_request(&self, execution_id: i64) -> StoreResult<()>;
}

#[async_trait]
impl<E: Engine> ProviderRequestStore for SqlStore<E> {
    async fn start_provider_request(&self, execution_id: i64) -> StoreResult<()> {
        self.write_locking(move |conn| start(conn, execution_id)).await
    }

    async fn remember_provider_request(&self, execution_id: i64, provider_ref: &str) -> StoreResult<()> {
        let provider_ref = provider_ref.to_owned();
        self.write_locking(move |conn| remember(conn, execution_id, &provider_ref)).await
    }

    async fn provider_request_to_resume(&self, execution_id: i64) -> StoreResult<Option<ProviderRequest>> {
        self.read(move |conn| to_resume(conn, execution_id)).await
    }

    async fn forget_provider_request(&self, execution_id: i64) -> StoreResult<()> {
        self.write_locking(move |conn| forget(conn, execution_id)).await
    }
}
