-- A batch of :batch paid calls as a node's money writer runs them (crates/visa-store/src/sql/
-- money/batch.rs), on the floor's tables: the holds — the batch's keys and its account locked
-- once, in id order, the counters moved by their sums, the executions and their Idempotency-Key
-- records inserted as sets — then their settlements, by sums and sets again, each transaction
-- locking executions, then keys in id order, then the account, as the writer does. (The writer
-- runs a batch's holds and settlements in one transaction; this floor commits twice per batch.)
-- Keys 1..64 on one account (as bench/pg.sh's paid runs); calls/s = script runs/s × :batch.
\set key random(0, 63)
BEGIN;
SELECT key_id FROM key_spend WHERE key_id IN (SELECT 1 + (:key + g) % 64 FROM generate_series(1, :batch) g)
    ORDER BY key_id FOR UPDATE;
SELECT id FROM accounts WHERE id = 1 FOR UPDATE;
WITH calls AS (SELECT 1 + (:key + g) % 64 AS key_id FROM generate_series(1, :batch) g),
  k AS (UPDATE key_spend ks SET held_day_micros = held_day_micros + u.n * 10000, held_total_micros = held_total_micros + u.n * 10000
        FROM (SELECT key_id, count(*) AS n FROM calls GROUP BY key_id) u
        WHERE ks.key_id = u.key_id AND spent_day_micros + held_day_micros + u.n * 10000 <= daily_cap_micros),
  a AS (UPDATE accounts SET held_micros = held_micros + :batch * 10000 WHERE id = 1 AND balance_micros - held_micros >= :batch * 10000),
  e AS (INSERT INTO executions (key_id, state, hold_micros) SELECT key_id, 'running', 10000 FROM calls RETURNING id, key_id)
INSERT INTO idempotency_records (key_id, idempotency_key, execution_id) SELECT key_id, gen_random_uuid(), id FROM e;
COMMIT;
BEGIN;
UPDATE executions SET state = 'succeeded', charged_micros = 10000
    WHERE id > currval('executions_id_seq') - :batch AND id <= currval('executions_id_seq') AND state = 'running';
SELECT key_id FROM key_spend WHERE key_id IN (SELECT 1 + (:key + g) % 64 FROM generate_series(1, :batch) g)
    ORDER BY key_id FOR UPDATE;
SELECT id FROM accounts WHERE id = 1 FOR UPDATE;
WITH calls AS (SELECT 1 + (:key + g) % 64 AS key_id FROM generate_series(1, :batch) g),
  k AS (UPDATE key_spend ks SET held_day_micros = held_day_micros - u.n * 10000, spent_day_micros = spent_day_micros + u.n * 10000,
          held_total_micros = held_total_micros - u.n * 10000, spent_total_micros = spent_total_micros + u.n * 10000
        FROM (SELECT key_id, count(*) AS n FROM calls GROUP BY key_id) u WHERE ks.key_id = u.key_id),
  a AS (UPDATE accounts SET held_micros = held_micros - :batch * 10000, balance_micros = balance_micros - :batch * 10000 WHERE id = 1)
INSERT INTO ledger (account_id, amount_micros) SELECT 1, -10000 FROM calls;
COMMIT;
