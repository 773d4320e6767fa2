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
