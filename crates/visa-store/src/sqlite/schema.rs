//! The SQLite schema as an ordered list of migrations; `PRAGMA user_version` records how
//! many have been applied. Times are integer microseconds since the Unix epoch; money is
//! integer micros; secret hashes are 32-byte blobs.

use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE accounts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    login           TEXT NOT NULL UNIQUE,
    password_hash   TEXT,
    approved        INTEGER NOT NULL DEFAULT 0,
    balance_micros  INTEGER NOT NULL DEFAULT 0 CHECK (balance_micros >= 0),
    held_micros     INTEGER NOT NULL DEFAULT 0 CHECK (held_micros >= 0 AND held_micros <= balance_micros),
    created_at      INTEGER NOT NULL
);

CREATE TABLE sessions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id  INTEGER NOT NULL REFERENCES accounts(id),
    token_hash  BLOB NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);

CREATE TABLE keys (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id          INTEGER NOT NULL REFERENCES accounts(id),
    environment         TEXT NOT NULL,
    label               TEXT NOT NULL,
    tool_scope          TEXT NOT NULL,
    allowed_tools       TEXT NOT NULL,
    allowed_cidrs       TEXT NOT NULL,
    daily_cap_cents     INTEGER NOT NULL,
    total_cap_cents     INTEGER,
    expires_at          INTEGER,
    read_only           INTEGER NOT NULL DEFAULT 0,
    created_at          INTEGER NOT NULL,
    revoked_at          INTEGER,
    last_used_at        INTEGER,
    last_used_ip        TEXT,
    spent_day_number    INTEGER NOT NULL DEFAULT 0,
    spent_day_micros    INTEGER NOT NULL DEFAULT 0,
    spent_total_micros  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX keys_by_account ON keys(account_id, id);

CREATE TABLE key_secrets (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    key_id        INTEGER NOT NULL REFERENCES keys(id),
    hash          BLOB NOT NULL UNIQUE,
    key_prefix    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    revoked_at    INTEGER,
    last_used_at  INTEGER,
    last_used_ip  TEXT
);
CREATE INDEX key_secrets_by_key ON key_secrets(key_id, id);

-- Append-only: every money movement, in the same transaction as the counters it changes.
CREATE TABLE ledger (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id     INTEGER NOT NULL REFERENCES accounts(id),
    key_id         INTEGER,
    execution_id   INTEGER,
    kind           TEXT NOT NULL CHECK (kind IN ('credit', 'hold', 'capture', 'release', 'void')),
    amount_micros  INTEGER NOT NULL CHECK (amount_micros >= 0),
    created_at     INTEGER NOT NULL
);
CREATE INDEX ledger_by_account ON ledger(account_id, id);
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
"#];

/// Brings the database up to the newest schema, one transaction per migration.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let applied: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index + 1)?;
        tx.commit()?;
    }
    Ok(())
}
