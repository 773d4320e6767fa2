//! What a SQL backend provides to the shared store: transactions that run the shared SQL
//! (`Db`), readiness and metrics. Write work is `Fn`: a backend may run it again (SQLite after
//! a batch rolls back, PostgreSQL after a serialization failure) and it answers the same.

use super::Db;
use super::money::batch::{Done, Step};
use crate::metrics::StoreMetrics;
use crate::{Durability, StoreResult};
use async_trait::async_trait;
use std::sync::Arc;
use tokio::sync::Notify;

/// How a write transaction is kept from racing others where writers run concurrently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// The work takes the row locks it needs before it reads (the money path, whose every
    /// write is an increment or a guarded update): READ COMMITTED.
    Locking,
    /// Anything else (control-plane changes that read, decide and write): SERIALIZABLE,
    /// retried when the database reports a conflict.
    Serializable,
    /// A change to what authentication reads (it moves the one `auth_version` counter):
    /// SERIALIZABLE, after waiting its turn behind every other such change, so that concurrent
    /// changes queue instead of failing on the counter.
    CredentialChange,
}

#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// Runs `work` in one write transaction; answers once the commit is durable.
    async fn write<R, F>(&self, isolation: Isolation, work: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: Fn(&dyn Db) -> StoreResult<R> + Send + Sync + 'static;
    /// A money-path write (`Isolation::Locking`) for `account`. A backend whose writers run
    /// concurrently bounds how many connections one account's calls may hold, so calls that
    /// queue on one account's row locks cannot take the connections every other account needs.
    async fn write_for_account<R, F>(&self, account: crate::model::AccountId, work: F) -> StoreResult<(R, Durability)>
    where
        R: Send + 'static,
        F: Fn(&dyn Db) -> StoreResult<R> + Send + Sync + 'static,
    {
        let _ = account;
        self.write_committed(Isolation::Locking, work).await
    }
    /// A money-path step (a hold or its end). A backend whose writers run concurrently may run
    /// the steps that arrive together in one transaction (`money::batch`); alone, a step is a
    /// `write_for_account`.
    async fn write_money(&self, step: Step) -> StoreResult<(Done, Durability)> {
        write_alone(self, step).await
    }
    /// The node's lease (register, renew, release, reclaim, and the clock it is kept by), at
    /// `Isolation::Locking`. A backend with a pool keeps a connection for it, so a node whose
    /// calls hold every pooled connection still renews its lease.
    async fn write_lease<R, F>(&self, work: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: Fn(&dyn Db) -> StoreResult<R> + Send + Sync + 'static,
    {
        self.write(Isolation::Locking, work).await
    }
    /// Like `write`, but answers as soon as the transaction commits (visible to every later
    /// one), with what resolves once it is durable.
    async fn write_committed<R, F>(&self, isolation: Isolation, work: F) -> StoreResult<(R, Durability)>
    where
        R: Send + 'static,
        F: Fn(&dyn Db) -> StoreResult<R> + Send + Sync + 'static;
    /// Runs `work` on a reader; each statement sees what committed before it.
    async fn read<R, F>(&self, work: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&dyn Db) -> StoreResult<R> + Send + 'static;
    /// Runs `work` in one read-only transaction: every statement sees the same snapshot.
    async fn snapshot<R, F>(&self, work: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&dyn Db) -> StoreResult<R> + Send + 'static;
    fn metrics(&self) -> &StoreMetrics;
    /// Woken when another node may have changed what authentication reads, where the backend
    /// can tell (PostgreSQL's LISTEN); `None` where polling `auth_version` is the only way.
    fn auth_change_signal(&self) -> Option<Arc<Notify>> {
        None
    }
    /// `Unavailable` when the engine cannot take writes.
    async fn ready(&self) -> StoreResult<()>;
}

/// A money-path step in a transaction of its own, by the per-call path: what `write_money` does
/// where nothing batches, and what a batching backend does with a step its batch handed back.
pub(crate) async fn write_alone<E: Engine + ?Sized>(engine: &E, step: Step) -> StoreResult<(Done, Durability)> {
    engine.write_for_account(step.account(), move |db| step.run_alone(db)).await
}
