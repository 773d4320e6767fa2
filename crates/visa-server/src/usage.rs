//! What keys are used for, coalesced in memory and flushed to the store once a second (and at
//! shutdown), so that a request does not cost a database write: the last-used time and IP of
//! keys and secrets, and request counts per secret and minute.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use time::OffsetDateTime;
use visa_store::{KeyUse, Store};

#[derive(Default)]
pub struct LastUsed {
    pending: Mutex<HashMap<i64, KeyUse>>,
}

impl LastUsed {
    /// Notes a use; only the newest per secret survives until the next flush.
    pub fn record(&self, key_id: i64, secret_id: i64, at: OffsetDateTime, ip: IpAddr) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.insert(secret_id, KeyUse { key_id, secret_id, at, ip });
    }

    /// Writes what accumulated since the last flush in one store call.
    pub async fn flush(&self, store: &dyn Store) {
        let batch: Vec<KeyUse> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.drain().map(|(_, u)| u).collect()
        };
        if let Err(e) = store.record_key_use(batch).await {
            tracing::warn!(error = %e, "could not record key last-used times");
        }
    }
}

/// Request counts per key secret and UTC minute, coalesced in memory and flushed with the
/// last-used times, so counting a request costs no database write.
#[derive(Default)]
pub struct RequestCounts {
    pending: Mutex<HashMap<(i64, i64), visa_store::UsageCount>>,
}

impl RequestCounts {
    /// Counts one authenticated request: a success, or an error by its `error_code`.
    pub fn record(&self, key_id: i64, secret_id: i64, at: OffsetDateTime, error_code: Option<&str>) {
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

    pub async fn flush(&self, store: &dyn Store) {
        let batch: Vec<_> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.drain().map(|(_, c)| c).collect()
        };
        if let Err(e) = store.record_usage(batch).await {
            tracing::warn!(error = %e, "could not record key usage counts");
        }
    }
}
