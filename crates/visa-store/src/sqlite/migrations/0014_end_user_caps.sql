-- A key's caps on each of its end users (docs/end-users.md), in cents; NULL is no such cap.
ALTER TABLE keys ADD COLUMN end_user_daily_cap_cents INTEGER CHECK (end_user_daily_cap_cents >= 0);
ALTER TABLE keys ADD COLUMN end_user_total_cap_cents INTEGER CHECK (end_user_total_cap_cents >= 0);

-- What each end user of a key spent and holds, per UTC day (the day its hold counted on, as
-- key_days) and in total. Every call that names an end user counts here, whether or not its
-- key caps end users, so a cap set later counts what was already spent. Written by the hold
-- and its settlement in their transactions, under the key's lock; `ledger verify` recomputes
-- them from the ledger.
CREATE TABLE end_user_days (
    key_id        INTEGER NOT NULL,
    end_user      TEXT NOT NULL,
    day_number    INTEGER NOT NULL,
    spent_micros  INTEGER NOT NULL DEFAULT 0 CHECK (spent_micros >= 0),
    held_micros   INTEGER NOT NULL DEFAULT 0 CHECK (held_micros >= 0),
    PRIMARY KEY (key_id, end_user, day_number)
) WITHOUT ROWID;
CREATE TABLE end_user_totals (
    key_id        INTEGER NOT NULL,
    end_user      TEXT NOT NULL,
    spent_micros  INTEGER NOT NULL DEFAULT 0 CHECK (spent_micros >= 0),
    held_micros   INTEGER NOT NULL DEFAULT 0 CHECK (held_micros >= 0),
    PRIMARY KEY (key_id, end_user)
) WITHOUT ROWID;

-- The calls made before this migration that named an end user, counted from the ledger.
INSERT INTO end_user_days (key_id, end_user, day_number, spent_micros, held_micros)
    SELECT e.key_id, e.end_user, e.day_number,
           COALESCE(SUM(CASE WHEN l.kind = 'capture' THEN l.amount_micros ELSE 0 END), 0),
           COALESCE(SUM(CASE WHEN l.kind = 'hold' THEN l.amount_micros
                             WHEN l.kind IN ('capture', 'release', 'void') THEN -l.amount_micros ELSE 0 END), 0)
    FROM executions e JOIN ledger l ON l.execution_id = e.id
    WHERE e.end_user IS NOT NULL
    GROUP BY e.key_id, e.end_user, e.day_number;
INSERT INTO end_user_totals (key_id, end_user, spent_micros, held_micros)
    SELECT key_id, end_user, SUM(spent_micros), SUM(held_micros) FROM end_user_days GROUP BY key_id, end_user;

-- Spend analytics (docs/analytics.md): every call that ended and every call a limit refused,
-- counted per account, hour the call was made (hours since 1970), key, tool and outcome
-- (`ended`, or the limit that refused it: `key_daily_cap`, …), with what the account was
-- charged. Written by the transaction that ends or refuses the call, so they are exact;
-- `ledger verify` recomputes the ended calls' rows from the executions. The spend series
-- and the dashboard's overview read these, never the executions.
CREATE TABLE spend_hours (
    account_id      INTEGER NOT NULL,
    hour            INTEGER NOT NULL,
    key_id          INTEGER NOT NULL,
    tool            TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    calls           INTEGER NOT NULL DEFAULT 0,
    charged_micros  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, hour, key_id, tool, outcome)
) WITHOUT ROWID;
-- The same for the calls that name an end user, per UTC day.
CREATE TABLE spend_end_user_days (
    account_id      INTEGER NOT NULL,
    day_number      INTEGER NOT NULL,
    key_id          INTEGER NOT NULL,
    end_user        TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    calls           INTEGER NOT NULL DEFAULT 0,
    charged_micros  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, day_number, key_id, end_user, outcome)
) WITHOUT ROWID;
INSERT INTO spend_hours (account_id, hour, key_id, tool, outcome, calls, charged_micros)
    SELECT account_id, created_at / 3600000000, key_id, tool, 'ended', COUNT(*), SUM(charged_micros)
    FROM executions WHERE state NOT IN ('running', 'reconcile_required')
    GROUP BY account_id, created_at / 3600000000, key_id, tool;
INSERT INTO spend_end_user_days (account_id, day_number, key_id, end_user, outcome, calls, charged_micros)
    SELECT account_id, created_at / 86400000000, key_id, end_user, 'ended', COUNT(*), SUM(charged_micros)
    FROM executions WHERE state NOT IN ('running', 'reconcile_required') AND end_user IS NOT NULL
    GROUP BY account_id, created_at / 86400000000, key_id, end_user;
