//! The least a durable money path could write per paid call, for the benchmark's floor: one
//! SQLite writer thread that group-commits every queued step in one transaction (WAL,
//! `synchronous=NORMAL`), answers holds at commit and captures only after an fsync of the
//! WAL — the same durability points as `visa-cli serve`, with one row and one guarded update
//! per step instead of the real schema, plus the one record exactly-once cannot do without:
//! the call's Idempotency-Key, kept in a table keyed by it (clients send random keys, so this
//! index grows at random places, as any exactly-once store's does).

use rusqlite::Connection;
use std::path::Path;
use tokio::sync::{mpsc, oneshot};

pub enum Step {
    /// Record the Idempotency-Key (a replay changes nothing) and hold one micro of the
    /// balance, if available.
    Hold(Vec<u8>),
    /// Capture it and store the answer.
    Capture(Vec<u8>),
}

/// Whether the step is committed (a hold) or durable (a capture).
type Done = Result<(), &'static str>;

struct Job {
    step: Step,
    done: oneshot::Sender<Done>,
}

pub struct Ledger {
    queue: mpsc::UnboundedSender<Job>,
}

/// `VISA_FLOOR_IDEMPOTENCY=0` leaves the Idempotency-Key out (not exactly-once: only to show
/// what that one random-keyed record costs as the database grows, bench/README.md).
fn records_idempotency() -> bool {
    std::env::var("VISA_FLOOR_IDEMPOTENCY").map_or(true, |v| v != "0")
}

impl Ledger {
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE account (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL, held INTEGER NOT NULL);
             INSERT INTO account VALUES (1, 9000000000000000, 0);
             CREATE TABLE holds (id INTEGER PRIMARY KEY, amount INTEGER NOT NULL);
             CREATE TABLE idempotency (key BLOB PRIMARY KEY, hold INTEGER NOT NULL) WITHOUT ROWID;
             CREATE TABLE captures (id INTEGER PRIMARY KEY, answer BLOB NOT NULL);",
        )?;
        let wal = std::fs::File::open(format!("{}-wal", path.display()))
            .map_err(|_| rusqlite::Error::InvalidPath(path.into()))?;
        let (queue, jobs) = mpsc::unbounded_channel();
        let idempotency = records_idempotency();
        std::thread::spawn(move || write_batches(&conn, &wal, jobs, idempotency));
        Ok(Self { queue })
    }

    pub async fn run(&self, step: Step) -> Done {
        let (done, answer) = oneshot::channel();
        self.queue.send(Job { step, done }).map_err(|_| "the writer stopped")?;
        answer.await.map_err(|_| "the writer dropped the step")?
    }
}

fn write_batches(conn: &Connection, wal: &std::fs::File, mut jobs: mpsc::UnboundedReceiver<Job>, idempotency: bool) {
    while let Some(first) = jobs.blocking_recv() {
        let mut batch = vec![first];
        while let Ok(job) = jobs.try_recv() {
            batch.push(job);
        }
        let committed = commit(conn, &batch, idempotency).map_err(|_| {
            let _ = conn.execute_batch("ROLLBACK");
            "the batch did not commit"
        });
        let (holds, captures): (Vec<_>, Vec<_>) = batch.into_iter().partition(|j| matches!(j.step, Step::Hold(_)));
        for job in holds {
            let _ = job.done.send(committed);
        }
        if !captures.is_empty() {
            let durable = committed.and_then(|()| wal.sync_data().map_err(|_| "the fsync failed"));
            for job in captures {
                let _ = job.done.send(durable);
            }
        }
    }
}

fn commit(conn: &Connection, batch: &[Job], idempotency: bool) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    for job in batch {
        match &job.step {
            Step::Hold(idempotency_key) => {
                conn.prepare_cached("UPDATE account SET held = held + 1 WHERE id = 1 AND balance - held >= 1")?
                    .execute([])?;
                conn.prepare_cached("INSERT INTO holds (amount) VALUES (1)")?.execute([])?;
                if !idempotency {
                    continue;
                }
                conn.prepare_cached("INSERT OR IGNORE INTO idempotency (key, hold) VALUES (?1, last_insert_rowid())")?
                    .execute([idempotency_key])?;
            }
            Step::Capture(answer) => {
                conn.prepare_cached("UPDATE account SET held = held - 1, balance = balance - 1 WHERE id = 1")?
                    .execute([])?;
                conn.prepare_cached("INSERT INTO captures (answer) VALUES (?1)")?.execute([answer])?;
            }
        }
    }
    conn.execute_batch("COMMIT")
}
