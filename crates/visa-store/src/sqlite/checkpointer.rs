//! WAL checkpoints on a thread of their own. SQLite's automatic checkpoint would run inside
//! whichever commit crosses the threshold, stalling the writer (and every paid request behind
//! it) for the checkpoint's fsyncs. A PASSIVE checkpoint here copies committed pages into the
//! database without ever blocking the writer.

use rusqlite::Connection;
use std::path::PathBuf;
use std::time::Duration;

const INTERVAL: Duration = Duration::from_millis(500);

/// Starts the checkpoint thread for the database at `path`. It stops when the database can
/// no longer be opened (e.g. the data dir was removed), and otherwise lives with the process.
pub fn start(path: PathBuf) {
    let spawned = std::thread::Builder::new().name("visa-sqlite-checkpoint".into()).spawn(move || {
        let Ok(conn) = Connection::open(&path) else { return };
        let _ = conn.pragma_update(None, "synchronous", "FULL");
        loop {
            std::thread::sleep(INTERVAL);
            if !path.exists() {
                return;
            }
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::debug!(error = %e, "checkpoint skipped");
            }
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "could not start the checkpoint thread; the WAL will grow until restart");
    }
}
