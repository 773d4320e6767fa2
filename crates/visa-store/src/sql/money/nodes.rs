//! Node leases: a node registers, renews and releases its lease by the database's clock, and
//! the calls of a node whose lease ran out are handed to the live nodes (or to an operator).
//! docs/postgres.md, "Faults a cluster meets".

use crate::model::*;
use crate::sql::db::{ClockSql, Db, params};
use crate::sql::{from_db, to_db};
use crate::{StoreError, StoreResult};

/// The executions `node` began that are still running, begun before `before`, oldest first
/// (at most `limit`).
pub(crate) fn running_on_node(conn: &dyn Db, node: NodeId, before: Timestamp, limit: u32) -> StoreResult<Vec<String>> {
    conn.query_map(
        "SELECT public_id FROM executions WHERE state = 'running' AND node_id = ?1 AND created_at < ?2 \
         ORDER BY id LIMIT ?3",
        params![node.0, to_db(before), i64::from(limit)],
        |r| r.get(0),
    )
}

/// Lease times are the database's clock (`Dialect::clock`) plus `lease`, never a node's own.
fn lease_micros(lease: time::Duration) -> i64 {
    i64::try_from(lease.whole_microseconds()).unwrap_or(i64::MAX)
}

pub(crate) fn register_node(conn: &dyn Db, name: &str, now: Timestamp, lease: time::Duration) -> StoreResult<NodeId> {
    static END_OTHERS: ClockSql = ClockSql::new(
        "UPDATE nodes SET lease_expires_at = CASE WHEN lease_expires_at < {clock} THEN lease_expires_at \
         ELSE {clock} END WHERE reclaimed_at IS NULL",
    );
    static INSERT: ClockSql = ClockSql::new(
        "INSERT INTO nodes (name, started_at, lease_expires_at) VALUES (?1, ?2, {clock} + ?3) RETURNING id",
    );
    if conn.dialect().single_writer() {
        // One process per SQLite database (the data-dir lock): every earlier node is gone.
        conn.execute(END_OTHERS.get(conn.dialect()), params![])?;
    }
    conn.insert(INSERT.get(conn.dialect()), params![name, to_db(now), lease_micros(lease)]).map(NodeId)
}

pub(crate) fn renew_node(conn: &dyn Db, node: NodeId, lease: time::Duration) -> StoreResult<bool> {
    static RENEW: ClockSql = ClockSql::new(
        "UPDATE nodes SET lease_expires_at = {clock} + ?2 \
         WHERE id = ?1 AND reclaimed_at IS NULL AND lease_expires_at > {clock}",
    );
    let renewed = conn.execute(RENEW.get(conn.dialect()), params![node.0, lease_micros(lease)])?;
    Ok(renewed == 1)
}

/// Ends a node's lease now (a node that stopped cleanly, its calls drained).
pub(crate) fn release_node(conn: &dyn Db, node: NodeId) -> StoreResult<()> {
    static RELEASE: ClockSql = ClockSql::new(
        "UPDATE nodes SET lease_expires_at = {clock} WHERE id = ?1 AND reclaimed_at IS NULL \
         AND lease_expires_at > {clock}",
    );
    conn.execute(RELEASE.get(conn.dialect()), params![node.0]).map(drop)
}

/// The database's clock.
pub(crate) fn database_clock(conn: &dyn Db) -> StoreResult<Timestamp> {
    static CLOCK: ClockSql = ClockSql::new("SELECT {clock}");
    let micros: Option<i64> = conn.query_row(CLOCK.get(conn.dialect()), params![], |r| r.get(0))?;
    micros.map(from_db).ok_or_else(|| StoreError::Internal("the database has no clock".into()))
}

pub(crate) fn reclaim_expired_nodes(conn: &dyn Db) -> StoreResult<u64> {
    static EXPIRED: ClockSql = ClockSql::new(
        "UPDATE nodes SET reclaimed_at = {clock} WHERE reclaimed_at IS NULL AND lease_expires_at <= {clock}",
    );
    conn.execute(EXPIRED.get(conn.dialect()), params![])?;
    // Also calls a reclaimed node began before it learnt it was reclaimed (a begin checks
    // that its node is live, but the reclaim may commit between that check and its commit).
    conn.execute(
        "UPDATE executions SET state = 'reconcile_required' WHERE state = 'running' AND \
         (node_id IS NULL OR node_id IN (SELECT id FROM nodes WHERE reclaimed_at IS NOT NULL))",
        params![],
    )
    .map(|n| n as u64)
}
