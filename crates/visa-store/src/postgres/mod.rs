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

mod db;
mod listener;
mod schema;
mod tls;

pub use tls::{Target, TlsMode};

use crate::metrics::StoreMetrics;
use crate::sql::{Db, Engine, Isolation, SqlStore};
use crate::{Durability, StoreError, StoreResult};
use async_trait::async_trait;
use db::{Conn, PgDb, is_retryable};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The store over PostgreSQL: the shared SQL on this engine.
pub type PostgresStore = SqlStore<PgEngine>;

/// Connections one node keeps open at most (its share of the server's `max_connections`).
pub const DEFAULT_POOL_SIZE: usize = 16;
/// How long a call waits for a pooled connection before it answers unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How many times a transaction that hit a serialization failure or a deadlock is run.
const ATTEMPTS: u32 = 8;

pub struct PgEngine {
    pool: Arc<Pool>,
    auth_changes: Arc<tokio::sync::Notify>,
    permits: Arc<tokio::sync::Semaphore>,
    metrics: StoreMetrics,
}

struct Pool {
    target: Target,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    idle: Mutex<Vec<Conn>>,
}

impl Pool {
    fn new(url: &str) -> StoreResult<Self> {
        let mut target = Target::parse(url)?;
        target.config.connect_timeout(CONNECT_TIMEOUT);
        let tls = target.connector()?;
        Ok(Self { target, tls, idle: Mutex::default() })
    }

    fn connect(&self) -> StoreResult<Conn> {
        let client = match self.target.mode {
            TlsMode::Disable => self.target.config.connect(postgres::NoTls),
            _ => self.target.config.connect(self.tls.clone()),
        }
        .map_err(map_pg_error)?;
        let mut conn = Conn::new(client);
        // A row or table lock held elsewhere (a stuck transaction, a migration) makes a call
        // give up as unavailable after this long instead of hanging (SQLite's busy timeout).
        conn.client.batch_execute("SET synchronous_commit = on; SET lock_timeout = '2s'").map_err(map_pg_error)?;
        Ok(conn)
    }

    /// Runs `work` on an idle connection (or a new one); keeps the connection unless it broke.
    fn with_conn<R>(&self, work: impl FnOnce(&mut Conn) -> StoreResult<R>) -> StoreResult<R> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut conn = match pooled {
            Some(conn) if !conn.client.is_closed() => conn,
            _ => self.connect()?,
        };
        let result = work(&mut conn);
        if !conn.client.is_closed() {
            self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
        }
        result
    }
}

impl Drop for Pool {
    /// Closing a blocking client runs a runtime of its own, which must not happen on an async
    /// runtime's thread (where a store is usually dropped): the idle connections close on a
    /// thread of their own.
    fn drop(&mut self) {
        let idle = std::mem::take(self.idle.get_mut().unwrap_or_else(|e| e.into_inner()));
        if !idle.is_empty() {
            std::thread::spawn(move || drop(idle));
        }
    }
}

impl PgEngine {
    /// Connects to the database at `url` and brings its schema up to date (once, whichever
    /// node gets there first). Blocks: call it outside an async context, or on a side thread.
    pub fn open(url: &str, pool_size: usize) -> StoreResult<Self> {
        let pool = Pool::new(url)?;
        pool.with_conn(|conn| schema::migrate(&mut conn.client))?;
        let pool = Arc::new(pool);
        let auth_changes = Arc::new(tokio::sync::Notify::new());
        listener::spawn(Arc::downgrade(&pool), auth_changes.clone());
        Ok(Self {
            pool,
            auth_changes,
            permits: Arc::new(tokio::sync::Semaphore::new(pool_size.max(1))),
            metrics: StoreMetrics::default(),
        })
    }

    /// `ledger verify` without a server: one REPEATABLE READ, READ ONLY transaction (one
    /// snapshot), no migrations. Blocks, like `open`.
    pub fn verify_offline(url: &str) -> StoreResult<Vec<String>> {
        Pool::new(url)?.with_conn(|conn| snapshot(conn, |db| crate::sql::money::verify(db)))
    }

    /// Runs `work` on a pooled connection on the blocking pool, waiting at most
    /// `ACQUIRE_TIMEOUT` for one to come free.
    async fn run<R, F>(&self, work: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Conn) -> StoreResult<R> + Send + 'static,
    {
        let permit = tokio::time::timeout(ACQUIRE_TIMEOUT, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| StoreError::Unavailable("no database connection came free in time".into()))?
            .map_err(|_| StoreError::Unavailable("the connection pool is closed".into()))?;
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            pool.with_conn(work)
        })
        .await
        .map_err(|_| StoreError::Internal("a database task failed".into()))?
    }
}

/// Runs `work` in one transaction at `isolation`, again (up to `ATTEMPTS` times, with a short
/// growing pause) when it fails on a serialization failure or a deadlock.
fn transaction<R>(
    conn: &mut Conn,
    isolation: Isolation,
    work: &(dyn Fn(&dyn Db) -> StoreResult<R> + Sync),
    metrics: &StoreMetrics,
) -> StoreResult<R> {
    let begin = match isolation {
        Isolation::Locking => "BEGIN ISOLATION LEVEL READ COMMITTED",
        Isolation::Serializable => "BEGIN ISOLATION LEVEL SERIALIZABLE",
    };
    let mut attempt = 1;
    loop {
        let started = Instant::now();
        conn.client.batch_execute(begin).map_err(map_pg_error)?;
        let (outcome, retryable) = {
            let db = PgDb::new(conn);
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&db)))
                .unwrap_or_else(|_| Err(StoreError::Internal("a store job panicked".into())));
            (outcome, db.retryable())
        };
        let failure = match outcome {
            Ok(value) => match timed(|| conn.client.batch_execute("COMMIT")) {
                (Ok(()), commit) => {
                    // The COMMIT's round trip is the WAL flush on the primary.
                    metrics.made_durable(commit);
                    metrics.committed(started.elapsed(), 1);
                    return Ok(value);
                }
                (Err(e), _) if is_retryable(&e) => map_pg_error(e),
                (Err(e), _) => return Err(map_pg_error(e)),
            },
            Err(e) => {
                let _ = conn.client.batch_execute("ROLLBACK");
                if !retryable {
                    return Err(e);
                }
                e
            }
        };
        if attempt >= ATTEMPTS {
            return Err(failure);
        }
        std::thread::sleep(Duration::from_millis(u64::from(attempt * attempt)));
        attempt += 1;
    }
}

fn timed<R>(work: impl FnOnce() -> R) -> (R, Duration) {
    let started = Instant::now();
    let result = work();
    (result, started.elapsed())
}

/// Runs `work` in one read-only snapshot.
fn snapshot<R>(conn: &mut Conn, work: impl FnOnce(&dyn Db) -> StoreResult<R>) -> StoreResult<R> {
    conn.client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").map_err(map_pg_error)?;
    let result = work(&PgDb::new(conn));
    let _ = conn.client.batch_execute("COMMIT");
    result
}

#[async_trait]
impl Engine for PgEngine {
    async fn write<R, F>(&self, isolation: Isolation, work: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: Fn(&dyn Db) -> StoreResult<R> + Send + Sync + 'static,
    {
        let metrics = self.metrics.clone();
        self.run(move |conn| transaction(conn, isolation, &work, &metrics)).await
    }

    async fn write_committed<R, F>(&self, isolation: Isolation, work: F) -> StoreResult<(R, Durability)>
    where
        R: Send + 'static,
        F: Fn(&dyn Db) -> StoreResult<R> + Send + Sync + 'static,
    {
        // With synchronous_commit on, committed is durable.
        Ok((self.write(isolation, work).await?, Durability::done()))
    }

    async fn read<R, F>(&self, work: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&dyn Db) -> StoreResult<R> + Send + 'static,
    {
        self.run(move |conn| work(&PgDb::new(conn))).await
    }

    async fn snapshot<R, F>(&self, work: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&dyn Db) -> StoreResult<R> + Send + 'static,
    {
        self.run(move |conn| snapshot(conn, work)).await
    }

    fn metrics(&self) -> &StoreMetrics {
        &self.metrics
    }

    fn auth_change_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.auth_changes.clone())
    }

    async fn ready(&self) -> StoreResult<()> {
        self.run(|conn| conn.client.batch_execute("SELECT 1").map_err(map_pg_error)).await
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
