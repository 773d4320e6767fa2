//! The single writer: one thread owns the only write connection and commits many jobs per
//! transaction (group commit), so that durable throughput is not one fsync per request.
//!
//! A failed job must leave no trace and must not sink the others. Wrapping every job in a
//! SAVEPOINT costs a quarter of the writer's time, so the batch first runs without them; if
//! any job fails, the whole transaction is rolled back and the batch runs again with a
//! SAVEPOINT per job, so the failed job's changes alone are undone. Jobs are therefore `Fn`:
//! running one again on the same state gives the same answer. Durability is pipelined: the connection commits with `synchronous=NORMAL` (the WAL is
//! written, not yet fsynced), hands the batch to the `durability` thread and starts on the
//! next batch at once; that thread fsyncs the WAL, which covers every batch committed before
//! the fsync began, and only then delivers those batches' answers. So a caller never acts
//! on a write that is not on disk, and the writer never sits idle waiting for the disk.
//!
//! A failed fsync stops the writer for good (fail-stop, as PostgreSQL does since 2018): after
//! one, the kernel may have dropped the dirty pages it could not write, so a later fsync could
//! "succeed" over lost data. Every later write is refused as unavailable until the server is
//! restarted (which reopens the database and reads what really is on disk).
//!
//! One exception, asked for explicitly (`write_committed`): the answer is delivered as soon
//! as the transaction commits, with a `Durability` that resolves after the fsync. The money
//! path uses it for the hold, which a later durable write (the capture) always covers; see
//! docs/money.md.

use super::checkpointer::CommitGate;
use super::map_sqlite_error;
use super::statements::Statements;
use crate::metrics::StoreMetrics;
use crate::{Durability, StoreError, StoreResult};
use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// How many queued jobs one transaction may take.
const MAX_BATCH: usize = 512;
const QUEUE_DEPTH: usize = 8192;

trait Job: Send {
    /// Runs against the open transaction (again, if asked); returns whether it succeeded.
    fn run(&mut self, conn: &Statements) -> bool;
    /// The transaction committed: visible to every later transaction, not yet on disk.
    fn committed(&mut self);
    /// Delivers the answer (or the durability) once the transaction's fate is known.
    fn finish(self: Box<Self>, durable: StoreResult<()>);
}

struct TypedJob<R, F> {
    work: F,
    outcome: Option<StoreResult<R>>,
    reply: Option<oneshot::Sender<StoreResult<R>>>,
    /// Set for `write_committed`: the answer leaves at commit, this at fsync.
    durable: Option<oneshot::Sender<StoreResult<()>>>,
}

impl<R, F> TypedJob<R, F> {
    fn answer(&mut self, commit: StoreResult<()>) {
        let answer = match commit {
            Ok(()) => self.outcome.take().unwrap_or_else(|| Err(StoreError::Internal("job did not run".into()))),
            Err(e) => Err(e),
        };
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(answer);
        }
    }
}

impl<R, F> Job for TypedJob<R, F>
where
    R: Send,
    F: Fn(&Statements) -> StoreResult<R> + Send,
{
    fn run(&mut self, conn: &Statements) -> bool {
        let work = &self.work;
        // A bug in one job must not take the writer thread (and every later request) down.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(conn)))
            .unwrap_or_else(|_| Err(StoreError::Internal("a store job panicked".into())));
        let keep = outcome.is_ok();
        self.outcome = Some(outcome);
        keep
    }

    fn committed(&mut self) {
        if self.durable.is_some() {
            self.answer(Ok(()));
        }
    }

    fn finish(mut self: Box<Self>, durable: StoreResult<()>) {
        if let Some(signal) = self.durable.take() {
            let _ = signal.send(durable.clone());
        }
        self.answer(durable);
    }
}

type Batch = Vec<Box<dyn Job>>;

/// A handle to the writer thread. Cloning shares the same thread.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Box<dyn Job>>,
    metrics: StoreMetrics,
    /// Set by the first failed fsync; never cleared.
    stopped: Arc<AtomicBool>,
}

const STOPPED: &str = "writes stopped after a failed fsync; check the disk, then restart the server";

impl Writer {
    /// Starts the writer on `conn` (in WAL mode, `synchronous=NORMAL`) and the durability
    /// thread that fsyncs `wal_path` before any answer leaves.
    pub fn start(
        conn: Connection,
        wal_path: PathBuf,
        db_path: PathBuf,
        gate: CommitGate,
        metrics: StoreMetrics,
    ) -> Self {
        let (queue, jobs) = mpsc::channel(QUEUE_DEPTH);
        let (committed, to_sync) = std::sync::mpsc::channel();
        let stopped = Arc::new(AtomicBool::new(false));
        let (writer_metrics, sync_metrics) = (metrics.clone(), metrics.clone());
        let (writer_stopped, sync_stopped) = (stopped.clone(), stopped.clone());
        std::thread::Builder::new()
            .name("visa-sqlite-writer".into())
            .spawn(move || run_writer(conn, jobs, committed, &writer_metrics, &gate, &writer_stopped))
            .expect("spawn the SQLite writer thread");
        std::thread::Builder::new()
            .name("visa-sqlite-fsync".into())
            .spawn(move || run_durability(to_sync, wal_path, db_path, &sync_metrics, &sync_stopped))
            .expect("spawn the SQLite durability thread");
        Self { queue, metrics, stopped }
    }

    /// The writer's commit and fsync figures.
    pub fn metrics(&self) -> &StoreMetrics {
        &self.metrics
    }

    /// Runs `work` in the next group transaction and answers once it is durable.
    pub async fn write<R, F>(&self, work: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: Fn(&Statements) -> StoreResult<R> + Send + 'static,
    {
        self.submit(work, None).await
    }

    /// Runs `work` in the next group transaction and answers as soon as it commits; the
    /// `Durability` resolves once it is on disk. Only for writes that a later durable write
    /// covers before anyone outside relies on them.
    pub async fn write_committed<R, F>(&self, work: F) -> StoreResult<(R, Durability)>
    where
        R: Send + 'static,
        F: Fn(&Statements) -> StoreResult<R> + Send + 'static,
    {
        let (signal, durable) = oneshot::channel();
        let answer = self.submit(work, Some(signal)).await?;
        Ok((answer, Durability::new(durable)))
    }

    /// `Unavailable` once a failed fsync has stopped every write (until restart).
    pub fn running(&self) -> StoreResult<()> {
        if self.stopped.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(STOPPED.into()));
        }
        Ok(())
    }

    async fn submit<R, F>(&self, work: F, durable: Option<oneshot::Sender<StoreResult<()>>>) -> StoreResult<R>
    where
        R: Send + 'static,
        F: Fn(&Statements) -> StoreResult<R> + Send + 'static,
    {
        if self.stopped.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(STOPPED.into()));
        }
        let (reply, answer) = oneshot::channel();
        let job = Box::new(TypedJob { work, outcome: None, reply: Some(reply), durable });
        self.queue.send(job).await.map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        answer.await.map_err(|_| StoreError::Unavailable("the writer dropped the job".into()))?
    }
}

fn run_writer(
    conn: Connection,
    mut jobs: mpsc::Receiver<Box<dyn Job>>,
    committed: std::sync::mpsc::Sender<Batch>,
    metrics: &StoreMetrics,
    gate: &CommitGate,
    stopped: &AtomicBool,
) {
    let conn = Statements::new(&conn);
    while let Some(first) = jobs.blocking_recv() {
        let mut batch: Batch = Vec::with_capacity(MAX_BATCH);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if stopped.load(Ordering::SeqCst) {
            finish_all(batch, Err(StoreError::Unavailable(STOPPED.into())));
            continue;
        }
        // A finishing checkpoint holds the gate for a moment (see `checkpointer`).
        let (ran, took) = {
            let _gate = gate.lock().unwrap_or_else(|e| e.into_inner());
            let started = Instant::now();
            (run_batch(&conn, &mut batch), started.elapsed())
        };
        match ran {
            Ok(()) => {
                metrics.committed(took, batch.len());
                batch.iter_mut().for_each(|job| job.committed());
                if let Err(unsent) = committed.send(batch) {
                    finish_all(unsent.0, Err(StoreError::Unavailable("the durability thread has stopped".into())));
                }
            }
            Err(e) => finish_all(batch, Err(e)),
        }
    }
}

fn finish_all(batch: Batch, result: StoreResult<()>) {
    for job in batch {
        job.finish(result.clone());
    }
}

/// Takes every batch committed so far, makes the WAL durable once for all of them, answers.
fn run_durability(
    to_sync: std::sync::mpsc::Receiver<Batch>,
    wal_path: PathBuf,
    db_path: PathBuf,
    metrics: &StoreMetrics,
    stopped: &AtomicBool,
) {
    // The WAL stays the same file while the writer's connection is open (SQLite deletes it
    // only when the last connection closes), so one handle serves every fsync.
    let mut wal: Option<std::fs::File> = None;
    while let Ok(first) = to_sync.recv() {
        let mut batches = vec![first];
        batches.extend(to_sync.try_iter());
        if wal.is_none() {
            wal = std::fs::File::open(&wal_path).ok();
        }
        let started = Instant::now();
        let synced = match &wal {
            Some(file) => file.sync_data(),
            // No WAL yet means nothing was written to one; the database file holds it all.
            None => std::fs::File::open(&db_path).and_then(|db| db.sync_data()),
        };
        metrics.made_durable(started.elapsed());
        let result = synced.map_err(|e| {
            stopped.store(true, Ordering::SeqCst);
            tracing::error!(error = %e, "fsync of the SQLite WAL failed; no more writes are accepted until restart");
            StoreError::Unavailable(format!("fsync failed: {e}"))
        });
        for batch in batches {
            finish_all(batch, result.clone());
        }
    }
}

/// Runs one statement from the writer's cache (transaction control included: parsing BEGIN
/// and COMMIT again for every batch costs more than running them).
fn run_statement(conn: &Statements, statement: &str) -> StoreResult<()> {
    conn.with(statement, |s| s.execute([]).map(drop).map_err(map_sqlite_error))
}

fn run_batch(conn: &Statements, batch: &mut [Box<dyn Job>]) -> StoreResult<()> {
    run_statement(conn, "BEGIN IMMEDIATE")?;
    if !batch.iter_mut().all(|job| job.run(conn)) {
        // Slow path: undo everything, then isolate each job in its own savepoint.
        conn.execute_batch("ROLLBACK; BEGIN IMMEDIATE").map_err(map_sqlite_error)?;
        for job in batch.iter_mut() {
            if let Err(e) = run_in_savepoint(conn, job.as_mut()) {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
    }
    run_statement(conn, "COMMIT").inspect_err(|_| {
        let _ = conn.execute_batch("ROLLBACK");
    })
}

fn run_in_savepoint(conn: &Statements, job: &mut dyn Job) -> StoreResult<()> {
    run_statement(conn, "SAVEPOINT job")?;
    if !job.run(conn) {
        run_statement(conn, "ROLLBACK TO job")?;
    }
    run_statement(conn, "RELEASE job")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> (Writer, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE t (n INTEGER NOT NULL)").unwrap();
        let wal = PathBuf::from(format!("{}-wal", path.display()));
        (Writer::start(conn, wal, path, CommitGate::default(), Default::default()), dir)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_job_leaves_no_trace_and_does_not_sink_its_batch() {
        let (writer, _dir) = writer();
        let jobs = (0..200i64).map(|n| {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .write(move |conn| {
                        conn.execute("INSERT INTO t (n) VALUES (?1)", [n]).map_err(map_sqlite_error)?;
                        if n % 7 == 0 { Err(StoreError::Refused(crate::Refusal::LastOwner)) } else { Ok(n) }
                    })
                    .await
            })
        });
        let results: Vec<_> = futures_results(jobs).await;
        for (n, result) in results.iter().enumerate() {
            assert_eq!(result.is_ok(), n % 7 != 0, "job {n}: {result:?}");
        }
        let rows: Vec<i64> = writer
            .write(|conn| {
                let mut stmt = conn.prepare("SELECT n FROM t ORDER BY n").map_err(map_sqlite_error)?;
                let rows = stmt.query_map([], |r| r.get(0)).and_then(|r| r.collect()).map_err(map_sqlite_error)?;
                Ok(rows)
            })
            .await
            .unwrap();
        let expected: Vec<i64> = (0..200).filter(|n| n % 7 != 0).collect();
        assert_eq!(rows, expected);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_committed_write_is_visible_at_once_and_durable_later() {
        let (writer, _dir) = writer();
        let insert = |conn: &Statements| conn.execute("INSERT INTO t (n) VALUES (7)", []).map_err(map_sqlite_error);
        let (inserted, durable) = writer.write_committed(insert).await.unwrap();
        assert_eq!(inserted, 1);
        // The next transaction sees the row before the first one's fsync is awaited.
        let count = |conn: &Statements| {
            conn.query_row("SELECT COUNT(*) FROM t WHERE n = 7", [], |r| r.get::<_, i64>(0)).map_err(map_sqlite_error)
        };
        assert_eq!(writer.write(count).await.unwrap(), 1);
        durable.wait().await.unwrap();
        // A failed job answers its error at once and reports no durability to rely on.
        let refused =
            writer.write_committed(|_: &Statements| Err::<(), _>(StoreError::Refused(crate::Refusal::LastOwner))).await;
        assert!(matches!(refused, Err(StoreError::Refused(_))), "a refused job must answer its error");
    }

    /// After a failed fsync nothing more is written: the failed batch answers unavailable,
    /// and every later job is refused without running.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_fsync_stops_every_later_write() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        conn.execute_batch("CREATE TABLE t (n INTEGER NOT NULL)").unwrap();
        // Neither file exists, so the fsync fails.
        let gone = dir.path().join("gone/x");
        let writer = Writer::start(conn, gone.clone(), gone, CommitGate::default(), Default::default());
        let insert = |conn: &Statements| conn.execute("INSERT INTO t (n) VALUES (1)", []).map_err(map_sqlite_error);
        assert!(matches!(writer.write(insert).await, Err(StoreError::Unavailable(m)) if m.contains("fsync failed")));
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        let later = writer
            .write(move |_: &Statements| {
                flag.store(true, Ordering::SeqCst);
                Ok(())
            })
            .await;
        assert!(matches!(&later, Err(StoreError::Unavailable(m)) if m.contains("restart")), "{later:?}");
        assert!(!ran.load(Ordering::SeqCst), "a job after the failure never runs");
        assert!(matches!(writer.running(), Err(StoreError::Unavailable(m)) if m.contains("restart")), "not ready");
    }

    async fn futures_results<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
        let mut out = vec![];
        for handle in handles.collect::<Vec<_>>() {
            out.push(handle.await.unwrap());
        }
        out
    }
}
