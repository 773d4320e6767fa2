//! What a server does besides answering requests, each loop until the server stops: renewing
//! its node lease (and reclaiming dead nodes' calls), following key changes into the cache,
//! the retention sweep (with the sweep of untracked calls), delivering webhooks, and flushing
//! last-used times and usage counts. `start` spawns them; the loops themselves live with what they keep.

use crate::state::SharedState;
use crate::{auth, in_flight, lease};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const LAST_USED_FLUSH: Duration = Duration::from_secs(1);

/// Spawns the background work of a server on `state`; the lease's keeper (which gives the
/// lease up once `lease_stopped` says every call has drained) is returned to be awaited.
pub fn start(
    state: &SharedState,
    sweep_interval: Duration,
    stopped: &watch::Receiver<bool>,
    lease_stopped: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(sweep_retention(state.clone(), sweep_interval, stopped.clone()));
    tokio::spawn(crate::webhooks::deliver::run(state.clone(), stopped.clone()));
    let (cache, stopped) = (state.clone(), stopped.clone());
    tokio::spawn(async move { auth::key_cache::follow_changes(cache.store.as_ref(), &cache.keys, stopped).await });
    let state = state.clone();
    tokio::spawn(async move { lease::keep(&state.node, state.store.as_ref(), &state.clock, lease_stopped).await })
}

/// Flushes last-used times and usage counts every `LAST_USED_FLUSH`, until stopped.
pub async fn flush_last_used(state: SharedState, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(LAST_USED_FLUSH);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.changed() => return,
        }
        flush_usage(&state).await;
    }
}

/// Rows one retention transaction may delete, so the writer is never held for long.
const SWEEP_BATCH: u32 = 1_000;

/// Retention: every `interval`, deletes in bounded batches what the Idempotency-Key window no
/// longer keeps and rolls old usage up (docs/money.md, "Retention"), until nothing more is due;
/// ends this node's running calls that no task tracks any more (`in_flight`); and announces
/// the keys a week or a day from expiry (`key.expiring`) and old secrets whose rotation grace
/// ended (`key.revoked`, reason `secret_ended`).
async fn sweep_retention(state: SharedState, interval: Duration, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.changed() => return,
        }
        in_flight::sweep_untracked(state.store.as_ref(), state.node.id(), &state.in_flight, &state.clock).await;
        if let Err(e) = state.store.announce_key_events(state.now(), SWEEP_BATCH).await {
            tracing::warn!(error = %e, "keys about to expire or ended secrets could not be announced; retrying at the next tick");
        }
        loop {
            match state.store.sweep_expired(state.now(), state.retention, SWEEP_BATCH).await {
                Ok(swept) if swept >= u64::from(SWEEP_BATCH) => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "retention sweep failed; retrying at the next tick");
                    break;
                }
            }
        }
    }
}

/// Writes the last-used times and usage counts gathered since the last flush.
pub async fn flush_usage(state: &SharedState) {
    state.last_used.flush(state.store.as_ref()).await;
    state.request_counts.flush(state.store.as_ref()).await;
}
