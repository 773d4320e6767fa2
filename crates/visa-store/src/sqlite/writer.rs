//! The single writer: one thread owns the only write connection and commits many jobs per
//! transaction (group commit), so that durable throughput is not one fsync per request.
//!
//! Each job runs inside its own SAVEPOINT: a job that fails rolls back only its own changes.
//! A job's answer is sent only after the COMMIT that contains it returned, so a caller never
//! acts on a write that is not on disk.

use super::map_sqlite_error;
use crate::{StoreError, StoreResult};
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

/// How many queued jobs one transaction may take.
const MAX_BATCH: usize = 512;
const QUEUE_DEPTH: usize = 8192;

trait Job: Send {
    /// Runs against the open transaction; returns whether its changes should stay.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Delivers the answer once the transaction's fate is known.
    fn finish(self: Box<Self>, commit: StoreResult<()>);
}

struct TypedJob<R, F> {
    work: Option<F>,
    outcome: Option<StoreResult<R>>,
    reply: oneshot::Sender<StoreResult<R>>,
}

impl<R, F> Job for TypedJob<R, F>
where
    R: Send,
    F: FnOnce(&Connection) -> StoreResult<R> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let work = self.work.take().expect("a job runs once");
        // A bug in one job must not take the writer thread (and every later request) down.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(conn)))
            .unwrap_or_else(|_| Err(StoreError::Internal("a store job panicked".into())));
        let keep = outcome.is_ok();
        self.outcome = Some(outcome);
        keep
    }

    fn finish(self: Box<Self>, commit: StoreResult<()>) {
        let answer = match commit {
            Ok(()) => self.outcome.unwrap_or_else(|| Err(StoreError::Internal("job did not run".into()))),
            Err(e) => Err(e),
        };
        let _ = self.reply.send(answer);
    }
}

/// A handle to the writer thread. Cloning shares the same thread.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    pub fn start(conn: Connection) -> Self {
        let (queue, jobs) = mpsc::channel(QUEUE_DEPTH);
        std::thread::Builder::new()
            .name("visa-sqlite-writer".into())
            .spawn(move || run_writer(conn, jobs))
            .expect("spawn the SQLite writer thread");
        Self { queue }
    }

    /// Runs `work` in the next group transaction and answers after it committed.
    pub async fn write<R, F>(&self, work: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(TypedJob { work: Some(work), outcome: None, reply });
        self.queue.send(job).await.map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        answer.await.map_err(|_| StoreError::Unavailable("the writer dropped the job".into()))?
    }
}

fn run_writer(conn: Connection, mut jobs: mpsc::Receiver<Box<dyn Job>>) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let commit = run_batch(&conn, &mut batch);
        for job in batch.drain(..) {
            job.finish(commit.clone());
        }
    }
}

fn run_batch(conn: &Connection, batch: &mut [Box<dyn Job>]) -> StoreResult<()> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(map_sqlite_error)?;
    for job in batch.iter_mut() {
        if let Err(e) = run_in_savepoint(conn, job.as_mut()) {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e);
        }
    }
    conn.execute_batch("COMMIT").map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        map_sqlite_error(e)
    })
}

fn run_in_savepoint(conn: &Connection, job: &mut dyn Job) -> StoreResult<()> {
    conn.execute_batch("SAVEPOINT job").map_err(map_sqlite_error)?;
    if !job.run(conn) {
        conn.execute_batch("ROLLBACK TO job").map_err(map_sqlite_error)?;
    }
    conn.execute_batch("RELEASE job").map_err(map_sqlite_error)
}
