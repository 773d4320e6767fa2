//! Retention: what the money path keeps only for a while — Idempotency-Key records and the
//! answers they replay, provider requests, operator requests — forgotten in bounded batches.

use super::forget_record;
use crate::StoreResult;
use crate::model::*;
use crate::sql::db::{Db, params};
use crate::sql::to_db;
use std::sync::LazyLock;

/// Retention (`Store::sweep_expired`), one bounded batch so the writer is never held for long:
/// Idempotency-Key records past their retention whose execution ended, with their stored
/// answers; provider requests past theirs; operator requests older than `operators_before`.
pub(crate) fn sweep_expired(
    conn: &dyn Db,
    now: Timestamp,
    operators_before: Timestamp,
    limit: u32,
) -> StoreResult<u64> {
    let now = to_db(now);
    static EXPIRED_RECORDS: LazyLock<String> = LazyLock::new(|| {
        let open: Vec<String> = ExecutionState::OPEN.iter().map(|s| format!("'{}'", s.as_str())).collect();
        format!(
            "SELECT r.key_id, r.idempotency_key, r.execution_id FROM idempotency_records r \
             JOIN executions e ON e.id = r.execution_id \
             WHERE r.expires_at <= ?1 AND e.state NOT IN ({}) LIMIT ?2",
            open.join(", ")
        )
    });
    let records: Vec<(KeyId, Vec<u8>, i64)> =
        conn.query_map(&EXPIRED_RECORDS, params![now, limit], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    for (key_id, idempotency_key, execution_id) in &records {
        forget_record(conn, *key_id, idempotency_key, *execution_id)?;
    }
    let providers = conn.execute(
        "DELETE FROM provider_requests WHERE (key_id, idempotency_key) IN \
         (SELECT key_id, idempotency_key FROM provider_requests WHERE expires_at <= ?1 LIMIT ?2)",
        params![now, limit],
    )?;
    let operators = conn.execute(
        "DELETE FROM operator_requests WHERE idempotency_key IN \
         (SELECT idempotency_key FROM operator_requests WHERE created_at <= ?1 LIMIT ?2)",
        params![to_db(operators_before), limit],
    )?;
    Ok((records.len() + providers + operators) as u64)
}
