-- A key's caps on each of its end users (docs/end-users.md), in cents; NULL is no such cap.
ALTER TABLE keys ADD COLUMN end_user_daily_cap_cents BIGINT CHECK (end_user_daily_cap_cents >= 0);
ALTER TABLE keys ADD COLUMN end_user_total_cap_cents BIGINT CHECK (end_user_total_cap_cents >= 0);

-- What each end user of a key spent and holds, per UTC day (the day its hold counted on, as
-- key_days) and in total. Every call that names an end user counts here, whether or not its
-- key caps end users, so a cap set later counts what was already spent. Written by the hold
-- and its settlement in their transactions, under the key's lock; `ledger verify` recomputes
-- them from the ledger.
CREATE TABLE end_user_days (
    key_id        BIGINT NOT NULL,
    end_user      TEXT NOT NULL,
    day_number    BIGINT NOT NULL,
    spent_micros  BIGINT NOT NULL DEFAULT 0 CHECK (spent_micros >= 0),
    held_micros   BIGINT NOT NULL DEFAULT 0 CHECK (held_micros >= 0),
    PRIMARY KEY (key_id, end_user, day_number)
);
CREATE TABLE end_user_totals (
    key_id        BIGINT NOT NULL,
    end_user      TEXT NOT NULL,
    spent_micros  BIGINT NOT NULL DEFAULT 0 CHECK (spent_micros >= 0),
    held_micros   BIGINT NOT NULL DEFAULT 0 CHECK (held_micros >= 0),
    PRIMARY KEY (key_id, end_user)
);

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
