//! The offline commands on a database, safe while servers run: `visa-cli ledger verify`
//! reads one consistent snapshot (a SQLite WAL reader, a PostgreSQL REPEATABLE READ
//! transaction: it neither blocks the servers nor sees half of a change) and recomputes every
//! counter; `visa-cli backup` copies the SQLite database with its online backup.

use crate::cli::{DatabaseArgs, LedgerCommand};
use anyhow::{anyhow, bail};
use std::path::Path;
use visa_store::Database;

fn database(args: &DatabaseArgs) -> anyhow::Result<Database> {
    if let Some(url) = &args.database_url {
        return Database::from_url(url).map_err(|e| anyhow!(e));
    }
    let path = args.data_dir.join(visa_server::DATABASE_FILE);
    if !path.is_file() {
        bail!("no database at {}", path.display());
    }
    Ok(Database::Sqlite(path))
}

pub fn backup(args: &DatabaseArgs, file: &Path, json: bool) -> anyhow::Result<()> {
    let database = database(args)?;
    database.backup_to(file).map_err(|e| anyhow!("cannot back up {database}: {e}"))?;
    if json {
        super::print_json(&serde_json::json!({ "ok": true, "file": file.display().to_string() }));
    } else {
        println!("backed up {database} to {}", file.display());
    }
    Ok(())
}

pub async fn run(command: LedgerCommand, json: bool) -> anyhow::Result<()> {
    let LedgerCommand::Verify { database: args } = command;
    let database = database(&args)?;
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
