//! The SQLite schema as an ordered list of migrations (`migrations/NNNN_*.sql`, one file each,
//! never edited once released); `PRAGMA user_version` records how many have been applied.
//! Times are integer microseconds since the Unix epoch; money is integer micros; secret hashes
//! are 32-byte blobs.

use rusqlite::{Connection, OptionalExtension};

const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_members.sql"),
    include_str!("migrations/0003_key_days.sql"),
    include_str!("migrations/0004_usage_rollups.sql"),
    include_str!("migrations/0005_invitations.sql"),
    include_str!("migrations/0006_nodes.sql"),
    include_str!("migrations/0007_rate_limit.sql"),
    include_str!("migrations/0008_idempotency_optional.sql"),
    include_str!("migrations/0009_money_checks.sql"),
    include_str!("migrations/0010_mcp_sessions.sql"),
    include_str!("migrations/0011_oauth.sql"),
    include_str!("migrations/0012_webhooks.sql"),
    include_str!("migrations/0013_alert_settings.sql"),
    include_str!("migrations/0014_end_user_caps.sql"),
];

/// Brings the database up to the newest schema, one transaction per migration.
///
/// Foreign keys are off while they run (SQLite's recipe for rebuilding a table that others
/// reference; the pragma cannot change inside a transaction) and each migration commits only
/// if `foreign_key_check` finds nothing broken.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let applied: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if applied > MIGRATIONS.len() {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(format!(
                "the database's schema is version {applied}, newer than this build knows ({}): run the newer release",
                MIGRATIONS.len()
            )),
        ));
    }
    if applied == MIGRATIONS.len() {
        return Ok(());
    }
    let enforced: bool = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
    conn.pragma_update(None, "foreign_keys", false)?;
    let result = apply(conn, applied);
    conn.pragma_update(None, "foreign_keys", enforced)?;
    result
}

fn apply(conn: &mut Connection, applied: usize) -> rusqlite::Result<()> {
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        let broken: Option<String> = tx.query_row("PRAGMA foreign_key_check", [], |r| r.get(0)).optional()?;
        if let Some(table) = broken {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY),
                Some(format!("migration {} breaks a foreign key of {table}", index + 1)),
            ));
        }
        tx.pragma_update(None, "user_version", index + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database of the first release keeps signing in: each account's login becomes its
    /// owner (with the account's password) and open sessions belong to that owner.
    #[test]
    fn upgrading_from_the_first_schema_keeps_accounts_and_sessions() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute_batch(
            "INSERT INTO accounts (login, password_hash, approved, created_at) VALUES ('acme', 'phc', 1, 7);
             INSERT INTO sessions (account_id, token_hash, created_at, expires_at) VALUES (1, x'01', 7, 9);",
        )
        .unwrap();

        migrate(&mut conn).unwrap();

        let owner: (String, String, Option<String>) = conn
            .query_row("SELECT login, role, password_hash FROM members WHERE account_id = 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(owner, ("acme".into(), "owner".into(), Some("phc".into())));
        let session_member: i64 = conn.query_row("SELECT member_id FROM sessions", [], |r| r.get(0)).unwrap();
        assert_eq!(session_member, 1);
        let version: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, MIGRATIONS.len());
    }

    const EXECUTION: &str = "INSERT INTO executions (public_id, account_id, key_id, secret_id, idempotency_key, \
        request_hash, tool, state, sandbox, day_number, hold_micros, created_at) \
        VALUES ('ex_1', 1, 1, 1, x'01', x'02', 'echo', 'running', 0, 20000, 5, 7)";
    const LEDGER: &str = "INSERT INTO ledger (account_id, key_id, execution_id, kind, amount_micros, sandbox, created_at) \
        VALUES (1, 1, 1, 'hold', 5, 0, 7)";

    /// The paid call's writes build no temporary B-tree: a CHECK's `IN` list did, on every
    /// insert and update of the row.
    #[test]
    fn the_money_path_writes_build_no_temporary_tree() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let settle = "UPDATE executions SET state = 'succeeded', charged_micros = 1 WHERE id = 1 AND state = 'running'";
        for sql in [EXECUTION, LEDGER, settle] {
            let mut explain = conn.prepare(&format!("EXPLAIN {sql}")).unwrap();
            let opcodes: Vec<String> = explain.query_map([], |r| r.get(1)).unwrap().map(Result::unwrap).collect();
            assert!(opcodes.iter().any(|op| op == "Insert"), "{sql}: {opcodes:?}");
            assert!(!opcodes.iter().any(|op| op == "OpenEphemeral"), "{sql} builds a temporary tree");
        }
    }

    /// Rebuilding executions and the ledger for their CHECKs keeps every row, and the rules:
    /// a state or a kind outside the list is still refused, the ledger still append-only.
    #[test]
    fn the_check_rewrite_keeps_rows_and_rules() {
        let mut conn = Connection::open_in_memory().unwrap();
        let before = MIGRATIONS.len() - 1;
        for sql in &MIGRATIONS[..before] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", before).unwrap();
        conn.execute_batch(&format!(
            "INSERT INTO accounts (login, created_at) VALUES ('acme', 7);
             INSERT INTO keys (account_id, environment, label, tool_scope, allowed_tools, allowed_cidrs, \
                 daily_cap_cents, created_at) VALUES (1, 'live', 'k', 'all', '[]', '[]', 100, 7);
             {EXECUTION}; {LEDGER};"
        ))
        .unwrap();

        migrate(&mut conn).unwrap();

        let kept: (String, String, i64) = conn
            .query_row(
                "SELECT e.public_id, l.kind, l.amount_micros FROM executions e JOIN ledger l ON l.execution_id = e.id",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(kept, ("ex_1".into(), "hold".into(), 5));
        let refused = |sql: &str| conn.execute_batch(sql).unwrap_err().to_string();
        assert!(refused("UPDATE executions SET state = 'lost'").contains("CHECK"));
        assert!(refused(&LEDGER.replace("'hold'", "'gift'")).contains("CHECK"));
        assert!(refused("UPDATE ledger SET amount_micros = 0").contains("append-only"));
        conn.execute_batch("UPDATE executions SET state = 'voided'").unwrap();
    }
}
