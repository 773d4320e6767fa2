//! WAL checkpoints on a thread of their own. SQLite's automatic checkpoint would run inside
//! whichever commit crosses the threshold, stalling the writer (and every paid request behind
//! it) for the whole copy and its fsyncs. A PASSIVE checkpoint here copies committed pages into
//! the database without ever blocking the writer.
//!
//! But under sustained load a PASSIVE pass never finishes (the writer appends while it copies),
//! and only a finished checkpoint lets SQLite restart the WAL from its beginning: without one
//! the WAL grew by ~80 MB/s in the benchmark. So once the WAL holds more than
//! `Policy::restart_frames`, the thread catches up with a few more passes, then takes the
//! writer's `CommitGate` for one last PASSIVE pass: with the writer held between two batches,
//! that pass copies only the short tail and finishes, and the writer's next transaction
//! restarts the log.
//!
//! SQLite fsyncs the database file at the end of a pass only if the writer appended nothing
//! while it copied, which under load never happens. Every page the passes copy would then still
//! be unsynced when the finishing pass runs, and that pass's fsync, inside the writer's hold,
//! would flush them all: with Idempotency-Keys landing on random index pages that is tens of
//! thousands of scattered pages, and the hold grew from 25 to 200 ms over minutes of load (the
//! paid p99 with it). So this thread fsyncs the database itself after every pass, outside the
//! hold, and the finishing pass flushes only its short tail (13–20 ms held, was 50–150 ms).

use crate::metrics::StoreMetrics;
use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often to checkpoint, and from how many WAL frames on to force a pass that finishes.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub interval: Duration,
    pub restart_frames: i64,
}

/// A tail short enough to copy while the writer waits (2 MiB).
const SHORT_TAIL_FRAMES: i64 = 512;
const MAX_CATCH_UP_PASSES: usize = 4;
const CACHE_KIB: i64 = 256;

/// Held by the writer while it runs a batch, and by the checkpointer for a finishing pass.
pub type CommitGate = Arc<Mutex<()>>;

/// Starts the checkpoint thread for the database at `path`. It stops with the store (once the
/// writer, which holds the other handle of `gate`, has stopped), or when the database can no
/// longer be opened (e.g. the data dir was removed).
pub fn start(path: PathBuf, gate: CommitGate, policy: Policy, metrics: StoreMetrics) {
    let spawned = std::thread::Builder::new().name("visa-sqlite-checkpoint".into()).spawn(move || {
        let Ok(conn) = Connection::open(&path) else { return };
        let Ok(database) = std::fs::File::open(&path) else { return };
        let _ = conn.pragma_update(None, "synchronous", "FULL");
        // A pass copies WAL frames into the database file; it reads almost nothing through
        // the page cache, so a small one bounds this connection's memory.
        let _ = conn.pragma_update(None, "cache_size", -CACHE_KIB);
        let mut passes = Passes { conn, database, synced: 0 };
        loop {
            std::thread::sleep(policy.interval);
            if !path.exists() || Arc::strong_count(&gate) == 1 {
                return;
            }
            let Ok(Some(mut pass)) = passes.run() else { return };
            if pass.frames <= policy.restart_frames {
                continue;
            }
            // Catch up first, so that the pass that holds the writer has only a short tail.
            for _ in 0..MAX_CATCH_UP_PASSES {
                if pass.frames - pass.copied <= SHORT_TAIL_FRAMES {
                    break;
                }
                match passes.run() {
                    Ok(Some(next)) => pass = next,
                    Ok(None) => break,
                    Err(()) => return,
                }
            }
            let _writer_held = gate.lock().unwrap_or_else(|e| e.into_inner());
            let held = std::time::Instant::now();
            // This pass reaches the WAL's end, so SQLite fsyncs the database itself.
            passes.run_to_end();
            metrics.held_writer(held.elapsed());
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "could not start the checkpoint thread; the WAL will grow until restart");
    }
}

/// What a PASSIVE pass reports: frames in the WAL, and how many of them are in the database.
struct Pass {
    frames: i64,
    copied: i64,
}

/// The checkpoint connection, the database file it copies into, and how far that file is
/// known to be on disk.
struct Passes {
    conn: Connection,
    database: std::fs::File,
    /// WAL frames copied into the database and fsynced since the log last restarted.
    synced: i64,
}

impl Passes {
    /// One PASSIVE pass, then an fsync of what it copied: SQLite fsyncs the database only when
    /// the log's end has not moved during the pass, which under load is never. `Ok(None)`: the
    /// pass could not run (busy); `Err`: the fsync failed, and checkpoints stop for good, since
    /// the kernel may have dropped those pages and the WAL must keep them (fail-stop, as the
    /// writer does).
    fn run(&mut self) -> Result<Option<Pass>, ()> {
        let Some(pass) = self.pass() else { return Ok(None) };
        if pass.copied != self.synced {
            if let Err(e) = self.database.sync_data() {
                tracing::error!(error = %e, "fsync of the database failed; checkpoints stop, the WAL keeps every change until restart");
                return Err(());
            }
            self.synced = pass.copied;
        }
        Ok(Some(pass))
    }

    /// The pass that finishes (the writer is held): SQLite fsyncs the database itself.
    fn run_to_end(&mut self) {
        if let Some(pass) = self.pass() {
            self.synced = pass.copied;
        }
    }

    fn pass(&self) -> Option<Pass> {
        let pass = self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok(Pass { frames: r.get(1)?, copied: r.get(2)? }));
        pass.map_err(|e| tracing::debug!(error = %e, "checkpoint skipped")).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::map_sqlite_error;
    use crate::sqlite::statements::Statements;
    use crate::sqlite::writer::Writer;

    /// Writers that never pause: without the gated pass no checkpoint would finish and the WAL
    /// would keep every frame; with it the log restarts and stays near the bound.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_restarts_under_writes_that_never_pause() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        conn.execute_batch("CREATE TABLE t (n INTEGER NOT NULL, pad BLOB NOT NULL)").unwrap();
        let gate = CommitGate::default();
        let policy = Policy { interval: Duration::from_millis(20), restart_frames: 256 };
        start(path.clone(), gate.clone(), policy, Default::default());
        let wal = PathBuf::from(format!("{}-wal", path.display()));
        let writer = Writer::start(conn, wal.clone(), path, gate, Default::default());
        // 8 writers, each row a page of its own: ~4,000 frames (16 MB) if the WAL never restarted.
        let tasks = (0..8).map(|_| {
            let writer = writer.clone();
            tokio::spawn(async move {
                for n in 0..500i64 {
                    let insert = move |c: &Statements| {
                        c.execute("INSERT INTO t (n, pad) VALUES (?1, zeroblob(3000))", [n]).map_err(map_sqlite_error)
                    };
                    writer.write(insert).await.unwrap();
                }
            })
        });
        for task in tasks.collect::<Vec<_>>() {
            task.await.unwrap();
        }
        let size = std::fs::metadata(&wal).unwrap().len();
        assert!(size < 8 * 1024 * 1024, "the WAL kept growing: {size} bytes");
    }
}
