//! The delivery loop: every half second, each node leases the deliveries that are due
//! (`WebhookStore::claim_webhook_deliveries`: one node per delivery at a time), attempts them
//! (`client`), and records each attempt with what follows it. A node that dies mid-attempt
//! leaves its lease to run out; any node then takes the delivery again (at least once: the
//! `webhook-id` lets the receiver drop a duplicate).

use crate::state::{AppState, SharedState};
use std::time::Duration;
use tokio::sync::watch;

/// How often a node looks for due deliveries.
const POLL: Duration = Duration::from_millis(500);
/// Deliveries leased at once.
const BATCH: u32 = 16;
/// How long a lease lasts: longer than an attempt can take.
const LEASE: Duration = Duration::from_secs(60);

/// Delivers what is due, every `POLL`, until stopped.
pub async fn run(state: SharedState, mut stopped: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = stopped.changed() => return,
        }
        deliver_due(&state).await;
    }
}

/// Leases and attempts due deliveries until none is left.
pub async fn deliver_due(state: &AppState) {
    loop {
        let now = state.now();
        let lease_until = now + LEASE;
        let due = match state.store.claim_webhook_deliveries(state.node.id(), now, lease_until, BATCH).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "webhook deliveries could not be leased; retrying");
                return;
            }
        };
        if due.is_empty() {
            return;
        }
        futures::future::join_all(due.iter().map(|delivery| async move {
            let (log, next) = state.webhooks.attempt(delivery, now).await;
            tracing::info!(event = %delivery.event_id, endpoint = %delivery.endpoint.id, status = ?log.status, ?next, "webhook attempt");
            if let Err(e) = state.store.record_webhook_attempt(delivery, log, next, state.now()).await {
                tracing::warn!(error = %e, event = %delivery.event_id, "a webhook attempt could not be recorded; its lease will hand it on");
            }
        }))
        .await;
    }
}
