//! The embedded SQLite backend: an `Engine` for the shared SQL over one database file in WAL
//! mode, every answered write on disk. Writes go through the group-committing `writer`;
//! reads run on a small pool of read-only connections on the blocking thread pool, so they
//! never queue behind the writer.

mod checkpointer;
pub(crate) mod engine;
mod schema;
mod statements;
mod writer;

use crate::StoreError;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use writer::Writer;

const PAGE_SIZE: u32 = 4096;
/// The WAL's bound: past it the checkpointer forces a pass that finishes (so the log restarts),
/// and a restart truncates the file back to it.
const WAL_BOUND_BYTES: i64 = 256 * 1024 * 1024;
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(200);
/// Page cache per connection, in KiB. Each connection's cache fills with the pages it touches
/// and keeps them; with random Idempotency-Keys every page is touched sooner or later, so the
/// caches are what the server's memory grows by under sustained load until each is full
/// (bench/README.md, sustained load). Measured: a 128 KiB cache everywhere gives the paid path
/// the same throughput as SQLite's default 2 MiB, so these are small, and fixed here.
const WRITER_CACHE_KIB: i64 = 1024;
const READER_CACHE_KIB: i64 = 256;
/// Readers kept open between reads; a burst opens more, which close when done. So the
/// readers' caches take at most `MAX_IDLE_READERS * READER_CACHE_KIB` between bursts.
const MAX_IDLE_READERS: usize = 4;
/// How long a reader waits on a lock held by another process before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the writer waits for the write lock before it answers "unavailable" (a paid
/// request should fail fast and retry rather than hang).
const WRITE_BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// The store over SQLite: the shared SQL on this engine.
pub type SqliteStore = crate::sql::SqlStore<SqliteEngine>;

pub struct SqliteEngine {
    writer: Writer,
    readers: Arc<ReaderPool>,
}

impl SqliteEngine {
    /// Opens (creating if needed) the database at `path` and applies migrations.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path).map_err(map_sqlite_error)?;
        configure(&conn).map_err(map_sqlite_error)?;
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB).map_err(map_sqlite_error)?;
        // Set before the first table exists (a no-op afterwards): small pages keep the WAL
        // bytes per commit low, since most of a batch's writes land on scattered index pages.
        conn.pragma_update(None, "page_size", PAGE_SIZE).map_err(map_sqlite_error)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(map_sqlite_error)?;
        schema::migrate(&mut conn).map_err(map_sqlite_error)?;
        conn.busy_timeout(WRITE_BUSY_TIMEOUT).map_err(map_sqlite_error)?;
        // Checkpoints run beside the writer (see `checkpointer`), not inside its commits.
        conn.pragma_update(None, "wal_autocheckpoint", 0).map_err(map_sqlite_error)?;
        // When the log restarts, a WAL that grew during a burst is truncated back to this.
        conn.pragma_update(None, "journal_size_limit", WAL_BOUND_BYTES).map_err(map_sqlite_error)?;
        // The writer's commits append to the WAL; its durability thread fsyncs the WAL before
        // any answer leaves (see `writer`), so a reply still means "on disk".
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(map_sqlite_error)?;
        let gate = checkpointer::CommitGate::default();
        let policy = checkpointer::Policy {
            interval: CHECKPOINT_INTERVAL,
            restart_frames: WAL_BOUND_BYTES / i64::from(PAGE_SIZE),
        };
        let metrics = crate::metrics::StoreMetrics::default();
        checkpointer::start(path.to_owned(), gate.clone(), policy, metrics.clone());
        let wal_path = PathBuf::from(format!("{}-wal", path.display()));
        Ok(Self {
            writer: Writer::start(conn, wal_path, path.to_owned(), gate, metrics),
            readers: Arc::new(ReaderPool { path: path.to_owned(), idle: Mutex::default() }),
        })
    }

    /// `ledger verify` without a server: a read-only connection and one read transaction (a
    /// consistent snapshot), with no writer, migrations or checkpoints, so it is safe while a
    /// server runs on the same database and never sees half of a concurrent change.
    pub fn verify_offline(path: &Path) -> Result<Vec<String>, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(map_sqlite_error)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(map_sqlite_error)?;
        in_snapshot(&conn, |conn| crate::sql::money::read::verify(&engine::SqliteDb::Reader(conn)))
    }

    /// Copies the database at `path` to `destination` with SQLite's online backup, page by
    /// page, while a server may keep writing (each step reads a consistent state; writes that
    /// land meanwhile restart the copy). The copy is a complete database: restore it by stopping
    /// the server and putting it in place of `visa.db` (docs/deploy.md).
    pub fn backup_to(path: &Path, destination: &Path) -> Result<(), StoreError> {
        if destination.exists() {
            return Err(StoreError::Refused(crate::Refusal::FileExists(destination.to_owned())));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let source = Connection::open_with_flags(path, flags).map_err(map_sqlite_error)?;
        source.busy_timeout(BUSY_TIMEOUT).map_err(map_sqlite_error)?;
        let mut copy = Connection::open(destination).map_err(map_sqlite_error)?;
        {
            let backup = rusqlite::backup::Backup::new(&source, &mut copy).map_err(map_sqlite_error)?;
            backup.run_to_completion(1024, Duration::from_millis(5), None).map_err(map_sqlite_error)?;
        }
        // The copy is a plain rollback-journal database, readable without its -wal file.
        copy.pragma_update(None, "journal_mode", "DELETE").map_err(map_sqlite_error)?;
        #[cfg(unix)]
        std::fs::set_permissions(destination, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        Ok(())
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Per-job savepoints journal into memory, not into a temporary file.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(())
}

/// Runs `work` in one read transaction: every statement sees the same snapshot.
pub(crate) fn in_snapshot<R>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    conn.execute_batch("BEGIN").map_err(map_sqlite_error)?;
    let result = work(conn);
    let _ = conn.execute_batch("COMMIT");
    result
}

/// Read-only connections, reused across requests (at most `MAX_IDLE_READERS` kept).
struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReaderPool {
    fn with_connection<R>(&self, work: impl FnOnce(&Connection) -> Result<R, StoreError>) -> Result<R, StoreError> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => self.open_reader()?,
        };
        let result = work(&conn);
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        result
    }

    fn open_reader(&self) -> Result<Connection, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags).map_err(map_sqlite_error)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(map_sqlite_error)?;
        conn.pragma_update(None, "cache_size", -READER_CACHE_KIB).map_err(map_sqlite_error)?;
        Ok(conn)
    }
}

/// Busy and locked databases are retryable outages; everything else is a failure.
pub(crate) fn map_sqlite_error(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::*;
    match e.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked | CannotOpen | DiskFull | SystemIoFailure) => {
            StoreError::Unavailable(e.to_string())
        }
        Some(ConstraintViolation) => StoreError::Conflict(e.to_string()),
        _ => StoreError::Internal(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{Db, Engine};

    fn cache_kib(db: &dyn Db) -> i64 {
        let rows = db.query("PRAGMA cache_size", &[]).unwrap();
        match rows[0].0[0] {
            crate::sql::Value::Int(v) => -v,
            ref other => panic!("cache_size is {other:?}"),
        }
    }

    /// A burst of overlapping reads opens a connection each; afterwards only
    /// `MAX_IDLE_READERS` stay open, so idle readers' page caches stay bounded.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_reads_leaves_a_bounded_pool_with_bounded_caches() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(SqliteEngine::open(&dir.path().join("visa.db")).unwrap());
        let barrier = Arc::new(std::sync::Barrier::new(3 * MAX_IDLE_READERS));
        let reads = (0..3 * MAX_IDLE_READERS).map(|_| {
            let (engine, barrier) = (engine.clone(), barrier.clone());
            tokio::spawn(async move {
                engine
                    .read(move |db| {
                        // Every read holds its connection until all of them hold one.
                        barrier.wait();
                        Ok(cache_kib(db))
                    })
                    .await
                    .unwrap()
            })
        });
        for read in reads.collect::<Vec<_>>() {
            assert_eq!(read.await.unwrap(), READER_CACHE_KIB);
        }
        assert_eq!(engine.readers.idle.lock().unwrap().len(), MAX_IDLE_READERS);
        let written = engine.write(crate::sql::Isolation::Serializable, |db| Ok(cache_kib(db))).await.unwrap();
        assert_eq!(written, WRITER_CACHE_KIB);
    }
}
