//! Last-used time and IP of keys and secrets, coalesced in memory and flushed to the store
//! once a second (and at shutdown), so that a request does not cost a database write.

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
