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

#[cfg(test)]
mod tests {
    use super::*;
    use visa_store::{KeyPolicy, KeyRecord};

    fn record(key_id: i64) -> Arc<AuthRecord> {
        let policy = KeyPolicy {
            label: visa_core::policy::KeyLabel::parse("k").unwrap(),
            grant: visa_core::policy::ToolGrant::new(None, None).unwrap(),
            allowed_cidrs: Default::default(),
            daily_cap_cents: 1,
            total_cap_cents: None,
            expires_at: None,
            read_only: false,
            rate_limit_per_second: 1,
        };
        let now = time::OffsetDateTime::now_utc();
        let key = KeyRecord {
            id: key_id,
            account_id: 1,
            owner: "o".into(),
            environment: visa_core::key::Environment::Production,
            policy,
            created_at: now,
            revoked_at: None,
            last_used_at: None,
            last_used_ip: None,
            latest_day: 0,
            spent_day: Default::default(),
            held_day: Default::default(),
            spent_total: Default::default(),
            held_total: Default::default(),
            secrets: vec![],
        };
        Arc::new(AuthRecord { key, secret_id: 1, secret_hash: SecretHash([7; 32]), account_approved: true })
    }

    /// A miss reads the store, an invalidation lands, then the miss inserts what it read: the
    /// stale record must not be cached.
    #[test]
    fn an_invalidation_during_a_miss_wins_over_its_insert() {
        let cache = KeyCache::new(Duration::from_secs(60));
        let hash = SecretHash([7; 32]);
        let before_read = cache.generation();
        cache.invalidate_key(1);
        cache.insert(hash, record(1), before_read);
        assert!(cache.get(&hash).is_none(), "the stale read was dropped");
        cache.insert(hash, record(1), cache.generation());
        assert!(cache.get(&hash).is_some(), "a read after the invalidation is cached");
    }
}
