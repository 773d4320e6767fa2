//! The SQLite schema as an ordered list of migrations; `PRAGMA user_version` records how
//! many have been applied. Times are integer microseconds since the Unix epoch; money is
//! integer micros; secret hashes are 32-byte blobs.

use rusqlite::{Connection, OptionalExtension};

const MIGRATIONS: &[&str] = &[
    r#"
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
    rate_limit_per_second INTEGER NOT NULL DEFAULT 100
);

-- A key's spend counters, in step with the ledger: captured and currently held micros for the
-- UTC day `spent_day_number` and in total, with a copy of the caps and revocation they are
-- checked against (kept in the same transaction as every change to the key). A narrow table
-- of its own, because every paid call updates it twice.
CREATE TABLE key_spend (
    key_id              INTEGER PRIMARY KEY REFERENCES keys(id),
    daily_cap_cents     INTEGER NOT NULL,
    total_cap_cents     INTEGER,
    revoked_at          INTEGER,
    spent_day_number    INTEGER NOT NULL DEFAULT 0,
    spent_day_micros    INTEGER NOT NULL DEFAULT 0 CHECK (spent_day_micros >= 0),
    held_day_micros     INTEGER NOT NULL DEFAULT 0 CHECK (held_day_micros >= 0),
    spent_total_micros  INTEGER NOT NULL DEFAULT 0 CHECK (spent_total_micros >= 0),
    held_total_micros   INTEGER NOT NULL DEFAULT 0 CHECK (held_total_micros >= 0)
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

-- One paid call: its hold, its outcome, and the response stored for idempotent replay.
-- Rows are never deleted, so plain rowids increase like AUTOINCREMENT ones without its
-- extra write to sqlite_sequence on every insert (this table and the ledger are the hot path).
CREATE TABLE executions (
    id               INTEGER PRIMARY KEY,
    public_id        TEXT NOT NULL UNIQUE,
    account_id       INTEGER NOT NULL REFERENCES accounts(id),
    key_id           INTEGER NOT NULL REFERENCES keys(id),
    secret_id        INTEGER NOT NULL,
    idempotency_key  BLOB NOT NULL,
    request_hash     BLOB NOT NULL,
    tool             TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'reconcile_required', 'voided')),
    sandbox          INTEGER NOT NULL,
    day_number       INTEGER NOT NULL,
    hold_micros      INTEGER NOT NULL CHECK (hold_micros >= 0),
    charged_micros   INTEGER NOT NULL DEFAULT 0 CHECK (charged_micros >= 0 AND charged_micros <= hold_micros),
    receipt_id       TEXT,
    created_at       INTEGER NOT NULL,
    finished_at      INTEGER
);

-- The exact answer of a finished execution, replayed byte for byte. A table of its own, so
-- storing it appends a row instead of growing the execution's row in place.
CREATE TABLE execution_responses (
    execution_id  INTEGER PRIMARY KEY REFERENCES executions(id),
    status        INTEGER NOT NULL,
    body          BLOB NOT NULL
);
CREATE INDEX executions_by_account ON executions(account_id, id);
CREATE INDEX executions_by_key ON executions(key_id, id);
-- No index on state: it would cost two writes per paid call, and only crash recovery (once,
-- at start) and the operator's rare reconcile list look executions up by state.

-- Idempotency-Key → execution, scoped to the key, kept for a retention period. A retryable
-- failure deletes its record so the same Idempotency-Key can be retried.
CREATE TABLE idempotency_records (
    key_id           INTEGER NOT NULL,
    idempotency_key  BLOB NOT NULL,
    execution_id     INTEGER NOT NULL REFERENCES executions(id),
    expires_at       INTEGER NOT NULL,
    PRIMARY KEY (key_id, idempotency_key)
) WITHOUT ROWID;

-- Admin keys: account credentials for automation (usable wherever a session is, never to
-- execute tools). Only the hash of the secret is stored.
CREATE TABLE admin_keys (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id   INTEGER NOT NULL REFERENCES accounts(id),
    label        TEXT NOT NULL,
    environment  TEXT NOT NULL,
    hash         BLOB NOT NULL UNIQUE,
    key_prefix   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);
CREATE INDEX admin_keys_by_account ON admin_keys(account_id, id);

-- Provider-side requests of queue-style tools (fal), by Idempotency-Key, so that a retry after
-- a timeout resumes the request already submitted instead of paying for a second one.
CREATE TABLE provider_requests (
    key_id           INTEGER NOT NULL,
    idempotency_key  BLOB NOT NULL,
    request_hash     BLOB NOT NULL,
    provider_ref     TEXT NOT NULL,
    PRIMARY KEY (key_id, idempotency_key)
) WITHOUT ROWID;

-- Request counts per key secret and UTC minute, flushed from memory about once a second.
-- `errors` is a JSON object: error_code -> count. Charges come from `executions`.
CREATE TABLE usage_minutes (
    secret_id  INTEGER NOT NULL,
    minute     INTEGER NOT NULL,
    key_id     INTEGER NOT NULL,
    requests   INTEGER NOT NULL,
    successes  INTEGER NOT NULL,
    errors     TEXT NOT NULL,
    PRIMARY KEY (secret_id, minute)
) WITHOUT ROWID;
CREATE INDEX usage_by_key ON usage_minutes(key_id, minute);

-- Append-only: every money movement, in the same transaction as the counters it changes.
-- Sandbox (preview) entries move key spend counters only, never an account balance.
CREATE TABLE ledger (
    id             INTEGER PRIMARY KEY,
    account_id     INTEGER NOT NULL REFERENCES accounts(id),
    key_id         INTEGER,
    execution_id   INTEGER,
    kind           TEXT NOT NULL CHECK (kind IN ('credit', 'hold', 'capture', 'release', 'void')),
    amount_micros  INTEGER NOT NULL CHECK (amount_micros >= 0),
    sandbox        INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL
);

CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
"#,
    r#"
-- Members: the people of an account, each with a role. Logins are unique server-wide. The
-- account's creator (its login) becomes its first owner; passwords move from the account to
-- its members. An invited member has an invitation hash until it is accepted.
CREATE TABLE members (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id         INTEGER NOT NULL REFERENCES accounts(id),
    login              TEXT NOT NULL UNIQUE,
    role               TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'developer', 'viewer')),
    password_hash      TEXT,
    invite_hash        BLOB UNIQUE,
    invite_expires_at  INTEGER,
    created_at         INTEGER NOT NULL
);
CREATE INDEX members_by_account ON members(account_id, id);
INSERT INTO members (account_id, login, role, password_hash, created_at)
    SELECT id, login, 'owner', password_hash, created_at FROM accounts;
ALTER TABLE accounts DROP COLUMN password_hash;

-- A session belongs to a member; its role is read on every request, so a role change or a
-- removal takes effect at once.
ALTER TABLE sessions ADD COLUMN member_id INTEGER REFERENCES members(id);
UPDATE sessions SET member_id = (SELECT m.id FROM members m WHERE m.account_id = sessions.account_id);
CREATE INDEX sessions_by_member ON sessions(member_id);

-- Append-only: one row per control-plane change, written in the change's own transaction.
-- `changes` is a JSON object: field -> {"before": .., "after": ..}.
CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts(id),
    actor_type   TEXT NOT NULL CHECK (actor_type IN ('operator', 'member', 'admin_key')),
    actor_id     INTEGER,
    actor_label  TEXT,
    action       TEXT NOT NULL,
    target       TEXT NOT NULL,
    changes      TEXT NOT NULL,
    ip           TEXT,
    user_agent   TEXT,
    created_at   INTEGER NOT NULL
);
CREATE INDEX audit_by_account ON audit_log(account_id, id);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
"#,
    r#"
-- Spend per key and UTC day, so that a hold placed on day D settles on day D whatever day it
-- is when it ends, and the counters of one day are never reset by another. Rebuilt from the
-- ledger, which is the truth (the old single-day counters forgot running holds of past days).
CREATE TABLE key_days (
    key_id        INTEGER NOT NULL,
    day_number    INTEGER NOT NULL,
    spent_micros  INTEGER NOT NULL DEFAULT 0 CHECK (spent_micros >= 0),
    held_micros   INTEGER NOT NULL DEFAULT 0 CHECK (held_micros >= 0),
    PRIMARY KEY (key_id, day_number)
) WITHOUT ROWID;
INSERT INTO key_days (key_id, day_number, spent_micros, held_micros)
    SELECT l.key_id, e.day_number,
           SUM(CASE WHEN l.kind = 'capture' THEN l.amount_micros ELSE 0 END),
           SUM(CASE WHEN l.kind = 'hold' THEN l.amount_micros ELSE -l.amount_micros END)
    FROM ledger l JOIN executions e ON e.id = l.execution_id
    WHERE l.kind IN ('hold', 'capture', 'release', 'void')
    GROUP BY l.key_id, e.day_number;

-- A key's all-time counters and the newest day it counted on (which never moves back). The
-- caps and revocation are read from `keys` in the hold's transaction, so no copy is kept.
CREATE TABLE key_spend_v3 (
    key_id              INTEGER PRIMARY KEY REFERENCES keys(id),
    latest_day          INTEGER NOT NULL DEFAULT 0,
    spent_total_micros  INTEGER NOT NULL DEFAULT 0 CHECK (spent_total_micros >= 0),
    held_total_micros   INTEGER NOT NULL DEFAULT 0 CHECK (held_total_micros >= 0)
);
INSERT INTO key_spend_v3 (key_id, latest_day, spent_total_micros, held_total_micros)
    SELECT s.key_id, MAX(s.spent_day_number, COALESCE((SELECT MAX(day_number) FROM key_days d WHERE d.key_id = s.key_id), 0)),
           s.spent_total_micros, s.held_total_micros
    FROM key_spend s;
DROP TABLE key_spend;
ALTER TABLE key_spend_v3 RENAME TO key_spend;

-- The ledger gains `overage`: what a provider reported beyond a call's hold (the platform's
-- loss, never charged to anyone, moving no counter).
DROP TRIGGER ledger_no_update;
DROP TRIGGER ledger_no_delete;
CREATE TABLE ledger_v3 (
    id             INTEGER PRIMARY KEY,
    account_id     INTEGER NOT NULL REFERENCES accounts(id),
    key_id         INTEGER,
    execution_id   INTEGER,
    kind           TEXT NOT NULL CHECK (kind IN ('credit', 'hold', 'capture', 'release', 'void', 'overage')),
    amount_micros  INTEGER NOT NULL CHECK (amount_micros >= 0),
    sandbox        INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL
);
INSERT INTO ledger_v3 SELECT id, account_id, key_id, execution_id, kind, amount_micros, sandbox, created_at FROM ledger;
DROP TABLE ledger;
ALTER TABLE ledger_v3 RENAME TO ledger;
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;

-- The operator's Idempotency-Keys (credits, reconciles), written with the change they guard.
CREATE TABLE operator_requests (
    idempotency_key  TEXT PRIMARY KEY,
    fingerprint      BLOB NOT NULL,
    target           TEXT NOT NULL,
    balance_after    INTEGER NOT NULL,
    held_after       INTEGER NOT NULL,
    created_at       INTEGER NOT NULL
) WITHOUT ROWID;

-- Retention finds expired records without a scan (time-ordered, so inserts append).
CREATE INDEX idempotency_records_by_expiry ON idempotency_records(expires_at);
CREATE INDEX operator_requests_by_age ON operator_requests(created_at);

-- A provider request lives as long as the Idempotency-Key that made it (older rows: expired).
ALTER TABLE provider_requests ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;
CREATE INDEX provider_requests_by_expiry ON provider_requests(expires_at);
"#,
    r#"
-- Usage retention rolls old minutes into their hour and old hours into their day; these find
-- the rows still to roll up without scanning the rolled ones.
CREATE INDEX usage_unrolled_hour ON usage_minutes(minute) WHERE minute % 60 != 0;
CREATE INDEX usage_unrolled_day ON usage_minutes(minute) WHERE minute % 1440 != 0;
"#,
    r#"
-- A pending invitation no longer holds its login: only members who accepted (or owners made
-- with their account) own a login server-wide; within an account a login is invited once.
-- (Rebuilt by SQLite's recipe: a UNIQUE column constraint cannot be dropped in place.)
CREATE TABLE members_rebuilt (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id         INTEGER NOT NULL REFERENCES accounts(id),
    login              TEXT NOT NULL,
    role               TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'developer', 'viewer')),
    password_hash      TEXT,
    invite_hash        BLOB UNIQUE,
    invite_expires_at  INTEGER,
    created_at         INTEGER NOT NULL
);
INSERT INTO members_rebuilt SELECT id, account_id, login, role, password_hash, invite_hash, invite_expires_at, created_at FROM members;
DROP TABLE members;
ALTER TABLE members_rebuilt RENAME TO members;
CREATE INDEX members_by_account ON members(account_id, id);
CREATE UNIQUE INDEX members_login_active ON members(login) WHERE invite_hash IS NULL;
CREATE UNIQUE INDEX members_login_in_account ON members(account_id, login);
CREATE INDEX members_invitations_by_expiry ON members(invite_expires_at) WHERE invite_hash IS NOT NULL;
-- Sessions say where they were opened, so a member can tell theirs from a thief's; expired
-- ones are pruned.
ALTER TABLE sessions ADD COLUMN ip TEXT;
ALTER TABLE sessions ADD COLUMN user_agent TEXT;
CREATE INDEX sessions_by_expiry ON sessions(expires_at);
"#,
    r#"
-- Server processes and their leases: an execution records the node running it, and only a
-- node whose lease expired has its running executions turned reconcile_required.
CREATE TABLE nodes (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    name              TEXT NOT NULL,
    started_at        INTEGER NOT NULL,
    lease_expires_at  INTEGER NOT NULL,
    reclaimed_at      INTEGER
);
ALTER TABLE executions ADD COLUMN node_id INTEGER REFERENCES nodes(id);
-- The calls in flight, by node: small (entries leave as calls settle) and written at its
-- right edge, so reclaiming a dead node's calls never scans the executions.
CREATE INDEX executions_running_by_node ON executions(node_id) WHERE state = 'running';
"#,
    r#"
-- The per-key rate limit: GCRA's theoretical arrival time (unix microseconds), moved by the
-- hold's first statement.
ALTER TABLE key_spend ADD COLUMN rate_tat_micros INTEGER NOT NULL DEFAULT 0;
-- One counter that every change to what authentication reads moves in the same transaction;
-- the credential cache polls it.
CREATE TABLE auth_version (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    version  INTEGER NOT NULL
);
INSERT INTO auth_version (id, version) VALUES (1, 0);
"#,
    r#"
-- A key may let the OpenAI-compatible surface take its calls without an Idempotency-Key.
ALTER TABLE keys ADD COLUMN idempotency_optional INTEGER NOT NULL DEFAULT 0;
"#,
    r#"
-- The money path's two CHECKs on a list of names become comparisons. SQLite evaluates
-- `x IN (a, b, c, ...)` in a CHECK by building a temporary B-tree of the list on every insert
-- and update of the row: per paid call, three such trees (the execution's insert and its
-- settle, each ledger insert), a tenth of the writer's time (docs/decisions.md). Same rules,
-- same rows; the tables are rebuilt by SQLite's recipe (a CHECK cannot change in place).
CREATE TABLE executions_v2 (
    id               INTEGER PRIMARY KEY,
    public_id        TEXT NOT NULL UNIQUE,
    account_id       INTEGER NOT NULL REFERENCES accounts(id),
    key_id           INTEGER NOT NULL REFERENCES keys(id),
    secret_id        INTEGER NOT NULL,
    idempotency_key  BLOB NOT NULL,
    request_hash     BLOB NOT NULL,
    tool             TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state = 'running' OR state = 'succeeded' OR state = 'failed'
                                          OR state = 'reconcile_required' OR state = 'voided'),
    sandbox          INTEGER NOT NULL,
    day_number       INTEGER NOT NULL,
    hold_micros      INTEGER NOT NULL CHECK (hold_micros >= 0),
    charged_micros   INTEGER NOT NULL DEFAULT 0 CHECK (charged_micros >= 0 AND charged_micros <= hold_micros),
    receipt_id       TEXT,
    created_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    node_id          INTEGER REFERENCES nodes(id)
);
INSERT INTO executions_v2 SELECT id, public_id, account_id, key_id, secret_id, idempotency_key, request_hash, tool,
    state, sandbox, day_number, hold_micros, charged_micros, receipt_id, created_at, finished_at, node_id FROM executions;
DROP TABLE executions;
ALTER TABLE executions_v2 RENAME TO executions;
CREATE INDEX executions_by_account ON executions(account_id, id);
CREATE INDEX executions_by_key ON executions(key_id, id);
CREATE INDEX executions_running_by_node ON executions(node_id) WHERE state = 'running';

DROP TRIGGER ledger_no_update;
DROP TRIGGER ledger_no_delete;
CREATE TABLE ledger_v4 (
    id             INTEGER PRIMARY KEY,
    account_id     INTEGER NOT NULL REFERENCES accounts(id),
    key_id         INTEGER,
    execution_id   INTEGER,
    kind           TEXT NOT NULL CHECK (kind = 'credit' OR kind = 'hold' OR kind = 'capture' OR kind = 'release'
                                       OR kind = 'void' OR kind = 'overage'),
    amount_micros  INTEGER NOT NULL CHECK (amount_micros >= 0),
    sandbox        INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL
);
INSERT INTO ledger_v4 SELECT id, account_id, key_id, execution_id, kind, amount_micros, sandbox, created_at FROM ledger;
DROP TABLE ledger;
ALTER TABLE ledger_v4 RENAME TO ledger;
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
"#,
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
