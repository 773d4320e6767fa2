//! The one store of every SQL backend, `SqlStore`: the shared SQL over the backend's `Engine`,
//! and the kinds of transaction an operation runs in (`write`, `write_credentials`,
//! `write_locking`, `read`). Each resource's operations are a trait declared and implemented
//! beside its SQL (`super::keys::KeyStore`, …); here only what concerns the whole store.

use super::{Db, Engine, Isolation, auth_version, mcp_sessions, members, money, oauth, sessions, usage, webhooks};
use crate::model::*;
use crate::{Store, StoreResult};
use async_trait::async_trait;
use std::sync::Arc;

/// The store of every SQL backend: the shared SQL over the backend's `Engine`.
pub struct SqlStore<E> {
    pub(crate) engine: E,
}

impl<E: Engine> SqlStore<E> {
    pub fn new(engine: E) -> Self {
        Self { engine }
    }

    /// A control-plane change (read, decide, write).
    pub(crate) async fn write<R, F>(&self, work: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: Fn(&dyn Db) -> StoreResult<R> + Send + Sync + 'static,
    {
        self.engine.write(Isolation::Serializable, work).await
    }

    /// A change to keys or to what authentication reads: they queue, cluster-wide, for their turn.
    pub(crate) async fn write_credentials<R, F>(&self, work: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: Fn(&dyn Db) -> StoreResult<R> + Send + Sync + 'static,
    {
        self.engine.write(Isolation::CredentialChange, work).await
    }

    /// A money-path change: it locks what it reads (see `money`).
    pub(crate) async fn write_locking<R, F>(&self, work: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: Fn(&dyn Db) -> StoreResult<R> + Send + Sync + 'static,
    {
        self.engine.write(Isolation::Locking, work).await
    }

    pub(crate) async fn read<R, F>(&self, work: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&dyn Db) -> StoreResult<R> + Send + 'static,
    {
        self.engine.read(work).await
    }
}

#[async_trait]
impl<E: Engine> Store for SqlStore<E> {
    async fn auth_version(&self) -> StoreResult<i64> {
        self.read(auth_version::current).await
    }

    fn auth_change_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        self.engine.auth_change_signal()
    }

    fn metrics(&self) -> &crate::metrics::StoreMetrics {
        self.engine.metrics()
    }

    async fn verify_ledger(&self) -> StoreResult<Vec<String>> {
        self.engine.snapshot(|conn| money::read::verify(conn)).await
    }

    async fn ready(&self) -> StoreResult<()> {
        self.engine.ready().await
    }

    async fn sweep_expired(&self, now: Timestamp, retention: Retention, limit: u32) -> StoreResult<u64> {
        let minute = move |age: time::Duration| (now - age).unix_timestamp().div_euclid(60);
        self.write(move |conn| {
            let expired = money::retention::sweep_expired(conn, now, now - retention.operator_requests, limit)?;
            let logins = sessions::sweep(conn, now, limit)?
                .max(members::sweep_invitations(conn, now, limit)?)
                .max(mcp_sessions::sweep(conn, now, limit)?)
                .max(oauth::sweep(conn, now, limit)?)
                .max(webhooks::sweep(conn, now - retention.webhook_log, limit)?) as u64;
            let hours = usage::roll_up(conn, minute(retention.usage_minutes), usage::Bucket::Hour, limit)?;
            let days = usage::roll_up(conn, minute(retention.usage_hours), usage::Bucket::Day, limit)?;
            Ok(expired.max(logins).max(hours).max(days))
        })
        .await
    }
}
