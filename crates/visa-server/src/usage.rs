//! What keys are used for, coalesced in memory and flushed to the store once a second (and at
//! shutdown), so that a request does not cost a database write: the last-used time and IP of
//! keys and secrets, and request counts per secret and minute.
//!
//! A flush the store refuses (a lock held too long, the database away) loses nothing: its batch
//! is merged back into what accumulated meanwhile and goes with the next flush (counts add up;
//! the newest use wins). A flush whose COMMIT landed but whose answer was lost would count its
//! batch twice: request counts are operational figures, not money, and an over-count of one
//! flush in that rare case is preferred to a silent loss in the common one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use time::OffsetDateTime;
use visa_store::{KeyId, KeyUse, SecretId, Store};

#[derive(Default)]
pub struct LastUsed {
    pending: Mutex<HashMap<SecretId, KeyUse>>,
}

impl LastUsed {
    /// Notes a use; only the newest per secret survives until the next flush.
    pub fn record(&self, key_id: KeyId, secret_id: SecretId, at: OffsetDateTime, ip: IpAddr) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.insert(secret_id, KeyUse { key_id, secret_id, at, ip });
    }

    /// Writes what accumulated since the last flush in one store call; a refused batch is
    /// kept for the next flush.
    pub async fn flush(&self, store: &dyn Store) {
        let batch: Vec<KeyUse> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.drain().map(|(_, u)| u).collect()
        };
        if batch.is_empty() {
            return;
        }
        if let Err(e) = store.record_key_use(batch.clone()).await {
            tracing::warn!(error = %e, "could not record key last-used times; kept for the next flush");
            self.merge_back(batch);
        }
    }

    /// Puts a batch back, each use unless a newer one of its secret came meanwhile.
    fn merge_back(&self, batch: Vec<KeyUse>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for used in batch {
            let newer = pending.get(&used.secret_id).is_some_and(|p| p.at >= used.at);
            if !newer {
                pending.insert(used.secret_id, used);
            }
        }
    }
}

/// Request counts per key secret and UTC minute, coalesced in memory and flushed with the
/// last-used times, so counting a request costs no database write.
#[derive(Default)]
pub struct RequestCounts {
    pending: Mutex<HashMap<(SecretId, i64), visa_store::UsageCount>>,
}

impl RequestCounts {
    /// Counts one authenticated request: a success, or an error by its `error_code`.
    pub fn record(&self, key_id: KeyId, secret_id: SecretId, at: OffsetDateTime, error_code: Option<&str>) {
        let minute = at.unix_timestamp().div_euclid(60);
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let count = pending.entry((secret_id, minute)).or_insert_with(|| visa_store::UsageCount {
            key_id,
            secret_id,
            minute,
            ..Default::default()
        });
        count.requests += 1;
        match error_code {
            None => count.successes += 1,
            Some(code) => *count.errors.entry(code.to_owned()).or_default() += 1,
        }
    }

    /// Writes the counts in one store call; a refused batch is kept for the next flush.
    pub async fn flush(&self, store: &dyn Store) {
        let batch: Vec<_> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.drain().map(|(_, c)| c).collect()
        };
        if batch.is_empty() {
            return;
        }
        if let Err(e) = store.record_usage(batch.clone()).await {
            tracing::warn!(error = %e, "could not record key usage counts; kept for the next flush");
            self.merge_back(batch);
        }
    }

    /// Adds a batch back to what accumulated meanwhile (counts are additive).
    fn merge_back(&self, batch: Vec<visa_store::UsageCount>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for kept in batch {
            match pending.entry((kept.secret_id, kept.minute)) {
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(kept);
                }
                std::collections::hash_map::Entry::Occupied(mut slot) => {
                    let count = slot.get_mut();
                    count.requests += kept.requests;
                    count.successes += kept.successes;
                    for (code, n) in kept.errors {
                        *count.errors.entry(code).or_default() += n;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_batch_adds_back_to_what_came_meanwhile() {
        let counts = RequestCounts::default();
        let at = OffsetDateTime::UNIX_EPOCH;
        counts.record(KeyId::new(1), SecretId::new(2), at, None);
        counts.record(KeyId::new(1), SecretId::new(2), at, Some("RATE_LIMITED"));
        let batch: Vec<_> = counts.pending.lock().unwrap().drain().map(|(_, c)| c).collect();
        counts.record(KeyId::new(1), SecretId::new(2), at, None);
        counts.merge_back(batch);
        let merged = counts.pending.lock().unwrap()[&(SecretId::new(2), 0)].clone();
        assert_eq!((merged.requests, merged.successes, merged.errors["RATE_LIMITED"]), (3, 2, 1));

        let used = LastUsed::default();
        let ip = IpAddr::from([127, 0, 0, 1]);
        used.record(KeyId::new(1), SecretId::new(2), at + time::Duration::seconds(5), ip);
        used.merge_back(vec![KeyUse { key_id: KeyId::new(1), secret_id: SecretId::new(2), at, ip }]);
        assert_eq!(
            used.pending.lock().unwrap()[&SecretId::new(2)].at,
            at + time::Duration::seconds(5),
            "the newest use wins"
        );
        used.merge_back(vec![KeyUse { key_id: KeyId::new(1), secret_id: SecretId::new(3), at, ip }]);
        assert!(used.pending.lock().unwrap().contains_key(&SecretId::new(3)));
    }
}
