//! The paid calls this process is running, by execution id: a call is tracked from just before
//! its hold is placed until its outcome is recorded (in the request, in a task of its own once
//! its client hung up, or in a background retry while the store is away).
//!
//! Two promises rest on it:
//! - **Shutdown drains every call** (`Server::shutdown`): after the last connection closes, the
//!   server waits until nothing is tracked, bounded by the longest tool timeout, so a rolling
//!   restart hands no call whose client hung up to an operator.
//! - **Nothing is stranded by a bug**: a call whose task ended without recording its outcome (a
//!   panic while settling) is no longer tracked while its row still says `running`; the node's
//!   sweep (`sweep_untracked`) voids such calls, freeing their hold and Idempotency-Key.

use crate::clock::Clock;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use visa_store::{NodeId, Store};

/// How old a running call must be before the sweep looks at it (a call is tracked before its
/// hold exists, so this is only a margin, not what makes the sweep safe).
const SWEEP_MIN_AGE: time::Duration = time::Duration::seconds(5);
/// The most calls one sweep ends.
const SWEEP_BATCH: u32 = 100;

/// The ids of the calls in flight; receivers wake on every change (only shutdown waits).
#[derive(Clone)]
pub struct InFlight(Arc<watch::Sender<HashSet<String>>>);

impl Default for InFlight {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(HashSet::new())))
    }
}

/// One tracked call; dropping it (the outcome recorded, or its task gone) ends the tracking.
pub struct Tracked {
    calls: InFlight,
    id: String,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.calls.0.send_modify(|calls| {
            calls.remove(&self.id);
        });
    }
}

impl InFlight {
    /// Tracks the call `public_id` until the returned guard is dropped.
    pub fn track(&self, public_id: &str) -> Tracked {
        self.0.send_modify(|calls| {
            calls.insert(public_id.to_owned());
        });
        Tracked { calls: self.clone(), id: public_id.to_owned() }
    }

    pub fn contains(&self, public_id: &str) -> bool {
        self.0.borrow().contains(public_id)
    }

    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until no call is in flight, or `limit` passed; how many are still running then.
    pub async fn drained(&self, limit: Duration) -> usize {
        let mut changes = self.0.subscribe();
        let _ = tokio::time::timeout(limit, changes.wait_for(HashSet::is_empty)).await;
        self.len()
    }
}

/// Voids this node's running calls that no task of this process tracks any more (see the
/// module's doc). The abandon is conditional on the call still running, so a call settled
/// between the read and the check is left as it is. Returns how many it ended.
pub async fn sweep_untracked(store: &dyn Store, node: NodeId, calls: &InFlight, clock: &Clock) -> usize {
    let before = clock.now() - SWEEP_MIN_AGE;
    let running = match store.running_on_node(node, before, SWEEP_BATCH).await {
        Ok(running) => running,
        Err(e) => {
            tracing::warn!(error = %e, "could not list this node's running calls; retrying at the next sweep");
            return 0;
        }
    };
    let mut ended = 0;
    for public_id in running.iter().filter(|id| !calls.contains(id)) {
        match store.abandon_execution(public_id, clock.now()).await {
            Ok(true) => {
                ended += 1;
                tracing::error!(
                    execution = %public_id,
                    "a call ended without recording its outcome (a bug, logged above); its hold is voided and its \
                     Idempotency-Key freed"
                );
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(execution = %public_id, error = %e, "could not end a stranded call; retrying"),
        }
    }
    ended
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_call_is_tracked_until_its_guard_drops_and_shutdown_waits_for_it() {
        let calls = InFlight::default();
        let guard = calls.track("exec-1");
        assert!(calls.contains("exec-1") && !calls.contains("exec-2"));
        assert_eq!(calls.drained(Duration::from_millis(20)).await, 1, "bounded: it gives up");
        let waiting = tokio::spawn({
            let calls = calls.clone();
            async move { calls.drained(Duration::from_secs(5)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(guard);
        assert_eq!(waiting.await.unwrap(), 0);
        assert!(!calls.contains("exec-1") && calls.is_empty());
    }
}
