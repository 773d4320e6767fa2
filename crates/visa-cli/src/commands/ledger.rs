//! `visa-cli ledger verify --data-dir DIR`: opens the database read-only in one read
//! transaction (safe while the server runs: a WAL reader neither blocks it nor sees half of a
//! change) and recomputes every counter.

use crate::cli::LedgerCommand;
use anyhow::{anyhow, bail};
use visa_store::SqliteStore;

pub async fn run(command: LedgerCommand, json: bool) -> anyhow::Result<()> {
    let LedgerCommand::Verify { data_dir } = command;
    let path = data_dir.join(visa_server::DATABASE_FILE);
    if !path.is_file() {
        bail!("no database at {}", path.display());
    }
    let problems = SqliteStore::verify_offline(&path).map_err(|e| anyhow!("cannot read the ledger: {e}"))?;
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
