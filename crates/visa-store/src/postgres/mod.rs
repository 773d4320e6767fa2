//! The PostgreSQL backend, for many nodes on one database: an `Engine` for the shared SQL
//! over a bounded pool of connections. Work runs on the blocking thread pool, one
//! transaction per call: money-path work at READ COMMITTED (it locks what it reads, see
//! `crate::sql::money`), control-plane work at SERIALIZABLE, run again when PostgreSQL
//! reports a serialization failure or a deadlock. `synchronous_commit` is on, so an answer
//! means committed on the primary.
//!
//! A database that cannot be reached, a pool with no connection free in time, a connection
//! that broke: `Unavailable` (503, retryable). A broken connection is dropped and the next
//! call opens a new one, so a node recovers by itself when the database returns.
//!
//! Many nodes must not hold each other up: every session bounds its idle transactions, lock
//! waits and statements (`pool`), a COMMIT whose answer is lost is resolved before anyone is
//! answered (`transaction`), one account's calls hold at most a few connections (`accounts`),
//! and the node's lease has a connection of its own.

mod accounts;
mod batcher;
mod db;
mod listener;
mod pipeline;
mod pool;
mod schema;
mod tls;
mod transaction;

pub use tls::{Target, TlsMode};

use crate::metrics::StoreMetrics;
use crate::sql::money::batch::{Done, Step};
use crate::sql::{Db, Engine, Isolation, SqlStore};
use crate::{Durability, StoreError, StoreResult};
use async_trait::async_trait;
use db::{Conn, PgDb};
use pool::Pool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The store over PostgreSQL: the shared SQL on this engine.
pub type PostgresStore = SqlStore<PgEngine>;

/// Connections one node keeps open at most (its share of the server's `max_connections`).
pub const DEFAULT_POOL_SIZE: usize = 16;
/// How long a call waits for a pooled connection before it answers unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

pub struct PgEngine {
    pool: Arc<Pool>,
    /// The node's lease runs on a connection of its own, outside the pool's permits.
    lease: Arc<Mutex<Option<Conn>>>,
    auth_changes: Arc<tokio::sync::Notify>,
    permits: Arc<tokio::sync::Semaphore>,
    accounts: accounts::AccountLimits,
    /// The money path's group-committing writers (their connections are outside `permits`).
    batcher: batcher::Batcher,
    metrics: StoreMetrics,
}

/// How many money writers a pool of `pool_size` connections gives: two (one below 8). Fewer
/// writers make bigger batches, and a batch's cost is mostly per batch (bench/README.md: four
/// writers spent twice the database CPU per call of one or two when the load spread over many
/// accounts); two let one account's batch commit while another account's runs.
fn money_writers(pool_size: usize) -> usize {
    if pool_size < 8 { 1 } else { 2 }
}

impl PgEngine {
    /// Connects to the database at `url` and brings its schema up to date (once, whichever
    /// node gets there first). Blocks: call it outside an async context, or on a side thread.
    pub fn open(url: &str, pool_size: usize) -> StoreResult<Self> {
        let pool = Pool::new(url)?;
        pool.unbounded(|conn| schema::migrate(&mut conn.client))?;
        let pool = Arc::new(pool);
        let auth_changes = Arc::new(tokio::sync::Notify::new());
        listener::spawn(Arc::downgrade(&pool), auth_changes.clone());
        let pool_size = pool_size.max(2);
        let writers = money_writers(pool_size);
        let metrics = StoreMetrics::default();
        Ok(Self {
            batcher: batcher::Batcher::start(pool.clone(), writers, metrics.clone()),
            pool,
            lease: Arc::default(),
            auth_changes,
            permits: Arc::new(tokio::sync::Semaphore::new(pool_size - writers)),
            accounts: accounts::AccountLimits::new(pool_size),
            metrics,
        })
    }

    /// `ledger verify` without a server: one REPEATABLE READ, READ ONLY transaction (one
    /// snapshot), no migrations. Blocks, like `open`.
    pub fn verify_offline(url: &str) -> StoreResult<Vec<String>> {
        Pool::new(url)?.unbounded(|conn| transaction::snapshot(conn, |db| crate::sql::money::read::verify(db)))
    }

    /// Runs `work` on a pooled connection on the blocking pool, waiting at most
    /// `ACQUIRE_TIMEOUT` for one to come free.
    async fn run<R, F>(&self, work: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&Pool, &mut Conn) -> StoreResult<R> + Send + 'static,
    {
        let permit = tokio::time::timeout(ACQUIRE_TIMEOUT, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| StoreError::Unavailable("no database connection came free in time".into()))?
            .map_err(|_| StoreError::Unavailable("the connection pool is closed".into()))?;
        let pool = self.pool.clone();
        blocking(move || {
            let _permit = permit;
            pool.with_conn(|conn| work(&pool, conn))
        })
        .await
    }
}

impl Drop for PgEngine {
    /// The lease's connection closes on a thread of its own, like the pool's (`Pool::drop`).
    fn drop(&mut self) {
        if let Some(conn) = self.lease.lock().unwrap_or_else(|e| e.into_inner()).take() {
            std::thread::spawn(move || drop(conn));
        }
    }
}

/// Runs `work` on the blocking pool. A task that died (a panic in the driver) may have left
/// its transaction in doubt: `Unavailable`, so the caller cleans up as after any outage.
async fn blocking<R: Send + 'static>(work: impl FnOnce() -> StoreResult<R> + Send + 'static) -> StoreResult<R> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| StoreError::Unavailable("a database task failed; its outcome is unknown".into()))?
}

#[async_trait]
impl Engine for PgEngine {
    async fn write<R, F>(&self, isolation: Isolation, work: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: Fn(&dyn Db) -> StoreResult<R> + Send + Sync + 'static,
    {
        let metrics = self.metrics.clone();
        self.run(move |pool, conn| transaction::run(pool, conn, isolation, &work, &metrics)).await
    }

    async fn write_committed<R, F>(&self, isolation: Isolation, work: F) -> StoreResult<(R, Durability)>
    where
        R: Send + 'static,
        F: Fn(&dyn Db) -> StoreResult<R> + Send + Sync + 'static,
    {
        // With synchronous_commit on, committed is durable.
        Ok((self.write(isolation, work).await?, Durability::done()))
    }

    async fn write_for_account<R, F>(&self, account: crate::model::AccountId, work: F) -> StoreResult<(R, Durability)>
    where
        R: Send + 'static,
        F: Fn(&dyn Db) -> StoreResult<R> + Send + Sync + 'static,
    {
        let _turn = self.accounts.acquire(account.get(), ACQUIRE_TIMEOUT).await?;
        self.write_committed(Isolation::Locking, work).await
    }

    async fn write_money(&self, step: Step) -> StoreResult<(Done, Durability)> {
        match self.batcher.submit(step).await? {
            batcher::Answer::Done(done) => Ok((done?, Durability::done())),
            batcher::Answer::Alone(step) => crate::sql::write_alone(self, step).await,
        }
    }

    async fn write_lease<R, F>(&self, work: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: Fn(&dyn Db) -> StoreResult<R> + Send + Sync + 'static,
    {
        let (pool, lease, metrics) = (self.pool.clone(), self.lease.clone(), self.metrics.clone());
        blocking(move || {
            let mut slot = lease.lock().unwrap_or_else(|e| e.into_inner());
            let conn = match slot.take() {
                Some(conn) if !conn.client.is_closed() => slot.insert(conn),
                _ => slot.insert(pool.connect()?),
            };
            let result = transaction::run(&pool, conn, Isolation::Locking, &work, &metrics);
            if conn.client.is_closed() {
                *slot = None;
            }
            result
        })
        .await
    }

    async fn read<R, F>(&self, work: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&dyn Db) -> StoreResult<R> + Send + 'static,
    {
        self.run(move |_, conn| work(&PgDb::new(conn))).await
    }

    async fn snapshot<R, F>(&self, work: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&dyn Db) -> StoreResult<R> + Send + 'static,
    {
        self.run(move |_, conn| transaction::snapshot(conn, work)).await
    }

    fn metrics(&self) -> &StoreMetrics {
        &self.metrics
    }

    fn auth_change_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.auth_changes.clone())
    }

    async fn ready(&self) -> StoreResult<()> {
        self.run(|_, conn| conn.client.batch_execute("SELECT 1").map_err(map_pg_error)).await
    }
}

/// PostgreSQL's errors as the store's: conflicts a retry may cure and a database out of
/// reach are `Unavailable`; integrity violations are `Conflict`; the rest `Internal`.
pub(crate) fn map_pg_error(e: postgres::Error) -> StoreError {
    let Some(code) = e.code() else {
        // No SQLSTATE: the connection closed or could not be opened (an outage), or a value
        // did not bind or read (a bug or a corrupt row).
        let text = e.to_string();
        let outage = e.is_closed()
            || std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>())
            || text.starts_with("error connecting")
            || text.contains("timeout");
        return if outage { StoreError::Unavailable(text) } else { StoreError::Internal(text) };
    };
    let class = &code.code()[..2];
    let message = e.as_db_error().map_or_else(|| e.to_string(), |db| db.message().to_owned());
    match class {
        // Transaction rollback, connection exception, insufficient resources, operator
        // intervention (admin shutdown, crash recovery), system error.
        "40" | "08" | "53" | "57" | "58" => StoreError::Unavailable(message),
        "23" => StoreError::Conflict(message),
        // lock_timeout: the lock is held elsewhere; retrying may succeed.
        "55" if code.code() == "55P03" => StoreError::Unavailable(message),
        // The session was ended for sitting idle in a transaction (this node stalled).
        "25" if code.code() == "25P03" => StoreError::Unavailable(message),
        _ => StoreError::Internal(message),
    }
}

/// A fresh, empty database for one test on the server `admin_url` names (a role that may
/// create databases); the new database's URL. Blocks, like `PgEngine::open`.
pub fn create_test_database(admin_url: &str) -> StoreResult<String> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
    let serial = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("visa_test_{}_{serial}_{nanos}", std::process::id());
    Pool::new(admin_url)?
        .with_conn(|conn| conn.client.batch_execute(&format!("CREATE DATABASE {name}")).map_err(map_pg_error))?;
    Ok(with_database(admin_url, &name))
}

/// `url` naming the database `name` instead of its own.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..].find('/').map_or(base.len(), |i| i + authority);
    format!("{}/{name}{}", &base[..path], query.map(|q| format!("?{q}")).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_test_database_is_named_in_the_admin_url() {
        let url = super::with_database("postgres://pg:pw@127.0.0.1:5432/postgres?sslmode=disable", "t1");
        assert_eq!(url, "postgres://pg:pw@127.0.0.1:5432/t1?sslmode=disable");
        assert_eq!(super::with_database("postgres://h", "t2"), "postgres://h/t2");
    }

    #[test]
    fn a_url_is_shown_without_its_password() {
        assert_eq!(crate::redacted("postgres://visa:hunter2@db:5432/visa"), "postgres://visa:***@db:5432/visa");
        assert_eq!(crate::redacted("postgres://visa@db/visa"), "postgres://visa@db/visa");
    }
}
