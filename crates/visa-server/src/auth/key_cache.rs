//! Tool keys by secret hash, cached in memory so that authenticating a request is a hash
//! and a map lookup. Every change this node makes to a key (update, revoke, rotate) or to an
//! account's approval invalidates at once. Changes made by another node sharing the database
//! reach this one through the store's `auth_version` counter: `follow_changes` reads it
//! whenever the store signals a change (PostgreSQL LISTEN/NOTIFY) and every `POLL` anyway,
//! and forgets everything when it moved. The cache answers only while its last check began
//! less than `FRESHNESS` ago, so a change committed anywhere is seen within `FRESHNESS` even
//! when notifications are lost or the database is unreachable. Entries also expire after `ttl`.
//!
//! A cache miss reads the store and then inserts; an invalidation landing between the two
//! would be undone by the insert of the older read. So every invalidation bumps a generation,
//! a miss notes the generation before it reads, and its insert is dropped if it changed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use visa_core::secret::SecretHash;
use visa_store::{AccountId, AuthRecord, KeyId, Store};

/// Stale entries are swept when the map reaches this size.
const PRUNE_AT: usize = 4096;
/// The longest a change committed by another node can go unseen.
pub const FRESHNESS: Duration = Duration::from_secs(1);
/// How often `auth_version` is read when no notification came.
const POLL: Duration = Duration::from_millis(300);

pub struct KeyCache {
    entries: RwLock<HashMap<SecretHash, (Arc<AuthRecord>, Instant)>>,
    ttl: Duration,
    generation: AtomicU64,
    /// The store's `auth_version` at the last check (only the watcher touches it).
    version: Mutex<Option<i64>>,
    /// When the last check began, in nanoseconds after `base` (`NEVER` before the first), so
    /// that `get` reads it without a lock.
    checked_at: AtomicI64,
    base: Instant,
}

impl KeyCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            entries: RwLock::default(),
            ttl,
            generation: AtomicU64::new(0),
            version: Mutex::default(),
            checked_at: AtomicI64::new(NEVER),
            base: Instant::now(),
        }
    }

    pub fn get(&self, hash: &SecretHash) -> Option<Arc<AuthRecord>> {
        if !self.fresh() {
            return None;
        }
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.get(hash).filter(|(_, loaded)| loaded.elapsed() < self.ttl).map(|(record, _)| record.clone())
    }

    fn fresh(&self) -> bool {
        let since_check = nanos(self.base.elapsed()).saturating_sub(self.checked_at.load(Ordering::Acquire));
        since_check < nanos(FRESHNESS)
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
    pub fn invalidate_key(&self, key_id: KeyId) {
        self.forget(|record| record.key.id == key_id);
    }

    /// Forgets every key of an account (its approval changed).
    pub fn invalidate_account(&self, account_id: AccountId) {
        self.forget(|record| record.key.account_id == account_id);
    }

    fn forget(&self, stale: impl Fn(&AuthRecord) -> bool) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.retain(|_, (record, _)| !stale(record));
    }

    /// Records a read of the store's `auth_version` that began at `began`: when it moved since
    /// the last check, everything cached may be stale and is forgotten.
    pub fn checked(&self, version: i64, began: Instant) {
        let mut last = self.version.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|last| last != version) {
            self.forget(|_| true);
        }
        *last = Some(version);
        let at = match began.checked_duration_since(self.base) {
            Some(after) => nanos(after),
            None => -nanos(self.base.duration_since(began)),
        };
        self.checked_at.store(at, Ordering::Release);
    }
}

/// `checked_at` before any check: far enough back never to be fresh.
const NEVER: i64 = i64::MIN / 2;

/// Exact (no rounding could make a check look more recent than it was) for 146 years.
fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX / 2)
}

/// Reads the store's `auth_version` when it signals a change and every `POLL`, until stopped.
pub async fn follow_changes(store: &dyn Store, keys: &KeyCache, mut stopped: watch::Receiver<bool>) {
    let signal = store.auth_change_signal();
    loop {
        let began = Instant::now();
        match store.auth_version().await {
            Ok(version) => keys.checked(version, began),
            Err(e) => tracing::debug!(error = %e, "cannot read auth_version; cached keys are not used meanwhile"),
        }
        let changed = async {
            match &signal {
                Some(signal) => signal.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
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
            idempotency_optional: false,
            cap_alert_percent: 80,
            end_user_required: false,
            end_user_caps: Default::default(),
        };
        let now = time::OffsetDateTime::now_utc();
        let key = KeyRecord {
            id: KeyId::new(key_id),
            account_id: AccountId::new(1),
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
        Arc::new(AuthRecord {
            key,
            secret_id: visa_store::SecretId::new(1),
            secret_hash: SecretHash([7; 32]),
            account_approved: true,
            oauth_resource: None,
        })
    }

    /// A miss reads the store, an invalidation lands, then the miss inserts what it read: the
    /// stale record must not be cached.
    #[test]
    fn an_invalidation_during_a_miss_wins_over_its_insert() {
        let cache = KeyCache::new(Duration::from_secs(60));
        cache.checked(0, Instant::now());
        let hash = SecretHash([7; 32]);
        let before_read = cache.generation();
        cache.invalidate_key(KeyId::new(1));
        cache.insert(hash, record(1), before_read);
        assert!(cache.get(&hash).is_none(), "the stale read was dropped");
        cache.insert(hash, record(1), cache.generation());
        assert!(cache.get(&hash).is_some(), "a read after the invalidation is cached");
    }

    #[test]
    fn nothing_is_answered_before_a_check_or_once_the_last_check_is_old() {
        let cache = KeyCache::new(Duration::from_secs(60));
        let hash = SecretHash([7; 32]);
        cache.insert(hash, record(1), cache.generation());
        assert!(cache.get(&hash).is_none(), "no check yet: the store is read");
        cache.checked(3, Instant::now() - FRESHNESS);
        assert!(cache.get(&hash).is_none(), "the last check is too old");
        cache.checked(3, Instant::now());
        assert!(cache.get(&hash).is_some(), "a recent check with no change keeps the entry");
        cache.checked(4, Instant::now());
        assert!(cache.get(&hash).is_none(), "a moved auth_version forgets everything");
    }
}
