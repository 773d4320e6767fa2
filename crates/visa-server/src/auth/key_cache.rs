//! Tool keys by secret hash, cached in memory so that authenticating a request is a hash
//! and a map lookup. Every change this node makes to a key (update, revoke, rotate) or to an
//! account's approval invalidates at once; entries also expire after `ttl`, which bounds how
//! long a change made elsewhere can go unseen.
//!
//! A cache miss reads the store and then inserts; an invalidation landing between the two
//! would be undone by the insert of the older read. So every invalidation bumps a generation,
//! a miss notes the generation before it reads, and its insert is dropped if it changed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use visa_core::secret::SecretHash;
use visa_store::AuthRecord;

/// Stale entries are swept when the map reaches this size.
const PRUNE_AT: usize = 4096;

pub struct KeyCache {
    entries: RwLock<HashMap<SecretHash, (Arc<AuthRecord>, Instant)>>,
    ttl: Duration,
    generation: AtomicU64,
}

impl KeyCache {
    pub fn new(ttl: Duration) -> Self {
        Self { entries: RwLock::default(), ttl, generation: AtomicU64::new(0) }
    }

    pub fn get(&self, hash: &SecretHash) -> Option<Arc<AuthRecord>> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.get(hash).filter(|(_, loaded)| loaded.elapsed() < self.ttl).map(|(record, _)| record.clone())
    }

    /// Note it before reading the store for a miss, and pass it to `insert`.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Caches a record read when the cache was at `generation`; dropped if an invalidation
    /// has happened since (the record may predate it).
    pub fn insert(&self, hash: SecretHash, record: Arc<AuthRecord>, generation: u64) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        if entries.len() >= PRUNE_AT {
            entries.retain(|_, (_, loaded)| loaded.elapsed() < self.ttl);
        }
        entries.insert(hash, (record, Instant::now()));
    }

    /// Forgets every secret of a key.
    pub fn invalidate_key(&self, key_id: i64) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.retain(|_, (record, _)| record.key.id != key_id);
    }

    /// Forgets every key of an account (its approval changed).
    pub fn invalidate_account(&self, account_id: i64) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.retain(|_, (record, _)| record.key.account_id != account_id);
    }
}
