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
