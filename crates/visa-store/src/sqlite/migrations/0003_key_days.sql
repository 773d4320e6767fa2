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
