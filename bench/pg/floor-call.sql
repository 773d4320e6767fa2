-- One paid call, as its two transactions: the conditional hold with its Idempotency-Key row,
-- then the capture. :accounts is 1 (every key on one account, as bench/run.sh) or 64.
\set key random(1, 64)
\set account 1 + (:key - 1) % :accounts
BEGIN;
UPDATE key_spend SET held_day_micros = held_day_micros + 10000, held_total_micros = held_total_micros + 10000
    WHERE key_id = :key AND spent_day_micros + held_day_micros + 10000 <= daily_cap_micros;
UPDATE accounts SET held_micros = held_micros + 10000 WHERE id = :account AND balance_micros - held_micros >= 10000;
WITH e AS (INSERT INTO executions (key_id, state, hold_micros) VALUES (:key, 'running', 10000) RETURNING id)
INSERT INTO idempotency_records (key_id, idempotency_key, execution_id) SELECT :key, gen_random_uuid(), id FROM e;
COMMIT;
BEGIN;
UPDATE executions SET state = 'succeeded', charged_micros = 10000 WHERE id = currval('executions_id_seq');
UPDATE key_spend SET held_day_micros = held_day_micros - 10000, spent_day_micros = spent_day_micros + 10000,
    held_total_micros = held_total_micros - 10000, spent_total_micros = spent_total_micros + 10000 WHERE key_id = :key;
UPDATE accounts SET held_micros = held_micros - 10000, balance_micros = balance_micros - 10000 WHERE id = :account;
INSERT INTO ledger (account_id, amount_micros) VALUES (:account, -10000);
COMMIT;
