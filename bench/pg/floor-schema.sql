-- The floor of a paid call on PostgreSQL: only the rows a paid call must change, nothing of
-- ours in between (bench/pg-floor.sh drives it with pgbench).
CREATE TABLE accounts (
    id bigint PRIMARY KEY,
    balance_micros bigint NOT NULL,
    held_micros bigint NOT NULL DEFAULT 0,
    CHECK (held_micros >= 0 AND held_micros <= balance_micros)
);
CREATE TABLE key_spend (
    key_id bigint PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES accounts(id),
    daily_cap_micros bigint NOT NULL,
    spent_day_micros bigint NOT NULL DEFAULT 0,
    held_day_micros bigint NOT NULL DEFAULT 0,
    spent_total_micros bigint NOT NULL DEFAULT 0,
    held_total_micros bigint NOT NULL DEFAULT 0
);
CREATE TABLE executions (
    id bigserial PRIMARY KEY,
    key_id bigint NOT NULL,
    state text NOT NULL,
    hold_micros bigint NOT NULL,
    charged_micros bigint NOT NULL DEFAULT 0
);
CREATE TABLE idempotency_records (
    key_id bigint NOT NULL,
    idempotency_key uuid NOT NULL,
    execution_id bigint NOT NULL,
    PRIMARY KEY (key_id, idempotency_key)
);
CREATE TABLE ledger (
    id bigserial PRIMARY KEY,
    account_id bigint NOT NULL,
    amount_micros bigint NOT NULL
);
