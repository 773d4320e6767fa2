//! The offline commands on a data dir, safe while the server runs: `visa-cli ledger verify`
//! opens the database read-only in one read transaction (a WAL reader neither blocks the
//! server nor sees half of a change) and recomputes every counter; `visa-cli backup` copies the
//! database with SQLite's online backup.

use crate::cli::LedgerCommand;
use anyhow::{anyhow, bail};
use std::path::{Path, PathBuf};
use visa_store::Database;

fn database(data_dir: &Path) -> anyhow::Result<(PathBuf, Database)> {
    let path = data_dir.join(visa_server::DATABASE_FILE);
    if !path.is_file() {
        bail!("no database at {}", path.display());
    }
    Ok((path.clone(), Database::Sqlite(path)))
}

pub fn backup(data_dir: &Path, file: &Path, json: bool) -> anyhow::Result<()> {
    let (path, database) = database(data_dir)?;
    database.backup_to(file).map_err(|e| anyhow!("cannot back up {}: {e}", path.display()))?;
    if json {
        super::print_json(&serde_json::json!({ "ok": true, "file": file.display().to_string() }));
    } else {
        println!("backed up {} to {}", path.display(), file.display());
    }
    Ok(())
}

pub async fn run(command: LedgerCommand, json: bool) -> anyhow::Result<()> {
    let LedgerCommand::Verify { data_dir } = command;
    let (_, database) = database(&data_dir)?;
    let problems = database.verify_offline().map_err(|e| anyhow!("cannot read the ledger: {e}"))?;
    if json {
        super::print_json(&serde_json::json!({ "ok": problems.is_empty(), "problems": problems }));
    } else if problems.is_empty() {
        println!("ledger ok: balances, holds and spend counters match the ledger");
    } else {
        for problem in &problems {
            println!("{problem}");
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    bail!("the ledger does not match the counters: {} problem(s)", problems.len())
}
