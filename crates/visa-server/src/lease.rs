//! This process as a node of the store: registered at start, its lease renewed while it
//! lives (on the database's clock, on a connection of its own where the store has a pool),
//! registered again if the lease was lost (a stall longer than the lease: another node, or
//! this one, may have turned its running calls into `reconcile_required`), and given up when
//! it stops cleanly. Every live node also reclaims the calls of nodes whose lease expired, so
//! a crashed node's holds do not wait for it to come back.
//!
//! A node that stalled past its lease begins nothing until it renewed it: [`Node::ensure_live`]
//! runs before every paid call, and the store checks again in the hold's own transaction.

use crate::clock::Clock;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use visa_store::{NodeId, Store, StoreResult};

/// A clock further than this from the database's is reported (leases do not depend on it;
/// days, expiries and retention do).
const SKEW_WARNING: Duration = Duration::from_secs(2);

/// The node id paid calls are begun under; changes only if the lease was lost.
#[derive(Debug)]
pub struct Node {
    id: AtomicI64,
    pub name: String,
    pub lease: Duration,
    /// Until when the lease surely runs, by this process's monotonic clock (the instant before
    /// the last renewal was sent, plus the lease).
    live_until: Mutex<Instant>,
    /// One renewal at a time (the periodic one, or a call's that found the lease ended).
    renewing: tokio::sync::Mutex<()>,
}

impl Node {
    /// Registers a node named `host:pid` on `store`, and says if this machine's clock is off.
    pub async fn register(store: &dyn Store, now: time::OffsetDateTime, lease: Duration) -> anyhow::Result<Self> {
        let name = visa_store::node_name();
        let sent = Instant::now();
        let id = store
            .register_node(&name, now, lease_of(lease))
            .await
            .map_err(|e| anyhow::anyhow!("cannot register this node in the store: {e}"))?;
        check_clock(store, now).await;
        Ok(Self {
            id: AtomicI64::new(id.0),
            name,
            lease,
            live_until: Mutex::new(sent + lease),
            renewing: tokio::sync::Mutex::new(()),
        })
    }

    pub fn id(&self) -> NodeId {
        NodeId(self.id.load(Ordering::Relaxed))
    }

    fn renewed(&self, sent: Instant) {
        *self.live_until.lock().unwrap_or_else(|e| e.into_inner()) = sent + self.lease;
    }

    fn live_locally(&self) -> bool {
        Instant::now() < *self.live_until.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Before a paid call: renews the lease first if, by this process's clock, it may have run
    /// out (the process stalled: a pause, a frozen VM), so no call starts under a lease that
    /// another node may be reclaiming.
    pub async fn ensure_live(&self, store: &dyn Store, now: time::OffsetDateTime) -> StoreResult<()> {
        if self.live_locally() {
            return Ok(());
        }
        self.renew(store, now).await
    }

    /// Renews the lease, or registers again if it had ended.
    pub async fn renew(&self, store: &dyn Store, now: time::OffsetDateTime) -> StoreResult<()> {
        let _one = self.renewing.lock().await;
        let sent = Instant::now();
        let lease = lease_of(self.lease);
        if store.renew_node(self.id(), lease).await? {
            self.renewed(sent);
            return Ok(());
        }
        let id = store.register_node(&self.name, now, lease).await?;
        tracing::error!(new_node = id.0, "this node's lease had expired (stalled?); registered again");
        self.id.store(id.0, Ordering::Relaxed);
        self.renewed(sent);
        Ok(())
    }
}

fn lease_of(lease: Duration) -> time::Duration {
    time::Duration::try_from(lease).unwrap_or(time::Duration::seconds(30))
}

/// Warns when this machine's clock and the database's differ by more than `SKEW_WARNING`.
async fn check_clock(store: &dyn Store, now: time::OffsetDateTime) {
    let Ok(database) = store.database_clock().await else { return };
    let skew = (now - database).abs();
    if skew > SKEW_WARNING {
        tracing::warn!(
            skew_ms = skew.whole_milliseconds() as i64,
            "this machine's clock differs from the database's: leases follow the database's, but \
             daily caps, expiries and retention follow this clock; synchronise it (NTP)"
        );
    }
}

/// Turns the running calls of expired nodes into `reconcile_required`, saying so.
pub async fn reclaim(store: &dyn Store) {
    match store.reclaim_expired_nodes().await {
        Ok(0) => {}
        Ok(count) => tracing::warn!(
            count,
            "executions of a node that stopped (crash, or lost its lease) are now reconcile_required; \
             see `visa-cli executions list --operator --state reconcile_required`"
        ),
        Err(e) => tracing::warn!(error = %e, "could not reclaim the calls of expired nodes; retrying"),
    }
}

/// Renews the lease every third of it, and reclaims expired nodes' calls, until stopped; then
/// gives the lease up (every call has drained by then).
pub async fn keep(node: &Node, store: &dyn Store, clock: &Clock, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(node.lease / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.changed() => break,
        }
        if let Err(e) = node.renew(store, clock.now()).await {
            tracing::warn!(error = %e, "could not renew this node's lease; retrying");
        }
        check_clock(store, clock.now()).await;
        reclaim(store).await;
    }
    if let Err(e) = store.release_node(node.id()).await {
        tracing::warn!(error = %e, "could not give up this node's lease; it runs out by itself");
    }
}
