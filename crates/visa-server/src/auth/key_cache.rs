//! Tool keys by secret hash, cached in memory so that authenticating a request is a hash
//! and a map lookup. Every change this node makes to a key (update, revoke, rotate) or to an
//! account's approval invalidates at once; entries also expire after `ttl`, which bounds how
//! long a change made elsewhere can go unseen.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use visa_core::secret::SecretHash;
use visa_store::AuthRecord;

/// Stale entries are swept when the map reaches this size.
const PRUNE_AT: usize = 4096;

pub struct KeyCache {
    entries: RwLock<HashMap<SecretHash, (Arc<AuthRecord>, Instant)>>,
    ttl: Duration,
}

impl KeyCache {
    pub fn new(ttl: Duration) -> Self {
        Self { entries: RwLock::default(), ttl }
    }

    pub fn get(&self, hash: &SecretHash) -> Option<Arc<AuthRecord>> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.get(hash).filter(|(_, loaded)| loaded.elapsed() < self.ttl).map(|(record, _)| record.clone())
    }

    pub fn insert(&self, hash: SecretHash, record: Arc<AuthRecord>) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= PRUNE_AT {
            entries.retain(|_, (_, loaded)| loaded.elapsed() < self.ttl);
        }
        entries.insert(hash, (record, Instant::now()));
    }

    /// Forgets every secret of a key.
    pub fn invalidate_key(&self, key_id: i64) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, (record, _)| record.key.id != key_id);
    }

    /// Forgets every key of an account (its approval changed).
    pub fn invalidate_account(&self, account_id: i64) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, (record, _)| record.key.account_id != account_id);
    }
}
