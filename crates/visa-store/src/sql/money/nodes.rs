//! Node leases: a node registers, renews and releases its lease by the database's clock, and
//! the calls of a node whose lease ran out are handed to the live nodes (or to an operator).
//! docs/postgres.md, "Faults a cluster meets".

use crate::model::*;
use crate::sql::db::{ClockSql, Db, params};
use crate::sql::{Engine, SqlStore};
use crate::sql::{from_db, to_db};
use crate::{StoreError, StoreResult};
use async_trait::async_trait;

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
    let rows = conn.query(
        &format!(
            "UPDATE executions SET state = 'reconcile_required' WHERE state = 'running' AND \
             (node_id IS NULL OR node_id IN (SELECT id FROM nodes WHERE reclaimed_at IS NOT NULL)) \
             RETURNING {}",
            super::RECONCILE_EVENT_COLUMNS
        ),
        params![],
    )?;
    if !rows.is_empty() {
        let now = database_clock(conn)?;
        super::announce_reconcile(conn, &rows, now)?;
    }
    Ok(rows.len() as u64)
}

/// Nodes and their leases. Part of the store (`crate::Store`). Each server process registers
/// as a node and renews its lease while it lives; every execution records the node running it.
/// A call whose node's lease expired lost its outcome (the node crashed or lost the store) and
/// becomes `reconcile_required`; a call of a live node is never touched, whoever restarts.
/// Leases are kept by the database's clock, never a node's: a node with a wrong clock can
/// neither take another's calls nor keep its own past their lease. A begin refuses
/// (`NodeLeaseLost`) when its node's lease is not live; a reclaimed call that no operator
/// decided yet may still be finished by the call that placed it (its node woke up).
#[async_trait]
pub trait NodeStore: Send + Sync {
    /// The public ids of the executions `node` began before `before` that are still running,
    /// oldest first, at most `limit`: for the node's own sweep of calls that no task of its
    /// process tracks any more (a bug ended one without settling it), which it then abandons.
    async fn running_on_node(&self, node: NodeId, before: Timestamp, limit: u32) -> StoreResult<Vec<String>>;
    /// Registers a node (named for operators, e.g. `host:pid`, started at `now` by its own
    /// clock) holding a lease for `lease` from the database's now. SQLite: one process per
    /// database (the data-dir lock), so a node that registers proves every earlier one gone and
    /// their leases end now.
    async fn register_node(&self, name: &str, now: Timestamp, lease: time::Duration) -> StoreResult<NodeId>;
    /// Extends the node's lease to the database's now + `lease`; `false` if it had expired
    /// (its running calls are, or will be, `reconcile_required`; it must register again).
    async fn renew_node(&self, node: NodeId, lease: time::Duration) -> StoreResult<bool>;
    /// Ends the node's lease now: it stopped cleanly, with nothing running.
    async fn release_node(&self, node: NodeId) -> StoreResult<()>;
    /// Turns the running executions of every node whose lease expired into
    /// `reconcile_required` (rows from before leases existed count as such a node), once;
    /// says how many. Any live node may call it, at start and periodically.
    async fn reclaim_expired_nodes(&self) -> StoreResult<u64>;
    /// The database's clock, which leases are kept by (a node compares its own with it).
    async fn database_clock(&self) -> StoreResult<Timestamp>;
}

#[async_trait]
impl<E: Engine> NodeStore for SqlStore<E> {
    async fn running_on_node(&self, node: NodeId, before: Timestamp, limit: u32) -> StoreResult<Vec<String>> {
        self.read(move |conn| running_on_node(conn, node, before, limit)).await
    }

    async fn register_node(&self, name: &str, now: Timestamp, lease: time::Duration) -> StoreResult<NodeId> {
        let name = name.to_owned();
        self.engine.write_lease(move |conn| register_node(conn, &name, now, lease)).await
    }

    async fn renew_node(&self, node: NodeId, lease: time::Duration) -> StoreResult<bool> {
        self.engine.write_lease(move |conn| renew_node(conn, node, lease)).await
    }

    async fn release_node(&self, node: NodeId) -> StoreResult<()> {
        self.engine.write_lease(move |conn| release_node(conn, node)).await
    }

    async fn reclaim_expired_nodes(&self) -> StoreResult<u64> {
        self.engine.write_lease(reclaim_expired_nodes).await
    }

    async fn database_clock(&self) -> StoreResult<Timestamp> {
        self.engine.write_lease(database_clock).await
    }
}
