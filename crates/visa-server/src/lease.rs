//! This process as a node of the store: registered at start, its lease renewed while it
//! lives, and registered again if the lease was lost (a stall longer than the lease: another
//! node, or this one, has turned its running calls into `reconcile_required`). Every live node
//! also reclaims the calls of nodes whose lease expired, so a crashed node's holds do not wait
//! for it to come back.

use crate::state::SharedState;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use visa_store::{NodeId, Store};

/// The node id paid calls are begun under; changes only if the lease was lost.
#[derive(Debug)]
pub struct Node {
    id: AtomicI64,
    pub name: String,
    pub lease: Duration,
}

impl Node {
    /// Registers a node named `host:pid` on `store`.
    pub async fn register(store: &dyn Store, now: time::OffsetDateTime, lease: Duration) -> anyhow::Result<Self> {
        let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "localhost".into());
        let name = format!("{host}:{}", std::process::id());
        let id = store
            .register_node(&name, now, lease_of(lease))
            .await
            .map_err(|e| anyhow::anyhow!("cannot register this node in the store: {e}"))?;
        Ok(Self { id: AtomicI64::new(id.0), name, lease })
    }

    pub fn id(&self) -> NodeId {
        NodeId(self.id.load(Ordering::Relaxed))
    }
}

fn lease_of(lease: Duration) -> time::Duration {
    time::Duration::try_from(lease).unwrap_or(time::Duration::seconds(30))
}

/// Turns the running calls of expired nodes into `reconcile_required`, saying so.
pub async fn reclaim(state: &SharedState) {
    match state.store.reclaim_expired_nodes(state.now()).await {
        Ok(0) => {}
        Ok(count) => tracing::warn!(
            count,
            "executions of a node that stopped (crash, or lost its lease) are now reconcile_required; \
             see `visa-cli executions list --operator --state reconcile_required`"
        ),
        Err(e) => tracing::warn!(error = %e, "could not reclaim the calls of expired nodes; retrying"),
    }
}

/// Renews the lease every third of it, and reclaims expired nodes' calls, until stopped.
pub async fn keep(state: SharedState, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(state.node.lease / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.changed() => return,
        }
        let lease = lease_of(state.node.lease);
        match state.store.renew_node(state.node.id(), state.now(), lease).await {
            Ok(true) => {}
            Ok(false) => match state.store.register_node(&state.node.name, state.now(), lease).await {
                Ok(id) => {
                    tracing::error!(new_node = id.0, "this node's lease had expired (stalled?); registered again");
                    state.node.id.store(id.0, Ordering::Relaxed);
                }
                Err(e) => tracing::error!(error = %e, "lease lost and cannot register again; retrying"),
            },
            Err(e) => tracing::warn!(error = %e, "could not renew this node's lease; retrying"),
        }
        reclaim(&state).await;
    }
}
